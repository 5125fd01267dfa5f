"""The one place a recipe becomes PEFT, bitsandbytes and mixed-precision settings.

Every method the studio offers maps here and nowhere else, and ``tests/unit/test_peft_setup.py``
checks the mapping row by row:

======================  ==========================================================
``method``              what it builds
======================  ==========================================================
``lora``                ``peft.LoraConfig`` on the detected (or listed) targets
``dora``                the same with ``use_dora=True``
``qlora``               ``LoraConfig`` over a 4-bit NF4 base (``BitsAndBytesConfig``); CUDA only
``prompt_tuning``       ``peft.PromptTuningConfig`` with :data:`PROMPT_TUNING_VIRTUAL_TOKENS`
``full``                no adapter: every weight trains
======================  ==========================================================
"""

from __future__ import annotations

import importlib.util
import logging
from typing import TYPE_CHECKING, Any, Literal

import torch
from peft import LoraConfig, PeftConfig, PromptTuningConfig, PromptTuningInit, TaskType
from torch import nn
from transformers import BitsAndBytesConfig

from codetune_studio.core.errors import ConfigError
from codetune_studio.engine.targets import TargetModules, resolve_target_modules

if TYPE_CHECKING:
    from codetune_studio.core.recipe import TrainingRecipe

__all__ = [
    "PEFT_METHODS",
    "PROMPT_TUNING_VIRTUAL_TOKENS",
    "MixedPrecision",
    "base_load_dtype",
    "bf16_supported",
    "build_peft_config",
    "device_type",
    "prepare_model",
    "quantization_config",
    "resolve_mixed_precision",
    "trainable_parameters",
]

logger = logging.getLogger(__name__)

MixedPrecision = Literal["no", "bf16", "fp16"]
DeviceType = Literal["cuda", "mps", "cpu"]

#: Methods that train an adapter (saved in PEFT's format) rather than the whole model.
PEFT_METHODS = frozenset({"lora", "dora", "qlora", "prompt_tuning"})

#: Soft-prompt length for ``prompt_tuning``; the recipe has no field for it yet.
PROMPT_TUNING_VIRTUAL_TOKENS = 20

_QLORA_HINT = (
    "QLoRA needs an NVIDIA GPU with CUDA and the bitsandbytes package; "
    "use method: lora (or dora) on this machine"
)


def device_type() -> DeviceType:
    """The device a run trains on, in Accelerate's order of preference.

    CUDA, then Apple's MPS, then the CPU. Accelerate itself tries MPS before CUDA, but no
    machine has both, so the two orders agree; ``Accelerator(cpu=False)`` then picks this
    device on its own.

    Returns:
        ``"cuda"``, ``"mps"`` or ``"cpu"``.
    """
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available() and torch.backends.mps.is_built():
        return "mps"
    return "cpu"


def bf16_supported(device: str) -> bool:
    """Whether a device computes in bfloat16, judged as Accelerate judges it.

    Args:
        device: ``cuda``, ``mps`` or ``cpu``.

    Returns:
        For CUDA, whether the GPU supports bf16; for MPS, whether macOS is 14 or newer (older
        Metal has no bf16, and Accelerate refuses it there); for the CPU, ``True``.
    """
    if device == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device == "mps":
        return bool(torch.backends.mps.is_macos_or_newer(14, 0))
    return True


def resolve_mixed_precision(
    precision: str, *, device_type: str, bf16_supported: bool
) -> MixedPrecision:
    """Turn the recipe's ``training.precision`` into Accelerate's ``mixed_precision``.

    ``auto`` picks bf16 on a CUDA GPU that supports it, fp16 on older CUDA GPUs, and full
    precision elsewhere: CPU autocast is slower than fp32 on most CPUs, and on Apple's MPS
    fp16 autocast (with a gradient scaler) and bf16 (macOS 14+) are opt-in, since both are
    newer there and less well trodden for training than fp32. An explicit ``fp16`` or ``bf16``
    is passed on to Accelerate, which supports both on MPS with this torch.

    Args:
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        device_type: ``cuda``, ``mps`` or ``cpu``.
        bf16_supported: Whether the device computes in bfloat16.

    Returns:
        ``"no"``, ``"bf16"`` or ``"fp16"``.

    Raises:
        ConfigError: If the precision cannot run on this device.
    """
    if precision == "auto":
        if device_type == "cuda":
            return "bf16" if bf16_supported else "fp16"
        return "no"
    if precision == "fp32":
        return "no"
    if precision == "bf16":
        if device_type == "cuda" and not bf16_supported:
            raise ConfigError(
                "training.precision: bf16 is not supported by this GPU; use fp16 or auto"
            )
        if device_type == "mps" and not bf16_supported:
            raise ConfigError(
                "training.precision: bf16 on an Apple GPU needs macOS 14 or newer; "
                "use fp16, fp32 or auto"
            )
        return "bf16"
    if precision == "fp16":
        if device_type == "cpu":
            raise ConfigError(
                "training.precision: fp16 needs a GPU; use bf16, fp32 or auto on the CPU"
            )
        return "fp16"
    raise ConfigError(f"training.precision: got {precision!r}, must be auto, fp32, bf16 or fp16")


def base_load_dtype(method: str, mixed_precision: MixedPrecision) -> torch.dtype:
    """The dtype to load the base weights in.

    Frozen base weights under an adapter can live in the half-precision compute dtype (half
    the memory); PEFT keeps the adapter itself in fp32. A fully fine-tuned model keeps fp32
    master weights and lets autocast do the rest.

    Args:
        method: The recipe's method.
        mixed_precision: The Accelerate mixed precision in use.

    Returns:
        ``torch.float32``, ``torch.bfloat16`` or ``torch.float16``.
    """
    if method == "full" or mixed_precision == "no":
        return torch.float32
    return torch.bfloat16 if mixed_precision == "bf16" else torch.float16


def quantization_config(
    recipe: TrainingRecipe,
    *,
    cuda_available: bool,
    bitsandbytes_available: bool | None = None,
    compute_dtype: torch.dtype = torch.bfloat16,
) -> BitsAndBytesConfig | None:
    """The 4-bit loading settings for ``qlora``; ``None`` for every other method.

    Args:
        recipe: The recipe.
        cuda_available: Whether a CUDA GPU is present.
        bitsandbytes_available: Whether bitsandbytes is installed (looked up when ``None``).
        compute_dtype: The dtype the 4-bit layers compute in.

    Returns:
        An NF4 double-quantised ``BitsAndBytesConfig``, or ``None``.

    Raises:
        ConfigError: For ``qlora`` without CUDA or without bitsandbytes.
    """
    if recipe.method != "qlora":
        return None
    if bitsandbytes_available is None:
        bitsandbytes_available = importlib.util.find_spec("bitsandbytes") is not None
    if not cuda_available:
        raise ConfigError(f"method: qlora found no CUDA GPU. {_QLORA_HINT}")
    if not bitsandbytes_available:
        raise ConfigError(
            f"method: qlora needs bitsandbytes (pip install bitsandbytes). {_QLORA_HINT}"
        )
    return BitsAndBytesConfig(  # type: ignore[no-untyped-call]
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def build_peft_config(recipe: TrainingRecipe, targets: TargetModules | None) -> PeftConfig | None:
    """The PEFT adapter settings for a recipe.

    Args:
        recipe: The recipe.
        targets: The LoRA target modules (needed for lora, dora and qlora; ignored otherwise).

    Returns:
        A ``LoraConfig`` or ``PromptTuningConfig``, or ``None`` for full fine-tuning.

    Raises:
        ConfigError: If a LoRA method is given no targets.
    """
    method = recipe.method
    if method == "full":
        return None
    if method == "prompt_tuning":
        return PromptTuningConfig(
            task_type=TaskType.CAUSAL_LM,
            num_virtual_tokens=PROMPT_TUNING_VIRTUAL_TOKENS,
            prompt_tuning_init=PromptTuningInit.RANDOM,
        )
    if method in {"lora", "dora", "qlora"}:
        if targets is None or not targets.names:
            raise ConfigError(f"method: {method} needs lora.target_modules (or 'auto')")
        return LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=recipe.lora.r,
            lora_alpha=recipe.lora.lora_alpha,
            lora_dropout=recipe.lora.lora_dropout,
            target_modules=list(targets.names),
            fan_in_fan_out=targets.fan_in_fan_out,
            use_dora=method == "dora",
            bias="none",
        )
    raise ConfigError(
        f"method: got {method!r}, must be one of lora, dora, qlora, full, prompt_tuning"
    )


def prepare_model(model: Any, recipe: TrainingRecipe, *, gradient_checkpointing: bool) -> Any:
    """Make a loaded base model trainable the way the recipe says.

    Args:
        model: The base ``PreTrainedModel`` (4-bit for ``qlora``).
        recipe: The recipe.
        gradient_checkpointing: Whether to trade compute for activation memory.

    Returns:
        The model to train: a ``PeftModel`` for adapter methods, ``model`` itself for ``full``.

    Raises:
        ConfigError: If the targets are wrong for this model.
    """
    if gradient_checkpointing:
        # Non-reentrant checkpointing works with frozen inputs, so no enable_input_require_grads.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if recipe.method == "full":
        model.requires_grad_(True)
        return model
    from peft import get_peft_model, prepare_model_for_kbit_training

    if recipe.method == "qlora":
        model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    targets = None
    if recipe.method in {"lora", "dora", "qlora"}:
        targets = resolve_target_modules(model, recipe.lora.target_modules)
        logger.info("LoRA targets: %s", ", ".join(targets.names))
    config = build_peft_config(recipe, targets)
    if config is None:  # unreachable: only "full" has no config, handled above
        raise ConfigError(f"method: {recipe.method} has no adapter settings")
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise ConfigError(f"method: {recipe.method}: PEFT rejected the settings: {exc}") from exc


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """Count trainable and total parameters.

    Args:
        model: Any module.

    Returns:
        ``(trainable, total)``.
    """
    trainable = total = 0
    for parameter in model.parameters():
        count = parameter.numel()
        total += count
        if parameter.requires_grad:
            trainable += count
    return trainable, total

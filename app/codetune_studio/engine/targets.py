"""Finding the layers a LoRA adapter should wrap, for any Hugging Face decoder.

Architectures name their projections differently (Llama's ``q_proj``/``gate_proj``, GPT-2's
fused ``c_attn`` built from ``Conv1D``, Falcon's and GPT-NeoX's ``query_key_value``, OPT's
``fc1``...), so a hard-coded ``q_proj``/``v_proj`` list silently trains nothing on half of them.
Instead we look at the model itself: every ``Linear`` or ``Conv1D`` inside the repeated decoder
blocks is a target (what the QLoRA paper and PEFT's ``all-linear`` recommend), and the output head
is left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn
from transformers.pytorch_utils import Conv1D

from codetune_studio.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "TargetModules",
    "detect_target_modules",
    "linear_module_names",
    "resolve_target_modules",
]

logger = logging.getLogger(__name__)

#: Leaf names of projections that must not get an adapter: mixture-of-experts routers, whose
#: few outputs pick experts; adapting them destabilises routing.
_EXCLUDED_LEAVES = frozenset({"router", "gate", "score", "classifier"})


@dataclass(frozen=True, slots=True)
class TargetModules:
    """The module names to hand to ``peft.LoraConfig``.

    Attributes:
        names: Leaf module names (``"q_proj"``, ``"c_attn"``...), sorted.
        fan_in_fan_out: True when the targets are GPT-2-style ``Conv1D`` layers, which store their
            weight transposed; PEFT needs to know.
    """

    names: tuple[str, ...]
    fan_in_fan_out: bool = False


def linear_module_names(model: nn.Module) -> dict[str, nn.Module]:
    """Every ``Linear``/``Conv1D`` module of ``model`` except the output head, by qualified name.

    Args:
        model: A (possibly quantised) causal language model.

    Returns:
        Qualified name to module, in the model's order.
    """
    head = _output_head(model)
    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        # bitsandbytes' Linear4bit/Linear8bitLt subclass nn.Linear, so QLoRA models are covered.
        if isinstance(module, nn.Linear | Conv1D) and module is not head:
            found[name] = module
    return found


def detect_target_modules(model: nn.Module) -> TargetModules:
    """Work out the LoRA targets of a decoder model by inspecting its layers.

    A layer qualifies when it is a ``Linear`` or ``Conv1D`` inside a numbered block (a
    ``ModuleList`` of decoder layers, so its name has a numeric part such as ``layers.0``), is
    not the output head, and is not a router. If the model has no numbered blocks at all, every
    linear layer but the head qualifies.

    Args:
        model: The base model (before PEFT wraps it).

    Returns:
        The targets, sorted.

    Raises:
        ConfigError: If the model has no linear layers an adapter could wrap.
    """
    candidates = linear_module_names(model)
    in_blocks = {
        name: module
        for name, module in candidates.items()
        if any(part.isdigit() for part in name.split("."))
        and name.rsplit(".", 1)[-1] not in _EXCLUDED_LEAVES
    }
    chosen = in_blocks or {
        name: module
        for name, module in candidates.items()
        if name.rsplit(".", 1)[-1] not in _EXCLUDED_LEAVES
    }
    if not chosen:
        raise ConfigError(
            f"{type(model).__name__} has no linear layers a LoRA adapter could wrap; "
            "use method: full or prompt_tuning"
        )
    names = tuple(sorted({name.rsplit(".", 1)[-1] for name in chosen}))
    conv1d = [isinstance(module, Conv1D) for module in chosen.values()]
    targets = TargetModules(names=names, fan_in_fan_out=all(conv1d))
    logger.debug("detected LoRA targets for %s: %s", type(model).__name__, targets)
    return targets


def resolve_target_modules(model: nn.Module, requested: str | Sequence[str]) -> TargetModules:
    """Targets for a recipe's ``lora.target_modules``: detected for ``"auto"``, else checked.

    Args:
        model: The base model.
        requested: ``"auto"`` or a list of leaf (or qualified) module names.

    Returns:
        The targets to use.

    Raises:
        ConfigError: If a requested name matches no linear layer; the message lists valid names.
    """
    if isinstance(requested, str):
        if requested != "auto":
            requested = [requested]
        else:
            return detect_target_modules(model)
    candidates = linear_module_names(model)
    leaves = {name.rsplit(".", 1)[-1] for name in candidates}
    missing = [
        item
        for item in requested
        if item not in leaves
        and not any(name.endswith("." + item) or name == item for name in candidates)
    ]
    if missing:
        raise ConfigError(
            f"lora.target_modules: {missing} match no linear layer of {type(model).__name__}; "
            f"valid names are {sorted(leaves)} (or use 'auto')"
        )
    chosen = [
        module
        for name, module in candidates.items()
        if any(name == item or name.endswith("." + item) for item in requested)
    ]
    fan_in_fan_out = bool(chosen) and all(isinstance(module, Conv1D) for module in chosen)
    return TargetModules(names=tuple(requested), fan_in_fan_out=fan_in_fan_out)


def _output_head(model: nn.Module) -> nn.Module | None:
    getter = getattr(model, "get_output_embeddings", None)
    if getter is None:
        return None
    head = getter()
    return head if isinstance(head, nn.Module) else None

"""The recipe -> PEFT mapping, one row per method (STYLE.md section 5: one module, one table)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from codetune_studio.core.errors import ConfigError
from codetune_studio.core.recipe import TrainingRecipe


def _recipe(method: str, **lora: Any) -> TrainingRecipe:
    return TrainingRecipe.model_validate(
        {"model": "starter", "method": method, "dataset": {"path": "x.jsonl"}, "lora": lora}
    )


# method, lora overrides, expected config class name, expected attributes
PEFT_TABLE: list[tuple[str, dict[str, Any], str | None, dict[str, Any]]] = [
    (
        "lora",
        {},
        "LoraConfig",
        {
            "r": 8,
            "lora_alpha": 16,
            "lora_dropout": 0.05,
            "use_dora": False,
            "fan_in_fan_out": False,
            "target_modules": {"q_proj", "v_proj"},
            "task_type": "CAUSAL_LM",
            "bias": "none",
        },
    ),
    (
        "lora",
        {"r": 4, "lora_alpha": 32, "lora_dropout": 0.0},
        "LoraConfig",
        {"r": 4, "lora_alpha": 32, "lora_dropout": 0.0},
    ),
    ("dora", {"r": 16}, "LoraConfig", {"r": 16, "use_dora": True}),
    ("qlora", {}, "LoraConfig", {"use_dora": False, "r": 8}),
    (
        "prompt_tuning",
        {},
        "PromptTuningConfig",
        {"num_virtual_tokens": 20, "task_type": "CAUSAL_LM"},
    ),
    ("full", {}, None, {}),
]


@pytest.mark.parametrize(("method", "lora", "cls", "attrs"), PEFT_TABLE)
def test_recipe_maps_to_peft_config(
    method: str, lora: dict[str, Any], cls: str | None, attrs: dict[str, Any]
) -> None:
    from codetune_studio.engine.peft_setup import build_peft_config
    from codetune_studio.engine.targets import TargetModules

    config = build_peft_config(_recipe(method, **lora), TargetModules(("q_proj", "v_proj")))
    if cls is None:
        assert config is None
        return
    assert type(config).__name__ == cls
    for name, value in attrs.items():
        actual = getattr(config, name)
        if isinstance(value, set):
            actual = set(actual)
        assert actual == value, name


def test_conv1d_targets_carry_fan_in_fan_out() -> None:
    from codetune_studio.engine.peft_setup import build_peft_config
    from codetune_studio.engine.targets import TargetModules

    config = build_peft_config(_recipe("lora"), TargetModules(("c_attn",), fan_in_fan_out=True))
    assert config is not None
    assert getattr(config, "fan_in_fan_out", None) is True


# precision, device, bf16 supported -> Accelerate mixed_precision (None: ConfigError)
PRECISION_TABLE = [
    ("auto", "cpu", True, "no"),
    ("auto", "mps", False, "no"),
    ("auto", "cuda", True, "bf16"),
    ("auto", "cuda", False, "fp16"),
    ("fp32", "cuda", True, "no"),
    ("bf16", "cpu", True, "bf16"),
    ("bf16", "cuda", False, None),
    ("fp16", "cuda", True, "fp16"),
    ("fp16", "cpu", False, None),
    ("fp32", "mps", True, "no"),
    ("fp16", "mps", True, "fp16"),
    ("bf16", "mps", True, "bf16"),
    ("bf16", "mps", False, None),
]


@pytest.mark.parametrize(("precision", "device", "bf16", "expected"), PRECISION_TABLE)
def test_precision_maps_to_accelerate_mixed_precision(
    precision: str, device: str, bf16: bool, expected: str | None
) -> None:
    from codetune_studio.engine.peft_setup import resolve_mixed_precision

    if expected is None:
        with pytest.raises(ConfigError, match=r"training\.precision"):
            resolve_mixed_precision(precision, device_type=device, bf16_supported=bf16)
    else:
        assert (
            resolve_mixed_precision(precision, device_type=device, bf16_supported=bf16) == expected
        )


def _pretend_device(
    monkeypatch: pytest.MonkeyPatch, *, cuda: bool, mps: bool, macos14: bool = True
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: mps)
    monkeypatch.setattr(torch.backends.mps, "is_macos_or_newer", lambda major, minor: macos14)


# cuda present, mps present, macOS >= 14 -> device, precision "auto" resolves to
DEVICE_TABLE = [
    (True, False, False, "cuda", "bf16"),
    (True, True, True, "cuda", "bf16"),  # never seen, but CUDA comes first
    (False, True, True, "mps", "no"),
    (False, True, False, "mps", "no"),
    (False, False, False, "cpu", "no"),
]


@pytest.mark.parametrize(("cuda", "mps", "macos14", "device", "auto"), DEVICE_TABLE)
def test_device_order_is_cuda_then_mps_then_cpu(
    monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool, macos14: bool, device: str, auto: str
) -> None:
    from codetune_studio.engine.peft_setup import (
        bf16_supported,
        device_type,
        resolve_mixed_precision,
    )

    _pretend_device(monkeypatch, cuda=cuda, mps=mps, macos14=macos14)
    found = device_type()
    assert found == device
    supported = bf16_supported(found)
    assert resolve_mixed_precision("auto", device_type=found, bf16_supported=supported) == auto
    if found == "mps":
        # Explicit half precision on an Apple GPU: fp16 always, bf16 from macOS 14 on.
        assert resolve_mixed_precision("fp16", device_type=found, bf16_supported=supported) == (
            "fp16"
        )
        if macos14:
            assert resolve_mixed_precision("bf16", device_type=found, bf16_supported=True) == (
                "bf16"
            )
        else:
            with pytest.raises(ConfigError, match="macOS 14"):
                resolve_mixed_precision("bf16", device_type=found, bf16_supported=supported)


@pytest.mark.parametrize(
    ("method", "mixed", "dtype"),
    [
        ("lora", "no", "float32"),
        ("lora", "bf16", "bfloat16"),
        ("qlora", "fp16", "float16"),
        ("full", "bf16", "float32"),
    ],
)
def test_base_weights_load_in_the_compute_dtype_only_under_an_adapter(
    method: str, mixed: Any, dtype: str
) -> None:
    from codetune_studio.engine.peft_setup import base_load_dtype

    assert base_load_dtype(method, mixed) == getattr(torch, dtype)


def test_qlora_without_cuda_says_what_to_use_instead() -> None:
    from codetune_studio.engine.peft_setup import quantization_config

    with pytest.raises(ConfigError, match=r"NVIDIA GPU.*bitsandbytes.*method: lora"):
        quantization_config(_recipe("qlora"), cuda_available=False, bitsandbytes_available=True)
    with pytest.raises(ConfigError, match="pip install bitsandbytes"):
        quantization_config(_recipe("qlora"), cuda_available=True, bitsandbytes_available=False)


def test_qlora_with_cuda_asks_for_nf4_double_quantisation() -> None:
    from codetune_studio.engine.peft_setup import quantization_config

    config = quantization_config(
        _recipe("qlora"),
        cuda_available=True,
        bitsandbytes_available=True,
        compute_dtype=torch.bfloat16,
    )
    assert config is not None
    assert config.load_in_4bit
    assert config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    assert quantization_config(_recipe("lora"), cuda_available=True) is None


@pytest.mark.parametrize("method", ["lora", "dora", "prompt_tuning", "full"])
def test_prepare_model_trains_only_what_the_method_says(method: str) -> None:
    from codetune_studio.engine.peft_setup import prepare_model, trainable_parameters
    from tests.trainer_helpers import tiny_causal_lm

    model = prepare_model(tiny_causal_lm("llama"), _recipe(method), gradient_checkpointing=False)
    trainable, total = trainable_parameters(model)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if method == "full":
        assert trainable == total
    else:
        assert 0 < trainable < total
        marker = "prompt_encoder" if method == "prompt_tuning" else "lora_"
        assert all(marker in n for n in names)
    if method == "dora":
        assert any("lora_magnitude_vector" in n for n in names)

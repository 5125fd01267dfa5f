from __future__ import annotations

import pytest

from codetune_studio.core.errors import ConfigError
from tests.trainer_helpers import tiny_causal_lm

EXPECTED = {
    "llama": ({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}, False),
    "mistral": (
        {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
        False,
    ),
    "qwen2": ({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}, False),
    "phi": ({"q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"}, False),
    "gpt2": ({"c_attn", "c_proj", "c_fc"}, True),
    "falcon": ({"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"}, False),
    "gpt_neox": ({"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"}, False),
    "opt": ({"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"}, False),
}


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_detects_every_block_projection_and_never_the_head(arch: str) -> None:
    from peft import LoraConfig, get_peft_model

    from codetune_studio.engine.targets import detect_target_modules

    model = tiny_causal_lm(arch)
    targets = detect_target_modules(model)
    names, fan_in_fan_out = EXPECTED[arch]
    assert set(targets.names) == names
    assert targets.fan_in_fan_out is fan_in_fan_out
    assert "lm_head" not in targets.names
    # PEFT accepts the names and wraps something in every block.
    config = LoraConfig(
        r=2,
        target_modules=list(targets.names),
        fan_in_fan_out=fan_in_fan_out,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable
    assert all("lora_" in n for n in trainable)


def test_explicit_targets_are_checked_against_the_model() -> None:
    from codetune_studio.engine.targets import resolve_target_modules

    model = tiny_causal_lm("llama")
    assert resolve_target_modules(model, ["q_proj", "v_proj"]).names == ("q_proj", "v_proj")
    with pytest.raises(ConfigError, match=r"\['c_attn'\] match no linear layer.*q_proj"):
        resolve_target_modules(model, ["c_attn"])


def test_explicit_conv1d_targets_set_fan_in_fan_out() -> None:
    from codetune_studio.engine.targets import resolve_target_modules

    assert resolve_target_modules(tiny_causal_lm("gpt2"), ["c_attn"]).fan_in_fan_out

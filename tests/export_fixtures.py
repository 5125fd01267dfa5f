"""Fixtures for the export tests: a tiny Llama base with a LoRA adapter whose weights are not zero.

A freshly initialised LoRA adapter has B = 0 and changes nothing, so a merge that silently drops
it would still "verify". These adapters get random A and B, scaled so that the adapted model's
greedy tokens differ from the base's.
"""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING, Any

import pytest

from tests import engine_fixtures

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["in_process_probe", "lora_adapter_dir", "save_lora_adapter", "tiny_model_dir"]

tiny_model_dir = engine_fixtures.tiny_model_dir


def save_lora_adapter(base_dir: Path, out: Path, *, seed: int = 1, peft_config: Any = None) -> Path:
    """Train-free adapter: wrap the base with PEFT, randomise the adapter, save it as a run does."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    config = peft_config or LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"],
        init_lora_weights=False,  # random A and B: the adapter really changes the model
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(4.0)  # large enough to move the logits visibly
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(str(out))
    shutil.copy2(base_dir / "generation_config.json", out / "generation_config.json")
    return out


@pytest.fixture(scope="session")
def lora_adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter (random, non-zero) on the tiny Llama model, saved as a run saves it."""
    return save_lora_adapter(tiny_model_dir, tmp_path_factory.mktemp("run") / "adapter")


@pytest.fixture
def in_process_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the probe's checks in this process: the damaged variants test the verdicts, and the
    passing exports above already prove the child-process path (this saves CI a child each)."""
    from codetune_studio.engine import export_probe, export_verify

    def run(mode: str, args: list[str], more: list[str], *, work: Path, **_: object) -> object:
        report = work / f"{mode}.report.json"
        assert export_probe.main([mode, *args, *more, "--report", str(report)]) == 0
        return json.loads(report.read_text())

    monkeypatch.setattr(export_verify, "_run_probe", run)

"""Export end to end on a tiny Llama model with a non-zero LoRA adapter: write, verify, damage.

Each export is verified the way the studio does it (fresh child processes loading with plain
libraries); the reference depends only on the source, so one cached reference serves every
check of the module (a few seconds a child on CI).
"""

from __future__ import annotations

import json
import shutil
import struct
from typing import TYPE_CHECKING

import pytest

from codetune_studio.core.errors import ConfigError, ExportError
from codetune_studio.engine.export import ExportRequest, export_model
from codetune_studio.engine.export_verify import LOGIT_TOLERANCE, Verdict, verify_export
from tests import export_fixtures

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

tiny_model_dir = export_fixtures.tiny_model_dir
lora_adapter_dir = export_fixtures.lora_adapter_dir
in_process_probe = export_fixtures.in_process_probe


@pytest.fixture(scope="module")
def reference_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reference-cache")


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exports")


def _export(source: Path, out: Path, **options: object) -> Path:
    if not out.exists():
        export_model(ExportRequest(source=source, out=out, **options))  # type: ignore[arg-type]
    return out


def _verify(folder: Path, cache: Path) -> Verdict:
    return verify_export(folder, reference_cache=cache)


def _damaged_copy(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / f"damaged-{folder.name}"
    shutil.copytree(folder, copy)
    return copy


def _flip_safetensors_tensor(path: Path) -> str:
    """Negate the largest float32 tensor in place (the file keeps its size)."""
    import numpy as np

    with path.open("r+b") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
        tensors = {k: v for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32"}
        name = max(
            tensors, key=lambda k: tensors[k]["data_offsets"][1] - tensors[k]["data_offsets"][0]
        )
        start, end = tensors[name]["data_offsets"]
        handle.seek(8 + length + start)
        values = np.frombuffer(handle.read(end - start), dtype=np.float32)
        handle.seek(8 + length + start)
        handle.write((-values + 0.5).astype(np.float32).tobytes())
    return str(name)


# --- adapter ----------------------------------------------------------------------------------


def test_adapter_export_carries_tokenizer_template_card_and_verifies(
    lora_adapter_dir: Path, exports: Path, reference_cache: Path
) -> None:
    folder = _export(lora_adapter_dir, exports / "adapter")
    names = {path.name for path in folder.iterdir()}
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "chat_template.jinja",
        "generation_config.json",
        "README.md",
        "export.json",
    } <= names
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "Base model" in card
    assert "CodeTune Studio" in card
    verdict = _verify(folder, reference_cache)
    assert verdict.ok, verdict.summary()
    assert {check.name for check in verdict.checks} >= {"files", "logits", "greedy tokens"}
    assert "loaded without any studio code" in verdict.summary() or verdict.ok


@pytest.mark.parametrize("missing", ["tokenizer.json", "chat_template.jinja"])
def test_adapter_missing_tokenizer_file_fails_naming_it(
    missing: str,
    lora_adapter_dir: Path,
    exports: Path,
    reference_cache: Path,
    tmp_path: Path,
    in_process_probe: None,
) -> None:
    damaged = _damaged_copy(_export(lora_adapter_dir, exports / "adapter"), tmp_path)
    (damaged / missing).unlink()
    verdict = _verify(damaged, reference_cache)
    assert not verdict.ok
    assert f"missing tokenizer file {missing}" in verdict.summary()
    if missing == "chat_template.jinja":  # the chat prompt can no longer be rendered
        assert "tokenizer: cannot tokenize the prompts" in verdict.summary()


# --- merged -----------------------------------------------------------------------------------


def test_merged_fp32_is_sharded_and_matches_the_adapter_model(
    lora_adapter_dir: Path, exports: Path, reference_cache: Path
) -> None:
    folder = _export(lora_adapter_dir, exports / "merged", format="merged", shard_size="100KB")
    shards = sorted(folder.glob("model-*.safetensors"))
    assert len(shards) >= 2
    assert (folder / "model.safetensors.index.json").is_file()
    assert not (folder / "adapter_config.json").exists()  # merged: loads without peft
    verdict = _verify(folder, reference_cache)
    assert verdict.ok, verdict.summary()
    assert verdict.max_abs_logit_diff is not None
    assert verdict.max_abs_logit_diff <= LOGIT_TOLERANCE["fp32"]


def test_merged_truncated_shard_fails_naming_the_shard(
    lora_adapter_dir: Path,
    exports: Path,
    reference_cache: Path,
    tmp_path: Path,
    in_process_probe: None,
) -> None:
    folder = _export(lora_adapter_dir, exports / "merged", format="merged", shard_size="100KB")
    damaged = _damaged_copy(folder, tmp_path)
    shard = sorted(damaged.glob("model-*.safetensors"))[-1]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    verdict = _verify(damaged, reference_cache)
    assert not verdict.ok
    assert f"{shard.name} is truncated" in verdict.summary()


def test_merged_flipped_tensor_fails_on_the_logits(
    lora_adapter_dir: Path,
    exports: Path,
    reference_cache: Path,
    tmp_path: Path,
    in_process_probe: None,
) -> None:
    folder = _export(lora_adapter_dir, exports / "merged", format="merged", shard_size="100KB")
    damaged = _damaged_copy(folder, tmp_path)
    shard = sorted(damaged.glob("model-*.safetensors"))[0]
    _flip_safetensors_tensor(shard)
    verdict = _verify(damaged, reference_cache)
    assert not verdict.ok
    failed = {check.name: check.detail for check in verdict.checks if not check.ok}
    assert "exceeds the tolerance" in failed["logits"]
    assert f"{shard.name} changed since export" in failed["files"]


def test_merged_bf16_stays_within_its_tolerance(
    lora_adapter_dir: Path, exports: Path, reference_cache: Path
) -> None:
    folder = _export(lora_adapter_dir, exports / "merged-bf16", format="merged", dtype="bf16")
    assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"
    verdict = _verify(folder, reference_cache)
    assert verdict.ok, verdict.summary()
    assert verdict.tolerance == LOGIT_TOLERANCE["bf16"]
    assert 0 < (verdict.max_abs_logit_diff or 0) <= LOGIT_TOLERANCE["bf16"]


def test_full_fine_tune_exports_the_model_itself(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="full model"):
        export_model(ExportRequest(source=tiny_model_dir, out=tmp_path / "a", format="adapter"))
    result = export_model(
        ExportRequest(source=tiny_model_dir, out=tmp_path / "m", format="merged", dtype="fp16")
    )
    assert result.dtype == "fp16"
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_merge_refuses_prompt_tuning_and_says_why(tiny_model_dir: Path, tmp_path: Path) -> None:
    from peft import PromptTuningConfig

    adapter = export_fixtures.save_lora_adapter(
        tiny_model_dir,
        tmp_path / "pt",
        peft_config=PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4),
    )
    with pytest.raises(ConfigError, match="PROMPT_TUNING adapter cannot be merged"):
        export_model(ExportRequest(source=adapter, out=tmp_path / "out", format="merged"))
    assert not (tmp_path / "out").exists()


def test_merge_refuses_when_it_would_not_fit_in_memory(
    lora_adapter_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(
        ExportError, match=r"merging needs about [\d.]+ GiB of memory and 0\.00 GiB"
    ):
        export_model(
            ExportRequest(
                source=lora_adapter_dir, out=tmp_path / "out", format="gguf", available_memory=1
            )
        )
    assert list(tmp_path.iterdir()) == []  # no staging folder left behind


def test_export_refuses_a_non_empty_destination(lora_adapter_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        export_model(ExportRequest(source=lora_adapter_dir, out=tmp_path / "out"))
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


# --- GGUF -------------------------------------------------------------------------------------


def test_gguf_f16_with_ollama_modelfile_verifies(
    lora_adapter_dir: Path, exports: Path, reference_cache: Path
) -> None:
    from gguf import GGUFReader

    folder = _export(lora_adapter_dir, exports / "gguf-f16", format="gguf", ollama=True)
    reader = GGUFReader(folder / "model-f16.gguf")
    eot = reader.fields["tokenizer.ggml.eot_token_id"].contents()
    assert reader.fields["tokenizer.ggml.model"].contents() == "gpt2"
    assert reader.fields["tokenizer.ggml.pre"].contents() == "gpt-2"
    assert reader.fields["tokenizer.ggml.tokens"].contents()[eot] == "<|im_end|>"
    assert "<|im_start|>" in reader.fields["tokenizer.chat_template"].contents()
    modelfile = (folder / "Modelfile").read_text()
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    verdict = _verify(folder, reference_cache)
    assert verdict.ok, verdict.summary()
    assert {check.name for check in verdict.checks} >= {"metadata", "tensors", "modelfile"}


def test_gguf_q8_0_verifies_within_quantization_tolerance(
    lora_adapter_dir: Path, exports: Path, reference_cache: Path
) -> None:
    from gguf import GGUFReader

    folder = _export(lora_adapter_dir, exports / "gguf-q8", format="gguf", gguf_type="q8_0")
    kinds = {t.tensor_type.name for t in GGUFReader(folder / "model-q8_0.gguf").tensors}
    assert "Q8_0" in kinds
    verdict = _verify(folder, reference_cache)
    assert verdict.ok, verdict.summary()


def test_gguf_flipped_tensor_fails_naming_the_tensor(
    lora_adapter_dir: Path,
    exports: Path,
    reference_cache: Path,
    tmp_path: Path,
    in_process_probe: None,
) -> None:
    from gguf import GGUFReader

    damaged = _damaged_copy(
        _export(lora_adapter_dir, exports / "gguf-f16", format="gguf"), tmp_path
    )
    reader = GGUFReader(damaged / "model-f16.gguf", "r+")
    tensor = next(t for t in reader.tensors if t.name == "blk.0.attn_q.weight")
    tensor.data[...] = -tensor.data  # written through the memory map
    del reader
    verdict = _verify(damaged, reference_cache)
    assert not verdict.ok
    assert "tensor blk.0.attn_q.weight (F16) differs from the merged weights" in verdict.summary()


def test_gguf_truncated_file_fails(
    lora_adapter_dir: Path,
    exports: Path,
    reference_cache: Path,
    tmp_path: Path,
    in_process_probe: None,
) -> None:
    damaged = _damaged_copy(
        _export(lora_adapter_dir, exports / "gguf-f16", format="gguf"), tmp_path
    )
    gguf_file = damaged / "model-f16.gguf"
    gguf_file.write_bytes(gguf_file.read_bytes()[:-5000])
    verdict = _verify(damaged, reference_cache)
    assert not verdict.ok
    assert "truncated or not GGUF" in verdict.summary()


def test_verify_says_when_a_folder_is_not_an_export(tmp_path: Path) -> None:
    from codetune_studio.engine.export_verify import NotAnExportError

    with pytest.raises(NotAnExportError, match="not an export"):
        verify_export(tmp_path)

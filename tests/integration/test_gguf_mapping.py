"""GGUF tensor mapping per architecture, the Q/K reordering, and the Ollama Modelfile template.

The mapping tests write tiny llama/mistral/qwen2 models from configs and read them back with the
probe's checks run in this process (the child-process path is covered in test_export.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest

from codetune_studio.core.errors import ConfigError
from codetune_studio.engine import export_probe
from codetune_studio.engine.gguf_export import gguf_architecture, permute_qk, write_gguf
from codetune_studio.engine.modelfile import (
    SAMPLE_CHAT,
    modelfile_text,
    parse_modelfile,
    render_go_template,
)
from tests import engine_fixtures, export_fixtures
from tests.trainer_helpers import tiny_causal_lm

if TYPE_CHECKING:
    from pathlib import Path

    from transformers import PreTrainedTokenizerBase

pytestmark = pytest.mark.integration

tiny_model_dir = export_fixtures.tiny_model_dir
tiny_tokenizer = engine_fixtures.tiny_tokenizer


def test_permute_interleaves_rotary_halves_per_head_and_the_probe_undoes_it() -> None:
    # One head of dimension 4: HF rows are [x0, x1 | y0, y1] (first halves, then second
    # halves); llama.cpp wants the pairs together: [x0, y0, x1, y1].
    weight = np.array([[0.0], [1.0], [2.0], [3.0]])
    assert permute_qk(weight, heads=1)[:, 0].tolist() == [0.0, 2.0, 1.0, 3.0]
    two_heads = np.arange(16, dtype=np.float32).reshape(8, 2)
    permuted = permute_qk(two_heads, heads=2)
    assert permuted[:, 0].tolist() == [0, 4, 2, 6, 8, 12, 10, 14]
    assert np.array_equal(export_probe._unpermute(permuted, heads=2), two_heads)


def test_unsupported_architecture_names_the_supported_ones() -> None:
    with pytest.raises(ConfigError, match="'gpt2' architecture; it supports llama, mistral, qwen2"):
        gguf_architecture("gpt2")


def _gguf_check(model_dir: Path, gguf_file: Path, tmp_path: Path, arch: str) -> dict[str, object]:
    weights = tmp_path / "weights.safetensors"
    report = tmp_path / "report.json"
    argv = ["weights", "--source", str(model_dir), "--out", str(weights), "--report", str(report)]
    assert export_probe.main(argv) == 0
    flags = ["--permute"] if gguf_architecture(arch)[1] else []
    argv = ["gguf", "--gguf", str(gguf_file), "--weights", str(weights)]
    argv += ["--source-tokenizer", str(model_dir), "--source-config", str(model_dir), *flags]
    assert export_probe.main([*argv, "--report", str(report)]) == 0
    result: dict[str, object] = json.loads(report.read_text())
    return result


@pytest.mark.parametrize(
    ("arch", "gguf_arch", "expected"),
    [
        ("mistral", "llama", {"blk.0.attn_q.weight", "output.weight", "output_norm.weight"}),
        ("qwen2", "qwen2", {"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias"}),
    ],
)
def test_mistral_and_qwen2_map_every_tensor_and_read_back_equal(
    arch: str,
    gguf_arch: str,
    expected: set[str],
    tiny_model_dir: Path,
    tiny_tokenizer: PreTrainedTokenizerBase,
    tmp_path: Path,
) -> None:
    from gguf import GGUFReader

    model = tiny_causal_lm(arch, vocab_size=len(tiny_tokenizer), hidden_size=64)
    model.config.eos_token_id = tiny_tokenizer.eos_token_id
    model_dir = tmp_path / arch
    model.save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    gguf_file = tmp_path / f"{arch}.gguf"
    write_gguf(model, model_dir, gguf_file, "f16")
    reader = GGUFReader(gguf_file)
    assert reader.fields["general.architecture"].contents() == gguf_arch
    names = {tensor.name for tensor in reader.tensors}
    assert expected <= names
    assert len(names) == len(reader.tensors)
    report = _gguf_check(model_dir, gguf_file, tmp_path, arch)
    assert report["ok"], report["checks"]


def test_qwen2_read_back_as_llama_layout_would_fail(
    tiny_tokenizer: PreTrainedTokenizerBase, tmp_path: Path
) -> None:
    """The check really looks at the layout: un-permuting a qwen2 file breaks the comparison."""
    model = tiny_causal_lm("qwen2", vocab_size=len(tiny_tokenizer), hidden_size=64)
    model.config.eos_token_id = tiny_tokenizer.eos_token_id
    model_dir = tmp_path / "qwen2"
    model.save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    write_gguf(model, model_dir, tmp_path / "q.gguf", "f16")
    weights = tmp_path / "w.safetensors"
    report = tmp_path / "r.json"
    export_probe.main(
        ["weights", "--source", str(model_dir), "--out", str(weights), "--report", str(report)]
    )
    argv = ["gguf", "--gguf", str(tmp_path / "q.gguf"), "--weights", str(weights), "--permute"]
    argv += ["--source-tokenizer", str(model_dir), "--source-config", str(model_dir)]
    assert export_probe.main([*argv, "--report", str(report)]) == 0
    detail = json.loads(report.read_text())["checks"][-1]["detail"]
    assert "blk.0.attn_q.weight (F16) differs from the merged weights" in detail


def test_modelfile_template_renders_a_chat_like_the_tokenizer(
    tiny_tokenizer: PreTrainedTokenizerBase,
) -> None:
    template, stops = parse_modelfile(modelfile_text("model.gguf", tiny_tokenizer))
    assert stops == ["<|im_end|>"]
    for messages in (
        [dict(m) for m in SAMPLE_CHAT],
        [{"role": "user", "content": "hi"}],
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
    ):
        expected = tiny_tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        assert render_go_template(template, messages) == expected


def test_modelfile_keeps_a_bos_prefix_once(tiny_tokenizer: PreTrainedTokenizerBase) -> None:
    tokenizer = tiny_tokenizer.__class__.from_pretrained(tiny_tokenizer.name_or_path)
    tokenizer.chat_template = (
        "{{ bos_token }}{% for m in messages %}<|start|>{{ m['role'] }}\n{{ m['content'] }}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|start|>assistant\n{% endif %}"
    )
    template, _stops = parse_modelfile(modelfile_text("model.gguf", tokenizer))
    assert template.startswith("<|endoftext|>{{ range .Messages }}")
    messages = [dict(m) for m in SAMPLE_CHAT]
    assert render_go_template(template, messages) == tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )


def test_modelfile_refuses_a_template_it_cannot_express(
    tiny_tokenizer: PreTrainedTokenizerBase,
) -> None:
    tokenizer = tiny_tokenizer.__class__.from_pretrained(tiny_tokenizer.name_or_path)
    # A default system prompt appears only when the chat has none: no fixed header/footer.
    tokenizer.chat_template = (
        "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nDefault<|im_end|>\n{% endif %}"
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with pytest.raises(ConfigError, match="cannot be written as an Ollama TEMPLATE"):
        modelfile_text("model.gguf", tokenizer)


def test_gguf_says_whether_a_bos_token_is_added(
    tiny_model_dir: Path, tiny_tokenizer: PreTrainedTokenizerBase, tmp_path: Path
) -> None:
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    write_gguf(model, tiny_model_dir, tmp_path / "m.gguf", "q8_0")
    fields = GGUFReader(tmp_path / "m.gguf").fields
    adds_bos = tiny_tokenizer("a")["input_ids"][0] == tiny_tokenizer.bos_token_id
    assert fields["tokenizer.ggml.add_bos_token"].contents() is adds_bos
    assert "output.weight" not in {t.name for t in GGUFReader(tmp_path / "m.gguf").tensors}

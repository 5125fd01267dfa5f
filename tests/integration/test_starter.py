"""The starter model: built locally, loadable by plain transformers, cached once, resolved."""

from __future__ import annotations

import functools
import json
import threading
from typing import TYPE_CHECKING

import pytest

from codetune_studio.core.errors import ConfigError
from codetune_studio.engine import starter
from tests import engine_fixtures

if TYPE_CHECKING:
    from pathlib import Path

tiny_model_dir = engine_fixtures.tiny_model_dir

TINY = functools.partial(
    starter.StarterSpec,
    vocab_size=512,
    hidden=64,
    layers=1,
    intermediate=128,
    corpus_bytes=150_000,
    seq_len=64,
    batch_size=4,
)


def test_tiny_model_loads_with_plain_auto_classes(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    assert model.config.model_type == "llama"
    assert model.config.vocab_size == len(tokenizer) == 512
    assert sum(p.numel() for p in model.parameters()) < 200_000
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == (
        "<|im_end|>",
        "<|pad|>",
        "<|endoftext|>",
    )
    assert len({tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id}) == 3
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    code = "def f(x):\n    return x  # done\n"
    assert tokenizer.decode(tokenizer(code)["input_ids"]) == code
    ids = torch.tensor([tokenizer("import os")["input_ids"]])
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], 512)


def test_build_is_deterministic_by_seed(tmp_path):
    first = starter.build_tiny_model_and_tokenizer(tmp_path / "a", pretrain_steps=3)
    second = starter.build_tiny_model_and_tokenizer(tmp_path / "b", pretrain_steps=3)

    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_pretraining_lowers_the_loss(tmp_path):
    folder = starter.build_tiny_model_and_tokenizer(tmp_path / "m", pretrain_steps=30)

    report = json.loads((folder / "starter.json").read_text())

    assert report["loss_first"] > report["loss_last"] + 0.5
    assert report["corpus_files"] > 0


@pytest.fixture
def small_spec(monkeypatch):
    """Make ensure_starter_model build a tiny model, so caching can be tested quickly."""
    monkeypatch.setattr(starter, "StarterSpec", TINY)


def test_ensure_builds_once_then_reuses_the_cache(tmp_path, small_spec, monkeypatch):
    calls: list[tuple[int, int, str]] = []

    folder = starter.ensure_starter_model(
        tmp_path, pretrain_steps=2, on_progress=lambda *a: calls.append(a)
    )

    assert folder == tmp_path / "models" / "starter-v2"
    assert starter.is_starter_cached(tmp_path)
    assert calls[0][0] == 0
    assert calls[-1][0] == calls[-1][1]
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert not [p for p in folder.parent.iterdir() if ".tmp-" in p.name]

    def no_rebuild(*args: object) -> None:
        raise AssertionError("rebuilt a cached starter model")

    monkeypatch.setattr(starter, "_build", no_rebuild)
    assert starter.ensure_starter_model(tmp_path) == folder


def test_concurrent_callers_build_only_once(tmp_path, small_spec, monkeypatch):
    real_build = starter._build
    builds: list[Path] = []

    def counting_build(*args, **kwargs):
        builds.append(args[0])
        return real_build(*args, **kwargs)

    monkeypatch.setattr(starter, "_build", counting_build)
    results: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(starter.ensure_starter_model(tmp_path, pretrain_steps=0))
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(builds) == 1
    assert results == [tmp_path / "models" / "starter-v2"] * 2


def test_resolve_model_starter_and_local_folders(tmp_path, tiny_model_dir, small_spec):
    starter.ensure_starter_model(tmp_path, pretrain_steps=0)  # resolve_model would pre-train

    assert starter.resolve_model("starter", data_dir=tmp_path, offline=True) == (
        tmp_path / "models" / "starter-v2"
    )
    assert starter.resolve_model(str(tiny_model_dir), data_dir=tmp_path, offline=True) == (
        tiny_model_dir.resolve()
    )


def test_resolve_model_errors_say_how_to_fix(tmp_path):
    (tmp_path / "empty").mkdir()

    with pytest.raises(ConfigError, match=r"has no config\.json, so it is not a model folder"):
        starter.resolve_model(str(tmp_path / "empty"), data_dir=tmp_path, offline=True)
    with pytest.raises(ConfigError, match=r"folder .* not found"):
        starter.resolve_model("./no/such/model", data_dir=tmp_path, offline=True)
    with pytest.raises(ConfigError, match=r"not in the local Hugging Face cache.*hf download"):
        starter.resolve_model("someone/not-cached-model", data_dir=tmp_path, offline=True)


def test_resolve_model_passes_hub_ids_through_when_online(tmp_path):
    assert (
        starter.resolve_model("someone/model", data_dir=tmp_path, offline=False) == "someone/model"
    )


@pytest.mark.slow
def test_full_starter_build(tmp_path):
    folder = starter.ensure_starter_model(tmp_path)

    report = json.loads((folder / "starter.json").read_text())
    assert 3_000_000 < report["parameters"] < 6_000_000
    assert report["loss_last"] < report["loss_first"] - 2.0

"""The token and label inspector agrees with the trainer's examples, for every format."""

from __future__ import annotations

import json
from typing import Any

import pytest

from codetune_studio.cli.dataset import render_tokens
from codetune_studio.core.errors import ConfigError
from codetune_studio.core.recipe import DatasetSpec
from codetune_studio.engine.data import IGNORE_INDEX, prepare_data
from codetune_studio.engine.formats import FORMATS
from codetune_studio.engine.token_view import describe, labelled_dataset, rank_worst
from tests import engine_fixtures

tiny_model_dir = engine_fixtures.tiny_model_dir
tiny_tokenizer = engine_fixtures.tiny_tokenizer

ROWS: dict[str, list[dict[str, Any]]] = {
    "alpaca": [
        {"instruction": "Add two numbers.", "input": "", "output": "def add(a, b):\n    return a + b"},
        {"instruction": "Negate.", "input": "x = 3", "output": "-x", "system": "Be brief."},
    ],
    "chat": [
        {"messages": [{"role": "system", "content": "You write Python."},
                      {"role": "user", "content": "Square x."},
                      {"role": "assistant", "content": "x * x"},
                      {"role": "user", "content": "Cube it."},
                      {"role": "assistant", "content": "x ** 3"}]},
    ],
    "sharegpt": [
        {"conversations": [{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "hi"}]},
    ],
    "completion": [
        {"prompt": "def double(x):\n", "completion": "    return 2 * x\n"},
        {"prompt": "# a long prompt " * 30, "completion": "pass"},  # masked entirely: dropped
        {"prompt": "# cut\n", "completion": "x = 1\n" * 60},  # truncated

    ],
    "text": [{"text": "Python is a programming language.\nIt has classes."}],
    "code": [{"content": "import sys\n\nprint(sys.argv)\n", "path": "main.py"}],
}  # fmt: skip


def test_every_format_is_covered():
    assert set(ROWS) == set(FORMATS)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("completions_only", [True, False])
def test_inspector_shows_exactly_the_engines_ids_and_labels(
    tmp_path, tiny_tokenizer, fmt, completions_only
):
    path = tmp_path / f"{fmt}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS[fmt]), encoding="utf-8")
    spec = DatasetSpec(path=str(path), format=fmt, validation_split=0.0)
    max_len = 96

    data = prepare_data(
        spec, tiny_tokenizer, max_seq_length=max_len,
        train_on_completions_only=completions_only, seed=3,
    )  # fmt: skip
    labelled = labelled_dataset(spec, tiny_tokenizer, train_on_completions_only=completions_only)
    views = [describe(labelled, i, tiny_tokenizer, max_len) for i in range(len(labelled))]
    kept = [v for v in views if v.trained_tokens]

    assert [v.source for v in kept] == [e.source for e in data.train]
    for view, example in zip(kept, data.train, strict=True):
        assert view.input_ids[:max_len] == example.input_ids
        assert view.kept_labels == example.labels
        assert "".join(view.pieces) == tiny_tokenizer.decode(view.input_ids)


def test_view_tells_trained_from_masked_and_shows_eos_and_truncation(tmp_path, tiny_tokenizer):
    path = tmp_path / "qa.jsonl"
    rows = [{"prompt": "Q: two? A:", "completion": " 2"}, {"prompt": "Q:", "completion": " x" * 80}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    labelled = labelled_dataset(
        DatasetSpec(path=str(path)), tiny_tokenizer, train_on_completions_only=True
    )

    short = describe(labelled, 0, tiny_tokenizer, 32)
    assert not short.truncated
    assert short.eos_present
    assert short.eos_trained
    assert short.labels[0] == IGNORE_INDEX
    marked = render_tokens(short)
    assert marked.startswith("Q: two? A:«")
    assert marked.endswith("2<|im_end|>»")
    assert "EOS present and trained" in short.summary()

    long = describe(labelled, 1, tiny_tokenizer, 32)
    assert long.truncated
    assert not long.eos_present
    assert "✂[max_seq_length 32]" in render_tokens(long)
    assert "no EOS" in long.summary()

    eos = tiny_tokenizer.eos_token_id
    assert rank_worst(labelled, "truncated", 32, eos) == [1]
    assert rank_worst(labelled, "no-eos", 32, eos) == [1]
    assert rank_worst(labelled, "longest", 32, eos) == [1, 0]
    with pytest.raises(ConfigError, match="out of range"):
        describe(labelled, 2, tiny_tokenizer, 32)

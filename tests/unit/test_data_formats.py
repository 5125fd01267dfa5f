"""Dataset formats, malformed files, masking, truncation, splitting and the report."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from codetune_studio.core.errors import ConfigError, DatasetError
from codetune_studio.core.recipe import DatasetSpec
from codetune_studio.engine.data import (
    IGNORE_INDEX,
    TokenizedExample,
    inspect_dataset,
    prepare_data,
)
from tests import engine_fixtures

# The shared fixtures, made visible to pytest in this module.
tiny_model_dir = engine_fixtures.tiny_model_dir
tiny_tokenizer = engine_fixtures.tiny_tokenizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "datasets"

ALPACA = [
    {"instruction": "Add two numbers.", "input": "", "output": "def add(a, b):\n    return a + b"},
    {"instruction": "Reverse a string.", "input": "s = 'abc'", "output": "s[::-1]"},
    {"instruction": "Square x.", "output": "x * x"},
]


def _jsonl(rows: list[Any]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def _write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _spec(path: Path, **kwargs: Any) -> DatasetSpec:
    return DatasetSpec(path=str(path), **kwargs)


# --- detection of each format ------------------------------------------------------------------

FORMAT_CASES: list[tuple[str, str, str, int]] = [
    ("alpaca.jsonl", _jsonl(ALPACA), "alpaca", 3),
    (
        "chat.jsonl",
        _jsonl(
            [
                {
                    "messages": [
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Say hi"},
                        {"role": "assistant", "content": "hi"},
                    ]
                },
                {
                    "messages": [
                        {"role": "user", "content": [{"type": "text", "text": "Two?"}]},
                        {"role": "assistant", "content": "2"},
                    ]
                },
            ]
        ),
        "chat",
        2,
    ),
    (
        "sharegpt.jsonl",
        _jsonl(
            [
                {
                    "conversations": [
                        {"from": "human", "value": "Hi"},
                        {"from": "gpt", "value": "Yo"},
                    ]
                },
                {
                    "conversations": [
                        {"from": "user", "value": "1+1"},
                        {"from": "model", "value": "2"},
                    ]
                },
            ]
        ),
        "sharegpt",
        2,
    ),
    (
        "completion.jsonl",
        _jsonl([{"prompt": "def f(", "completion": "x): pass"}, {"prompt": "", "completion": "y"}]),
        "completion",
        2,
    ),
    ("text.jsonl", _jsonl([{"text": "import os"}, {"text": "print(1)"}]), "text", 2),
    ("code.jsonl", _jsonl([{"content": "x = 1\n"}, {"content": "y = 2\n"}]), "code", 2),
    ("alpaca.json", json.dumps(ALPACA, indent=2), "alpaca", 3),
    ("wrapped.json", json.dumps({"data": ALPACA}), "alpaca", 3),
    ("lines.json", _jsonl(ALPACA), "alpaca", 3),
    (
        "alpaca.csv",
        'instruction,input,output\nAdd.,,"def add(a, b):\n    return a + b"\nSquare.,x,x * x\n',
        "alpaca",
        2,
    ),
    ("notes.txt", "First paragraph.\nStill first.\n\nSecond paragraph.\n", "text", 2),
    ("script.py", "def main():\n    return 0\n", "code", 1),
]


@pytest.mark.parametrize(
    ("name", "content", "expected", "rows"), FORMAT_CASES, ids=[c[0] for c in FORMAT_CASES]
)
def test_auto_detects_each_format(tmp_path, name, content, expected, rows):
    report = inspect_dataset(_spec(_write(tmp_path, name, content)), None, max_seq_length=64)

    assert (report.format, report.rows, report.examples) == (expected, rows, rows)
    assert report.lengths is not None
    assert report.lengths.unit == "characters"


def test_folder_of_code_files_skips_binary_and_hidden_files(tmp_path):
    _write(tmp_path, "src/a.py", "a = 1\n")
    _write(tmp_path, "src/pkg/b.js", "let b = 2;\n")
    _write(tmp_path, "src/.hidden/c.py", "c = 3\n")
    _write(tmp_path, "src/__pycache__/d.py", "d = 4\n")
    _write(tmp_path, "src/blob.c", b"\x00\x01binary")
    _write(tmp_path, "src/latin.py", "caf\xe9 = 1\n".encode("latin-1"))

    report = inspect_dataset(_spec(tmp_path / "src"), None, max_seq_length=64)

    assert (report.format, report.examples) == ("code", 2)
    reasons = {Path(row.source.rsplit(":", 1)[0]).name: row.reason for row in report.dropped}
    assert reasons == {"blob.c": "binary file (contains NUL bytes)", "latin.py": "not UTF-8 text"}


def test_parquet_file_is_read_through_datasets(tmp_path):
    import datasets

    path = tmp_path / "rows.parquet"
    datasets.Dataset.from_list(ALPACA).to_parquet(str(path))

    report = inspect_dataset(_spec(path), None, max_seq_length=64)

    assert (report.format, report.rows) == ("alpaca", 3)


def test_column_mapping_renames_fields(tmp_path):
    rows = [{"question": "Two plus two?", "answer": "4"}, {"question": "Zero?", "answer": "0"}]
    path = _write(tmp_path, "qa.jsonl", _jsonl(rows))

    report = inspect_dataset(
        _spec(path, columns={"prompt": "question", "completion": "answer"}),
        None,
        max_seq_length=64,
    )

    assert report.format == "completion"


def test_explicit_format_is_checked_against_every_row(tmp_path):
    path = _write(tmp_path, "text.jsonl", _jsonl([{"text": "x"}]))

    with pytest.raises(DatasetError, match=r"text\.jsonl:1: missing 'instruction', 'output'"):
        inspect_dataset(_spec(path, format="alpaca"), None, max_seq_length=64)


# --- malformed input ---------------------------------------------------------------------------

MALFORMED: list[tuple[str, str | bytes, str]] = [
    (
        "latin1.jsonl",
        _jsonl(ALPACA[:2]).encode() + '{"text": "caf\xe9"}\n'.encode("latin-1"),
        r"latin1\.jsonl:3: not UTF-8 text \(byte 0xe9",
    ),
    ("empty.jsonl", "", r"empty\.jsonl: the file is empty"),
    ("blank.jsonl", "\n\n  \n", r"blank\.jsonl: the file is empty"),
    (
        "array-line.jsonl",
        "[1, 2]\n",
        r"array-line\.jsonl:1: found an array, expected a JSON object",
    ),
    ("number.json", "42", r"number\.json: found a number \(42\) at the top level"),
    ("strings.json", '["a", "b"]', r"strings\.json:1: found a string, expected a JSON object"),
    ("trailing.json", '[{"text": "a"} {"text": "b"}]', r"trailing\.json:1: invalid JSON"),
    (
        "unknown.jsonl",
        _jsonl([{"question": "q", "reply": "r"}]),
        r"unknown\.jsonl:1: cannot detect the format",
    ),
    (
        "wrong-type.jsonl",
        _jsonl([{"instruction": "x", "output": 5}]),
        r"wrong-type\.jsonl:1: 'output' is a number \(5\), expected a string",
    ),
    (
        "role.jsonl",
        _jsonl([{"messages": [{"role": "robot", "content": "x"}]}]),
        r"role\.jsonl:1: messages\[0\]: found role 'robot'",
    ),
    (
        "turn.jsonl",
        _jsonl([{"messages": [{"text": "x"}]}]),
        r"turn\.jsonl:1: messages\[0\]: found an object with keys \[text\], expected an object with 'role' and 'content'",
    ),
    (
        "from.jsonl",
        _jsonl([{"conversations": [{"from": "alien", "value": "x"}]}]),
        r"from\.jsonl:1: conversations\[0\]: found from='alien'",
    ),
    (
        "messages-str.jsonl",
        _jsonl([{"messages": "hello"}]),
        r"'messages' is a string \('hello'\), expected a list",
    ),
    ("header.csv", "a,a\n1,2\n", r"header\.csv:1: found header \['a', 'a'\], expected distinct"),
]


@pytest.mark.parametrize(("name", "content", "message"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_file_names_file_line_and_expectation(tmp_path, name, content, message):
    path = _write(tmp_path, name, content)

    with pytest.raises(DatasetError, match=message) as caught:
        inspect_dataset(_spec(path), None, max_seq_length=64)

    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_path_and_offline_hub_id_are_clear(tmp_path):
    with pytest.raises(DatasetError, match="no such file or folder"):
        inspect_dataset(_spec(tmp_path / "nope.jsonl"), None, max_seq_length=64)
    with pytest.raises(
        DatasetError, match="nor in the local Hugging Face cache, and the studio is offline"
    ):
        inspect_dataset(DatasetSpec(path="someone/some-dataset"), None, max_seq_length=64)


def test_mapped_column_missing_from_file(tmp_path):
    path = _write(tmp_path, "qa.jsonl", _jsonl([{"question": "q", "answer": "a"}]))

    with pytest.raises(
        DatasetError, match=r"qa\.jsonl:1: column 'answr' .* \(did you mean 'answer'\?\)"
    ):
        inspect_dataset(_spec(path, columns={"completion": "answr"}), None, max_seq_length=64)


def test_unknown_column_mapping_key_is_a_config_error(tmp_path):
    path = _write(tmp_path, "qa.jsonl", _jsonl([{"question": "q", "answer": "a"}]))

    with pytest.raises(ConfigError, match=r"unknown field 'promt' \(did you mean 'prompt'\?\)"):
        inspect_dataset(_spec(path, columns={"promt": "question"}), None, max_seq_length=64)


# A bad row among good ones does not stop the read: the report lists it (tests/unit/
# test_data_checks.py checks that every one is listed and that training refuses them).
BAD_AMONG_GOOD: list[tuple[str, str, str, str]] = [
    (
        "bad-line.jsonl",
        _jsonl(ALPACA[:1]) + '{"instruction": "x", \n',
        "bad-line.jsonl:2",
        r"invalid JSON at column \d+: .*expected one JSON object per line",
    ),
    (
        "missing.jsonl",
        _jsonl([ALPACA[0], {"instruction": "x", "input": ""}]),
        "missing.jsonl:2",
        r"missing 'output'; found columns \[instruction, input\]",
    ),
    (
        "fields.csv",
        "instruction,output\na,b\nc,d,e\n",
        "fields.csv:3",
        r"found 3 fields, expected 2",
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "where", "problem"), BAD_AMONG_GOOD, ids=[c[0] for c in BAD_AMONG_GOOD]
)
def test_bad_row_among_good_ones_is_reported_not_fatal(tmp_path, name, content, where, problem):
    path = _write(tmp_path, name, content)

    report = inspect_dataset(_spec(path), None, max_seq_length=64)

    assert report.examples == 1
    assert report.bad_row_count == 1
    assert report.bad_rows[0].source == str(tmp_path / where)
    assert re.search(problem, report.bad_rows[0].problem)


def test_shipped_malformed_fixture(tmp_path):
    report = inspect_dataset(_spec(FIXTURES / "bad-line.jsonl"), None, max_seq_length=64)

    assert [row.source for row in report.bad_rows] == [f"{FIXTURES / 'bad-line.jsonl'}:3"]
    assert report.bad_rows[0].problem.startswith("invalid JSON")


# --- report: dropped and duplicate rows ----------------------------------------------------------


def test_empty_and_duplicate_rows_are_reported_with_their_lines(tmp_path):
    rows = [ALPACA[0], {"instruction": "Nothing.", "output": "   "}, ALPACA[0]]
    path = _write(tmp_path, "d.jsonl", _jsonl(rows))

    report = inspect_dataset(_spec(path), None, max_seq_length=64)

    assert (report.rows, report.examples, report.empty_rows, report.duplicate_rows) == (3, 2, 1, 1)
    assert [(r.source, r.reason) for r in report.dropped] == [(f"{path}:2", "empty output")]
    assert [(d.source, d.same_as) for d in report.duplicates] == [(f"{path}:3", f"{path}:1")]
    assert json.loads(json.dumps(report.to_dict()))["dropped"][0]["reason"] == "empty output"


def test_conversation_without_assistant_text_is_dropped(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "q"}]},
    ]
    report = inspect_dataset(
        _spec(_write(tmp_path, "c.jsonl", _jsonl(rows))), None, max_seq_length=64
    )

    assert [r.reason for r in report.dropped] == ["no non-empty assistant message"]


# --- tokenizing, masking, truncation ---------------------------------------------------------------


def _decode_labels(tokenizer: Any, example: TokenizedExample) -> str:
    return str(tokenizer.decode([t for t in example.labels if t != IGNORE_INDEX]))


def test_completions_only_masks_everything_but_the_answer(tmp_path, tiny_tokenizer):
    path = _write(tmp_path, "a.jsonl", _jsonl(ALPACA[:1]))

    data = prepare_data(
        _spec(path, validation_split=0.0),
        tiny_tokenizer,
        max_seq_length=256,
        train_on_completions_only=True,
        seed=0,
    )

    (example,) = data.train
    assert data.format == "alpaca"
    assert example.source == f"{path}:1"
    assert len(example.input_ids) == len(example.labels)
    assert example.labels[0] == IGNORE_INDEX
    assert _decode_labels(tiny_tokenizer, example) == "def add(a, b):\n    return a + b<|im_end|>"
    assert example.input_ids[-1] == tiny_tokenizer.eos_token_id
    assert "<|im_start|>user\nAdd two numbers." in tiny_tokenizer.decode(example.input_ids)


def test_without_masking_labels_equal_inputs(tmp_path, tiny_tokenizer):
    path = _write(tmp_path, "c.jsonl", _jsonl([{"prompt": "def f(", "completion": "x): pass"}]))

    data = prepare_data(
        _spec(path, validation_split=0.0),
        tiny_tokenizer,
        max_seq_length=256,
        train_on_completions_only=False,
        seed=0,
    )

    (example,) = data.train
    assert example.labels == example.input_ids
    assert example.input_ids[-1] == tiny_tokenizer.eos_token_id


def test_completion_format_masks_the_prompt(tmp_path, tiny_tokenizer):
    path = _write(tmp_path, "c.jsonl", _jsonl([{"prompt": "def f(", "completion": "x): pass"}]))

    data = prepare_data(
        _spec(path, validation_split=0.0),
        tiny_tokenizer,
        max_seq_length=256,
        train_on_completions_only=True,
        seed=0,
    )

    assert _decode_labels(tiny_tokenizer, data.train[0]) == "x): pass<|im_end|>"


def test_multi_turn_chat_trains_on_every_assistant_turn(tmp_path, tiny_tokenizer):
    messages = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "1"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "2"},
    ]
    path = _write(tmp_path, "c.jsonl", _jsonl([{"messages": messages}]))

    data = prepare_data(
        _spec(path, validation_split=0.0),
        tiny_tokenizer,
        max_seq_length=256,
        train_on_completions_only=True,
        seed=0,
    )

    assert _decode_labels(tiny_tokenizer, data.train[0]) == "1<|im_end|>\n2<|im_end|>"


def test_tokenizer_without_chat_template_falls_back_to_chatml(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = None
    path = _write(tmp_path, "a.jsonl", _jsonl(ALPACA[:1]))

    data = prepare_data(
        _spec(path, validation_split=0.0),
        tokenizer,
        max_seq_length=256,
        train_on_completions_only=True,
        seed=0,
    )

    assert str(tokenizer.decode(data.train[0].input_ids)).startswith("<|im_start|>user\n")


def test_long_examples_are_truncated_and_counted(tmp_path, tiny_tokenizer):
    rows = [{"text": "x = 1\n" * 50}, {"text": "y = 2"}]
    path = _write(tmp_path, "t.jsonl", _jsonl(rows))

    data = prepare_data(
        _spec(path, validation_split=0.0),
        tiny_tokenizer,
        max_seq_length=16,
        train_on_completions_only=True,
        seed=0,
    )

    assert data.report.truncated == 1
    assert len(data.train[0].input_ids) == 16
    assert data.train[1].input_ids[-1] == tiny_tokenizer.eos_token_id
    assert data.report.lengths is not None
    assert data.report.lengths.unit == "tokens"
    assert data.report.lengths.max > 16


def test_prompt_filling_the_window_is_dropped_with_reason(tmp_path, tiny_tokenizer):
    rows = [ALPACA[1], {"instruction": "long " * 200, "output": "short"}]
    path = _write(tmp_path, "a.jsonl", _jsonl(rows))

    data = prepare_data(
        _spec(path, validation_split=0.0),
        tiny_tokenizer,
        max_seq_length=32,
        train_on_completions_only=True,
        seed=0,
    )

    assert len(data.train) == 1
    assert [(r.source, r.reason) for r in data.report.dropped] == [
        (f"{path}:2", "no completion tokens within max_seq_length=32")
    ]


def test_all_rows_dropped_is_an_error(tmp_path, tiny_tokenizer):
    path = _write(tmp_path, "a.jsonl", _jsonl([{"instruction": "x", "output": ""}]))

    with pytest.raises(DatasetError, match=r"no usable examples.*a\.jsonl:1: empty output"):
        prepare_data(
            _spec(path), tiny_tokenizer, max_seq_length=32, train_on_completions_only=True, seed=0
        )


# --- split and fingerprint ----------------------------------------------------------------------


def _numbered(tmp_path: Path, count: int, name: str = "n.jsonl") -> Path:
    rows = [{"prompt": f"n{i} =", "completion": f" {i}"} for i in range(count)]
    return _write(tmp_path, name, _jsonl(rows))


def _prepare(path: Path, tokenizer: Any, *, seed: int, split: float = 0.2) -> Any:
    return prepare_data(
        _spec(path, validation_split=split),
        tokenizer,
        max_seq_length=32,
        train_on_completions_only=True,
        seed=seed,
    )


def test_split_is_deterministic_by_seed(tmp_path, tiny_tokenizer):
    path = _numbered(tmp_path, 20)

    first, again, other = (_prepare(path, tiny_tokenizer, seed=s) for s in (1, 1, 2))

    held = [e.source for e in first.validation]
    assert len(held) == 4
    assert len(first.train) == 16
    assert held == [e.source for e in again.validation]
    assert held != [e.source for e in other.validation]
    assert not set(held) & {e.source for e in first.train}


@pytest.mark.parametrize(
    ("count", "split", "held"), [(1, 0.1, 0), (2, 0.1, 1), (5, 0.0, 0), (30, 0.1, 3)]
)
def test_split_sizes(tmp_path, tiny_tokenizer, count, split, held):
    data = _prepare(_numbered(tmp_path, count), tiny_tokenizer, seed=0, split=split)

    assert (len(data.train), len(data.validation)) == (count - held, held)


def test_fingerprint_follows_content_not_location(tmp_path, tiny_tokenizer):
    a = _prepare(_numbered(tmp_path / "a", 5), tiny_tokenizer, seed=0)
    b = _prepare(_numbered(tmp_path / "b", 5), tiny_tokenizer, seed=3)
    c = _prepare(_numbered(tmp_path / "c", 6), tiny_tokenizer, seed=0)

    assert a.fingerprint == b.fingerprint == a.report.fingerprint
    assert a.fingerprint != c.fingerprint


def test_inspect_with_tokenizer_counts_tokens(tmp_path, tiny_tokenizer):
    path = _write(tmp_path, "a.jsonl", _jsonl(ALPACA))

    report = inspect_dataset(_spec(path), tiny_tokenizer, max_seq_length=8)

    assert report.lengths is not None
    assert report.lengths.unit == "tokens"
    assert report.truncated == 3
    assert report.lengths.min <= report.lengths.p50 <= report.lengths.p95 <= report.lengths.max

"""Every bad row listed, skip_invalid_rows, near-duplicates, leaks, truncation and secrets."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from codetune_studio.core.errors import DatasetError
from codetune_studio.core.recipe import DatasetSpec
from codetune_studio.engine.data import MAX_LISTED_BAD_ROWS, inspect_dataset, prepare_data
from codetune_studio.engine.data_checks import find_near_duplicates, find_secrets
from tests import engine_fixtures

tiny_model_dir = engine_fixtures.tiny_model_dir
tiny_tokenizer = engine_fixtures.tiny_tokenizer


def _jsonl(rows: list[Any]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def _qa(n: int) -> dict[str, str]:
    return {"prompt": f"Question number {n}: what is {n} plus {n}?", "completion": f" {2 * n}"}


MIXED = (
    _jsonl([_qa(1)])
    + '{"prompt": "broken\n'  # line 2: invalid JSON
    + _jsonl([_qa(3), [1, 2]])  # line 4: an array, not an object
    + _jsonl([{"prompt": "x", "completion": 7}])  # line 5: completion is a number
    + _jsonl([{"prompt": "only a prompt"}])  # line 6: no completion
    + _jsonl([_qa(7)])
)


def test_every_bad_row_is_listed_with_line_found_and_expected(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(MIXED, encoding="utf-8")

    report = inspect_dataset(DatasetSpec(path=str(path)), None, max_seq_length=64)

    assert report.examples == 3
    assert report.rows == 7
    assert [row.source for row in report.bad_rows] == [f"{path}:{n}" for n in (2, 4, 5, 6)]
    problems = [row.problem for row in report.bad_rows]
    assert "expected one JSON object per line" in problems[0]
    assert problems[1] == "found an array, expected a JSON object record"
    assert problems[2] == "'completion' is a number (7), expected a string"
    assert problems[3].startswith("missing 'completion'")


def test_thousands_of_bad_rows_are_capped_with_a_count(tmp_path):
    path = tmp_path / "many.csv"
    good = "".join(f"q{i},a{i}\n" for i in range(10))
    bad = "".join(f"q{i},a{i},extra\n" for i in range(MAX_LISTED_BAD_ROWS + 250))
    path.write_text("prompt,completion\n" + good + bad, encoding="utf-8")

    report = inspect_dataset(DatasetSpec(path=str(path)), None, max_seq_length=64)

    assert report.bad_row_count == MAX_LISTED_BAD_ROWS + 250
    assert len(report.bad_rows) == MAX_LISTED_BAD_ROWS
    assert report.bad_rows[0].source == f"{path}:12"
    assert report.bad_rows[0].problem.startswith("found 3 fields, expected 2")


def test_training_refuses_bad_rows_unless_skip_invalid_rows(tmp_path, tiny_tokenizer, caplog):
    path = tmp_path / "mixed.jsonl"
    path.write_text(MIXED, encoding="utf-8")
    options: dict[str, Any] = {"max_seq_length": 64, "train_on_completions_only": True, "seed": 1}

    with pytest.raises(DatasetError, match=r"4 invalid rows \(first: .*mixed\.jsonl:2: invalid"):
        prepare_data(DatasetSpec(path=str(path)), tiny_tokenizer, **options)

    caplog.set_level(logging.INFO, logger="codetune_studio.engine.data")
    spec = DatasetSpec(path=str(path), skip_invalid_rows=True, validation_split=0.0)
    data = prepare_data(spec, tiny_tokenizer, **options)

    assert [e.source for e in data.train] == [f"{path}:{n}" for n in (1, 3, 7)]
    logged = [r.getMessage() for r in caplog.records]
    for line in (2, 4, 5, 6):
        assert any(m.startswith(f"skipped invalid row {path}:{line}: ") for m in logged)


def test_near_duplicates_found_and_unrelated_rows_left_alone(tmp_path):
    body = "def total(items):\n    result = 0\n    for item in items:\n        result += item.price * item.count\n    return result\n"
    rows = [
        {"text": body},
        {"text": "class Stack:\n    def __init__(self):\n        self.items = []\n    def push(self, x):\n        self.items.append(x)\n"},
        {"text": body.replace("return result", "return result  # the sum")},
        {"text": "import os\nprint(os.getcwd())\nfor name in os.listdir('.'):\n    print(name.upper())\n"},
    ]  # fmt: skip
    path = tmp_path / "code.jsonl"
    path.write_text(_jsonl(rows), encoding="utf-8")

    report = inspect_dataset(
        DatasetSpec(path=str(path)), None, max_seq_length=64, near_duplicates=True
    )

    assert [(d.source, d.similar_to) for d in report.near_duplicates] == [
        (f"{path}:3", f"{path}:1")
    ]
    assert 0.8 <= report.near_duplicates[0].similarity < 1.0
    assert (
        inspect_dataset(DatasetSpec(path=str(path)), None, max_seq_length=64).near_duplicates == ()
    )


def test_near_duplicates_scale_to_many_distinct_rows():
    rows = [
        (f"r:{i}", f"value_{i} = compute({i}, {i * 7}) + offset_{i % 13} * {i * 31}")
        for i in range(3000)
    ]

    assert find_near_duplicates(rows) == []


def test_rows_in_both_train_and_validation_are_reported(tmp_path):
    rows = [_qa(n) for n in range(20)] + [_qa(n) for n in range(20)]
    path = tmp_path / "twice.jsonl"
    path.write_text(_jsonl(rows), encoding="utf-8")

    report = inspect_dataset(
        DatasetSpec(path=str(path), validation_split=0.25), None, max_seq_length=64
    )

    assert report.split_leaks  # 10 held out of 40, each with a twin: most twins train
    for leak in report.split_leaks:
        first, second = int(leak.source.rsplit(":", 1)[1]), int(leak.same_as.rsplit(":", 1)[1])
        assert abs(first - second) == 20
    clean = tmp_path / "once.jsonl"
    clean.write_text(_jsonl(rows[:20]), encoding="utf-8")
    assert inspect_dataset(DatasetSpec(path=str(clean)), None, max_seq_length=64).split_leaks == ()


def test_rows_found_in_an_eval_file_are_reported(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(_jsonl([_qa(1), _qa(2), _qa(3)]), encoding="utf-8")
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        _jsonl(
            [{"task_id": "t1", "prompt": "question NUMBER 2:  what is 2 plus 2?", "answer": "4"}]
        ),
        encoding="utf-8",
    )

    report = inspect_dataset(
        DatasetSpec(path=str(path)), None, max_seq_length=64, eval_path=str(tasks)
    )

    assert [(d.source, d.same_as) for d in report.eval_leaks] == [(f"{path}:2", f"{tasks}:1")]


def test_truncated_and_untrained_rows_are_listed_by_row(tmp_path, tiny_tokenizer):
    rows = [
        {"prompt": "Short? ", "completion": "Yes."},
        {"prompt": "Long? ", "completion": "word " * 200},
        {"prompt": "A very long question " * 40, "completion": "Answer."},
    ]
    path = tmp_path / "lengths.jsonl"
    path.write_text(_jsonl(rows), encoding="utf-8")

    report = inspect_dataset(DatasetSpec(path=str(path)), tiny_tokenizer, max_seq_length=48)

    assert report.truncated_rows == (f"{path}:2", f"{path}:3")
    assert report.untrained_rows == (f"{path}:3",)


SECRETS = {
    "OpenAI API key": 'client = OpenAI(api_key="sk-proj-abcdefghijklmnopqrstuvwx1234")',
    "AWS access key": "AWS_ACCESS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE'",
    "GitHub token": "token = 'ghp_" + "a1B2c3D4e5" * 4 + "'",
    "private key block": "KEY = '''-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n'''",
    "password in a URL": 'engine = create_engine("postgresql://admin:hunter2x@db.example.com/app")',
}


@pytest.mark.parametrize(("kind", "code"), SECRETS.items(), ids=list(SECRETS))
def test_secrets_are_found_and_masked(kind, code):
    findings = find_secrets("f.py:1", code)

    assert [f.kind for f in findings] == [kind]
    assert "hunter2x" not in findings[0].excerpt
    assert "EXAMPLE" not in findings[0].excerpt


def test_placeholders_and_plain_code_are_not_secrets():
    code = 'url = "postgresql://user:password@localhost/db"\nurl2 = f"https://u:{token}@host"\nsk = "sk-short"'

    assert find_secrets("f.py:1", code) == []


def test_secrets_are_reported_by_row(tmp_path):
    rows = [{"text": "print('hello world')"}, {"text": SECRETS["AWS access key"]}]
    path = tmp_path / "code.jsonl"
    path.write_text(_jsonl(rows), encoding="utf-8")

    report = inspect_dataset(DatasetSpec(path=str(path)), None, max_seq_length=64)

    assert [(f.source, f.kind) for f in report.secrets] == [(f"{path}:2", "AWS access key")]

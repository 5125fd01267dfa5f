"""``codetune-studio dataset inspect`` on the shipped samples and on broken files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codetune_studio.cli import main
from tests import engine_fixtures

tiny_model_dir = engine_fixtures.tiny_model_dir

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "resources" / "datasets"
BAD = ROOT / "tests" / "fixtures" / "datasets" / "bad-line.jsonl"


def _inspect(tmp_path: Path, *args: str) -> int:
    return main(["--data-dir", str(tmp_path / "studio"), "dataset", "inspect", *args])


@pytest.mark.parametrize(
    ("name", "fmt"), [("python-instructions.jsonl", "alpaca"), ("python-chat.jsonl", "chat")]
)
def test_inspect_shipped_samples(tmp_path, capsys, name, fmt):
    status = _inspect(tmp_path, str(SAMPLES / name))

    out = capsys.readouterr().out
    rows = sum(1 for _ in (SAMPLES / name).open(encoding="utf-8"))
    assert status == 0
    assert f"Format       {fmt} (detected)\n" in out
    assert f"Rows         {rows} read, {rows} kept, 0 dropped\n" in out
    assert "Duplicates   0 (kept)" in out
    assert "(characters)" in out
    assert "Truncated    unknown: pass --model to count tokens" in out


def test_inspect_with_a_model_counts_tokens_as_json(tmp_path, capsys, tiny_model_dir):
    status = _inspect(
        tmp_path,
        str(SAMPLES / "python-instructions.jsonl"),
        "--model",
        str(tiny_model_dir),
        "--max-seq-length",
        "64",
        "--json",
    )

    report = json.loads(capsys.readouterr().out)
    assert status == 0
    assert report["format"] == "alpaca"
    assert report["tokenizer"] == str(tiny_model_dir)
    assert report["lengths"]["unit"] == "tokens"
    assert report["lengths"]["min"] <= report["lengths"]["p50"] <= report["lengths"]["max"]
    assert report["lengths"]["max"] > 64
    assert 0 < report["truncated"] < report["rows"]


def test_dropped_and_duplicate_rows_are_listed(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    rows = [
        {"prompt": "a", "completion": "b"},
        {"prompt": "c", "completion": " "},
        {"prompt": "a", "completion": "b"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    assert _inspect(tmp_path, str(path), "--format", "completion") == 0

    out = capsys.readouterr().out
    assert f"Dropped rows (1):\n  {path}:2: empty completion\n" in out
    assert f"Duplicate rows (1):\n  {path}:3: same as {path}:1" in out


def test_column_mapping_option(tmp_path, capsys):
    path = tmp_path / "qa.csv"
    path.write_text("question,answer\nTwo?,2\n", encoding="utf-8")

    status = _inspect(
        tmp_path, str(path), "--column", "prompt=question", "--column", "completion=answer"
    )

    assert status == 0
    assert "Format       completion (detected)" in capsys.readouterr().out


def test_bad_column_option_exits_2(tmp_path, capsys):
    assert _inspect(tmp_path, str(BAD), "--column", "prompt") == 2
    assert "--column: got 'prompt', expected FIELD=COLUMN" in capsys.readouterr().err


@pytest.mark.integration
def test_bad_row_is_listed_and_a_malformed_file_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "CODETUNE_DATA_DIR": str(tmp_path / "studio")}
    result = subprocess.run(
        [sys.executable, "-m", "codetune_studio", "dataset", "inspect", str(BAD)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )

    # A bad row among good ones is listed, with the rest of the report (every bad row, not the
    # first); a file that is malformed as a whole still exits 2 with one line.
    assert result.returncode == 0, result.stderr
    assert "Bad rows (1; training refuses them" in result.stdout
    assert f"  {BAD}:3: invalid JSON" in result.stdout
    assert "expected one JSON object per line" in result.stdout
    broken = tmp_path / "broken.json"
    broken.write_text('[{"text": "a"} {"text": "b"}]', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "codetune_studio", "dataset", "inspect", str(broken)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {broken}:1: invalid JSON")


def test_tokens_command_shows_the_worst_sample_marked(tmp_path, capsys, tiny_model_dir):
    data = tmp_path / "qa.jsonl"
    rows = [{"prompt": "Q: one? A:", "completion": " 1"}, {"prompt": "Q:", "completion": " x" * 90}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    base = ["--data-dir", str(tmp_path / "studio"), "dataset", "tokens", str(data)]

    status = main([*base, "--model", str(tiny_model_dir), "--max-seq-length", "32",
                   "--worst", "no-eos"])  # fmt: skip

    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith(f"Sample 2 of 2  {data}:2\n")
    assert "truncated at 32, no EOS (cut off by truncation)" in out
    assert "Q:« x x" in out
    assert "»✂[max_seq_length 32]" in out
    status = main([*base, "--model", str(tiny_model_dir), "--row", "1", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert status == 0
    assert payload["eos_trained"] is True
    assert payload["tokens"][-1] == {"id": payload["tokens"][-1]["id"], "text": "<|im_end|>",
                                     "trained": True, "kept": True}  # fmt: skip


def test_inspect_lists_near_duplicates_eval_leaks_and_secrets(tmp_path, capsys):
    body = "def total(items):\n    result = 0\n    for item in items:\n        result += item\n    return result\n"
    rows = [
        {"prompt": "Sum the items of a list please.", "completion": body},
        # the same tokens, spaced differently: not an exact duplicate, a near one
        {"prompt": "Sum the items of a list please. ", "completion": body.replace("= 0", "=  0")},
        {"prompt": "Connect.", "completion": 'KEY = "AKIAIOSFODNN7EXAMPLE"'},
    ]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"prompt": "sum the items of a list  please."}) + "\n", "utf-8")

    status = _inspect(tmp_path, str(data), "--near-duplicates", "--eval-file", str(tasks))

    out = capsys.readouterr().out
    assert status == 0
    assert f"Near-duplicate rows (1):\n  {data}:2: 100% like {data}:1\n" in out
    assert f"Rows found in the eval file (2):\n  {data}:1: in {tasks}:1\n  {data}:2: in" in out
    assert f"Likely secrets (1):\n  {data}:3: AWS access key AKIAIO…(20 chars)\n" in out

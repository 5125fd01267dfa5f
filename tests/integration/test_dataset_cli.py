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

"""``dataset from-code``: pairs from a Python project, .gitignore honoured, split by file."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from codetune_studio.cli import main
from codetune_studio.core.recipe import DatasetSpec
from codetune_studio.engine.code_pairs import FIM_MIDDLE, build_code_pairs
from codetune_studio.engine.data import inspect_dataset

if TYPE_CHECKING:
    from pathlib import Path

FUNCTION = '''def {name}(values):
    """Return the {name} of values."""
    total = 0
    for value in values:
        total += value * {n}
    return total
'''


def _project(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    for i in range(10):
        (root / "pkg" / f"mod{i}.py").write_text(
            FUNCTION.format(name=f"scale_{i}", n=i) + FUNCTION.format(name=f"twice_{i}", n=100 + i),
            encoding="utf-8",
        )
    (root / "pkg" / "copy.py").write_text(FUNCTION.format(name="scale_1", n=1), encoding="utf-8")
    (root / "pkg" / "nodoc.py").write_text("def f(x):\n    return x\n", encoding="utf-8")
    (root / "pkg" / "broken.py").write_text("def f(:\n", encoding="utf-8")
    (root / "pkg" / "keys.py").write_text(
        'def connect():\n    """Connect."""\n    key = "AKIAIOSFODNN7EXAMPLE"\n    return key\n',
        encoding="utf-8",
    )
    (root / "generated").mkdir()
    (root / "generated" / "big.py").write_text(FUNCTION.format(name="gen", n=3), encoding="utf-8")
    (root / "pkg" / "scratch_local.py").write_text(FUNCTION.format(name="s", n=5), "utf-8")
    (root / ".gitignore").write_text("generated/\n*_local.py\n", encoding="utf-8")
    return root


def test_docstring_pairs_split_by_file_with_every_skip_listed(tmp_path):
    root = _project(tmp_path / "proj")

    pairs = build_code_pairs(root, kind="docstring", eval_share=0.2)

    reasons = dict(pairs.skipped)
    assert reasons["generated/"] == "ignored by .gitignore"
    assert reasons["pkg/scratch_local.py"] == "ignored by .gitignore"
    assert reasons["pkg/broken.py"].startswith("does not parse")
    assert reasons["pkg/nodoc.py:1"] == "f: no docstring"
    assert reasons["pkg/keys.py:1"] == "connect: likely secret (AWS access key)"
    assert reasons["pkg/mod1.py:1"] == "duplicate of pkg/copy.py:1"
    assert pairs.files == 14
    assert len(pairs.eval_files) == 3  # 20 % of 14 files, whole files
    train_files = {row["source"].split(":")[0] for row in pairs.train}
    eval_files = {row["source"].split(":")[0] for row in pairs.eval}
    assert not train_files & eval_files
    assert len(pairs.train) + len(pairs.eval) == 20
    row = next(r for r in pairs.train + pairs.eval if r["source"] == "pkg/mod3.py:1")
    assert row["prompt"] == 'def scale_3(values):\n    """Return the scale_3 of values."""\n'
    assert row["completion"].startswith("    total = 0\n")
    assert row["completion"].endswith("    return total\n")


def test_fim_and_completion_kinds(tmp_path):
    root = _project(tmp_path / "proj")

    fim = build_code_pairs(root, kind="fim", eval_share=0.0)
    completion = build_code_pairs(root, kind="completion", eval_share=0.0)

    assert fim.eval == []
    for row in fim.train:
        prefix, _, rest = row["prompt"].partition("<|fim_suffix|>")
        assert rest.endswith(FIM_MIDDLE)
        whole = prefix.removeprefix("<|fim_prefix|>") + row["completion"] + rest[: -len(FIM_MIDDLE)]
        assert whole.startswith("def ")
        assert whole.endswith("    return total\n")
    assert {"text", "source"} == set(completion.train[0])
    assert completion.train[0]["text"].startswith("def scale_1(values):")  # pkg/copy.py first


def test_cli_writes_train_and_eval_files_that_inspect_cleanly(tmp_path, capsys):
    root = _project(tmp_path / "proj")
    out = tmp_path / "pairs.jsonl"

    status = main(["--data-dir", str(tmp_path / "studio"), "dataset", "from-code", str(root),
                   "--out", str(out), "--eval-share", "0.2"])  # fmt: skip

    printed = capsys.readouterr().out
    assert status == 0
    assert "pkg/keys.py:1: connect: likely secret (AWS access key)" in printed
    eval_file = tmp_path / "pairs.eval.jsonl"
    assert eval_file.is_file()
    assert all("prompt" in json.loads(line) for line in out.read_text("utf-8").splitlines())
    report = inspect_dataset(
        DatasetSpec(path=str(out)), None, max_seq_length=512, eval_path=str(eval_file)
    )
    assert report.format == "completion"
    assert report.bad_row_count == 0
    assert report.eval_leaks == ()
    assert report.secrets == ()


def test_bad_options_are_config_errors(tmp_path):
    from codetune_studio.core.errors import ConfigError, DatasetError

    with pytest.raises(ConfigError, match="--kind"):
        build_code_pairs(tmp_path, kind="poetry")
    with pytest.raises(DatasetError, match="found no Python files"):
        build_code_pairs(tmp_path)

"""``dataset.drop_unparseable``: rows whose Python code does not parse are dropped and reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.core.errors import ConfigError
from codetune_studio.core.recipe import DatasetSpec, parse_recipe
from codetune_studio.engine.data import inspect_dataset, prepare_data
from codetune_studio.plugins.code_lint import is_raw_code, unparseable_reason
from tests import engine_fixtures

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

tiny_model_dir = engine_fixtures.tiny_model_dir
tiny_tokenizer = engine_fixtures.tiny_tokenizer

ONE_BROKEN = Path(__file__).resolve().parents[1] / "fixtures" / "datasets" / "code-one-broken.jsonl"


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_unparseable_row_is_dropped_and_reported_with_its_line() -> None:
    spec = DatasetSpec(path=str(ONE_BROKEN), drop_unparseable=True)

    report = inspect_dataset(spec, None, max_seq_length=512)

    assert report.rows == 6
    assert report.examples == 5
    assert report.unparseable_rows == 1
    [dropped] = report.dropped
    assert dropped.source.endswith("code-one-broken.jsonl:4")
    assert dropped.reason.startswith("Python code does not parse: SyntaxError")
    assert "(code line 1)" in dropped.reason


def test_rows_are_kept_when_the_option_is_off() -> None:
    report = inspect_dataset(DatasetSpec(path=str(ONE_BROKEN)), None, max_seq_length=512)

    assert report.examples == 6
    assert report.unparseable_rows == 0
    assert report.dropped == ()


def test_the_option_changes_the_data_fingerprint_only_when_on() -> None:
    off = inspect_dataset(DatasetSpec(path=str(ONE_BROKEN)), None, max_seq_length=512)
    on = inspect_dataset(
        DatasetSpec(path=str(ONE_BROKEN), drop_unparseable=True), None, max_seq_length=512
    )

    assert off.fingerprint != on.fingerprint


def test_prose_answers_are_never_checked_but_python_fences_are(tmp_path: Path) -> None:
    data = _jsonl(
        tmp_path / "chat.jsonl",
        [
            {"instruction": "Hi?", "output": "Sure! Happy to help with that."},
            {"instruction": "Loop?", "output": "Like this:\n```python\nfor i in range(3):\n```\n"},
            {"instruction": "Shell?", "output": "Run:\n```bash\nls -la (\n```\n"},
            {"instruction": "Ok?", "output": "Here:\n```py\nprint('ok')\n```"},
        ],
    )

    report = inspect_dataset(
        DatasetSpec(path=str(data), drop_unparseable=True), None, max_seq_length=512
    )

    assert [Path(row.source).name for row in report.dropped] == ["chat.jsonl:2"]
    assert "IndentationError" in report.dropped[0].reason  # the empty loop body
    assert report.examples == 3


def test_code_records_check_the_whole_text_of_python_files_only(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "good.py").write_text("x = 1\n")
    (folder / "bad.py").write_text("def f(:\n    pass\n")
    (folder / "app.js").write_text("function f( {\n")

    report = inspect_dataset(
        DatasetSpec(path=str(folder), drop_unparseable=True), None, max_seq_length=512
    )

    assert [Path(row.source.split(":")[0]).name for row in report.dropped] == ["bad.py"]
    assert report.examples == 2


def test_shared_rule_matches_the_analyzer() -> None:
    assert unparseable_reason("def f(:\n", whole=True) is not None
    assert unparseable_reason("def f(:\n", whole=False) is None  # no fence, not raw code
    assert unparseable_reason("```python\nx = 1\n```", whole=False) is None
    assert is_raw_code(["x = 1", "def f():\n    return 2", "y = [1, 2]"])
    assert not is_raw_code(["Sure, here you go.", "I think so.", "x = 1"])


def test_recipe_accepts_only_a_real_boolean() -> None:
    base: dict[str, Any] = {"model": "starter", "dataset": {"path": "d.jsonl"}}
    on = {**base, "dataset": {"path": "d.jsonl", "drop_unparseable": True}}
    assert parse_recipe(on, source="t").dataset.drop_unparseable is True
    assert parse_recipe(base, source="t").dataset.drop_unparseable is False
    bad = {**base, "dataset": {"path": "d.jsonl", "drop_unparseable": "yes"}}
    with pytest.raises(ConfigError, match="drop_unparseable"):
        parse_recipe(bad, source="t")


def test_prepare_data_drops_the_row_before_tokenizing(
    tiny_tokenizer: PreTrainedTokenizerBase,
) -> None:
    spec = DatasetSpec(path=str(ONE_BROKEN), drop_unparseable=True, validation_split=0.0)

    data = prepare_data(
        spec, tiny_tokenizer, max_seq_length=128, train_on_completions_only=True, seed=1
    )

    assert len(data.train) == 5
    assert not any(example.source.endswith(":4") for example in data.train)
    assert data.report.unparseable_rows == 1

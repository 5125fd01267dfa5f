"""Property-based fuzzing: whatever the bytes, readers end in one of the studio's errors."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codetune_studio.core.errors import CodetuneError, ConfigError
from codetune_studio.core.recipe import load_recipe, parse_recipe
from codetune_studio.plugins.api import ToolContext, ToolInputs, ToolResult
from codetune_studio.plugins.builtin.code_analyzer import CodeAnalyzer
from codetune_studio.plugins.isolation import run_in_process

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_like = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
recipe_keys = st.sampled_from(
    ["dataset", "training", "lora", "model", "method", "output_dir", "name", "schema_version"]
)
training_keys = st.sampled_from(
    ["learning_rate", "max_steps", "num_train_epochs", "warmup_ratio", "seed", "save_steps"]
)
recipes = st.fixed_dictionaries(
    {"dataset": st.fixed_dictionaries({"path": st.text(min_size=1, max_size=10)})},
    optional={
        "training": st.dictionaries(training_keys, scalars, max_size=4),
        "method": scalars,
        "lora": st.dictionaries(st.sampled_from(["r", "alpha", "dropout"]), scalars, max_size=3),
    },
) | st.dictionaries(recipe_keys, json_like, max_size=5)


@FUZZ
@given(recipes)
def test_the_recipe_validator_accepts_or_says_why(data: dict[str, Any]) -> None:
    try:
        recipe = parse_recipe(data, source="fuzz")
    except ConfigError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        assert message.startswith("fuzz: invalid recipe:")
        assert "\n" not in message
        return
    # Whatever passes is finite and sane: no .inf learning rate slips through.
    assert 0 < recipe.training.learning_rate < float("inf")


@FUZZ
@given(st.text(max_size=400))
def test_any_yaml_text_is_a_recipe_or_a_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.yaml"
        path.write_text(text, encoding="utf-8")
        with contextlib.suppress(ConfigError):
            load_recipe(path)


@FUZZ
@given(
    st.sampled_from([".jsonl", ".json", ".csv", ".txt"]),
    st.binary(max_size=400) | st.text(max_size=400).map(lambda t: t.encode("utf-8")),
)
def test_the_dataset_readers_read_or_raise_a_dataset_error(suffix: str, content: bytes) -> None:
    from codetune_studio.engine.sources import read_source

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(content)
        try:
            source = read_source(str(path), offline=True)
        except CodetuneError:
            return
        assert source.records


@FUZZ
@given(st.text(max_size=300))
def test_the_analyzer_returns_a_result_for_any_text(code: str) -> None:
    result = run_in_process(CodeAnalyzer(), ToolInputs(code=code, path="f.py"), ToolContext())
    assert isinstance(result, ToolResult)
    if result.error is not None:
        assert "failed:" not in result.error, result.error  # a crash, not a finding

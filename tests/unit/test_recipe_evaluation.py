"""The recipe's evaluation section: its limits, and the task file checked when a recipe is read."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.core.errors import ConfigError
from codetune_studio.core.recipe import apply_overrides, load_recipe, parse_recipe, recipe_hash

if TYPE_CHECKING:
    from pathlib import Path

TASK = {"task_id": "t1", "prompt": "p", "tests": "assert True", "entry_point": "f"}


def _write_recipe(folder: Path, evaluation: dict[str, Any]) -> Path:
    recipe = folder / "recipe.yaml"
    recipe.write_text(
        json.dumps({"dataset": {"path": "data.jsonl"}, "evaluation": evaluation}),
        encoding="utf-8",
    )
    return recipe


def test_task_file_is_found_next_to_the_recipe(tmp_path: Path) -> None:
    (tmp_path / "tasks.jsonl").write_text(json.dumps(TASK) + "\n", encoding="utf-8")
    recipe = load_recipe(_write_recipe(tmp_path, {"tasks": "tasks.jsonl"}))
    assert recipe.evaluation is not None
    assert recipe.evaluation.tasks == str((tmp_path / "tasks.jsonl").resolve())
    assert recipe.evaluation.samples == 1
    assert recipe.evaluation.temperature == 0.0


def test_a_missing_task_file_is_refused_when_the_recipe_is_read(tmp_path: Path) -> None:
    path = _write_recipe(tmp_path, {"tasks": "nowhere.jsonl"})
    with pytest.raises(ConfigError) as caught:
        load_recipe(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: evaluation.tasks: task file not found: nowhere.jsonl")


@pytest.mark.parametrize(
    ("lines", "where", "fragment"),
    [
        ([json.dumps(TASK), "{not json"], 2, "not valid JSON"),
        ([json.dumps(TASK), "", json.dumps({**TASK, "task_id": "t2", "tests": ""})], 3, "tests"),
        ([json.dumps(TASK), json.dumps(TASK)], 2, "appears twice"),
        (["[1, 2]"], 1, "expected an object"),
    ],
)
def test_a_malformed_task_file_is_refused_naming_file_and_line(
    tmp_path: Path, lines: list[str], where: int, fragment: str
) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_recipe(_write_recipe(tmp_path, {"tasks": "tasks.jsonl"}))
    message = str(caught.value)
    assert f"evaluation.tasks: {tasks.resolve()}:{where}: " in message
    assert fragment in message


@pytest.mark.parametrize(
    ("evaluation", "fragment"),
    [
        ({"tasks": "t.jsonl", "samples": 0}, "evaluation.samples: got 0, must be >= 1"),
        ({"tasks": "t.jsonl", "temperature": float("inf")}, "evaluation.temperature"),
        ({"tasks": "t.jsonl", "temperature": -1}, "must be >= 0"),
        ({"tasks": "t.jsonl", "max_new_tokens": 0}, "evaluation.max_new_tokens"),
        ({"tasks": "t.jsonl", "max_tasks": 0}, "evaluation.max_tasks"),
        ({"tasks": ""}, "evaluation.tasks"),
        ({"samples": 2}, "evaluation.tasks: required key is missing"),
        ({"tasks": "t.jsonl", "sample": 2}, "did you mean 'samples'"),
    ],
)
def test_invalid_evaluation_settings_name_the_key(
    evaluation: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_recipe({"dataset": {"path": "d.jsonl"}, "evaluation": evaluation}, source="r.yaml")
    assert fragment in str(caught.value)


def test_the_evaluation_section_does_not_change_what_the_recipe_trains() -> None:
    import hashlib

    plain = parse_recipe({"dataset": {"path": "d.jsonl"}}, source="r")
    payload = plain.model_dump(mode="json", exclude={"name", "launch", "evaluation"})
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    # The same hash as before the section existed, and with or without evaluation.
    assert recipe_hash(plain) == hashlib.sha256(canonical.encode()).hexdigest()
    evaluated = parse_recipe(
        {"dataset": {"path": "d.jsonl"}, "evaluation": {"tasks": "t.jsonl"}}, source="r"
    )
    assert recipe_hash(evaluated) == recipe_hash(plain)


def test_a_task_file_set_on_the_command_line_is_checked_too(tmp_path: Path) -> None:
    (tmp_path / "tasks.jsonl").write_text(json.dumps(TASK) + "\n", encoding="utf-8")
    recipe = load_recipe(_write_recipe(tmp_path, {"tasks": "tasks.jsonl"}))
    missing = tmp_path / "gone.jsonl"
    with pytest.raises(ConfigError, match=r"^--set: evaluation.tasks: task file not found"):
        apply_overrides(recipe, [f"evaluation.tasks={missing}"])
    # Unrelated overrides do not read the task file again.
    (tmp_path / "tasks.jsonl").unlink()
    assert apply_overrides(recipe, ["training.max_steps=5"]).training.max_steps == 5

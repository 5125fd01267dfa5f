"""The bundled held-out task set: valid, passable, and not in the training data."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from codetune_studio.services.evaluation import build_program, load_tasks

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "resources" / "eval" / "python-tasks.jsonl"
TRAINING = ROOT / "resources" / "datasets" / "python-instructions.jsonl"


def _raw() -> list[dict[str, str]]:
    return [json.loads(line) for line in TASKS.read_text(encoding="utf-8").splitlines() if line]


def _training() -> list[dict[str, str]]:
    return [json.loads(line) for line in TRAINING.read_text(encoding="utf-8").splitlines() if line]


def _defined_names(code: str) -> set[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)}


def test_the_bundled_task_file_loads_with_20_to_30_tasks() -> None:
    tasks = load_tasks(TASKS)
    assert 20 <= len(tasks) <= 30


def test_every_bundled_task_passes_on_its_reference_solution() -> None:
    for task, raw in zip(load_tasks(TASKS), _raw(), strict=True):
        _, program = build_program(task, raw["canonical_solution"])
        exec(program, {})  # noqa: S102 - our own reference solutions


def test_every_bundled_task_fails_on_a_wrong_answer() -> None:
    for task in load_tasks(TASKS):
        _, program = build_program(task, f"def {task.entry_point}(*args):\n    return None\n")
        with pytest.raises(Exception):  # noqa: B017, PT011 - any failure will do
            exec(program, {})  # noqa: S102 - our own tests


def test_no_task_overlaps_the_training_data() -> None:
    training = _training()
    instructions = {row["instruction"].strip().lower() for row in training}
    trained_functions = set().union(*(_defined_names(row["output"]) for row in training))
    trained_code = {row["output"].strip() for row in training}
    for raw in _raw():
        assert raw["prompt"].strip().lower() not in instructions, raw["task_id"]
        assert raw["entry_point"] not in trained_functions, raw["task_id"]
        assert raw["canonical_solution"].strip() not in trained_code, raw["task_id"]


def test_tasks_come_from_the_training_task_families() -> None:
    # The same wording as the training pairs, so a tuned model recognises the request.
    for raw in _raw():
        assert raw["prompt"].startswith(f"Write a Python function `{raw['entry_point']}` that ")

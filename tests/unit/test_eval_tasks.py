"""The bundled held-out task set: valid, passable, and not in the training data."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from codetune_studio.services.evaluation import build_program, load_tasks
from tests import engine_fixtures

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

tiny_model_dir = engine_fixtures.tiny_model_dir
tiny_tokenizer = engine_fixtures.tiny_tokenizer

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
        assert raw["prompt"].startswith(f"Write a Python function {raw['entry_point']}(")
        assert _description(raw["prompt"]) is not None, raw["task_id"]


def test_a_requested_name_tokenizes_as_the_answer_writes_it(
    tiny_tokenizer: PreTrainedTokenizerBase,
) -> None:
    # A small model copies the name from the request into `def name(`: that works only when both
    # cut the name into the same tokens (after a backtick the starter's tokenizer cuts it
    # differently). Checked with a tokenizer trained the starter's way, on a small corpus.
    tokenizer = tiny_tokenizer
    for raw in _raw():
        name = raw["entry_point"]
        asked = _name_tokens(tokenizer, raw["prompt"], name)
        assert asked == _name_tokens(tokenizer, raw["canonical_solution"], name), raw["task_id"]


def test_each_answer_starts_from_its_signature_cut_where_the_training_answers_cut_it(
    tiny_tokenizer: PreTrainedTokenizerBase,
) -> None:
    # The model continues the prefix; ending it after the newline would hand it a token ("\n")
    # that no training answer has there ("\n    " is one token), and the body would come out
    # as noise. The reference body alone, after the prefix, must pass.
    for task, raw in zip(load_tasks(TASKS), _raw(), strict=True):
        solution = raw["canonical_solution"]
        assert task.answer_prefix == solution.splitlines()[0], task.task_id
        prefix_ids = tiny_tokenizer(task.answer_prefix, add_special_tokens=False)["input_ids"]
        solution_ids = tiny_tokenizer(solution, add_special_tokens=False)["input_ids"]
        assert solution_ids[: len(prefix_ids)] == prefix_ids, task.task_id
        _, program = build_program(task, solution[len(task.answer_prefix) :])
        exec(program, {})  # noqa: S102 - our own reference solutions


def _name_tokens(tokenizer: PreTrainedTokenizerBase, text: str, name: str) -> list[int]:
    """The ids of the tokens that overlap `` name`` (with its space) where ``name(`` is written."""
    start = text.index(f" {name}(")
    end = start + 1 + len(name)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return [
        token
        for token, (first, last) in zip(
            encoded["input_ids"], encoded["offset_mapping"], strict=True
        )
        if first < end and last > start
    ]


def _description(instruction: str) -> str | None:
    match = re.match(r"Write a Python function \w+\(.*?\) that (.+)", instruction.strip())
    return match.group(1).strip().lower() if match else None


def _renamed(code: str) -> str | None:
    """The definition with its function's name blanked: two renamed copies compare equal."""
    match = re.match(r"def (\w+)\(", code.strip())
    return re.sub(rf"\b{match.group(1)}\b", "_", code.strip()) if match else None


def test_no_task_is_a_training_pair_under_another_name() -> None:
    # The training families vary names and values; a held-out task must not be one of them with
    # only the function renamed, in what it asks for or in its solution.
    training = _training()
    descriptions = {_description(row["instruction"]) for row in training} - {None}
    solutions = {_renamed(row["output"]) for row in training} - {None}
    for raw in _raw():
        assert _description(raw["prompt"]) not in descriptions, raw["task_id"]
        assert _renamed(raw["canonical_solution"]) not in solutions, raw["task_id"]


def test_the_training_data_covers_each_task_family_with_many_names() -> None:
    # A small model passes held-out tasks only if it learnt the pattern (copy the name, write
    # the expression) from many examples, not a few answers.
    functions = [row for row in _training() if _description(row["instruction"])]
    names = set().union(*(_defined_names(row["output"]) for row in functions))
    assert len(functions) >= 300
    assert len(names) >= 300

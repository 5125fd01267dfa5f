"""pass@k, task files, programs built from answers, and tasks made from doctests."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import pytest

from codetune_studio.core.errors import ConfigError, DatasetError
from codetune_studio.core.evaluation import EvalTask, pass_at_k
from codetune_studio.services.evaluation import (
    build_program,
    extract_code,
    load_tasks,
    tasks_from_code,
)

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (1, 1, 1, 1.0),
        (1, 0, 1, 0.0),
        (5, 2, 1, 2 / 5),  # pass@1 is the share that passed
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (4, 3, 2, 1.0),  # fewer failures than draws: a pass is certain
        (10, 0, 10, 0.0),
        (200, 1, 100, 0.5),  # 1 - C(199,100)/C(200,100) = 1 - 100/200
    ],
)
def test_pass_at_k_matches_hand_computed_values(n: int, c: int, k: int, expected: float) -> None:
    assert math.isclose(pass_at_k(n, c, k), expected, rel_tol=1e-12, abs_tol=1e-12)


def test_pass_at_k_rejects_more_draws_than_samples() -> None:
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(3, 1, 4)


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps({"task_id": "t1", "prompt": "p", "tests": "assert f() == 1", "entry_point": "f"})


def test_load_tasks_reads_humaneval_lines_and_skips_blank_ones(tmp_path: Path) -> None:
    tasks = load_tasks(write_lines(tmp_path / "t.jsonl", GOOD, ""))
    assert [t.task_id for t in tasks] == ["t1"]
    assert tasks[0].source.endswith("t.jsonl:1")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", r"t\.jsonl:2: not valid JSON"),
        ("[1, 2]", r"t\.jsonl:2: expected an object"),
        (json.dumps({"task_id": "t2", "prompt": "p", "tests": "x"}), r"t\.jsonl:2: entry_point"),
        (GOOD, r"t\.jsonl:2: task_id 't1' appears twice"),
    ],
)
def test_a_malformed_task_line_is_reported_with_file_and_line(
    tmp_path: Path, bad: str, message: str
) -> None:
    with pytest.raises(DatasetError, match=message):
        load_tasks(write_lines(tmp_path / "t.jsonl", GOOD, bad))


def test_extract_code_takes_the_first_fenced_block() -> None:
    answer = "Here you go:\n```python\ndef f():\n    return 1\n```\nDone."
    assert extract_code(answer) == "def f():\n    return 1\n"
    assert extract_code("def f(): return 2") == "def f(): return 2\n"


def test_an_answer_that_continues_the_prompt_is_joined_to_it() -> None:
    task = EvalTask(
        task_id="t",
        prompt='def f(x):\n    """Double x."""\n',
        tests="def check(candidate):\n    assert candidate(2) == 4\n",
        entry_point="f",
    )
    code, program = build_program(task, "    return 2 * x\n")
    assert code.startswith("def f(x):")
    assert program.rstrip().endswith("check(f)")
    namespace: dict[str, object] = {}
    exec(program, namespace)  # noqa: S102 - our own test program


def test_an_answer_made_to_start_with_the_signature_is_tested_with_it() -> None:
    task = EvalTask(
        task_id="t",
        prompt="Write a Python function triple(x) that returns three times x.",
        tests="assert triple(4) == 12\n",
        entry_point="triple",
        answer_prefix="def triple(x):",
    )
    code, program = build_program(task, "\n    return 3 * x")
    assert code == "def triple(x):\n    return 3 * x\n"
    exec(program, {})  # noqa: S102 - our own test program
    # An answer that writes the signature itself is not given it twice.
    code, _ = build_program(task, "def triple(x):\n    return 3 * x")
    assert code.count("def triple") == 1
    _, wrong = build_program(task, "\n    return 2 * x")
    with pytest.raises(AssertionError):
        exec(wrong, {})  # noqa: S102


def test_tasks_from_code_use_signature_and_docstring_as_prompt_and_doctests_as_tests(
    tmp_path: Path,
) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "maths.py").write_text(
        'def twice(x):\n    """Twice x.\n\n    >>> twice(3)\n    6\n    """\n    return 2 * x\n\n\n'
        'def no_doctest(x):\n    """Nothing to run."""\n    return x\n',
        encoding="utf-8",
    )
    (tmp_path / "broken.py").write_text("def (:\n", encoding="utf-8")
    (task,) = tasks_from_code(tmp_path)
    assert task.task_id == "pkg/maths.py::twice"
    assert task.prompt.startswith("def twice(x):")
    assert "return 2 * x" not in task.prompt
    _, good = build_program(task, "    return 2 * x\n")
    exec(good, {})  # noqa: S102 - our own test program
    _, bad = build_program(task, "    return 3 * x\n")
    with pytest.raises(AssertionError, match="doctest failed"):
        exec(bad, {})  # noqa: S102


def test_tasks_from_code_says_when_there_is_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def f():\n    return 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no function with doctests"):
        tasks_from_code(tmp_path)

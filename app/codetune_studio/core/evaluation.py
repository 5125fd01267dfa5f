"""Code evaluation's domain: tasks, per-sample outcomes, a model's scores, and pass@k.

A task follows HumanEval's layout (``task_id``, ``prompt``, ``tests``, ``entry_point``), so public
sets load as they are (:func:`load_tasks` reads a JSONL file of them, naming ``file:line`` in its
errors; the recipe's ``evaluation`` section is checked with it too). :func:`pass_at_k` is the unbiased estimator of Chen et al. (2021),
"Evaluating Large Language Models Trained on Code", section 2.1.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from codetune_studio.core.errors import DatasetError
from codetune_studio.core.generation import ChatMessage, GenerationRequest

__all__ = [
    "EvalComparison",
    "EvalTask",
    "ModelEvaluation",
    "SampleFinding",
    "SampleOutcome",
    "TaskOutcome",
    "load_tasks",
    "pass_at_k",
]


def pass_at_k(n: int, c: int, k: int) -> float:
    """The probability that at least one of ``k`` samples drawn from ``n`` passes.

    ``1 - C(n - c, k) / C(n, k)``, computed as a product so large ``n`` does not overflow.

    Args:
        n: Samples generated for the task.
        c: Samples that passed.
        k: Samples drawn.

    Raises:
        ValueError: ``k`` exceeds ``n`` or the counts are inconsistent.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


class EvalTask(BaseModel):
    """One programming task with the tests that judge an answer.

    Attributes:
        task_id: A unique name.
        prompt: What the model is asked (an instruction, or a signature and docstring).
        tests: Python source with asserts that exercise ``entry_point``; a ``check(candidate)``
            function, as HumanEval writes them, is called with it.
        entry_point: The function the answer must define.
        answer_prefix: Text the answer is made to start with, typically the function's signature
            (``def triple(x):``): the model continues it, and the tested code is the prefix plus
            the answer, as bigcode's instruct-HumanEval does. A model then needs only write the
            body, not copy the name out of the prompt, which a small model cannot yet do. It
            should end where the tokenizer splits (after ``:``, not after its newline), so the
            model sees the same tokens it saw in training.
        source: Where the task came from (``file:line``), for messages.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    task_id: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    tests: str = Field(min_length=1)
    entry_point: str = Field(min_length=1)
    answer_prefix: str = ""
    source: str = ""

    def request(self, *, chat: bool, **fields: Any) -> GenerationRequest:
        """The generation request that asks this task.

        Args:
            chat: Ask the prompt as a user turn through the chat template; ``False`` feeds it as
                plain text to be continued.
            fields: The request's other fields (``id``, ``params``...).
        """
        return GenerationRequest(
            messages=(ChatMessage(role="user", content=self.prompt),) if chat else (),
            prompt="" if chat else self.prompt,
            answer_prefix=self.answer_prefix,
            **fields,
        )


class SampleFinding(BaseModel):
    """What the local analyzer found in one sample."""

    model_config = ConfigDict(frozen=True)

    severity: str
    rule: str | None = None
    message: str
    line: int | None = None


class SampleOutcome(BaseModel):
    """One generated answer and what its tests said.

    Attributes:
        completion: The model's text.
        code: The program that ran (answer plus tests), or the answer's code.
        parsed: Whether the answer's code parses as Python.
        passed: Whether every test passed.
        reason: The sandbox's verdict (``passed``, ``failed``, ``timeout``...).
        output: The start of what the program printed.
        stop_reason: Why generation ended (``eos``, ``length``...).
        tokens: Tokens generated.
        findings: The local analyzer's findings in the answer.
    """

    model_config = ConfigDict(frozen=True)

    sample: int
    completion: str
    code: str = ""
    parsed: bool
    passed: bool
    reason: str
    output: str = ""
    stop_reason: str
    tokens: int
    findings: tuple[SampleFinding, ...] = ()


class TaskOutcome(BaseModel):
    """A task and each of its samples."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    prompt: str
    tests: str = ""
    samples: tuple[SampleOutcome, ...]

    @property
    def passed(self) -> int:
        """How many samples passed."""
        return sum(s.passed for s in self.samples)


class ModelEvaluation(BaseModel):
    """How one model (or its base) did on a task set.

    Attributes:
        id: The stored result's id, once recorded.
        label: The model's name.
        variant: ``tuned`` (with the adapter) or ``base`` (adapter off, or a plain model).
        model_version_id: The model version evaluated, when known.
        task_source: The task file or code folder.
        num_tasks: How many tasks were evaluated.
        samples_per_task: ``n`` of pass@k.
        temperature: Sampling temperature (0: greedy).
        pass_at_1: Mean over tasks of pass@1.
        pass_at_k: ``{k: mean pass@k}`` for each reported ``k``.
        parse_rate: Share of samples whose code parses.
        eos_rate: Share of samples that stopped on their own rather than at the length limit.
        mean_tokens: Mean answer length in tokens.
        findings_per_sample: Mean number of analyzer findings per sample.
        isolation: How the sandbox kept the programs in.
        tasks: Per-task outcomes.
        created_at: When it was recorded.
        base_result_id: For a tuned result evaluated with its base, the base's stored id.
    """

    model_config = ConfigDict(frozen=True)

    id: int | None = None
    label: str
    variant: Literal["tuned", "base"]
    model_version_id: int | None = None
    task_source: str
    num_tasks: int
    samples_per_task: int
    temperature: float
    pass_at_1: float
    pass_at_k: dict[int, float]
    parse_rate: float
    eos_rate: float
    mean_tokens: float
    findings_per_sample: float
    isolation: str
    tasks: tuple[TaskOutcome, ...] = ()
    created_at: datetime | None = None
    base_result_id: int | None = None


class EvalComparison(BaseModel):
    """A tuned model next to its base on the same tasks."""

    model_config = ConfigDict(frozen=True)

    tuned: ModelEvaluation
    base: ModelEvaluation

    @property
    def pass_at_1_delta(self) -> float:
        """Tuned minus base pass@1."""
        return self.tuned.pass_at_1 - self.base.pass_at_1

    def regressed(self, tolerance: float = 0.0) -> bool:
        """Whether the tuned model's pass@1 is below the base's by more than ``tolerance``."""
        return self.tuned.pass_at_1 < self.base.pass_at_1 - tolerance


def load_tasks(path: Path) -> list[EvalTask]:
    """Read a JSONL task file: one ``{task_id, prompt, tests, entry_point}`` object a line.

    Raises:
        DatasetError: The file cannot be read, a line is not such an object (``file:line``), or
            two tasks share an id.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read the task file: {exc}") from None
    tasks: list[EvalTask] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise DatasetError(
                f"{where}: expected an object with task_id, prompt, tests, entry_point"
            )
        try:
            task = EvalTask.model_validate({**record, "source": where})
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise DatasetError(f"{where}: {field}: {first['msg']}") from None
        if task.task_id in seen:
            raise DatasetError(f"{where}: task_id {task.task_id!r} appears twice")
        seen.add(task.task_id)
        tasks.append(task)
    if not tasks:
        raise DatasetError(f"{path}: no tasks in the file")
    return tasks

"""Code evaluation during training: pass@k of the model being trained, at its eval steps.

The recipe's ``evaluation`` section names a task file. At each ``training.eval_steps`` (and at
the end), the main process lets the model answer every task with the same prompt rendering the
playground and ``codetune-studio eval`` use, then hands each answer to a :class:`CodeJudge`,
which runs it with the task's tests. The engine knows no sandbox: the judge is a small protocol
the caller wires (``services.evaluation.sandbox_judge`` runs each answer in the sandbox child),
because the layers forbid the engine from importing services.

Sampling (a temperature above 0) runs inside a forked RNG seeded from the recipe's seed and the
step, so turning evaluation on changes neither the training's random stream nor its resume.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from codetune_studio.core.evaluation import load_tasks, pass_at_k
from codetune_studio.core.generation import GenerationParams
from codetune_studio.engine.generation import Generator, prompt_text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from codetune_studio.core.cancel import CancelToken
    from codetune_studio.core.evaluation import EvalTask
    from codetune_studio.core.recipe import EvaluationSpec

__all__ = ["CodeEvalScore", "CodeJudge", "TrainingCodeEval", "pass_metric_names"]

logger = logging.getLogger(__name__)


class CodeJudge(Protocol):
    """Runs one answer with its task's tests and says whether every test passed."""

    def __call__(self, task: EvalTask, completion: str, /) -> bool:
        """Judge ``completion`` (the model's whole answer) against ``task``'s tests."""


@dataclass(frozen=True, slots=True)
class CodeEvalScore:
    """One evaluation's result.

    Attributes:
        metrics: ``eval_pass@1`` and, for several samples, ``eval_pass@N``.
        tasks: Tasks evaluated.
        samples: Answers per task.
        passed: Answers that passed, over all tasks.
        seconds: Wall time for generating and judging.
    """

    metrics: dict[str, float]
    tasks: int
    samples: int
    passed: int
    seconds: float


def pass_metric_names(samples: int) -> list[str]:
    """The metric names an evaluation with ``samples`` answers a task records."""
    return ["eval_pass@1"] + ([f"eval_pass@{samples}"] if samples > 1 else [])


class TrainingCodeEval:
    """The recipe's code tasks, ready to be answered by the model being trained.

    Args:
        spec: The recipe's ``evaluation`` section.
        judge: Runs answers with their tests.
        seed: The recipe's seed (sampling is seeded with it and the step).

    Raises:
        DatasetError: The task file cannot be read or is malformed (``file:line``).
    """

    def __init__(self, spec: EvaluationSpec, judge: CodeJudge, *, seed: int) -> None:
        tasks = load_tasks(Path(spec.tasks).expanduser())
        self.tasks: list[EvalTask] = tasks[: spec.max_tasks] if spec.max_tasks else tasks
        self.spec = spec
        self._judge = judge
        self._seed = seed
        self._params = GenerationParams(
            max_new_tokens=spec.max_new_tokens, temperature=spec.temperature
        )

    def evaluate(
        self, model: Any, tokenizer: Any, *, step: int, cancel: CancelToken | None = None
    ) -> CodeEvalScore | None:
        """Answer every task with ``model`` and judge the answers.

        The model is put in eval mode and back in train mode afterwards, whatever happens.

        Args:
            model: The (unwrapped) model being trained.
            tokenizer: Its tokenizer.
            step: The optimizer step, which seeds sampling.
            cancel: A stop request ends generation at the next token.

        Returns:
            The pass rates, or ``None`` when a stop request cut the evaluation short (a
            partial score would read as a real one).
        """
        started = time.perf_counter()
        generator = Generator(model, tokenizer, has_adapter=False, inference_mode=False)
        device = torch.device(generator.device)
        # fork_rng saves and restores the CPU generator, and the GPU's when it is given one.
        devices = [device.index or 0] if device.type == "cuda" else []
        passed_per_task: list[int] = []
        was_training = model.training
        model.eval()
        try:
            with torch.random.fork_rng(devices=devices, device_type="cuda"):
                torch.manual_seed(self._seed + step)
                for task in self.tasks:
                    if cancel is not None and cancel.cancelled:
                        return None
                    passed_per_task.append(self._passes(generator, task, cancel))
        finally:
            if was_training:
                model.train()
        if cancel is not None and cancel.cancelled:
            return None
        samples = self.spec.samples
        metrics = {
            name: _mean([pass_at_k(samples, passed, k) for passed in passed_per_task])
            for name, k in zip(pass_metric_names(samples), sorted({1, samples}), strict=True)
        }
        return CodeEvalScore(
            metrics=metrics,
            tasks=len(self.tasks),
            samples=samples,
            passed=sum(passed_per_task),
            seconds=time.perf_counter() - started,
        )

    def _passes(self, generator: Generator, task: EvalTask, cancel: CancelToken | None) -> int:
        """How many of the task's samples pass."""
        request = task.request(chat=self.spec.chat, id=task.task_id)
        prompt_ids = generator.encode(
            prompt_text(generator.tokenizer, request), chat=self.spec.chat
        )
        answers: Sequence[str] = [
            generator.generate(prompt_ids, self._params, cancel=cancel).text
            for _ in range(self.spec.samples)
        ]
        return sum(bool(self._judge(task, answer)) for answer in answers)


def _mean(values: Sequence[float]) -> float:
    return float(sum(values)) / len(values) if values else 0.0

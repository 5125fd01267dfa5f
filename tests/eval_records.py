"""Record code evaluations through the real ``EvalService`` with scripted answers and verdicts.

The generation child and the sandbox are stand-ins (no model, no subprocess): each task's answer
says whether it passes, so a test picks the pass@1 it wants and everything from scoring to the
stored rows (the tuned row pointing at its base) runs as in the studio.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from codetune_studio.core.evaluation import EvalTask
from codetune_studio.core.generation import GenerationFinished, ModelLoaded
from codetune_studio.services.evaluation import EvalService
from codetune_studio.services.generation import ResolvedModel
from codetune_studio.services.sandbox import SandboxResult

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import pytest

    from codetune_studio.core.evaluation import ModelEvaluation
    from codetune_studio.core.generation import GenerationRequest
    from codetune_studio.storage.db import Database

__all__ = ["record_evaluation", "scripted_sandbox"]

_PASS = "def f():\n    return 1  # PASS\n"
_FAIL = "def f():\n    return 2  # FAIL\n"


class _ScriptedGeneration:
    """Answers every request with a passing or failing program, per variant and task."""

    verdicts: ClassVar[dict[str, Sequence[bool | Sequence[bool]]]] = {}

    def __init__(self, model: ResolvedModel, requests: Sequence[GenerationRequest], **_: Any):
        self._requests = list(requests)

    def __enter__(self) -> _ScriptedGeneration:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def events(self) -> Iterator[Any]:
        yield ModelLoaded("base", "adapter", "cpu", 0.1)
        for request in self._requests:
            for sample in range(request.samples):
                for variant in request.variants:
                    verdict = self.verdicts[variant][int(request.id)]
                    passes = verdict if isinstance(verdict, bool) else verdict[sample]
                    text = _PASS if passes else _FAIL
                    yield GenerationFinished(request.id, variant, sample, text, 9, 0.1, "eos")


class _ScriptedSandbox:
    """Passes a program whose answer says so, without starting a process."""

    isolation = "process-group"

    def run(self, program: str) -> SandboxResult:
        passed = "# PASS" in program
        return SandboxResult(passed, "passed" if passed else "failed", "", 0.0)


def scripted_sandbox() -> Any:
    """A sandbox that judges the scripted answers without starting a process."""
    return _ScriptedSandbox()


def record_evaluation(
    monkeypatch: pytest.MonkeyPatch,
    database: Database,
    *,
    tuned: Sequence[bool | Sequence[bool]],
    base: Sequence[bool | Sequence[bool]] | None = None,
    version_id: int | None = None,
    adapter: Path | None = None,
    task_source: str = "/data/eval/python-tasks.jsonl",
    samples: int = 1,
) -> list[ModelEvaluation]:
    """Evaluate a pretend model whose task ``i`` passes when ``tuned[i]`` (``base[i]``) says so.

    Args:
        monkeypatch: Swaps the generation child for the script.
        database: Where the results are recorded.
        tuned: Per task, whether the tuned model's answers pass (or, per sample, which do).
        base: The same for the base; ``None`` evaluates the tuned model alone.
        version_id: The model version evaluated (as ``eval v:ID`` resolves it).
        adapter: The adapter folder (as ``eval FOLDER`` resolves it).
        task_source: The task file named in the record.
        samples: Answers per task.

    Returns:
        The recorded evaluations, tuned first.
    """
    monkeypatch.setattr(
        "codetune_studio.services.evaluation.GenerationProcess", _ScriptedGeneration
    )
    _ScriptedGeneration.verdicts = {"tuned": tuned, **({"base": base} if base else {})}
    tasks = [
        EvalTask(task_id=f"t{i}", prompt="Write f.", tests="assert f() == 1\n", entry_point="f")
        for i in range(len(tuned))
    ]
    model = ResolvedModel(
        base_model="base-model",
        adapter=adapter or Path("adapter"),
        label=f"v:{version_id}" if version_id else "adapter",
        version_id=version_id,
    )
    service = EvalService(database, sandbox=scripted_sandbox())
    return service.run_to_end(
        model, tasks, task_source=task_source, samples=samples, compare_base=base is not None
    )

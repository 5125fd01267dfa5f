"""Code evaluation: generate answers to programming tasks, run their tests, score, store.

:func:`load_tasks` reads a HumanEval-style JSONL task file (errors name ``file:line``);
:func:`tasks_from_code` makes tasks from a folder of Python files, one per function with
doctests. :class:`EvalService` generates ``samples`` answers per task in a generation child
(both variants from one loaded model when the base is compared), runs each answer with its tests
in the :class:`~codetune_studio.services.sandbox.Sandbox`, asks the local analyzer about each
answer, and returns (and records) a :class:`~codetune_studio.core.evaluation.ModelEvaluation` per
variant. :meth:`EvalService.evaluate` is a work generator: each ``yield`` is a cancellation
point for the window, and closing it kills the generation child.
"""

from __future__ import annotations

import ast
import logging
import re
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codetune_studio.core.errors import ConfigError, NotFoundError
from codetune_studio.core.evaluation import (
    EvalComparison,
    EvalTask,
    ModelEvaluation,
    SampleFinding,
    SampleOutcome,
    TaskOutcome,
    load_tasks,
    pass_at_k,
)
from codetune_studio.core.generation import (
    GenerationFinished,
    GenerationParams,
    Variant,
)
from codetune_studio.services.generation import GenerationProcess
from codetune_studio.services.sandbox import Sandbox
from codetune_studio.storage.evaluations import EvalResultRepository

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Sequence

    from codetune_studio.services.generation import ResolvedModel
    from codetune_studio.storage.db import Database
    from codetune_studio.storage.orm import EvalResultRow

__all__ = [
    "EvalProgress",
    "EvalService",
    "build_program",
    "evaluation_from_row",
    "extract_code",
    "load_tasks",
    "local_analyzer",
    "sandbox_judge",
    "tasks_from_code",
]

logger = logging.getLogger(__name__)

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class EvalProgress:
    """How far an evaluation is: ``done`` of ``total`` samples, and what happens now."""

    done: int
    total: int
    message: str


# --- tasks ------------------------------------------------------------------------------------


def tasks_from_code(folder: Path) -> list[EvalTask]:
    """Tasks from the functions with doctests in a folder of Python files.

    The prompt is the function's signature and docstring, the doctests are the tests. Every
    function of a file becomes a task, so holding a file out of training holds its tasks out.

    Raises:
        ConfigError: The folder does not exist or holds no function with doctests.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{folder}: not a folder")
    tasks: list[EvalTask] = []
    for file in sorted(root.rglob("*.py")):
        try:
            source = file.read_text(encoding="utf-8")
            tree = ast.parse(source, filename=str(file))
        except (OSError, UnicodeDecodeError, SyntaxError) as exc:
            logger.info("skipping %s: %s", file, exc)
            continue
        tasks.extend(_doctest_tasks(file.relative_to(root), source, tree))
    if not tasks:
        raise ConfigError(f"{folder}: no function with doctests (>>> examples) found")
    return tasks


def _doctest_tasks(relative: Path, source: str, tree: ast.Module) -> list[EvalTask]:
    tasks = []
    lines = source.splitlines()
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        docstring = ast.get_docstring(node, clean=False)
        if not docstring or ">>>" not in docstring:
            continue
        doc_node = node.body[0]
        start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
        prompt = "\n".join(lines[start : doc_node.end_lineno]) + "\n"
        tests = textwrap.dedent(
            f"""
            import doctest as _doctest
            _test = _doctest.DocTestParser().get_doctest(
                {docstring!r}, dict(globals()), {node.name!r}, {str(relative)!r}, 0
            )
            _runner = _doctest.DocTestRunner(verbose=False)
            _runner.run(_test)
            assert _test.examples and _runner.failures == 0, "doctest failed"
            """
        )
        tasks.append(
            EvalTask(
                task_id=f"{relative.as_posix()}::{node.name}",
                prompt=prompt,
                tests=tests,
                entry_point=node.name,
                source=f"{relative}:{node.lineno}",
            )
        )
    return tasks


# --- programs ---------------------------------------------------------------------------------


def extract_code(completion: str) -> str:
    """The code in an answer: its first fenced block, or the whole text."""
    match = _FENCE.search(completion)
    return (match.group(1) if match else completion).strip("\n") + "\n"


def _defines(code: str, name: str) -> bool:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return re.search(rf"^\s*def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.name == name
        for node in ast.walk(tree)
    )


def build_program(task: EvalTask, completion: str) -> tuple[str, str]:
    """The answer's code and the program that tests it.

    A task's ``answer_prefix`` (the signature the model was made to start from) comes first,
    unless the answer already starts with it. An answer that defines the entry point stands
    alone; one that does not continues the prompt (HumanEval's completion style). A
    ``check(candidate)`` in the tests is called with the entry point.

    Returns:
        ``(code, program)``.
    """
    if task.answer_prefix and not completion.startswith(task.answer_prefix):
        completion = task.answer_prefix + completion
    code = extract_code(completion)
    if not _defines(code, task.entry_point) and _defines(task.prompt, task.entry_point):
        code = task.prompt + code
    program = f"{code}\n\n{task.tests}\n"
    if _needs_check_call(task.tests):
        program += f"\ncheck({task.entry_point})\n"
    return code, program


def _needs_check_call(tests: str) -> bool:
    """Whether the tests define HumanEval's ``check(candidate)`` without calling it."""
    try:
        tree = ast.parse(tests)
    except SyntaxError:
        return False
    defines = any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body)
    calls = any(
        isinstance(n, ast.Expr)
        and isinstance(n.value, ast.Call)
        and isinstance(n.value.func, ast.Name)
        and n.value.func.id == "check"
        for n in tree.body
    )
    return defines and not calls


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def sandbox_judge(sandbox: Sandbox | None = None) -> Callable[[EvalTask, str], bool]:
    """A judge for the engine's in-training evaluation: each answer runs in the sandbox.

    The same program building and sandbox as :class:`EvalService`, so pass@1 during training
    means what ``codetune-studio eval`` means by it.

    Args:
        sandbox: The sandbox to use; one with the default limits otherwise.

    Returns:
        ``judge(task, completion)``: whether the answer passed its tests.
    """
    box = sandbox or Sandbox()

    def judge(task: EvalTask, completion: str) -> bool:
        _code, program = build_program(task, completion)
        return box.run(program).passed

    return judge


# --- the local analyzer -------------------------------------------------------------------------


def local_analyzer(
    timeout_s: float = 300.0,
) -> Callable[[Sequence[str]], list[list[SampleFinding]]]:
    """The built-in code analyzer, run through the plugin API in its own child process.

    Returns:
        ``analyze(codes)``: each code's findings, in order (empty where the plugin failed).
    """
    from codetune_studio.plugins.api import ToolInputs
    from codetune_studio.plugins.registry import discover, find_plugin
    from codetune_studio.secrets import MemorySecretStore
    from codetune_studio.services.analysis import AnalysisService

    def analyze(codes: Sequence[str]) -> list[list[SampleFinding]]:
        if not codes:
            return []
        spec = find_plugin(discover(), "code_analyzer").spec
        if spec is None:  # pragma: no cover - find_plugin returns loaded plugins
            return [[] for _ in codes]
        inputs = [ToolInputs(code=code, path=f"sample-{i}") for i, code in enumerate(codes)]
        service = AnalysisService(MemorySecretStore(), offline=True, timeout_s=timeout_s)
        outcome = service.run_all(spec, inputs, target="eval")
        by_path = {result.path: result for result in outcome.results}
        found: list[list[SampleFinding]] = []
        for item in inputs:
            result = by_path.get(item.path)
            findings = result.findings if result is not None else []
            found.append(
                [
                    SampleFinding(severity=f.severity, rule=f.rule, message=f.message, line=f.line)
                    for f in findings
                ]
            )
        return found

    return analyze


# --- the service --------------------------------------------------------------------------------


class EvalService:
    """Evaluates models on code tasks and keeps the results.

    Args:
        database: Where results are recorded; ``None`` records nothing.
        sandbox: Runs each sample with its tests.
        analyzer: Finds issues in each sample (:func:`local_analyzer`; ``None`` skips it).
        generation_deadline_s: The longest the generation child may run.
        device: Forces the generation device (``cpu``).
    """

    def __init__(
        self,
        database: Database | None,
        *,
        sandbox: Sandbox | None = None,
        analyzer: Callable[[Sequence[str]], list[list[SampleFinding]]] | None = None,
        generation_deadline_s: float = 3600.0,
        device: str | None = None,
    ) -> None:
        self._database = database
        self.sandbox = sandbox or Sandbox()
        self._analyzer = analyzer
        self._deadline_s = generation_deadline_s
        self._device = device

    def evaluate(
        self,
        model: ResolvedModel,
        tasks: Sequence[EvalTask],
        *,
        task_source: str,
        samples: int = 1,
        params: GenerationParams | None = None,
        compare_base: bool = False,
        chat: bool = True,
    ) -> Generator[EvalProgress, None, list[ModelEvaluation]]:
        """Evaluate ``model`` (and its base) on ``tasks``; a work generator.

        Args:
            model: What to evaluate.
            tasks: The tasks.
            task_source: The task file or folder, for the record.
            samples: Answers per task (``n`` of pass@k).
            params: Decoding settings; greedy with 384 new tokens by default.
            compare_base: Also evaluate the base (the adapter switched off).
            chat: Render each prompt as a user turn through the chat template (instruction
                tuned models); ``False`` feeds it as plain text to be continued.

        Returns:
            One evaluation per variant, tuned first, recorded when a database was given.

        Raises:
            ConfigError: ``compare_base`` for a model that has no adapter.
            GenerationError: The generation child failed.
        """
        if compare_base and model.adapter is None:
            raise ConfigError(
                f"{model.label} has no adapter, so it has no separate base to compare"
            )
        settings = params or GenerationParams(max_new_tokens=384)
        model = self._with_version(model)
        variants: tuple[Variant, ...] = ("tuned", "base") if compare_base else ("tuned",)
        requests = [
            task.request(
                chat=chat,
                id=str(index),
                params=settings,
                variants=variants,
                samples=samples,
                stream=False,
            )
            for index, task in enumerate(tasks)
        ]
        total = len(tasks) * samples * len(variants)
        outcomes: dict[tuple[Variant, int], list[SampleOutcome]] = {}
        yield EvalProgress(0, total, "loading the model")
        done = 0
        with GenerationProcess(
            model, requests, deadline_s=self._deadline_s, device=self._device
        ) as process:
            for event in process.events():
                if not isinstance(event, GenerationFinished):
                    yield EvalProgress(done, total, "generating")
                    continue
                task = tasks[int(event.request)]
                outcomes.setdefault((event.variant, int(event.request)), []).append(
                    self._judge(task, event)
                )
                done += 1
                yield EvalProgress(done, total, f"ran {task.task_id} ({event.variant})")
        yield EvalProgress(done, total, "analysing the samples")
        results = [
            self._score(model, tasks, variant, outcomes, task_source, samples, settings)
            for variant in variants
        ]
        return self._record_all(results)

    def run_to_end(
        self,
        model: ResolvedModel,
        tasks: Sequence[EvalTask],
        *,
        on_progress: Callable[[EvalProgress], None] | None = None,
        **options: Any,
    ) -> list[ModelEvaluation]:
        """Run :meth:`evaluate` on this thread (the CLI)."""
        work = self.evaluate(model, tasks, **options)
        while True:
            try:
                progress = next(work)
            except StopIteration as stop:
                evaluations: list[ModelEvaluation] = stop.value
                return evaluations
            if on_progress is not None:
                on_progress(progress)

    def _judge(self, task: EvalTask, event: GenerationFinished) -> SampleOutcome:
        code, program = build_program(task, event.text)
        parsed = _parses(code)
        verdict = self.sandbox.run(program)
        return SampleOutcome(
            sample=event.sample,
            completion=event.text,
            code=code,
            parsed=parsed,
            passed=verdict.passed,
            reason=verdict.reason,
            output=verdict.output,
            stop_reason=event.stop_reason,
            tokens=event.tokens,
        )

    def _score(
        self,
        model: ResolvedModel,
        tasks: Sequence[EvalTask],
        variant: Variant,
        outcomes: dict[tuple[Variant, int], list[SampleOutcome]],
        task_source: str,
        samples: int,
        params: GenerationParams,
    ) -> ModelEvaluation:
        per_task = [
            sorted(outcomes.get((variant, i), []), key=lambda s: s.sample)
            for i in range(len(tasks))
        ]
        per_task = self._with_findings(per_task)
        flat = [s for group in per_task for s in group]
        ks = sorted({1, *(k for k in (5, 10) if k <= samples), samples})
        counted = [g for g in per_task if g]
        pass_k = {
            k: _mean(
                [pass_at_k(len(g), sum(s.passed for s in g), k) for g in counted if len(g) >= k]
            )
            for k in ks
        }
        label = model.label if variant == "tuned" else f"{model.label} (base)"
        return ModelEvaluation(
            label=label,
            variant=variant,
            model_version_id=model.version_id,
            task_source=task_source,
            num_tasks=len(tasks),
            samples_per_task=samples,
            temperature=params.temperature,
            pass_at_1=pass_k[1],
            pass_at_k=pass_k,
            parse_rate=_mean([s.parsed for s in flat]),
            eos_rate=_mean([s.stop_reason == "eos" for s in flat]),
            mean_tokens=_mean([s.tokens for s in flat]),
            findings_per_sample=_mean([len(s.findings) for s in flat]),
            isolation=self.sandbox.isolation,
            tasks=tuple(
                TaskOutcome(task_id=t.task_id, prompt=t.prompt, tests=t.tests, samples=tuple(g))
                for t, g in zip(tasks, per_task, strict=True)
            ),
        )

    def _with_findings(self, per_task: list[list[SampleOutcome]]) -> list[list[SampleOutcome]]:
        if self._analyzer is None:
            return per_task
        flat = [s for group in per_task for s in group]
        try:
            found = self._analyzer([s.code for s in flat])
        except Exception:
            logger.exception("the code analyzer failed; samples carry no findings")
            return per_task
        by_id = {id(s): tuple(f) for s, f in zip(flat, found, strict=False)}
        return [
            [s.model_copy(update={"findings": by_id.get(id(s), ())}) for s in group]
            for group in per_task
        ]

    # --- records --------------------------------------------------------------------------------

    def _record(self, evaluation: ModelEvaluation) -> ModelEvaluation:
        return self._record_all([evaluation])[0]

    def _record_all(self, evaluations: Sequence[ModelEvaluation]) -> list[ModelEvaluation]:
        """Store the variants in one unit of work, the tuned row pointing at its base's."""
        if self._database is None:
            return list(evaluations)
        recorded: list[ModelEvaluation] = []
        with self._database.unit_of_work() as session:
            repo = EvalResultRepository(session)
            rows = [self._add_row(repo, evaluation) for evaluation in evaluations]
            tuned = next((r for r in rows if r.variant == "tuned"), None)
            base = next((r for r in rows if r.variant == "base"), None)
            if tuned is not None and base is not None:
                repo.link_base(tuned, base)
            for evaluation, row in zip(evaluations, rows, strict=True):
                update: dict[str, Any] = {"id": row.id, "created_at": row.created_at}
                if row is tuned and base is not None:
                    update["base_result_id"] = base.id
                recorded.append(evaluation.model_copy(update=update))
        return recorded

    @staticmethod
    def _add_row(repo: EvalResultRepository, evaluation: ModelEvaluation) -> EvalResultRow:
        metrics = evaluation.model_dump(
            mode="json",
            include={
                "pass_at_k", "parse_rate", "eos_rate", "mean_tokens", "findings_per_sample",
                "isolation",
            },
        )  # fmt: skip
        return repo.add(
            label=evaluation.label,
            variant=evaluation.variant,
            task_source=evaluation.task_source,
            samples_per_task=evaluation.samples_per_task,
            temperature=evaluation.temperature,
            pass_at_1=evaluation.pass_at_1,
            metrics=metrics,
            tasks=[t.model_dump(mode="json") for t in evaluation.tasks],
            model_version_id=evaluation.model_version_id,
        )

    def _with_version(self, model: ResolvedModel) -> ResolvedModel:
        """``model`` with the model version stored at its folder, when it was given by path.

        So ``eval runs/42/adapter`` counts for run 42 just like ``eval 42`` does.
        """
        if model.version_id is not None or self._database is None:
            return model
        folder = model.adapter if model.adapter is not None else Path(model.base_model)
        paths = sorted({str(folder), str(folder.absolute()), str(folder.resolve())})
        with self._database.unit_of_work() as session:
            version_id = EvalResultRepository(session).model_version_at(paths)
        return model if version_id is None else replace(model, version_id=version_id)

    def list_results(
        self, *, with_tasks: bool = False, limit: int | None = 100
    ) -> list[ModelEvaluation]:
        """Stored evaluations, newest first (per-task detail only when asked for)."""
        if self._database is None:
            return []
        with self._database.unit_of_work() as session:
            rows = EvalResultRepository(session).list_all(limit=limit, with_tasks=with_tasks)
            return [evaluation_from_row(row, with_tasks=with_tasks) for row in rows]

    def get_result(self, result_id: int) -> ModelEvaluation:
        """One stored evaluation with its per-task detail.

        Raises:
            NotFoundError: There is none with that id.
        """
        if self._database is None:
            raise NotFoundError(f"Eval result {result_id} does not exist.")
        with self._database.unit_of_work() as session:
            return evaluation_from_row(
                EvalResultRepository(session).get(result_id), with_tasks=True
            )

    @staticmethod
    def compare(evaluations: Sequence[ModelEvaluation]) -> EvalComparison | None:
        """The tuned/base pair among ``evaluations``, if both are there."""
        tuned = next((e for e in evaluations if e.variant == "tuned"), None)
        base = next((e for e in evaluations if e.variant == "base"), None)
        if tuned is None or base is None:
            return None
        return EvalComparison(tuned=tuned, base=base)


def evaluation_from_row(row: EvalResultRow, *, with_tasks: bool) -> ModelEvaluation:
    """A stored evaluation as the core model (``tasks`` read only when asked for)."""
    metrics: dict[str, Any] = dict(row.metrics)
    return ModelEvaluation.model_validate(
        {
            **metrics,
            "id": row.id,
            "label": row.label,
            "variant": row.variant,
            "model_version_id": row.model_version_id,
            "task_source": row.task_source,
            "num_tasks": row.num_tasks,
            "samples_per_task": row.samples_per_task,
            "temperature": row.temperature,
            "pass_at_1": row.pass_at_1,
            "tasks": row.tasks if with_tasks else (),
            "created_at": row.created_at,
        }
    )


def _mean(values: Sequence[float | int | bool]) -> float:
    return float(sum(values)) / len(values) if values else 0.0

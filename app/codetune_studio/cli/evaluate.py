"""``codetune-studio eval MODEL --tasks FILE``: pass@k of a model on code tasks, and a CI gate.

Each task (JSONL: ``task_id``, ``prompt``, ``tests``, ``entry_point``; or ``--from-code DIR``:
functions with doctests) is answered ``--samples`` times; every answer runs with its tests in a
sandboxed child process (time, memory and process limits, no network, a scrubbed environment, a
temporary folder). ``--compare-base`` evaluates the base model (the adapter switched off) the
same way and prints both side by side. ``--fail-if-regress`` exits 1 when the tuned model's
pass@1 is below the base's by more than ``--tolerance``. Results are stored in the database;
``codetune-studio eval list`` lists them and ``eval show ID`` prints one task by task.

Exit status: 0 done (and no regression), 1 regression or failure, 2 bad arguments or tasks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codetune_studio.cli.context import CliContext, echo, echo_notice
from codetune_studio.cli.generate import add_model_arguments, resolve_cli_model
from codetune_studio.core.errors import ConfigError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from codetune_studio.cli.types import Subparsers
    from codetune_studio.core.evaluation import ModelEvaluation
    from codetune_studio.services.evaluation import EvalProgress

__all__ = ["format_table", "register"]

_LIST_WORDS = ("list", "show")


def register(subparsers: Subparsers) -> None:
    """Add the ``eval`` command."""
    parser = subparsers.add_parser(
        "eval",
        help="measure pass@k of a model (and its base) on code tasks; list stored results",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    add_model_arguments(parser)
    parser.add_argument("result_id", nargs="?", type=int, help="with `eval show`: the result id")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--tasks", type=Path, metavar="FILE", help="JSONL task file")
    source.add_argument(
        "--from-code", type=Path, metavar="DIR", help="tasks from functions with doctests"
    )
    parser.add_argument("--samples", type=int, default=1, metavar="K", help="answers per task")
    parser.add_argument("--temperature", type=float, metavar="T", help="default 0 (greedy), "
                        "0.8 when --samples > 1")  # fmt: skip
    parser.add_argument("--max-new-tokens", type=int, default=384, metavar="N")
    parser.add_argument("--seed", type=int, default=0, metavar="S")
    parser.add_argument("--raw", action="store_true", help="prompts as plain text, no template")
    parser.add_argument("--compare-base", action="store_true", help="also evaluate the base")
    parser.add_argument(
        "--fail-if-regress", action="store_true", help="exit 1 if tuned pass@1 < base pass@1"
    )
    parser.add_argument("--tolerance", type=float, default=0.0, metavar="X",
                        help="allowed pass@1 drop for --fail-if-regress (default 0)")  # fmt: skip
    parser.add_argument("--time-limit", type=float, default=10.0, metavar="S",
                        help="seconds per sample in the sandbox (default 10)")  # fmt: skip
    parser.add_argument("--no-analyzer", action="store_true", help="skip the code analyzer")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the JSON here")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace, context: CliContext) -> int:
    if args.model in _LIST_WORDS and args.tasks is None and args.from_code is None:
        return _list(args, context)
    from codetune_studio.core.generation import GenerationParams
    from codetune_studio.services.evaluation import (
        EvalService,
        load_tasks,
        local_analyzer,
        tasks_from_code,
    )
    from codetune_studio.services.sandbox import Sandbox, SandboxLimits

    if args.fail_if_regress and not args.compare_base:
        raise ConfigError("--fail-if-regress needs --compare-base")
    if args.tasks is None and args.from_code is None:
        raise ConfigError("say which tasks: --tasks FILE or --from-code DIR")
    if args.samples < 1:
        raise ConfigError("--samples must be at least 1")
    tasks = load_tasks(args.tasks) if args.tasks else tasks_from_code(args.from_code)
    temperature = args.temperature
    if temperature is None:
        temperature = 0.8 if args.samples > 1 else 0.0
    params = GenerationParams(
        max_new_tokens=args.max_new_tokens, temperature=temperature, seed=args.seed
    )
    model = resolve_cli_model(args, context)
    service = EvalService(
        context.open_database().database,
        sandbox=Sandbox(SandboxLimits(time_s=args.time_limit)),
        analyzer=None if args.no_analyzer else local_analyzer(),
        device=args.device,
    )
    if service.sandbox.isolation == "process-group":
        echo_notice("unshare is unavailable here: the sandbox has network access and relies on "
                    "killing a process group")  # fmt: skip
    evaluations = service.run_to_end(
        model,
        tasks,
        on_progress=_progress,
        task_source=str(args.tasks or args.from_code),
        samples=args.samples,
        params=params,
        compare_base=args.compare_base,
        chat=not args.raw,
    )
    sys.stderr.write("\n")
    _report(evaluations, args)
    comparison = service.compare(evaluations)
    if args.fail_if_regress and comparison is not None and comparison.regressed(args.tolerance):
        echo_notice(
            f"regression: tuned pass@1 {comparison.tuned.pass_at_1:.3f} is below base "
            f"{comparison.base.pass_at_1:.3f} by more than {args.tolerance}"
        )
        return 1
    return 0


def _progress(progress: EvalProgress) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r{progress.done}/{progress.total} {progress.message[:60]:<60}")
        sys.stderr.flush()


def _report(evaluations: Sequence[ModelEvaluation], args: argparse.Namespace) -> None:
    payload: dict[str, Any] = {"results": [e.model_dump(mode="json") for e in evaluations]}
    if len(evaluations) == 2:
        payload["pass_at_1_delta"] = evaluations[0].pass_at_1 - evaluations[1].pass_at_1
    text = json.dumps(payload, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    if args.format == "json":
        echo(text)
    else:
        echo(format_table(evaluations))


def format_table(evaluations: Sequence[ModelEvaluation]) -> str:
    """Metrics side by side (one column per model), a difference column for a pair, per task."""
    columns = [e.label for e in evaluations]
    ks = sorted({k for e in evaluations for k in e.pass_at_k})
    rows: list[tuple[str, list[float], str]] = [
        *((f"pass@{k}", [e.pass_at_k.get(k, 0.0) for e in evaluations], "pct") for k in ks),
        ("parse rate", [e.parse_rate for e in evaluations], "pct"),
        ("stopped at EOS", [e.eos_rate for e in evaluations], "pct"),
        ("mean tokens", [e.mean_tokens for e in evaluations], "num"),
        ("findings/sample", [e.findings_per_sample for e in evaluations], "num"),
    ]
    pair = len(evaluations) == 2
    head = ["metric", *columns, *(["difference"] if pair else [])]
    body = []
    for name, values, kind in rows:
        cells = [_fmt(v, kind) for v in values]
        if pair:
            cells.append(_fmt(values[0] - values[1], kind, signed=True))
        body.append([name, *cells])
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *body]]
    first = evaluations[0]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(
        f"{first.num_tasks} tasks x {first.samples_per_task} samples, temperature "
        f"{first.temperature:g}, sandbox: {first.isolation}"
    )
    lines.extend(_per_task(evaluations))
    return "\n".join(lines)


def _per_task(evaluations: Sequence[ModelEvaluation]) -> list[str]:
    if not evaluations or not evaluations[0].tasks:
        return []
    lines = ["", "per task (samples passed): " + " | ".join(e.label for e in evaluations)]
    for index, task in enumerate(evaluations[0].tasks):
        cells = []
        for evaluation in evaluations:
            outcome = evaluation.tasks[index]
            marks = "".join("P" if s.passed else "." for s in outcome.samples)
            cells.append(f"{outcome.passed}/{len(outcome.samples)} {marks}")
        lines.append(f"  {task.task_id:<32} " + " | ".join(cells))
    return lines


def _fmt(value: float, kind: str, *, signed: bool = False) -> str:
    sign = "+" if signed and value > 0 else ""
    if kind == "pct":
        return f"{sign}{value * 100:.1f}%"
    return f"{sign}{value:.1f}"


def _list(args: argparse.Namespace, context: CliContext) -> int:
    from codetune_studio.services.evaluation import EvalService

    service = EvalService(context.open_database().database)
    if args.model == "show":
        if args.result_id is None:
            raise ConfigError("eval show needs a result id (see `eval list`)")
        result = service.get_result(args.result_id)
        if args.format == "json":
            echo(result.model_dump_json(indent=2))
        else:
            echo(format_table([result]))
        return 0
    results = service.list_results()
    if args.format == "json":
        echo(json.dumps([r.model_dump(mode="json") for r in results], indent=2))
        return 0
    if not results:
        echo("No evaluations yet: run `codetune-studio eval MODEL --tasks FILE`.")
        return 0
    echo(f"{'id':>4}  {'when':<16}  {'model':<40}  {'variant':<7}  {'tasks':>5}  {'n':>3}  pass@1")
    for r in results:
        when = r.created_at.strftime("%Y-%m-%d %H:%M") if r.created_at else ""
        echo(
            f"{r.id:>4}  {when:<16}  {r.label[:40]:<40}  {r.variant:<7}  {r.num_tasks:>5}  "
            f"{r.samples_per_task:>3}  {r.pass_at_1 * 100:.1f}%"
        )
    return 0

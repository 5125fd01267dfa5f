"""``codetune-studio runs ...``: list, show, follow, tag, delete and compare recorded runs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codetune_studio.cli.context import CliContext, echo
from codetune_studio.cli.tables import (
    fmt_duration,
    fmt_number,
    fmt_percent,
    fmt_time,
    print_table,
)
from codetune_studio.core.audit import AuditAction
from codetune_studio.core.errors import ConfigError, NotFoundError
from codetune_studio.core.status import RunStatus

if TYPE_CHECKING:
    import argparse

    from codetune_studio.cli.types import Subparsers
    from codetune_studio.core.comparison import Comparison, RunResults, RunSummary
    from codetune_studio.core.evaluation import ModelEvaluation
    from codetune_studio.services.history import RunHistoryService

__all__ = ["metric_option", "print_comparison", "register", "summary_json"]

_FOLLOW_POLL_S = 1.0


def register(subparsers: Subparsers) -> None:
    """Add the ``runs`` command and its subcommands."""
    parser = subparsers.add_parser(
        "runs", help="list, show, follow, tag, delete and compare runs", description=__doc__
    )
    commands = parser.add_subparsers(title="runs commands", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="list runs, newest first")
    listing.add_argument("--status", type=_status, help="only runs in this status")
    listing.add_argument("--owner", help="only this user's runs")
    listing.add_argument("--tag", help="only runs with this tag")
    listing.add_argument("--model", help="only runs whose model contains this text")
    listing.add_argument("--search", metavar="TEXT", help="only runs mentioning TEXT")
    listing.add_argument("--sweep", metavar="ID", help="only the runs of this sweep")
    listing.add_argument("--limit", type=int, default=100, help="at most N runs (default 100)")
    _format_option(listing)
    listing.set_defaults(handler=_list)

    show = commands.add_parser("show", help="a run's recipe, results, files and lineage")
    show.add_argument("run_id", type=int, metavar="ID")
    _format_option(show)
    show.set_defaults(handler=_show)

    log = commands.add_parser("log", help="print a run's worker log")
    log.add_argument("run_id", type=int, metavar="ID")
    log.add_argument("--follow", "-f", action="store_true", help="keep printing until it ends")
    log.set_defaults(handler=_log)

    tag = commands.add_parser("tag", help="add tags to a run (--remove to take them off)")
    tag.add_argument("run_id", type=int, metavar="ID")
    tag.add_argument("tags", nargs="+", metavar="TAG")
    tag.add_argument("--remove", action="store_true", help="remove these tags instead")
    tag.set_defaults(handler=_tag)

    note = commands.add_parser("note", help="set a run's note (empty text clears it)")
    note.add_argument("run_id", type=int, metavar="ID")
    note.add_argument("text")
    note.set_defaults(handler=_note)

    delete = commands.add_parser("delete", help="delete an ended run")
    delete.add_argument("run_id", type=int, metavar="ID")
    delete.add_argument("--files", action="store_true", help="also delete its output folder")
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask")
    delete.set_defaults(handler=_delete)

    compare = commands.add_parser("compare", help="differing recipe fields and results")
    compare.add_argument("run_ids", type=int, nargs="+", metavar="ID")
    compare.add_argument(
        "--metric",
        default="eval_loss",
        type=metric_option,
        help="metric that picks the best run: eval_loss (default), loss, pass@1 (the newest "
        "code evaluation, higher is better), pass@k, tokens_per_second...",
    )
    _format_option(compare)
    compare.set_defaults(handler=_compare)


def metric_option(value: str) -> str:
    """``--metric``, checked while parsing, before any work starts (a sweep trains first).

    Raises:
        argparse.ArgumentTypeError: It names no metric; argparse prints the usage line and it.
    """
    import argparse

    from codetune_studio.core.comparison import check_metric

    try:
        return check_metric(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json"), default="table")


def _status(value: str) -> RunStatus:
    try:
        return RunStatus(value.upper())
    except ValueError:
        choices = ", ".join(status.value for status in RunStatus)
        raise ConfigError(f"--status {value}: expected one of {choices}") from None


def _history(context: CliContext) -> RunHistoryService:
    from codetune_studio.services.history import RunHistoryService

    return RunHistoryService(context.open_database().database)


def summary_json(summary: RunSummary) -> dict[str, Any]:
    """One run as ``runs list --format json`` prints it."""
    run, results = summary.run, summary.results
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status.value,
        "owner": run.owner,
        "host": run.host,
        "model": summary.model,
        "dataset": summary.dataset,
        "method": summary.method,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "ended_at": run.ended_at.isoformat() if run.ended_at else None,
        "duration_s": results.wall_time_s,
        "steps": results.steps,
        "total_steps": run.total_steps,
        "final_loss": results.final_loss,
        "best_eval_loss": results.best_eval_loss,
        "pass_at_1": results.pass_at_1,
        "final_pass_at_1": results.final_pass_at_1,
        "tags": run.tags,
        "note": run.note,
        "parent_run_id": run.parent_run_id,
        "resumed_from_id": run.resumed_from_id,
        "sweep_id": run.sweep_id,
        "queue_position": run.queue_position,
        "output_dir": run.output_dir,
        "error": run.error,
    }


def _list(args: argparse.Namespace, context: CliContext) -> int:
    from codetune_studio.services.history import RunFilter

    summaries = _history(context).list_runs(
        RunFilter(
            statuses=[args.status] if args.status else (),
            owner=args.owner,
            tag=args.tag,
            model=args.model,
            text=args.search,
            sweep_id=args.sweep,
            limit=args.limit,
        )
    )
    if args.format == "json":
        sys.stdout.write(json.dumps([summary_json(s) for s in summaries], indent=2) + "\n")
        return 0
    rows = [
        [
            str(s.run.id),
            s.run.name[:40],
            s.run.status.value,
            s.run.owner,
            s.model[-30:],
            fmt_time(s.run.started_at),
            fmt_duration(s.results.wall_time_s),
            f"{s.results.steps or 0}/{s.run.total_steps or '?'}",
            fmt_number(s.results.final_loss),
            fmt_number(s.results.best_eval_loss),
            ",".join(s.run.tags),
        ]
        for s in summaries
    ]
    headers = ["ID", "NAME", "STATUS", "OWNER", "MODEL", "STARTED", "TIME", "STEPS", "LOSS"]
    print_table([*headers, "EVAL", "TAGS"], rows)
    return 0


def _show(args: argparse.Namespace, context: CliContext) -> int:
    history = _history(context)
    summary = history.get_summary(args.run_id)
    lineage = history.run_lineage(args.run_id)
    from codetune_studio.services.experiments import ExperimentService

    versions = ExperimentService(context.open_database().database).list_model_versions(
        run_id=args.run_id
    )
    evaluations = history.evaluations(args.run_id)
    if args.format == "json":
        payload = {
            **summary_json(summary),
            "recipe": summary.run.recipe,
            "results": summary.results.model_dump(mode="json"),
            "log_path": summary.run.log_path,
            "lineage": [step.model_dump(mode="json") for step in lineage],
            "model_versions": [v.model_dump(mode="json") for v in versions],
            "evaluations": [e.model_dump(mode="json", exclude={"tasks"}) for e in evaluations],
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return 0
    run = summary.run
    echo(f"Run {run.id}: {run.name}  [{run.status.value}]")
    echo(f"  owner {run.owner}, files on {run.host}: {run.output_dir or '-'}")
    echo(f"  started {fmt_time(run.started_at)}, took {fmt_duration(summary.results.wall_time_s)}")
    if run.tags:
        echo(f"  tags: {', '.join(run.tags)}")
    if run.note:
        echo(f"  note: {run.note}")
    if run.error:
        echo(f"  error: {run.error}")
    echo("Results:")
    for name, value in summary.results.model_dump().items():
        if isinstance(value, str | int):
            echo(f"  {name:<18} {value}")
        else:
            echo(f"  {name:<18} {fmt_number(value)}")
    echo("Lineage: " + _chain_text(lineage))
    for version in versions:
        echo(f"Model version {version.id}: {version.path}")
    _print_evaluations(evaluations)
    echo("Recipe:")
    echo(json.dumps(run.recipe, indent=2))
    return 0


def _print_evaluations(evaluations: list[ModelEvaluation]) -> None:
    tuned = [e for e in evaluations if e.variant == "tuned"]
    if not tuned:
        echo("Code evaluations: none (`codetune-studio eval RUN_ID --tasks FILE` adds one)")
        return
    by_id = {e.id: e for e in evaluations}
    echo("Code evaluations (newest first; `codetune-studio eval show ID` has each task):")
    rows = []
    for e in tuned:
        base = by_id.get(e.base_result_id) if e.base_result_id is not None else None
        k = max(e.pass_at_k, default=1)
        rows.append(
            [
                str(e.id),
                fmt_time(e.created_at),
                fmt_percent(e.pass_at_1),
                f"{fmt_percent(e.pass_at_k.get(k))} (k={k})",
                fmt_percent(base.pass_at_1) if base is not None else "-",
                fmt_percent(e.parse_rate),
                fmt_percent(e.eos_rate),
                f"{e.num_tasks}x{e.samples_per_task}",
                e.task_source,
            ]
        )
    headers = ["ID", "WHEN", "PASS@1", "PASS@K", "BASE PASS@1", "PARSE", "EOS", "TASKS", "FILE"]
    print_table(headers, rows)


def _chain_text(lineage: list[Any]) -> str:
    parts = []
    for step in lineage:
        prefix = f"{step.relation} " if step.relation else ""
        parts.append(f"{prefix}run {step.run_id} ({step.status})")
    return " <- ".join(parts)


def _log(args: argparse.Namespace, context: CliContext) -> int:
    from codetune_studio.services.history import LogLines, render_log_line

    history = _history(context)
    run = history.get_summary(args.run_id).run
    path = history.log_file(run)
    if path is None:
        where = run.log_path or run.output_dir or "its output folder"
        raise NotFoundError(
            f"Run {run.id}'s log is not on this machine: it is on {run.host} at {where}. "
            f"Run `codetune-studio runs log {run.id}` there, or copy the file."
        )
    with path.open("rb") as handle:
        log = LogLines(handle)
        while True:
            # While following, a last line without its newline is still being written: it
            # waits for the rest, so it is never printed in two pieces.
            for line in log.read(final=not args.follow):
                echo(render_log_line(line))
            if not args.follow:
                return 0
            run = history.get_summary(args.run_id).run
            if run.status.is_terminal:
                for line in log.read(final=True):  # what the worker wrote while it ended
                    echo(render_log_line(line))
                return 0
            sys.stdout.flush()
            time.sleep(_FOLLOW_POLL_S)


def _tag(args: argparse.Namespace, context: CliContext) -> int:
    history = _history(context)
    if args.remove:
        current = history.get_summary(args.run_id).run.tags
        run = history.set_tags(args.run_id, [tag for tag in current if tag not in args.tags])
    else:
        run = history.add_tags(args.run_id, args.tags)
    echo(f"Run {run.id} tags: {', '.join(run.tags) or '(none)'}")
    return 0


def _note(args: argparse.Namespace, context: CliContext) -> int:
    run = _history(context).set_note(args.run_id, args.text)
    echo(f"Run {run.id} note: {run.note or '(none)'}")
    return 0


def _delete(args: argparse.Namespace, context: CliContext) -> int:
    history = _history(context)
    run = history.get_summary(args.run_id).run
    what = f"run {run.id} ({run.name})" + (
        f" and its folder {run.output_dir}" if args.files and run.output_dir else ""
    )
    if not args.yes:
        if not sys.stdin.isatty():
            raise ConfigError(f"Deleting {what} needs confirmation: pass --yes")
        answer = input(f"Delete {what}? [y/N] ")
        if answer.strip().lower() not in {"y", "yes"}:
            echo("Nothing deleted.")
            return 1
    folder = history.delete_run(run.id, files=args.files)
    context.audit(
        AuditAction.RUN_DELETED, f"run {run.id}", {"name": run.name, "files": str(folder or "")}
    )
    echo(f"Deleted run {run.id}" + (f" and {folder}" if folder else "") + ".")
    return 0


def _compare(args: argparse.Namespace, context: CliContext) -> int:
    comparison = _history(context).compare(args.run_ids, metric=args.metric)
    if args.format == "json":
        sys.stdout.write(json.dumps(comparison.as_json(), indent=2) + "\n")
        return 0
    print_comparison(comparison)
    return 0


def print_comparison(comparison: Comparison) -> None:
    """Print a comparison as two tables, one row per run: differing recipe fields, then results.

    Runs are rows (as in the window's Compare dialog), so comparing a hundred runs gives a
    hundred lines of a fixed width rather than a hundred columns no terminal can show.
    """
    ids = [run.id for run in comparison.runs]
    if comparison.differences:
        names = list(comparison.differences)
        rows = [
            [str(run_id), *[_cell(comparison.differences[name].get(run_id)) for name in names]]
            for run_id in ids
        ]
        print_table(["RUN", *names], rows)
    else:
        echo("The recipes are the same.")
    echo()
    results = [comparison.results[run_id] for run_id in ids]
    with_eval = any(r.pass_at_1 is not None for r in results)
    headers = ["RUN", "BEST", *[label for label, _ in _RESULT_COLUMNS]]
    if with_eval:
        headers += ["pass@k", "base pass@1", "eval tasks"]
    rows = []
    for run_id, result in zip(ids, results, strict=True):
        row = [str(run_id), "*" if run_id == comparison.best_run_id else ""]
        row += [_result_cell(result, key) for _, key in _RESULT_COLUMNS]
        if with_eval:
            row += _eval_cells(result)
        rows.append(row)
    print_table(headers, rows)
    if comparison.best_run_id is not None:
        echo(f"Best by {comparison.metric}: run {comparison.best_run_id}")


#: The results table's columns after RUN and BEST (code-evaluation columns join when present).
_RESULT_COLUMNS = (
    ("final loss", "final_loss"),
    ("best eval loss", "best_eval_loss"),
    ("perplexity", "perplexity"),
    ("training pass@1", "final_pass_at_1"),
    ("tokens/s", "tokens_per_second"),
    ("wall time", "wall_time_s"),
    ("peak memory MB", "peak_memory_mb"),
    ("steps", "steps"),
    ("pass@1", "pass_at_1"),
)


def _result_cell(result: RunResults, key: str) -> str:
    value = getattr(result, key)
    if key == "wall_time_s":
        return fmt_duration(value)
    if key == "pass_at_1":
        return fmt_percent(value)
    return fmt_number(value)


def _eval_cells(result: RunResults) -> list[str]:
    """The newest code evaluation of a run besides its pass@1: pass@k, the base's, the tasks."""
    return [
        f"{fmt_percent(result.pass_at_k)} (k={result.eval_k})"
        if result.pass_at_k is not None
        else "-",
        fmt_percent(result.base_pass_at_1),
        Path(result.eval_tasks).name if result.eval_tasks else "-",
    ]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return fmt_number(value, 6)
    return json.dumps(value) if not isinstance(value, str) else value

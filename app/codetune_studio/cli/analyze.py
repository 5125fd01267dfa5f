"""``codetune-studio analyze PATH``: run an analysis plugin over code, a folder or a dataset.

PATH may be a Python file, a folder (every ``.py`` file below it), or a JSONL dataset, in which
case each row's completion is analysed: its ``output``, ``completion`` or ``response`` field, or
the last assistant message of ``messages``; when the text holds fenced code blocks, only the
code inside them. The plugin runs in a child process with a deadline.

Exit status: 0 when every input was analysed and no finding has severity ``error``; 1 otherwise.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codetune_studio.cli.context import CliContext, echo, echo_error, echo_notice
from codetune_studio.cli.types import positive_seconds
from codetune_studio.core.errors import ConfigError, PluginError
from codetune_studio.plugins import code_lint
from codetune_studio.plugins.registry import discover, find_plugin

if TYPE_CHECKING:
    import argparse

    from codetune_studio.cli.types import Subparsers
    from codetune_studio.plugins.api import ToolInputs, ToolResult
    from codetune_studio.plugins.spec import PluginSpec
    from codetune_studio.services.analysis import AnalysisService

__all__ = ["collect_inputs", "finding_rows", "register"]

logger = logging.getLogger(__name__)

DEFAULT_PLUGIN = "code_analyzer"
_TEXT_FIELDS = ("output", "completion", "response")


def register(subparsers: Subparsers) -> None:
    """Add the ``analyze`` command."""
    parser = subparsers.add_parser(
        "analyze",
        help="analyse Python code, a folder or a JSONL dataset with a plugin",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument(
        "path", type=Path, metavar="PATH", help="a .py file, a folder, or a .jsonl dataset"
    )
    parser.add_argument(
        "--plugin",
        default=DEFAULT_PLUGIN,
        metavar="NAME",
        help=f"plugin to run (default {DEFAULT_PLUGIN}); see `plugins list`",
    )
    parser.add_argument(
        "--format", choices=("table", "json"), default="table", help="output format (default table)"
    )
    parser.add_argument("--model", help="model name, for the API plugins")
    parser.add_argument(
        "--base-url", metavar="URL", help="API server, for example a local OpenAI-compatible one"
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a plugin setting (repeatable)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=600.0,
        metavar="SECONDS",
        help="deadline for the whole run (default 600)",
    )
    parser.set_defaults(handler=_analyze)


def _analyze(args: argparse.Namespace, context: CliContext) -> int:
    entries = discover(disabled=context.settings.plugins.disabled)
    spec = find_plugin(entries, args.plugin).spec
    if spec is None:  # find_plugin only returns loaded plugins; this keeps mypy honest
        raise PluginError(f"plugin {args.plugin!r} has no metadata")
    settings = _settings(args, context, spec)
    analysis = _analysis_service(context, timeout_s=args.timeout)
    analysis.check_can_run(spec, settings)
    inputs = collect_inputs(args.path)
    if not inputs:
        echo_notice(f"nothing to analyse in {args.path}")
        return 0
    is_dataset = args.path.suffix.lower() in code_lint.DATASET_SUFFIXES
    # Recorded in the plugin results table, as a run from the window would be.
    outcome = analysis.run_all(
        spec,
        inputs,
        target=str(args.path),
        options=settings,
        dataset_path=str(args.path) if is_dataset else None,
    )
    results = list(outcome.results)
    rows = finding_rows(results)
    if args.format == "json":
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
    else:
        _write_table(rows, results)
    if is_dataset and spec.name == DEFAULT_PLUGIN:
        # Dataset code lint: how much of the data would survive dataset.drop_unparseable.
        echo_notice(f"{args.path}: {code_lint.summarize_parse(results).describe()}")
    failed = [r for r in results if r.error is not None]
    for result in failed:
        echo_error(f"{_label(result.path, result.row)}: {result.error}")
    return 1 if failed or any(row["severity"] == "error" for row in rows) else 0


def collect_inputs(path: Path) -> list[ToolInputs]:
    """Turn PATH into inputs: one per ``.py`` file, or one per dataset row with code.

    Raises:
        ConfigError: PATH does not exist.
        DatasetError: A dataset line is not a JSON object.
    """
    collected = code_lint.collect_inputs(path)
    if collected.without_code:
        fields = ", ".join(_TEXT_FIELDS)
        echo_notice(
            f"{collected.without_code} rows of {path} have no {fields} or assistant message; "
            "skipped"
        )
    return collected.inputs


def finding_rows(results: list[ToolResult]) -> list[dict[str, Any]]:
    """Flatten results into the JSON output: one object per finding, in input order."""
    rows: list[dict[str, Any]] = []
    for result in results:
        for finding in result.findings:
            rows.append(
                {
                    "path": finding.path or result.path,
                    "row": result.row,
                    "line": finding.line,
                    "column": finding.column,
                    "severity": finding.severity,
                    "rule": finding.rule,
                    "message": finding.message,
                    "plugin": result.plugin,
                }
            )
    return rows


def _settings(args: argparse.Namespace, context: CliContext, spec: PluginSpec) -> dict[str, str]:
    settings = dict(context.settings.plugins.options.get(spec.name, {}))
    for item in args.setting:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--setting expects KEY=VALUE, not {item!r}")
        settings[key.strip()] = value
    if args.model:
        settings["model"] = args.model
    if args.base_url:
        settings["base_url"] = args.base_url
    return settings


def _analysis_service(context: CliContext, *, timeout_s: float) -> AnalysisService:
    from codetune_studio.services.analysis import AnalysisService
    from codetune_studio.services.experiments import ExperimentService

    experiments = ExperimentService(context.open_database().database)
    return AnalysisService(
        context.secrets, experiments, offline=context.offline, timeout_s=timeout_s
    )


def _label(path: str | None, row: int | None) -> str:
    base = path or "<input>"
    return f"{base}:row {row}" if row is not None else base


def _write_table(rows: list[dict[str, Any]], results: list[ToolResult]) -> None:
    table = [
        (
            _label(r["path"], r["row"])
            + (f":{r['line']}" if r["line"] else "")
            + (f":{r['column']}" if r["column"] else ""),
            r["severity"],
            r["rule"],
            r["message"],
        )
        for r in rows
    ]
    if table:
        widths = [max(len(row[i]) for row in table) for i in range(3)]
        header = ("LOCATION", "SEVERITY", "RULE", "MESSAGE")
        widths = [max(w, len(h)) for w, h in zip(widths, header, strict=False)]
        for line in (header, *table):
            echo("  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(line)))
    counts = {s: sum(r["severity"] == s for r in rows) for s in ("error", "warning", "info")}
    analysed = sum(r.error is None for r in results)
    echo(
        f"{len(rows)} findings in {analysed} of {len(results)} inputs "
        f"({counts['error']} errors, {counts['warning']} warnings, {counts['info']} info)"
    )

"""``codetune-studio export MODEL --out DIR``: write, verify and optionally publish a model.

Exit status: 0 exported and verified (and pushed, when asked), 1 verification or push failed,
2 bad arguments or a request that cannot be met (prompt tuning merged, unsupported architecture).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from codetune_studio.cli.context import CliContext, echo, echo_error
from codetune_studio.core.audit import AuditAction

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from codetune_studio.cli.types import Subparsers
    from codetune_studio.engine.export_verify import Verdict

__all__ = ["print_verdict", "progress_printer", "register"]


def register(subparsers: Subparsers) -> None:
    """Add the ``export`` command."""
    parser = subparsers.add_parser(
        "export",
        help="export a run or model version: adapter, merged model or GGUF",
        description="Export MODEL (a run id, v:VERSION or a folder), verify the export in a "
        "fresh process, and optionally push it to the Hugging Face Hub. Exit status: 0 "
        "verified, 1 verification or push failed, 2 bad arguments.",
    )
    parser.add_argument("model", metavar="MODEL", help="run id, v:VERSION or a folder")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="new folder")
    parser.add_argument(
        "--format", choices=["adapter", "merged", "gguf"], default="adapter", dest="fmt"
    )
    parser.add_argument(
        "--dtype",
        choices=["auto", "bf16", "fp16", "fp32"],
        default="auto",
        help="precision of a merged model (auto: the base model's)",
    )
    parser.add_argument("--gguf-type", choices=["f16", "q8_0"], default="f16")
    parser.add_argument("--ollama", action="store_true", help="also write an Ollama Modelfile")
    parser.add_argument("--push", metavar="REPO", help="push to the Hub as owner/name")
    parser.add_argument("--private", action="store_true", help="create the Hub repo private")
    parser.add_argument(
        "--no-verify", action="store_true", help="skip verification (not recommended)"
    )
    parser.set_defaults(handler=_run)


def progress_printer() -> Callable[[str, float], None]:
    """A progress callback that prints each new stage once, on stderr."""
    last = [""]

    def report(message: str, fraction: float) -> None:
        if message != last[0]:
            last[0] = message
            sys.stderr.write(f"[{fraction * 100:3.0f}%] {message}\n")

    return report


def print_verdict(verdict: Verdict) -> None:
    """Print each check and the verdict."""
    for check in verdict.checks:
        echo(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    tolerance = (
        f" (max |logit diff| {verdict.max_abs_logit_diff:.3g}, tolerance {verdict.tolerance:g})"
        if verdict.max_abs_logit_diff is not None and verdict.tolerance is not None
        else ""
    )
    echo(f"Verification: {verdict.summary()}{tolerance} in {verdict.seconds:.1f} s")


def _run(args: argparse.Namespace, context: CliContext) -> int:
    from transformers.utils import logging as hf_logging

    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.services.export import ExportOptions, ExportService

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # ours is the only one
    needs_record = not Path(args.model).expanduser().is_dir()
    experiments = ExperimentService(context.open_database().database) if needs_record else None
    service = ExportService(experiments, context.secrets, offline=context.offline)
    options = ExportOptions(
        out=args.out,
        format=args.fmt,
        dtype=args.dtype,
        gguf_type=args.gguf_type,
        ollama=args.ollama,
        push=args.push,
        private=args.private,
        verify=not args.no_verify,
    )
    outcome = service.run(args.model, options, progress=progress_printer())
    result = outcome.result
    echo(
        f"Exported {result.format} ({result.dtype}) to {result.folder}: {len(result.files)} "
        f"files, {result.total_bytes / 1e6:.1f} MB in {result.seconds:.1f} s"
    )
    context.audit(
        AuditAction.EXPORTED,
        str(result.folder),
        {
            "model": args.model,
            "format": result.format,
            "dtype": result.dtype,
            "verified": None if outcome.verdict is None else outcome.verdict.ok,
        },
    )
    if outcome.verdict is not None:
        print_verdict(outcome.verdict)
        if not outcome.verdict.ok:
            if args.push:
                echo_error("not pushed: the export failed verification")
            return 1
    if outcome.push is not None:
        context.audit(AuditAction.PUSHED, outcome.push.url, {"folder": str(result.folder)})
        echo(f"Pushed to {outcome.push.url} ({outcome.push.files} files)")
    return 0

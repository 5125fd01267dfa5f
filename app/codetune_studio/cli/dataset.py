"""``codetune-studio dataset``: what a dataset holds, before training on it.

``inspect`` reports the rows (every bad one, duplicates, leaks, secrets); ``tokens`` shows one
sample token by token as training sees it.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codetune_studio.cli.context import CliContext, echo
from codetune_studio.core.errors import ConfigError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from codetune_studio.cli.types import Subparsers
    from codetune_studio.engine.data import DatasetReport

__all__ = ["format_report", "register"]

logger = logging.getLogger(__name__)

_FORMATS = ("auto", "alpaca", "chat", "sharegpt", "completion", "text", "code")
_LISTED = 50  # duplicates shown in the text report; --json lists them all


def register(subparsers: Subparsers) -> None:
    """Add the ``dataset`` command and its ``inspect`` subcommand."""
    parser = subparsers.add_parser("dataset", help="inspect datasets before training on them")
    commands = parser.add_subparsers(title="dataset commands", metavar="COMMAND", required=True)
    inspect = commands.add_parser(
        "inspect",
        help="show a dataset's format, size, token lengths and problem rows",
        description="Read a dataset the way training will and report its detected format, row "
        "count, token-length statistics, rows that would be truncated, empty and duplicate rows, "
        "and every dropped row with its reason and file:line. A malformed file exits with "
        "status 2 and one line naming the file, the line, what was found and what was expected.",
    )
    inspect.add_argument("path", metavar="PATH", help="a file, a folder of code files, or a hub id")
    inspect.add_argument("--format", choices=_FORMATS, default="auto", help="record layout")
    inspect.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="map a format field to a column of the file, e.g. prompt=question (repeatable)",
    )
    inspect.add_argument(
        "--model",
        metavar="M",
        help="count tokens with this model's tokenizer: 'starter', a model folder or a hub id "
        "(default: the starter model if it is already built, else count characters)",
    )
    inspect.add_argument(
        "--max-seq-length",
        type=int,
        default=512,
        metavar="N",
        help="report examples longer than N tokens (default: 512)",
    )
    inspect.add_argument(
        "--near-duplicates",
        action="store_true",
        help="also find rows that nearly repeat another (MinHash; slower on large data)",
    )
    inspect.add_argument(
        "--eval-file",
        metavar="FILE",
        help="an eval task or dataset file: report training rows whose prompt or answer is in it",
    )
    inspect.add_argument(
        "--validation-split",
        type=float,
        default=0.1,
        metavar="SHARE",
        help="the recipe's dataset.validation_split, to check the split for leaks (default 0.1)",
    )
    inspect.add_argument(
        "--seed", type=int, default=42, help="the recipe's training.seed (default 42)"
    )
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")
    inspect.set_defaults(handler=_inspect)
    _register_tokens(commands)
    _register_from_code(commands)


def _inspect(args: argparse.Namespace, context: CliContext) -> int:
    from codetune_studio.core.recipe import DatasetSpec
    from codetune_studio.engine.data import inspect_dataset

    if args.max_seq_length < 1:
        raise ConfigError(f"--max-seq-length: got {args.max_seq_length}, must be >= 1")
    if not args.path.strip():
        raise ConfigError("PATH: must not be empty")
    if not 0.0 <= args.validation_split < 0.5:
        raise ConfigError(f"--validation-split: got {args.validation_split}, must be in [0, 0.5)")
    spec = DatasetSpec(
        path=args.path,
        format=args.format,
        columns=_columns(args.column),
        validation_split=args.validation_split,
    )
    tokenizer, tokenizer_name = _tokenizer(args.model, context)
    report = inspect_dataset(
        spec,
        tokenizer,
        max_seq_length=args.max_seq_length,
        near_duplicates=args.near_duplicates,
        eval_path=args.eval_file,
        seed=args.seed,
    )
    if args.json:
        echo(json.dumps({**report.to_dict(), "tokenizer": tokenizer_name}, indent=2))
    else:
        echo(format_report(report, tokenizer_name=tokenizer_name, detected=args.format == "auto"))
    return 0


def format_report(
    report: DatasetReport, *, tokenizer_name: str | None, detected: bool = False
) -> str:
    """The report as aligned, readable text.

    Args:
        report: What :func:`~codetune_studio.engine.data.inspect_dataset` found.
        tokenizer_name: The model whose tokenizer counted tokens, or ``None`` (characters).
        detected: Whether the format was detected rather than given.

    Returns:
        Lines of text, without a trailing newline.
    """
    kept = f"{report.rows} read, {report.examples} kept, {len(report.dropped)} dropped"
    lines = [
        f"Dataset      {report.path}",
        f"Format       {report.format}{' (detected)' if detected else ''}",
        f"Rows         {kept}",
        f"Empty rows   {report.empty_rows}",
        f"Duplicates   {report.duplicate_rows} (kept)",
    ]
    stats = report.lengths
    if stats is not None:
        counted = f"tokens, {tokenizer_name} tokenizer" if tokenizer_name else stats.unit
        lines.append(
            f"Lengths      min {stats.min}, mean {stats.mean}, p50 {stats.p50}, p95 {stats.p95}, "
            f"max {stats.max} ({counted})"
        )
    if tokenizer_name:
        lines.append(
            f"Truncated    {report.truncated} longer than max_seq_length {report.max_seq_length}"
        )
    else:
        lines.append("Truncated    unknown: pass --model to count tokens")
    lines.append(f"Fingerprint  {report.fingerprint[:16]}")
    lines += _bad_row_lines(report)
    if report.dropped:
        lines += ["", f"Dropped rows ({len(report.dropped)}):"]
        lines += [f"  {row.source}: {row.reason}" for row in report.dropped]
    if report.duplicates:
        lines += ["", f"Duplicate rows ({len(report.duplicates)}):"]
        lines += [f"  {row.source}: same as {row.same_as}" for row in report.duplicates[:_LISTED]]
        if len(report.duplicates) > _LISTED:
            lines.append(f"  ... and {len(report.duplicates) - _LISTED} more (--json lists all)")
    lines += _check_lines(report)
    return "\n".join(lines)


def _bad_row_lines(report: DatasetReport) -> list[str]:
    lines: list[str] = []
    if report.bad_row_count:
        lines += ["", f"Bad rows ({report.bad_row_count}; training refuses them unless "
                  "dataset.skip_invalid_rows is true):"]  # fmt: skip
        lines += [f"  {row.source}: {row.problem}" for row in report.bad_rows[:_LISTED]]
        if report.bad_row_count > _LISTED:
            more = "--json lists " + (
                "all" if report.bad_row_count == len(report.bad_rows) else
                f"the first {len(report.bad_rows)}"
            )  # fmt: skip
            lines.append(f"  ... and {report.bad_row_count - _LISTED} more ({more})")
    return lines


def _check_lines(report: DatasetReport) -> list[str]:
    lines: list[str] = []
    sections: list[tuple[str, list[str]]] = [
        (
            "Near-duplicate rows",
            [f"{r.source}: {r.similarity:.0%} like {r.similar_to}" for r in report.near_duplicates],
        ),
        (
            "Rows in both the training and validation split",
            [f"{r.source}: same as {r.same_as}" for r in report.split_leaks],
        ),
        ("Rows found in the eval file", [f"{r.source}: in {r.same_as}" for r in report.eval_leaks]),
        (
            f"Truncated rows (longer than {report.max_seq_length} tokens)",
            list(report.truncated_rows),
        ),
        ("Rows with no trained token after masking", list(report.untrained_rows)),
        ("Likely secrets", [f"{f.source}: {f.kind} {f.excerpt}" for f in report.secrets]),
    ]
    for title, items in sections:
        if items:
            lines += ["", f"{title} ({len(items)}):"]
            lines += [f"  {item}" for item in items[:_LISTED]]
            if len(items) > _LISTED:
                lines.append(f"  ... and {len(items) - _LISTED} more (--json lists all)")
    return lines


def _register_tokens(commands: Any) -> None:
    tokens = commands.add_parser(
        "tokens",
        help="show a sample's tokens: which are trained, which masked, where it is cut",
        description="Render one sample through the model's chat template and tokenizer exactly as "
        "training does, and show each token: trained tokens between «», masked ones plain, a ✂ "
        "where max_seq_length cuts the example, and whether the EOS token is there and trained.",
    )
    tokens.add_argument("path", metavar="PATH", help="a file, a folder of code files, or a hub id")
    tokens.add_argument("--model", metavar="M", help="'starter', a model folder or a hub id")
    tokens.add_argument("--row", type=int, default=1, metavar="N", help="the sample (1-based)")
    tokens.add_argument(
        "--worst",
        choices=("truncated", "longest", "no-eos"),
        help="show the worst sample of this kind instead of --row",
    )
    tokens.add_argument("--format", choices=_FORMATS, default="auto", help="record layout")
    tokens.add_argument(
        "--column", action="append", default=[], metavar="FIELD=COLUMN", help="map a column"
    )
    tokens.add_argument("--max-seq-length", type=int, default=512, metavar="N")
    tokens.add_argument(
        "--train-on-all",
        action="store_true",
        help="train_on_completions_only false: every token is trained",
    )
    tokens.add_argument("--json", action="store_true", help="print tokens and labels as JSON")
    tokens.set_defaults(handler=_tokens)


def _tokens(args: argparse.Namespace, context: CliContext) -> int:
    from codetune_studio.core.recipe import DatasetSpec
    from codetune_studio.engine.token_view import describe, labelled_dataset, rank_worst

    if args.max_seq_length < 1:
        raise ConfigError(f"--max-seq-length: got {args.max_seq_length}, must be >= 1")
    tokenizer, name = _tokenizer(args.model or "starter", context)
    spec = DatasetSpec(path=args.path, format=args.format, columns=_columns(args.column))
    labelled = labelled_dataset(spec, tokenizer, train_on_completions_only=not args.train_on_all)
    index = args.row - 1
    if args.worst:
        ranked = rank_worst(labelled, args.worst, args.max_seq_length, tokenizer.eos_token_id)
        if not ranked:
            echo(f"No sample is {args.worst.replace('-', ' ')}: none to show.")
            return 0
        index = ranked[0]
    view = describe(labelled, index, tokenizer, args.max_seq_length)
    if args.json:
        tokens = [
            {"id": i, "text": p, "trained": lab != -100, "kept": n < view.max_seq_length}
            for n, (i, p, lab) in enumerate(
                zip(view.input_ids, view.pieces, view.labels, strict=True)
            )
        ]
        payload = {"row": index + 1, "source": view.source, "model": name,
                   "eos_present": view.eos_present, "eos_trained": view.eos_trained,
                   "truncated": view.truncated, "tokens": tokens}  # fmt: skip
        echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return 0
    echo(f"Sample {index + 1} of {len(labelled)}  {view.source}")
    echo(view.summary())
    echo("")
    echo(render_tokens(view))
    return 0


def render_tokens(view: Any) -> str:
    """A sample's text with trained runs between « and », and ✂ at the truncation point.

    Args:
        view: A :class:`~codetune_studio.engine.token_view.TokenView`.

    Returns:
        The marked-up text.
    """
    out: list[str] = []
    trained = False
    for n, (piece, label) in enumerate(zip(view.pieces, view.labels, strict=True)):
        if n == view.max_seq_length:
            out.append(("»" if trained else "") + f"✂[max_seq_length {view.max_seq_length}]")
            trained = False
        now = label != -100 and n < view.max_seq_length
        if now != trained:
            out.append("«" if now else "»")
            trained = now
        out.append(piece)
    if trained:
        out.append("»")
    return "".join(out)


def _register_from_code(commands: Any) -> None:
    from_code = commands.add_parser(
        "from-code",
        help="make a training dataset from a Python project's functions",
        description="Make pairs from every function of a Python project: docstring to body, "
        "fill-in-the-middle, or whole functions. .gitignore is honoured; whole files go to train "
        "or eval (written beside FILE as NAME.eval.jsonl); duplicates and functions holding a "
        "likely secret are left out, and every skipped file or function is listed with its reason.",
    )
    from_code.add_argument("folder", metavar="DIR", help="the project's root folder")
    from_code.add_argument("--out", required=True, metavar="FILE", help="the .jsonl to write")
    from_code.add_argument(
        "--kind", choices=("docstring", "fim", "completion"), default="docstring"
    )
    from_code.add_argument(
        "--eval-share", type=float, default=0.1, metavar="SHARE", help="files held out (0.1)"
    )
    from_code.set_defaults(handler=_from_code)


def _from_code(args: argparse.Namespace, _context: CliContext) -> int:
    from codetune_studio.engine.code_pairs import build_code_pairs, write_code_pairs

    pairs = build_code_pairs(Path(args.folder), kind=args.kind, eval_share=args.eval_share)
    train, eval_path = write_code_pairs(pairs, Path(args.out))
    echo(f"Read {pairs.files} Python files: {len(pairs.train)} train pairs in {train}")
    if eval_path is not None:
        echo(
            f"{len(pairs.eval)} eval pairs from {len(pairs.eval_files)} held-out files in {eval_path}"
        )
    if pairs.skipped:
        echo(f"Skipped ({len(pairs.skipped)}):")
        for where, reason in pairs.skipped:
            echo(f"  {where}: {reason}")
    return 0


def _columns(items: list[str]) -> dict[str, str]:
    columns: dict[str, str] = {}
    for item in items:
        field, sep, column = item.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise ConfigError(
                f"--column: got {item!r}, expected FIELD=COLUMN, e.g. prompt=question"
            )
        columns[field.strip()] = column.strip()
    return columns


def _tokenizer(model: str | None, context: CliContext) -> tuple[Any, str | None]:
    from codetune_studio.engine.starter import is_starter_cached, resolve_model

    data_dir = context.paths.data_dir
    if model is None:
        if not is_starter_cached(data_dir):
            return None, None
        model = "starter"
    location = resolve_model(
        model, data_dir=data_dir, offline=context.offline, on_progress=_progress_bar()
    )
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(location), local_files_only=context.offline or isinstance(location, Path)
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--model: cannot load the tokenizer of {model}: {exc}") from None
    return tokenizer, model


def _progress_bar(width: int = 30) -> Callable[[int, int, str], None]:
    """A one-line progress bar on stderr, for the starter model's first build."""

    def show(done: int, total: int, message: str) -> None:
        share = done / total if total else 1.0
        filled = int(share * width)
        bar = "#" * filled + "-" * (width - filled)
        sys.stderr.write(f"\rstarter model [{bar}] {share:4.0%} {message[:60]:<60}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show

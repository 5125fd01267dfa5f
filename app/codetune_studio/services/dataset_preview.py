"""Reading dataset rows for the preview, and the numbers behind the dataset checks. Qt-free.

A line-based file (JSON Lines, CSV, text) is indexed once: the byte offset of every line, found
block by block with NumPy, so a million-row file is indexed in about a second and never held in
memory. The preview then reads only the rows on screen, a chunk at a time. Other sources (JSON
arrays, Parquet, folders) are read whole through the engine.

This module belongs in ``services/`` (it has no Qt): the window's engineer asks for it to move.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codetune_studio.core.errors import DatasetError

if TYPE_CHECKING:
    from collections.abc import Generator

    import numpy as np
    from transformers import PreTrainedTokenizerBase

    from codetune_studio.engine.formats import Sample

__all__ = [
    "LINE_SUFFIXES",
    "DatasetAnalysis",
    "IndexProgress",
    "analyse_dataset",
    "index_lines",
    "load_tokenizer",
    "read_line_rows",
    "sample_lengths",
    "tokenizer_source",
]

logger = logging.getLogger(__name__)

#: Files previewed line by line, without reading them whole.
LINE_SUFFIXES = frozenset({".jsonl", ".ndjson", ".csv", ".tsv", ".txt", ".text", ".md"})
_BLOCK = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class IndexProgress:
    """A step of :func:`index_lines`: the offsets found in one more block.

    Attributes:
        offsets: Byte offsets of the line starts found in this block.
        done_bytes: Bytes read so far.
        total_bytes: The file's size.
    """

    offsets: np.ndarray[Any, Any]
    done_bytes: int
    total_bytes: int


def index_lines(path: Path, *, skip_header: bool = False) -> Generator[IndexProgress, None, int]:
    """Find the start of every non-empty line of a file, a block at a time.

    Args:
        path: The file.
        skip_header: Leave out the first line (a CSV header).

    Yields:
        The offsets found in each block, with progress.

    Returns:
        The number of rows found.
    """
    import numpy as np  # loaded with the first file, not with the window

    total = path.stat().st_size
    count = 0
    header_pending = skip_header
    with path.open("rb") as handle:
        position = 0
        line_start = 0
        while block := handle.read(_BLOCK):
            newlines = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10) + position
            found = np.zeros(0, dtype=np.int64)
            if len(newlines):
                starts = np.empty(len(newlines), dtype=np.int64)
                starts[0] = line_start
                starts[1:] = newlines[:-1] + 1
                found = starts[newlines > starts]  # blank lines are not rows
                line_start = int(newlines[-1]) + 1
            if header_pending and len(found):
                found, header_pending = found[1:], False
            position += len(block)
            count += len(found)
            yield IndexProgress(found, position, total)
        if line_start < total and not header_pending:
            count += 1
            yield IndexProgress(np.asarray([line_start], dtype=np.int64), total, total)
    return count


def read_line_rows(path: Path, offsets: np.ndarray[Any, Any], kind: str) -> list[dict[str, Any]]:
    """Read the rows starting at ``offsets`` (consecutive rows of the index).

    Args:
        path: The file.
        offsets: Start offsets of the rows to read.
        kind: ``"jsonl"``, ``"csv"``, ``"tsv"`` or ``"text"``.

    Returns:
        One dict per row; a malformed JSON line comes back as ``{"⚠ error": ...}``.
    """
    rows: list[dict[str, Any]] = []
    header: list[str] = []
    if kind in {"csv", "tsv"}:
        header = _csv_header(path, kind)
    with path.open("rb") as handle:
        for offset in offsets:
            handle.seek(int(offset))
            line = handle.readline().decode("utf-8", "replace").rstrip("\r\n")
            rows.append(_parse_line(line, kind, header))
    return rows


def _csv_header(path: Path, kind: str) -> list[str]:
    with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
        first = handle.readline()
    return next(csv.reader(io.StringIO(first), delimiter="\t" if kind == "tsv" else ","), [])


def _parse_line(line: str, kind: str, header: list[str]) -> dict[str, Any]:
    if kind == "jsonl":
        try:
            value = json.loads(line)
        except ValueError as exc:
            return {"⚠ error": f"invalid JSON: {exc}"}
        return value if isinstance(value, dict) else {"value": value}
    if kind in {"csv", "tsv"}:
        cells = next(csv.reader(io.StringIO(line), delimiter="\t" if kind == "tsv" else ","), [])
        return dict(zip(header, cells, strict=False))
    return {"text": line}


def line_kind(path: Path) -> str | None:
    """How a file is previewed line by line, or ``None`` when it must be read whole."""
    suffix = path.suffix.lower()
    if path.is_dir() or suffix not in LINE_SUFFIXES:
        return None
    if suffix in {".jsonl", ".ndjson"}:
        return "jsonl"
    if suffix in {".csv", ".tsv"}:
        return suffix[1:]
    return "text"


@dataclass(frozen=True)
class DatasetAnalysis:
    """What the dataset check found, for the panel.

    Attributes:
        path: The dataset.
        report: The engine's report (format, counts, dropped rows, fingerprint).
        lengths: Each kept example's length in :attr:`unit`, for the histogram.
        records: The records, for sources the preview cannot read line by line; else ``None``.
        unit: ``"tokens"`` when a tokenizer measured the lengths, else ``"characters"``.
        unit_reason: Why the lengths are in characters (empty when they are in tokens).
    """

    path: str
    report: Any
    lengths: list[int]
    records: list[dict[str, Any]] | None
    unit: str = "characters"
    unit_reason: str = ""


def tokenizer_source(model: str | None, data_dir: Path | None) -> tuple[str | None, str]:
    """Where a model's tokenizer can be loaded from without the network.

    Args:
        model: The recipe's model: ``"starter"``, a local folder or a hub id (``None``: none).
        data_dir: The studio's data folder (where the starter model is built).

    Returns:
        ``(folder or hub id, "")`` when there is one to try, else ``(None, why not)``.
    """
    from codetune_studio.engine.starter import cached_starter_dir

    if not model:
        return None, "no model chosen"
    if model == "starter":
        cached = cached_starter_dir(data_dir) if data_dir is not None else None
        if cached is not None:
            return str(cached), ""
        return None, "the starter model is not built yet"
    folder = Path(model).expanduser()
    if folder.is_dir():
        names = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
        if any((folder / name).is_file() for name in names):
            return str(folder.resolve()), ""
        return None, f"no tokenizer files in {folder.name}"
    if model.startswith(("/", "~", ".")) or "\\" in model or model.count("/") > 1:
        return None, f"model folder {folder.name} not found"
    return model, ""  # a hub id: loads only if it is in the local Hugging Face cache


def load_tokenizer(source: str) -> PreTrainedTokenizerBase:
    """Load a tokenizer from a folder or the local Hugging Face cache, never the network.

    Raises:
        OSError: If it is not on disk.
        ValueError: If the folder holds no usable tokenizer.
    """
    from transformers import AutoTokenizer  # heavy: only ever on a worker thread

    tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(
        source, local_files_only=True
    )
    return tokenizer


def sample_lengths(
    path: str,
    fmt: str,
    columns: dict[str, str],
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> tuple[list[int], list[dict[str, Any]]]:
    """Each example's length (in tokens with a tokenizer, else in characters), and the records.

    Args:
        path: The dataset.
        fmt: Its format, or ``"auto"``.
        columns: The column mapping.
        tokenizer: Measures tokens; ``None`` measures characters.

    Returns:
        The lengths and the raw records.
    """
    from codetune_studio.engine.formats import apply_columns, detect_format, to_sample
    from codetune_studio.engine.sources import read_source

    source = read_source(path)
    records = []
    for record in source.records:
        with contextlib.suppress(DatasetError):  # a bad row is listed by the report, not here
            records.append(apply_columns(record, columns))
    if not records:
        return [], []
    resolved = fmt if fmt != "auto" else detect_format(records[0], kind=source.kind)
    samples = []
    for record in records:
        with contextlib.suppress(DatasetError):
            sample = to_sample(record, resolved)
            if not isinstance(sample, str):
                samples.append(sample)
    if tokenizer is not None:
        lengths = _token_lengths(samples, tokenizer)
    else:
        lengths = [
            sum(len(m.content) for m in s.messages) + len(s.prompt) + len(s.completion)
            for s in samples
        ]
    return lengths, [record.data for record in source.records]


def _token_lengths(samples: list[Sample], tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token counts as training sees them: chat template applied, an EOS at the end."""
    from codetune_studio.engine.data import DEFAULT_CHAT_TEMPLATE

    template: Any = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default") or next(iter(template.values()), None)
    if not isinstance(template, str) or not template:
        template = DEFAULT_CHAT_TEMPLATE
    texts: list[str] = []
    for sample in samples:
        if sample.is_chat:
            conversation = [{"role": m.role, "content": m.content} for m in sample.messages]
            texts.append(
                str(
                    tokenizer.apply_chat_template(
                        conversation, chat_template=template, tokenize=False
                    )
                )
            )
        else:
            texts.append(sample.prompt + sample.completion.rstrip())
    eos = tokenizer.eos_token_id
    lengths: list[int] = []
    for start in range(0, len(texts), 512):
        for ids in tokenizer(texts[start : start + 512], add_special_tokens=False)["input_ids"]:
            lengths.append(len(ids) + (0 if ids and ids[-1] == eos else 1))
    return lengths


def analyse_dataset(
    path: str,
    fmt: str = "auto",
    columns: dict[str, str] | None = None,
    max_seq_length: int = 512,
    *,
    model: str | None = None,
    data_dir: Path | None = None,
) -> Generator[str, None, DatasetAnalysis]:
    """Check a dataset: format, findings and length distribution.

    With a model whose tokenizer is on disk, lengths and truncation are counted in tokens;
    otherwise in characters, and the analysis says why.

    Args:
        path: The dataset.
        fmt: Its format, or ``"auto"``.
        columns: The column mapping.
        max_seq_length: The limit truncation is counted against.
        model: The recipe's model, whose tokenizer measures tokens (``None``: characters).
        data_dir: The studio's data folder (for the starter model).

    Yields:
        What it is doing, for the progress line (each yield is a cancellation point).

    Returns:
        The analysis.

    Raises:
        DatasetError: If the data is missing or malformed.
        ConfigError: If the column mapping is invalid.
    """
    from codetune_studio.core.recipe import DatasetSpec
    from codetune_studio.engine.data import inspect_dataset

    columns = columns or {}
    tokenizer: PreTrainedTokenizerBase | None = None
    source, reason = tokenizer_source(model, data_dir) if model else (None, "no model chosen")
    if source is not None:
        yield "Loading the tokenizer…"
        try:
            tokenizer = load_tokenizer(source)
        except (OSError, ValueError) as exc:
            logger.info("no tokenizer for %s: %s", source, exc)
            reason = f"no tokenizer on disk for {model}"
    yield "Reading and checking records…"
    spec = DatasetSpec(path=path, format=fmt, columns=columns)
    # Near-duplicates cost about 0.1 ms a row: checked here up to a size that stays quick.
    report = inspect_dataset(
        spec, tokenizer, max_seq_length=max_seq_length, near_duplicates_up_to=100_000
    )
    yield "Measuring lengths…"
    lengths, records = sample_lengths(path, report.format, columns, tokenizer)
    keep_records = line_kind(Path(path)) is None
    unit = "tokens" if tokenizer is not None else "characters"
    return DatasetAnalysis(
        path,
        report,
        lengths,
        records if keep_records else None,
        unit=unit,
        unit_reason="" if tokenizer is not None else reason,
    )

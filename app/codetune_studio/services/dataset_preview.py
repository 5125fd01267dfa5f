"""Reading dataset rows for the preview, and the numbers behind the dataset checks. Qt-free.

A line-based file (JSON Lines, CSV, text) is indexed once: the byte offset of every line, found
block by block with NumPy, so a million-row file is indexed in about a second and never held in
memory. The preview then reads only the rows on screen, a chunk at a time. Other sources (JSON
arrays, Parquet, folders) are read whole through the engine.

This module belongs in ``services/`` (it has no Qt): the window's engineer asks for it to move.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Generator

    import numpy as np

__all__ = [
    "LINE_SUFFIXES",
    "DatasetAnalysis",
    "IndexProgress",
    "analyse_dataset",
    "index_lines",
    "read_line_rows",
    "sample_lengths",
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
        lengths: Each kept example's length in characters, for the histogram.
        records: The records, for sources the preview cannot read line by line; else ``None``.
    """

    path: str
    report: Any
    lengths: list[int]
    records: list[dict[str, Any]] | None


def sample_lengths(
    path: str, fmt: str, columns: dict[str, str]
) -> tuple[list[int], list[dict[str, Any]]]:
    """Each example's length in characters, and the raw records.

    Args:
        path: The dataset.
        fmt: Its format, or ``"auto"``.
        columns: The column mapping.

    Returns:
        The lengths and the raw records.
    """
    from codetune_studio.engine.formats import apply_columns, detect_format, to_sample
    from codetune_studio.engine.sources import read_source

    source = read_source(path)
    records = [apply_columns(record, columns) for record in source.records]
    if not records:
        return [], []
    resolved = fmt if fmt != "auto" else detect_format(records[0], kind=source.kind)
    lengths: list[int] = []
    for record in records:
        sample = to_sample(record, resolved)
        if isinstance(sample, str):
            continue
        text = sum(len(m.content) for m in sample.messages) + len(sample.prompt)
        lengths.append(text + len(sample.completion))
    return lengths, [record.data for record in source.records]


def analyse_dataset(
    path: str, fmt: str = "auto", columns: dict[str, str] | None = None, max_seq_length: int = 512
) -> Generator[str, None, DatasetAnalysis]:
    """Check a dataset: format, findings and length distribution.

    Args:
        path: The dataset.
        fmt: Its format, or ``"auto"``.
        columns: The column mapping.
        max_seq_length: The limit truncation is counted against.

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
    yield "Reading and checking records…"
    spec = DatasetSpec(path=path, format=fmt, columns=columns)
    report = inspect_dataset(spec, None, max_seq_length=max_seq_length)
    yield "Measuring lengths…"
    lengths, records = sample_lengths(path, report.format, columns)
    keep_records = line_kind(Path(path)) is None
    return DatasetAnalysis(path, report, lengths, records if keep_records else None)

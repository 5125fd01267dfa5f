"""Reading raw dataset records from files, folders and the Hub, each tagged with where it came from.

JSON, JSON Lines and CSV are read here, line by line, rather than by ``datasets``: its errors for a
bad line name neither the file nor the line, and its CSV reader turns strings such as ``NA`` into
missing values, which is wrong for code. Parquet files and hub ids go through ``datasets``. Every
record carries a ``source`` (``file:line``) that follows it into reports and error messages.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codetune_studio.core.errors import DatasetError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "CODE_SUFFIXES",
    "DATA_SUFFIXES",
    "TEXT_SUFFIXES",
    "BadRow",
    "RawRecord",
    "RawSource",
    "read_source",
]

logger = logging.getLogger(__name__)

DATA_SUFFIXES = frozenset({".json", ".jsonl", ".csv", ".parquet"})
TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".rst"})
CODE_SUFFIXES = frozenset(
    {
        ".py", ".pyi", ".js", ".jsx", ".mjs", ".ts", ".tsx", ".java", ".kt", ".kts", ".scala",
        ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".cs", ".go", ".rs", ".rb", ".php",
        ".swift", ".m", ".mm", ".sh", ".bash", ".zsh", ".ps1", ".sql", ".lua", ".r", ".jl",
        ".pl", ".pm", ".hs", ".ml", ".ex", ".exs", ".erl", ".dart", ".vue", ".svelte", ".html",
        ".css", ".scss", ".toml", ".yaml", ".yml", ".proto", ".zig", ".nim", ".f90",
    }
)  # fmt: skip
# Folders a code tree carries that are never training data.
_SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv", ".tox", ".mypy_cache",
     ".ruff_cache", ".pytest_cache", "build", "dist", ".idea", ".vscode", "site-packages"}
)  # fmt: skip
#: Code files larger than this are generated or vendored far more often than written by hand.
MAX_CODE_FILE_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as read, before its format is known."""

    source: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that could not be read as a record: where it is and what is wrong with it.

    Attributes:
        source: ``file:line`` of the row.
        problem: What was found and what was expected.
    """

    source: str
    problem: str

    @classmethod
    def from_error(cls, source: str, error: Exception) -> BadRow:
        """A bad row from a :class:`DatasetError` whose message starts with ``source: ``."""
        return cls(source, str(error).removeprefix(f"{source}: ").strip())


@dataclass
class RawSource:
    """Everything read from a dataset location."""

    location: str
    kind: str  # "records", "text" or "code": what the files themselves say about the format
    records: list[RawRecord]
    fingerprint: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    bad_rows: list[BadRow] = field(default_factory=list)  # malformed rows, left out of records


def read_source(path: str, *, offline: bool | None = None) -> RawSource:
    """Read every record from a file, a folder or (when online) a hub dataset id.

    Args:
        path: A local file or folder, or a hub dataset id such as ``"user/name"``.
        offline: Whether the network may not be used (then only cached hub datasets load);
            ``None`` reads ``HF_HUB_OFFLINE`` and ``HF_DATASETS_OFFLINE``.

    Returns:
        The records, each tagged with its ``file:line`` source, and a fingerprint of the data.

    Raises:
        DatasetError: If the location does not exist or a file is malformed as a whole; the
            message names the file, the line or row, what was found and what was expected. A
            malformed row (a bad JSON line, a CSV row with the wrong number of fields, a value
            that is not an object) does not stop the read: it goes to ``bad_rows``.
    """
    local = Path(path).expanduser()
    if local.is_dir():
        return _read_folder(local)
    if local.is_file():
        return _read_file(local)
    if _looks_like_hub_id(path):
        return _read_hub(path, offline=_env_offline() if offline is None else offline)
    raise DatasetError(f"Dataset not found: {path} (no such file or folder)")


# --- files ------------------------------------------------------------------------------------


def _read_file(path: Path) -> RawSource:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(path)
    raw = _read_bytes(path)
    text = _decode(raw, path)
    name = str(path)
    bad: list[BadRow] = []
    if suffix in {".jsonl", ".ndjson"}:
        records, kind = _parse_jsonl(text, name, bad), "records"
    elif suffix == ".json":
        try:
            records, kind = _parse_json(text, name, bad), "records"
        except (ValueError, RecursionError) as exc:  # huge numbers, deep nesting
            raise DatasetError(f"{name}: {_hostile_json(exc)}") from None
    elif suffix in {".csv", ".tsv"}:
        records, kind = (
            _parse_csv(text, name, bad, delimiter="\t" if suffix == ".tsv" else ","),
            "records",
        )
    elif suffix in CODE_SUFFIXES:
        records, kind = [_code_record(text, name, path.name)], "code"
    else:
        records, kind = _parse_text(text, name), "text"
    if not records and bad:
        raise DatasetError(
            f"{bad[0].source}: {bad[0].problem} (no valid record: all {len(bad)} rows are bad)"
        )
    if not records:
        raise DatasetError(f"{path}: the file holds no records (only blank lines)")
    return RawSource(name, kind, records, _digest([(path.name, raw)]), bad_rows=bad)


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if not raw.strip():
        raise DatasetError(f"{path}: the file is empty; expected at least one record")
    return raw


def _decode(raw: bytes, path: Path) -> str:
    try:
        # utf-8-sig: files saved by Windows editors start with a byte-order mark.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DatasetError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "expected UTF-8: re-save the file as UTF-8"
        ) from None


def _parse_jsonl(text: str, name: str, bad: list[BadRow]) -> list[RawRecord]:
    records: list[RawRecord] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append(
                BadRow(
                    where,
                    f"invalid JSON at column {exc.colno}: {exc.msg}; "
                    f"found {_excerpt(line)}, expected one JSON object per line",
                )
            )
            continue
        except (ValueError, RecursionError) as exc:  # a 5000-digit number, 100k nested lists
            bad.append(BadRow(where, _hostile_json(exc)))
            continue
        _add_record(records, bad, value, where)
    return records


def _add_record(records: list[RawRecord], bad: list[BadRow], value: object, where: str) -> None:
    try:
        records.append(RawRecord(where, _as_record(value, where)))
    except DatasetError as exc:
        bad.append(BadRow.from_error(where, exc))


def _parse_json(text: str, name: str, bad: list[BadRow]) -> list[RawRecord]:
    """A JSON array of records, with each record's line; JSON Lines saved as .json also works."""
    decoder = json.JSONDecoder()
    index = _skip_space(text, 0)
    if not text.startswith("[", index):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg == "Extra data":  # one object per line, saved with a .json suffix
                return _parse_jsonl(text, name, bad)
            raise DatasetError(
                f"{name}:{exc.lineno}: invalid JSON at column {exc.colno}: {exc.msg}"
            ) from None
        return _unwrap_object(value, name, bad)
    records: list[RawRecord] = []
    index = _skip_space(text, index + 1)
    if text.startswith("]", index):
        raise DatasetError(f"{name}:1: found an empty JSON array, expected at least one record")
    while True:
        line = text.count("\n", 0, index) + 1
        try:
            value, index = decoder.raw_decode(text, index)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{name}:{exc.lineno}: invalid JSON at column {exc.colno}: {exc.msg}"
            ) from None
        _add_record(records, bad, value, f"{name}:{line}")
        index = _skip_space(text, index)
        if text.startswith(",", index):
            index = _skip_space(text, index + 1)
            continue
        if text.startswith("]", index) and not text[index + 1 :].strip():
            return records
        line = text.count("\n", 0, index) + 1
        raise DatasetError(
            f"{name}:{line}: invalid JSON: found {_excerpt(text[index:])}, expected ',' or ']'"
        )


def _unwrap_object(value: object, name: str, bad: list[BadRow]) -> list[RawRecord]:
    # {"data": [...]}: a single key holding the records, as some exports write them.
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(value) == 1 and len(lists) == 1 and lists[0]:
            records: list[RawRecord] = []
            for i, row in enumerate(lists[0], start=1):
                _add_record(records, bad, row, f"{name}:item {i}")
            return records
        if not lists:  # a single record
            return [RawRecord(f"{name}:1", _as_record(value, f"{name}:1"))]
    raise DatasetError(
        f"{name}: found {_describe_json(value)} at the top level, expected an array of records "
        "(objects), or JSON Lines (one object per line)"
    )


def _as_record(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DatasetError(f"{where}: found {_describe_json(value)}, expected a JSON object record")
    return value


def _parse_csv(text: str, name: str, bad: list[BadRow], *, delimiter: str) -> list[RawRecord]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError(f"{name}: the file is empty; expected a header row") from None
    except csv.Error as exc:
        raise DatasetError(f"{name}:1: invalid CSV header: {exc}") from None
    header = [column.strip() for column in header]
    if not any(header) or len(set(header)) != len(header):
        raise DatasetError(
            f"{name}:1: found header {header}, expected distinct, non-empty column names"
        )
    records: list[RawRecord] = []
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            bad.append(BadRow(f"{name}:{start}", f"invalid CSV: {exc}"))
            start = reader.line_num + 1
            continue
        if row and any(cell.strip() for cell in row):
            if len(row) != len(header):
                bad.append(
                    BadRow(
                        f"{name}:{start}",
                        f"found {len(row)} fields, expected {len(header)} "
                        f"(the header's {', '.join(header)})",
                    )
                )
            else:
                records.append(RawRecord(f"{name}:{start}", dict(zip(header, row, strict=True))))
        start = reader.line_num + 1
    return records


def _parse_text(text: str, name: str) -> list[RawRecord]:
    """Plain text: one record per blank-line-separated block (a paragraph, a function...)."""
    records: list[RawRecord] = []
    block: list[str] = []
    first = 1
    for number, line in enumerate([*text.splitlines(), ""], start=1):
        if line.strip():
            if not block:
                first = number
            block.append(line)
        elif block:
            records.append(RawRecord(f"{name}:{first}", {"text": "\n".join(block)}))
            block = []
    return records


def _code_record(text: str, name: str, relative: str) -> RawRecord:
    return RawRecord(f"{name}:1", {"text": text, "path": relative})


# --- folders ----------------------------------------------------------------------------------


def _read_folder(folder: Path) -> RawSource:
    files = sorted(_walk(folder), key=lambda p: p.relative_to(folder).as_posix())
    data_files = [p for p in files if p.suffix.lower() in DATA_SUFFIXES]
    if data_files:
        return _read_data_folder(folder, data_files)
    code_files = [p for p in files if p.suffix.lower() in CODE_SUFFIXES]
    if not code_files:
        raise DatasetError(
            f"{folder}: found no code or data files, expected source files "
            "(.py, .js, .ts, .java, .go, .rs, ...) or .jsonl/.json/.csv/.parquet files"
        )
    records: list[RawRecord] = []
    skipped: list[tuple[str, str]] = []
    parts: list[tuple[str, bytes]] = []
    for path in code_files:
        relative = path.relative_to(folder).as_posix()
        source = f"{path}:1"
        try:
            raw = path.read_bytes()
        except OSError as exc:
            skipped.append((source, f"unreadable: {exc.strerror or exc}"))
            continue
        if len(raw) > MAX_CODE_FILE_BYTES:
            skipped.append((source, f"larger than {MAX_CODE_FILE_BYTES // 1000} kB"))
            continue
        if b"\x00" in raw:
            skipped.append((source, "binary file (contains NUL bytes)"))
            continue
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            skipped.append((source, "not UTF-8 text"))
            continue
        parts.append((relative, raw))
        records.append(_code_record(text, str(path), relative))
    for source, reason in skipped:
        logger.info("skipping %s: %s", source, reason)
    if not records:
        raise DatasetError(f"{folder}: none of its {len(code_files)} code files could be read")
    return RawSource(str(folder), "code", records, _digest(parts), skipped)


def _read_data_folder(folder: Path, files: list[Path]) -> RawSource:
    records: list[RawRecord] = []
    bad: list[BadRow] = []
    digests: list[tuple[str, bytes]] = []
    for path in files:
        part = _read_file(path)
        records.extend(part.records)
        bad.extend(part.bad_rows)
        digests.append((path.relative_to(folder).as_posix(), part.fingerprint.encode()))
    return RawSource(str(folder), "records", records, _digest(digests), bad_rows=bad)


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in names:
            if not name.startswith("."):
                yield Path(root) / name


# --- through the datasets library -------------------------------------------------------------


def _read_parquet(path: Path) -> RawSource:
    import datasets  # only Parquet files and hub ids need it; it is slow to import

    try:
        # In memory, with a throw-away cache: nothing is left in the user's datasets cache.
        with tempfile.TemporaryDirectory(prefix="codetune-parquet-") as cache:
            table = datasets.Dataset.from_parquet(str(path), keep_in_memory=True, cache_dir=cache)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types; all mean "unreadable"
        raise DatasetError(
            f"{path}: not a readable Parquet file ({exc.__class__.__name__}: {exc})"
        ) from None
    records = _dataset_records(table, str(path))
    if not records:
        raise DatasetError(f"{path}: the Parquet file holds no rows")
    return RawSource(str(path), "records", records, _digest([(path.name, path.read_bytes())]))


def _read_hub(name: str, *, offline: bool) -> RawSource:
    import datasets

    try:
        # Offline, datasets reads its local cache and fails at once when the id is not there.
        table = datasets.load_dataset(name, split="train")
    except Exception as exc:  # noqa: BLE001 - network, auth and format errors all land here
        if offline:
            raise DatasetError(
                f"Dataset not found: {name} is neither a local file nor folder, nor in the local "
                "Hugging Face cache, and the studio is offline; give a local path, or run once "
                "with network to download it."
            ) from None
        raise DatasetError(
            f"Dataset {name} could not be loaded from the Hugging Face Hub: "
            f"{exc.__class__.__name__}: {exc}"
        ) from None
    fingerprint = (
        str(getattr(table, "_fingerprint", "")) or hashlib.sha256(name.encode()).hexdigest()
    )
    return RawSource(name, "records", _dataset_records(table, name), fingerprint)


def _dataset_records(table: Any, name: str) -> list[RawRecord]:
    return [RawRecord(f"{name}:row {index}", dict(row)) for index, row in enumerate(table, start=1)]


# --- small helpers ----------------------------------------------------------------------------


def _digest(parts: list[tuple[str, bytes]]) -> str:
    hasher = hashlib.sha256()
    for name, data in parts:
        hasher.update(name.encode("utf-8") + b"\0")
        hasher.update(hashlib.sha256(data).digest())
    return hasher.hexdigest()


def _hostile_json(exc: BaseException) -> str:
    """Why Python's JSON reader gave up on a valid-looking record, and what to do."""
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply to read (thousands of levels); flatten the record"
    return f"a JSON value cannot be read ({str(exc)[:120]}); shorten the number or value"


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _excerpt(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _describe_json(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"a number ({value})"
    return names.get(type(value), "a JSON value") if not isinstance(value, dict) else "an object"


def _looks_like_hub_id(path: str) -> bool:
    parts = path.split("/")
    suffix = Path(path).suffix.lower()
    if suffix in DATA_SUFFIXES | TEXT_SUFFIXES | CODE_SUFFIXES | {".ndjson", ".tsv"}:
        return False  # a file name that does not exist, not a hub id
    return 1 <= len(parts) <= 2 and all(parts) and not path.startswith((".", "~"))


def _env_offline() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )

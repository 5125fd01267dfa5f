"""Finding the Python code in files and dataset rows, and whether it parses.

One module decides what counts as "the code" of a dataset row and what "does not parse" means,
so ``codetune-studio analyze DATASET``, the Plugins panel and the trainer's
``dataset.drop_unparseable`` agree:

- A row's completion is its ``output``, ``completion`` or ``response`` field, or the last
  assistant message of ``messages``.
- Its code is the text inside fenced code blocks when it has any, else the whole completion.
  The analyzer looks at untagged fences too; the trainer looks only at blocks tagged
  ``python``/``py``/``python3``, plus the whole completion where the data is raw code (see
  :func:`unparseable_reason`), because dropping a row for a shell snippet would be wrong.
- It parses when :func:`ast.parse` accepts it
  (:func:`~codetune_studio.plugins.python_syntax.syntax_error`).
"""

from __future__ import annotations

import json
import logging
import re
import tokenize
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from codetune_studio.core.errors import ConfigError, DatasetError
from codetune_studio.plugins.api import ToolInputs
from codetune_studio.plugins.python_syntax import syntax_error

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from codetune_studio.plugins.api import ToolResult

__all__ = [
    "DATASET_SUFFIXES",
    "MAX_SOURCE_BYTES",
    "RAW_CODE_SHARE",
    "CollectedInputs",
    "FailingRow",
    "ParseSummary",
    "collect_inputs",
    "completion_code",
    "completion_text",
    "dataset_inputs",
    "is_raw_code",
    "read_source_text",
    "summarize_parse",
    "tagged_python_blocks",
    "unparseable_reason",
]

logger = logging.getLogger(__name__)

#: File suffixes read as one JSON record per line.
DATASET_SUFFIXES = frozenset({".jsonl", ".ndjson"})
#: The largest source (a file, or one dataset row's code) the analyzer reads: parsing and
#: checking a 12 MB generated file took a minute and gigabytes; real source files are far below.
MAX_SOURCE_BYTES = 1_000_000

#: Share of a dataset's unfenced completions that must parse for the data to count as raw code.
RAW_CODE_SHARE = 0.8

_TEXT_FIELDS = ("output", "completion", "response")
_SKIPPED_DIRS = {"__pycache__", "node_modules", "site-packages", "venv"}
_ANY_FENCE = re.compile(
    r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE
)
_PYTHON_FENCE = re.compile(r"```[ \t]*(?:python3|python|py)[ \t]*\n(.*?)```", re.DOTALL | re.I)


@dataclass(frozen=True, slots=True)
class CollectedInputs:
    """What a path holds to analyse.

    Attributes:
        inputs: One input per ``.py`` file or per dataset row with a completion.
        without_code: Dataset rows that have no completion field (skipped).
    """

    inputs: list[ToolInputs]
    without_code: int = 0


@dataclass(frozen=True, slots=True)
class FailingRow:
    """A dataset row (or file) whose code does not parse.

    Attributes:
        path: The file or dataset.
        row: The row (its line in the file, from 1), for a dataset.
        line: Line of the syntax error inside the code, when known.
        message: The parser's message.
    """

    path: str | None
    row: int | None
    line: int | None
    message: str


@dataclass(frozen=True, slots=True)
class ParseSummary:
    """How much of the analysed code parses.

    Attributes:
        analysed: Inputs the analyzer finished.
        parsed: Of those, inputs whose code parses.
        failing: Every input that does not parse, in input order.
    """

    analysed: int
    parsed: int
    failing: tuple[FailingRow, ...] = ()

    @property
    def rate(self) -> float:
        """Share of the analysed inputs that parse (1.0 when nothing was analysed)."""
        return self.parsed / self.analysed if self.analysed else 1.0

    def describe(self) -> str:
        """One line such as ``"parse rate 99.5% (194 of 195); failing rows: 12"``."""
        text = f"parse rate {self.rate:.1%} ({self.parsed} of {self.analysed})"
        rows = [str(f.row) for f in self.failing if f.row is not None]
        if rows:
            shown = ", ".join(rows[:20]) + (f" and {len(rows) - 20} more" if len(rows) > 20 else "")
            text += f"; failing rows: {shown}"
        return text


def read_source_text(path: Path) -> str:
    """Read a source file as Python does (PEP 263 coding line, byte-order mark).

    Raises:
        ConfigError: The file cannot be read.
    """
    try:
        size = path.stat().st_size
        if size > MAX_SOURCE_BYTES:
            raise ConfigError(
                f"{path} is {size / 1e6:.1f} MB; the analyzer reads source files of at most "
                f"{MAX_SOURCE_BYTES // 1_000_000} MB (generated code?): analyse the files you "
                "wrote, or split it"
            )
        with tokenize.open(path) as handle:
            return handle.read()
    except (SyntaxError, UnicodeDecodeError):
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc


def collect_inputs(path: Path) -> CollectedInputs:
    """Turn a path into inputs: one per ``.py`` file below a folder, one per dataset row.

    Args:
        path: A Python file, a folder, or a ``.jsonl`` dataset.

    Raises:
        ConfigError: The path does not exist or cannot be read.
        DatasetError: A dataset line is not a JSON object.
    """
    if not path.exists():
        raise ConfigError(f"{path} does not exist")
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*.py")
            if not any(
                part.startswith(".") or part in _SKIPPED_DIRS
                for part in p.relative_to(path).parts[:-1]
            )
        )
        return CollectedInputs([ToolInputs(code=read_source_text(p), path=str(p)) for p in files])
    if path.suffix.lower() in DATASET_SUFFIXES:
        return dataset_inputs(path)
    return CollectedInputs([ToolInputs(code=read_source_text(path), path=str(path))])


def dataset_inputs(path: Path) -> CollectedInputs:
    """One input per JSONL row that has a completion: the code in that completion.

    A row is numbered by its line in the file (from 1, blank lines counted), so it matches
    the ``file:line`` that dataset errors and the Datasets panel's preview use.

    Raises:
        ConfigError: The file cannot be read.
        DatasetError: A line is not a JSON object.
    """
    inputs: list[ToolInputs] = []
    without_code = 0
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        for row, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path} line {row} is not valid JSON: {exc.msg}") from None
            except (ValueError, RecursionError) as exc:  # huge numbers, deep nesting
                raise DatasetError(
                    f"{path} line {row} cannot be read: {str(exc)[:120] or 'nested too deeply'}"
                ) from None
            if not isinstance(record, dict):
                raise DatasetError(f"{path} line {row} is not a JSON object")
            text = completion_text(record)
            if text is None:
                without_code += 1
                continue
            code = completion_code(text)
            if len(code) > MAX_SOURCE_BYTES:
                raise DatasetError(
                    f"{path} line {row}: its code is {len(code) / 1e6:.1f} MB, over the "
                    f"{MAX_SOURCE_BYTES // 1_000_000} MB the analyzer reads per row; trim it"
                )
            inputs.append(ToolInputs(code=code, path=str(path), row=row))
    return CollectedInputs(inputs, without_code)


def completion_text(record: Mapping[str, Any]) -> str | None:
    """The text a dataset row trains the model to write, or ``None`` when it has none."""
    for name in _TEXT_FIELDS:
        value = record.get(name)
        if isinstance(value, str):
            return value
    messages = record.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if (
                isinstance(message, dict)
                and message.get("role") == "assistant"
                and isinstance(message.get("content"), str)
            ):
                content: str = message["content"]
                return content
    return None


def completion_code(text: str) -> str:
    """The code in a completion: its fenced blocks (tagged Python or untagged), else all of it."""
    blocks = _ANY_FENCE.findall(text)
    return "\n".join(blocks) if blocks else text


def tagged_python_blocks(text: str) -> list[str]:
    """The contents of the completion's fenced blocks tagged ``python``, ``py`` or ``python3``."""
    return list(_PYTHON_FENCE.findall(text))


def is_raw_code(completions: Iterable[str]) -> bool:
    """Whether a dataset's completions are bare Python code rather than prose.

    Completions with fenced blocks are left out of the count; of the rest, at least
    :data:`RAW_CODE_SHARE` must parse. A prose answer ("Sure! Here is...") rarely parses, so a
    chat dataset does not qualify, while a dataset of code answers with one broken row does.
    """
    bare = [text for text in completions if not _ANY_FENCE.search(text) and text.strip()]
    if not bare:
        return False
    parsed = sum(1 for text in bare if syntax_error(text) is None)
    return parsed / len(bare) >= RAW_CODE_SHARE


def unparseable_reason(text: str, *, whole: bool) -> str | None:
    """Why a completion's Python code does not parse, or ``None`` when it does or has none.

    Args:
        text: The completion.
        whole: Check the whole completion when it has no ``python`` fence (code records, or a
            dataset :func:`is_raw_code` says is raw code).

    Returns:
        For example ``"Python code does not parse: SyntaxError: invalid syntax (code line 3)"``.
    """
    blocks = tagged_python_blocks(text)
    if not blocks:
        if not whole:
            return None
        blocks = [text]
    for number, block in enumerate(blocks, start=1):
        finding = syntax_error(block)
        if finding is None:
            continue
        where = f"code line {finding.line}" if finding.line else "code"
        if len(blocks) > 1:
            where = f"block {number}, {where}"
        return f"Python code does not parse: {finding.message} ({where})"
    return None


def summarize_parse(results: Iterable[ToolResult]) -> ParseSummary:
    """Parse rate and failing inputs from ``code_analyzer`` results.

    Results that ended in an error (the tool did not finish) are not counted.
    """
    analysed = parsed = 0
    failing: list[FailingRow] = []
    for result in results:
        if result.error is not None:
            continue
        analysed += 1
        syntax = next((f for f in result.findings if f.rule == "syntax-error"), None)
        if syntax is None and result.metrics.get("parsed", True) is not False:
            parsed += 1
            continue
        failing.append(
            FailingRow(
                path=result.path,
                row=result.row,
                line=syntax.line if syntax is not None else None,
                message=syntax.message if syntax is not None else "does not parse",
            )
        )
    return ParseSummary(analysed, parsed, tuple(failing))

"""A small Python highlighter for model answers (no Pygments: a few regular expressions).

Keywords, built-in names, strings, numbers, comments and decorators are coloured everywhere in
the document; code fences (```` ``` ````) are dimmed. Answers are short, so a per-block pass of
a handful of patterns is fast enough.
"""

from __future__ import annotations

import keyword
import re
from typing import TYPE_CHECKING

from PySide6.QtGui import QColor, QFont, QSyntaxHighlighter, QTextCharFormat

if TYPE_CHECKING:
    from PySide6.QtGui import QTextDocument

__all__ = ["PythonHighlighter"]

_BUILTINS = ("print", "len", "range", "sum", "min", "max", "abs", "sorted", "list", "dict",
             "set", "tuple", "str", "int", "float", "bool", "enumerate", "zip", "map", "filter",
             "any", "all", "isinstance", "open", "round", "reversed", "self")  # fmt: skip


def _format(color: str, *, bold: bool = False, italic: bool = False) -> QTextCharFormat:
    fmt = QTextCharFormat()
    fmt.setForeground(QColor(color))
    if bold:
        fmt.setFontWeight(QFont.Weight.Bold)
    fmt.setFontItalic(italic)
    return fmt


class PythonHighlighter(QSyntaxHighlighter):
    """Colours Python in a ``QTextDocument``; later rules win over earlier ones."""

    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)
        words = "|".join(keyword.kwlist)
        self._rules: list[tuple[re.Pattern[str], QTextCharFormat]] = [
            (re.compile(rf"\b(?:{words})\b"), _format("#a626a4", bold=True)),
            (re.compile(rf"\b(?:{'|'.join(_BUILTINS)})\b"), _format("#0184bc")),
            (re.compile(r"\b\d+(?:\.\d+)?\b"), _format("#986801")),
            (re.compile(r"^\s*@\w+", re.MULTILINE), _format("#c18401")),
            (re.compile(r"\bdef\s+(\w+)|\bclass\s+(\w+)"), _format("#4078f2", bold=True)),
            (re.compile(r"'[^'\n]*'|\"[^\"\n]*\""), _format("#50a14f")),
            (re.compile(r"#[^\n]*"), _format("#a0a1a7", italic=True)),
            (re.compile(r"^```.*$"), _format("#a0a1a7")),
        ]

    def highlightBlock(self, text: str) -> None:
        for pattern, fmt in self._rules:
            for match in pattern.finditer(text):
                group = 1 if match.lastindex and match.group(1) else (2 if match.lastindex else 0)
                start, end = match.span(group) if match.lastindex else match.span()
                self.setFormat(start, end - start, fmt)

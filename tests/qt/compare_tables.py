"""Reading the Compare dialog's tables as a user sees them (sorted, with row and column headers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt


@dataclass(frozen=True)
class ShownTable:
    """A table's headers and cells in the order on screen."""

    columns: list[str]
    rows: list[str]
    cells: list[list[str]]
    view: Any

    def row(self, label: str) -> dict[str, str]:
        """The cells of the row headed ``label``, by column header."""
        return dict(zip(self.columns, self.cells[self.rows.index(label)], strict=True))

    def column(self, header: str) -> list[str]:
        """A column's cells, top to bottom."""
        index = self.columns.index(header)
        return [cells[index] for cells in self.cells]

    def _column_index(self, header: str) -> int:
        model = self.view.model()
        headers = [
            str(model.headerData(c, Qt.Orientation.Horizontal)) for c in range(model.columnCount())
        ]
        return headers.index(header)

    def tooltip(self, header: str) -> str:
        return str(
            self.view.model().headerData(
                self._column_index(header), Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole
            )
        )

    def is_bold(self, label: str) -> bool:
        model = self.view.model()
        row = self.rows.index(label)
        fonts = [
            model.index(row, self._column_index(column)).data(Qt.ItemDataRole.FontRole)
            for column in self.columns
        ]
        return all(font is not None and font.bold() for font in fonts)


def shown(view: Any) -> ShownTable:
    """The table ``view`` shows."""
    model = view.model()
    shown_columns = [c for c in range(model.columnCount()) if not view.isColumnHidden(c)]
    columns = [str(model.headerData(c, Qt.Orientation.Horizontal)) for c in shown_columns]
    rows = [str(model.headerData(r, Qt.Orientation.Vertical)) for r in range(model.rowCount())]
    cells = [
        [str(model.index(r, c).data()) for c in shown_columns] for r in range(model.rowCount())
    ]
    return ShownTable(columns, rows, cells, view)

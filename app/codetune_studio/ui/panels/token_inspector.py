"""The Datasets panel's Tokens tab: one sample as training sees it, token by token.

Trained tokens are green, masked ones grey, alternate tokens slightly darker so their boundaries
show; a red mark stands where ``max_seq_length`` cuts the example, and the summary says whether
the EOS token is there and trained on. The data comes from the engine's own labelling function
(through :mod:`codetune_studio.services.token_inspection`), tokenized on a worker thread.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Final

from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.ui import notify
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import TaskHandle, run_in_thread

if TYPE_CHECKING:
    from pathlib import Path

    from codetune_studio.engine.token_view import TokenView
    from codetune_studio.services.token_inspection import TokenInspection

__all__ = ["TokenInspectorWidget", "tokens_html"]

_TRAINED: Final = ("#bbf7d0", "#86efac")  # alternating, so token boundaries show
_MASKED: Final = ("#f3f4f6", "#e5e7eb")
_WORST_LABELS: Final = {
    "truncated": "most truncated",
    "longest": "longest",
    "no-eos": "EOS missing or untrained",
}


def tokens_html(view: TokenView) -> str:
    """A sample's tokens as HTML: trained green, masked grey, the cut in red.

    Args:
        view: The sample's view.

    Returns:
        An HTML fragment for a ``QTextBrowser``.
    """
    parts = ["<div style='font-family: monospace; white-space: pre-wrap; line-height: 150%'>"]
    for n, (piece, label) in enumerate(zip(view.pieces, view.labels, strict=True)):
        if n == view.max_seq_length:
            parts.append(
                "<span style='background:#dc2626; color:white'>"
                f" ✂ max_seq_length {view.max_seq_length}: training stops here </span>"
            )
        text = html.escape(piece).replace("\n", "↵\n")
        if view.input_ids[n] == view.eos_token_id:
            text = f"<b>{text or 'EOS'}</b>"
        if n >= view.max_seq_length:
            style = "color:#9ca3af; text-decoration: line-through"
        elif label != -100:
            style = f"background:{_TRAINED[n % 2]}; color:#14532d"
        else:
            style = f"background:{_MASKED[n % 2]}; color:#6b7280"
        parts.append(f"<span style='{style}'>{text}</span>")
    parts.append("</div>")
    return "".join(parts)


class TokenInspectorWidget(QWidget):
    """Steps through a dataset's samples and shows each one's tokens and labels.

    Args:
        parent: The Qt parent.
        data_dir: The studio's data folder (where the starter model's tokenizer is).
    """

    def __init__(self, parent: QWidget | None = None, *, data_dir: Path | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tokenInspector")
        self._data_dir = data_dir
        self._source: tuple[str, str, dict[str, str], str | None] | None = None
        self._loaded_source: tuple[str, str, dict[str, str], str | None] | None = None
        self.max_seq_length = 512
        self._task: TaskHandle | None = None
        #: The tokenized dataset, once loaded.
        self.inspection: TokenInspection | None = None
        #: The sample shown.
        self.view: TokenView | None = None
        self._build_ui()
        self._connect_signals()

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        self.prev_button = QPushButton("◀", self)
        self.prev_button.setToolTip("Previous sample")
        self.prev_button.setMaximumWidth(32)
        self.sample_spin = QSpinBox(self)
        self.sample_spin.setObjectName("tokenSample")
        self.sample_spin.setMinimum(1)
        self.next_button = QPushButton("▶", self)
        self.next_button.setToolTip("Next sample")
        self.next_button.setMaximumWidth(32)
        self.count_label = QLabel("of 0", self)
        self.worst_combo = QComboBox(self)
        self.worst_combo.setObjectName("tokenWorst")
        for kind, label in _WORST_LABELS.items():
            self.worst_combo.addItem(label, kind)
        self.worst_button = QPushButton("Jump to worst", self)
        self.worst_button.setObjectName("tokenWorstButton")
        for widget in (self.prev_button, self.sample_spin, self.next_button, self.count_label):
            row.addWidget(widget)
        row.addStretch(1)
        row.addWidget(self.worst_combo)
        row.addWidget(self.worst_button)
        layout.addLayout(row)
        self.summary = QLabel("Pick a dataset and a model to see its tokens.", self)
        self.summary.setObjectName("tokenSummary")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        legend = QLabel(
            f"<span style='background:{_TRAINED[0]}'>&nbsp;trained&nbsp;</span> "
            f"<span style='background:{_MASKED[0]}; color:#6b7280'>&nbsp;masked&nbsp;</span> "
            "<span style='background:#dc2626; color:white'>&nbsp;✂ cut&nbsp;</span> "
            "<span style='color:#9ca3af; text-decoration: line-through'>&nbsp;dropped&nbsp;</span>"
            " · ↵ new line · <b>bold</b>: EOS",
            self,
        )
        legend.setStyleSheet("font-size: 11px;")
        layout.addWidget(legend)
        self.browser = QTextBrowser(self)
        self.browser.setObjectName("tokenView")
        self.browser.setFont(QFont("monospace"))
        layout.addWidget(self.browser, 1)
        self._set_enabled(False)

    def _connect_signals(self) -> None:
        self.prev_button.clicked.connect(self._on_prev_button_clicked)
        self.next_button.clicked.connect(self._on_next_button_clicked)
        self.sample_spin.valueChanged.connect(self._on_sample_spin_value_changed)
        self.worst_button.clicked.connect(self._on_worst_button_clicked)

    # --- public -------------------------------------------------------------------------------

    def set_source(
        self,
        path: str | None,
        fmt: str,
        columns: dict[str, str],
        model: str | None,
        max_seq_length: int,
    ) -> None:
        """Inspect this dataset with this model's tokenizer (loaded when the tab is shown)."""
        self.max_seq_length = max_seq_length
        self._source = (path, fmt, dict(columns), model) if path else None
        if self.isVisible():
            self.load()
        elif self.inspection is not None:
            self._show(self.sample_spin.value() - 1)

    def load(self) -> None:
        """Tokenize the dataset on a worker thread, unless it already is."""
        if self._source is None or self._source == self._loaded_source:
            if self.inspection is not None:
                self._show(self.sample_spin.value() - 1)
            return
        from codetune_studio.services.token_inspection import load_inspection

        if self._task is not None:
            self._task.cancel()
        path, fmt, columns, model = self._source
        self._loaded_source = self._source
        self.summary.setText("Tokenizing…")
        self._task = run_in_thread(
            load_inspection,
            path,
            fmt,
            columns,
            model,
            self._data_dir,
            on_yield=self.summary.setText,
            on_return=self._on_load_returned,
            on_error=self._on_load_errored,
        )

    def show_sample(self, index: int) -> None:
        """Show sample ``index`` (0-based)."""
        self.sample_spin.setValue(index + 1)
        self._show(index)

    def shutdown(self) -> None:
        """Cancel a tokenization in progress."""
        if self._task is not None:
            self._task.cancel()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.load()

    # --- slots --------------------------------------------------------------------------------

    @safe_slot()
    def _on_load_returned(self, inspection: TokenInspection) -> None:
        self.inspection = inspection
        self._set_enabled(inspection.count > 0)
        self.sample_spin.setMaximum(max(1, inspection.count))
        self.count_label.setText(f"of {inspection.count:,}")
        self.show_sample(0)

    def _on_load_errored(self, exc: BaseException) -> None:
        self._loaded_source = None  # try again next time
        self.inspection = None
        self._set_enabled(False)
        self.browser.clear()
        self.summary.setText(f"<span style='color:#dc2626'>{notify.message_for(exc)}</span>")

    @safe_slot()
    def _on_prev_button_clicked(self) -> None:
        self.sample_spin.stepDown()

    @safe_slot()
    def _on_next_button_clicked(self) -> None:
        self.sample_spin.stepUp()

    @safe_slot()
    def _on_sample_spin_value_changed(self, value: int) -> None:
        self._show(value - 1)

    @safe_slot()
    def _on_worst_button_clicked(self) -> None:
        if self.inspection is None:
            return
        kind = str(self.worst_combo.currentData())
        ranked = self.inspection.worst(kind, self.max_seq_length)
        if not ranked:
            self.summary.setText(f"No sample is {_WORST_LABELS[kind]}.")
            return
        self.show_sample(ranked[0])

    # --- helpers ------------------------------------------------------------------------------

    def _show(self, index: int) -> None:
        if self.inspection is None or not 0 <= index < self.inspection.count:
            return
        view = self.inspection.view(index, self.max_seq_length)
        self.view = view
        eos_colour = "#16a34a" if view.eos_trained else "#dc2626"
        self.summary.setText(
            f"<b>{html.escape(view.source)}</b> · {html.escape(self.inspection.model)}'s "
            f"tokenizer · <span style='color:{eos_colour}'>{html.escape(view.summary())}</span>"
        )
        self.browser.setHtml(tokens_html(view))

    def _set_enabled(self, enabled: bool) -> None:
        for widget in (self.prev_button, self.next_button, self.sample_spin, self.worst_button,
                       self.worst_combo):  # fmt: skip
            widget.setEnabled(enabled)

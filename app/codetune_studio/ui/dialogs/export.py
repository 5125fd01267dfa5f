"""The Export dialog: format, precision, GGUF type, Ollama, Hub push; progress, cancel, verdict.

The export runs as ``codetune-studio export`` in a child process (see
:mod:`codetune_studio.services.export_job`), read from a worker thread, so merging a model never
blocks the window and Cancel stops the whole process group.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.services.export import ExportOptions
from codetune_studio.services.export_job import ExportEvent, ExportJob, export_command
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import TaskHandle, run_in_thread

if TYPE_CHECKING:
    from collections.abc import Callable

    from PySide6.QtGui import QCloseEvent

    from codetune_studio.core.models import ModelVersion
    from codetune_studio.ui.studio_services import StudioServices

__all__ = ["ExportDialog"]

logger = logging.getLogger(__name__)

_FORMATS = (
    ("adapter", "Adapter (PEFT, small; needs the base model)"),
    ("merged", "Merged model (safetensors, loads anywhere)"),
    ("gguf", "GGUF (llama.cpp, Ollama)"),
)


class ExportDialog(QDialog):
    """Exports one run or model version.

    Args:
        services: The studio's services (data folder, database URL, offline switch).
        model: What to export: a run id, or ``v:ID`` for a model version.
        title: How to name it to the user.
        default_out: The folder the output field starts with.
        versions: Loads the run's model versions (on a worker thread, never the GUI thread)
            so that one of them can be chosen instead of the run's newest.
        parent: The Qt parent.
    """

    def __init__(
        self,
        services: StudioServices,
        model: str,
        title: str,
        default_out: Path,
        versions: Callable[[], list[ModelVersion]] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.setWindowTitle(f"Export {title}")
        self._services = services
        self._model = model
        self._job: ExportJob | None = None
        self._task: TaskHandle | None = None
        self._verdict: str | None = None
        self._versions_task: TaskHandle | None = None
        self._build_ui(title, default_out)
        self._connect_signals()
        self._on_format_changed()
        if versions is not None:
            self._versions_task = run_in_thread(versions, on_return=self._on_versions_returned)

    # --- construction -------------------------------------------------------------------------

    def _build_ui(self, title: str, default_out: Path) -> None:
        form = QFormLayout()
        self.source_combo = QComboBox(self)
        self.source_combo.addItem(title, self._model)
        form.addRow("Model", self.source_combo)
        self.out_edit = QLineEdit(str(default_out), self)
        self.browse_button = QPushButton("Browse…", self)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out_edit)
        out_row.addWidget(self.browse_button)
        form.addRow("Output folder", out_row)
        self.format_combo = QComboBox(self)
        for value, label in _FORMATS:
            self.format_combo.addItem(label, value)
        form.addRow("Format", self.format_combo)
        self.dtype_combo = QComboBox(self)
        self.dtype_combo.addItems(["auto", "bf16", "fp16", "fp32"])
        form.addRow("Precision", self.dtype_combo)
        self.gguf_combo = QComboBox(self)
        self.gguf_combo.addItems(["f16", "q8_0"])
        form.addRow("GGUF type", self.gguf_combo)
        self.ollama_check = QCheckBox("Write an Ollama Modelfile", self)
        form.addRow("", self.ollama_check)
        self.push_edit = QLineEdit(self)
        self.push_edit.setPlaceholderText("owner/name (leave empty to keep it local)")
        self.private_check = QCheckBox("Private", self)
        push_row = QHBoxLayout()
        push_row.addWidget(self.push_edit)
        push_row.addWidget(self.private_check)
        form.addRow("Push to the Hub", push_row)
        self.verify_check = QCheckBox("Verify in a fresh process (recommended)", self)
        self.verify_check.setChecked(True)
        form.addRow("", self.verify_check)
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setRange(0, 100)
        self.status_label = QLabel("Ready.", self)
        self.status_label.setObjectName("exportStatus")
        self.verdict_label = QLabel("", self)
        self.verdict_label.setObjectName("exportVerdict")
        self.verdict_label.setWordWrap(True)
        self.log_view = QPlainTextEdit(self)
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(500)
        self.export_button = QPushButton("Export", self)
        self.export_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel export", self)
        self.cancel_button.setEnabled(False)
        self.close_button = QPushButton("Close", self)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.export_button, self.cancel_button, self.close_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.verdict_label)
        layout.addWidget(self.log_view, 1)
        layout.addLayout(buttons)
        self.resize(640, 520)

    def _connect_signals(self) -> None:
        self.format_combo.currentIndexChanged.connect(self._on_format_changed)
        self.browse_button.clicked.connect(self._on_browse_clicked)
        self.export_button.clicked.connect(self._on_export_clicked)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self.close_button.clicked.connect(self.close)

    # --- state --------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether an export is in progress."""
        return self._task is not None and not self._task.done

    @property
    def verdict(self) -> str | None:
        """The last export's verdict line (``Verification: PASS ...``), once it has one."""
        return self._verdict

    def options(self) -> ExportOptions:
        """The export the fields describe."""
        fmt = self.format_combo.currentData()
        return ExportOptions(
            out=Path(self.out_edit.text().strip()).expanduser(),
            format=fmt,
            dtype=self.dtype_combo.currentText(),  # type: ignore[arg-type]
            gguf_type=self.gguf_combo.currentText(),  # type: ignore[arg-type]
            ollama=self.ollama_check.isChecked() and fmt == "gguf",
            push=self.push_edit.text().strip() or None,
            private=self.private_check.isChecked(),
            verify=self.verify_check.isChecked(),
        )

    def start(self) -> None:
        """Start the export the fields describe."""
        services = self._services
        argv = export_command(
            self.source_combo.currentData(),
            self.options(),
            data_dir=services.paths.data_dir,
            offline=services.offline,
        )
        self._job = ExportJob(argv, database_url=services.database_url)
        self._verdict = None
        self.verdict_label.setText("")
        self.log_view.clear()
        self.progress_bar.setValue(0)
        self.status_label.setText("Starting…")
        self._set_running(True)
        self._task = run_in_thread(
            self._job.events, on_yield=self._on_job_event, on_finish=self._on_job_finished
        )

    def cancel(self) -> None:
        """Stop the export (its whole process group); nothing half-written is left."""
        if self._job is not None:
            self._job.cancel()
            self.status_label.setText("Cancelling…")

    # --- slots --------------------------------------------------------------------------------

    @safe_slot()
    def _on_format_changed(self) -> None:
        fmt = self.format_combo.currentData()
        self.dtype_combo.setEnabled(fmt == "merged")
        self.gguf_combo.setEnabled(fmt == "gguf")
        self.ollama_check.setEnabled(fmt == "gguf")

    @safe_slot()
    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into", self.out_edit.text())
        if folder:
            self.out_edit.setText(str(Path(folder) / "export"))

    @safe_slot()
    def _on_export_clicked(self) -> None:
        self.start()

    @safe_slot()
    def _on_cancel_clicked(self) -> None:
        self.cancel()

    def _on_versions_returned(self, versions: list[ModelVersion]) -> None:
        for version in versions:
            self.source_combo.addItem(
                f"Model version {version.id}: {version.name}", f"v:{version.id}"
            )

    def _on_job_event(self, event: ExportEvent) -> None:
        if event.kind == "progress":
            self.progress_bar.setValue(int(event.fraction * 100))
            self.status_label.setText(event.message)
        elif event.kind == "output":
            self.log_view.appendPlainText(event.message)
            if event.message.startswith("Verification:"):
                self._show_verdict(event.message)
        elif event.kind == "error":
            self.log_view.appendPlainText(f"error: {event.message}")
            self._show_verdict(f"Failed: {event.message}", ok=False)
        elif event.kind == "finished":
            self._finish(event.message)

    def _on_job_finished(self) -> None:
        self._set_running(False)

    def _finish(self, status: str) -> None:
        if status == "0":
            self.progress_bar.setValue(100)
            self.status_label.setText("Export finished.")
            if self._verdict is None:
                self._show_verdict("Exported (not verified).", ok=True)
        elif status == "cancelled":
            self.status_label.setText("Export cancelled; nothing was left behind.")
        else:
            self.status_label.setText(f"Export failed ({status}).")

    def _show_verdict(self, text: str, ok: bool | None = None) -> None:
        self._verdict = text
        passed = ok if ok is not None else "PASS" in text
        color = "#2e7d32" if passed else "#c62828"
        self.verdict_label.setStyleSheet(f"color: {color}; font-weight: bold;")
        self.verdict_label.setText(text)

    def _set_running(self, running: bool) -> None:
        self.export_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for widget in (
            self.source_combo,
            self.out_edit,
            self.browse_button,
            self.format_combo,
            self.push_edit,
            self.private_check,
            self.verify_check,
        ):
            widget.setEnabled(not running)
        if running:
            for widget in (self.dtype_combo, self.gguf_combo, self.ollama_check):
                widget.setEnabled(False)
        else:
            self._on_format_changed()  # re-enable what the format allows

    def closeEvent(self, event: QCloseEvent) -> None:
        # Closing the dialog stops the export rather than leaving an orphan child behind.
        self.cancel()
        super().closeEvent(event)

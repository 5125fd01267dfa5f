"""The Playground: ask the tuned model and its base the same thing, side by side.

Pick a model version (or a base model plus an adapter folder), type a prompt (or keep a chat
going), and both answers stream into two panes through the model's chat template, with the
decoding knobs, tokens per second, highlighted code and Stop. Each exchange of the session is
kept in the History list. Generation runs in a child process hosted by a
:class:`~codetune_studio.ui.generation_host.GenerationHost` on its own thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.core.generation import (
    ChatMessage,
    GenerationFinished,
    GenerationParams,
    GenerationRequest,
    GenerationStarted,
    ModelLoaded,
    TokensGenerated,
)
from codetune_studio.ui import notify
from codetune_studio.ui.code_highlight import PythonHighlighter
from codetune_studio.ui.generation_host import GenerationController, GenerationHost
from codetune_studio.ui.panels.base import Panel
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import TaskHandle, run_in_thread

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from codetune_studio.core.models import ModelVersion
    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.services.generation import ResolvedModel

__all__ = ["ModelPicker", "PlaygroundPanel", "model_resolver"]

logger = logging.getLogger(__name__)


def model_resolver(
    experiments: ExperimentService, data_dir: Path, *, offline: bool
) -> Callable[[str], ResolvedModel]:
    """``resolve(value)`` for a picker's value: run id, ``v:ID`` or folder (slow: call off-GUI)."""

    def resolve(value: str) -> ResolvedModel:
        from codetune_studio.services.generation import resolve_model

        return resolve_model(value, experiments=experiments, data_dir=data_dir, offline=offline)

    return resolve


class ModelPicker(QWidget):
    """A model version from the database, or a folder (an adapter folder or a model folder)."""

    changed = Signal(str)

    def __init__(self, experiments: ExperimentService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._experiments = experiments
        self._task: TaskHandle | None = None
        self.combo = QComboBox(self)
        self.combo.setObjectName("modelCombo")
        self.combo.setMinimumContentsLength(18)
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.combo.setPlaceholderText("Choose a model version or a folder")
        self.folder_button = QPushButton("Folder…", self)
        self.refresh_button = QPushButton("↻", self)
        self.refresh_button.setToolTip("Reload the model versions")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Model:", self))
        row.addWidget(self.combo, 1)
        row.addWidget(self.folder_button)
        row.addWidget(self.refresh_button)
        self.folder_button.clicked.connect(self._on_folder_button_clicked)
        self.refresh_button.clicked.connect(self.refresh)
        self.combo.currentIndexChanged.connect(lambda _i: self.changed.emit(self.value()))

    def value(self) -> str:
        """What MODEL is: ``v:ID`` or a folder path; empty when nothing is chosen."""
        data = self.combo.currentData()
        return str(data) if data else ""

    def set_folder(self, folder: str) -> None:
        """Add a folder to the choices and select it."""
        index = self.combo.findData(folder)
        if index < 0:
            self.combo.addItem(f"Folder: {folder}", folder)
            index = self.combo.count() - 1
        self.combo.setCurrentIndex(index)

    def refresh(self) -> None:
        """Reload the model versions in the background."""
        if self._task is not None:
            self._task.cancel()
        self._task = run_in_thread(
            self._experiments.list_model_versions, on_return=self._on_versions_returned
        )

    def shutdown(self) -> None:
        """Cancel a pending reload."""
        if self._task is not None:
            self._task.cancel()

    def _on_versions_returned(self, versions: list[ModelVersion]) -> None:
        current = self.value()
        folders = [
            self.combo.itemData(i)
            for i in range(self.combo.count())
            if not str(self.combo.itemData(i)).startswith("v:")
        ]
        self.combo.blockSignals(True)
        self.combo.clear()
        for version in versions:
            self.combo.addItem(f"v:{version.id}  {version.name}", f"v:{version.id}")
        for folder in folders:
            self.combo.addItem(f"Folder: {folder}", folder)
        index = self.combo.findData(current) if current else (0 if versions else -1)
        self.combo.setCurrentIndex(index)
        self.combo.blockSignals(False)
        self.changed.emit(self.value())

    @safe_slot()
    def _on_folder_button_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Adapter folder (with its base model) or model folder"
        )
        if folder:
            self.set_folder(folder)


@dataclass
class _Exchange:
    """One prompt of the session and both answers."""

    prompt: str
    answers: dict[str, str] = field(default_factory=lambda: {"tuned": "", "base": ""})
    stats: dict[str, str] = field(default_factory=dict)


class _AnswerPane(QWidget):
    """A titled, read-only, highlighted text pane with a statistics line."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel(f"<b>{title}</b>", self)
        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        font = QFont("Monospace")
        font.setStyleHint(QFont.StyleHint.TypeWriter)
        self.text.setFont(font)
        self.highlighter = PythonHighlighter(self.text.document())
        self.stats = QLabel("", self)
        self.stats.setWordWrap(True)  # one long line widened the whole panel past the window
        self.stats.setObjectName("stats")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.stats)

    def append(self, text: str) -> None:
        cursor = self.text.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        self.text.setTextCursor(cursor)
        self.text.ensureCursorVisible()


class PlaygroundPanel(Panel):
    """Prompts the tuned model and its base side by side.

    Args:
        experiments: Lists model versions.
        resolve: Turns the picker's value into a model to load (called off the GUI thread).
        parent: The Qt parent.
        device: Forces the generation device (tests use ``cpu``).
    """

    panel_id = "playground"
    title = "Playground"
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea

    generation_finished = Signal(object)  # str | None: the error, if any

    def __init__(
        self,
        experiments: ExperimentService,
        resolve: Callable[[str], ResolvedModel],
        parent: QWidget | None = None,
        *,
        device: str | None = None,
    ) -> None:
        super().__init__(parent)
        self._resolve = resolve
        self._device = device
        self._controller: GenerationController | None = None
        self._exchanges: list[_Exchange] = []
        self.picker = ModelPicker(experiments, self)
        self._build_ui()
        self._connect_signals()
        self._update_buttons()

    # --- construction -------------------------------------------------------------------------

    def _build_ui(self) -> None:
        self.compare_check = QCheckBox("Compare with base", self)
        self.compare_check.setChecked(True)
        self.chat_check = QCheckBox("Chat (keep the conversation)", self)
        self.max_tokens = _spin(self, 1, 32768, 256)
        self.temperature = _double(self, 0.0, 5.0, 0.0, 0.05)
        self.top_p = _double(self, 0.01, 1.0, 1.0, 0.05)
        self.top_k = _spin(self, 0, 1000, 0)
        self.repetition = _double(self, 0.5, 3.0, 1.0, 0.05)
        self.seed = _spin(self, -1, 2**31 - 1, 0)
        self.seed.setSpecialValueText("random")
        self.stops = QLineEdit(self)
        self.stops.setPlaceholderText("stop strings, separated by |")
        # Two rows of four: in one row of seven the panel was wider than the centre of the window
        # at 1600x1000, and Send and the stop strings sat off screen behind a scroll bar.
        knobs = QGridLayout()
        for index, (label, widget) in enumerate(
            [("Max new tokens", self.max_tokens), ("Temperature", self.temperature),
             ("Top-p", self.top_p), ("Top-k", self.top_k), ("Repetition penalty", self.repetition),
             ("Seed", self.seed), ("Stop", self.stops)]
        ):  # fmt: skip
            row, column = divmod(index, 4)
            knobs.addWidget(QLabel(label, self), 2 * row, column)
            knobs.addWidget(widget, 2 * row + 1, column, 1, 2 if widget is self.stops else 1)
        self.tuned_pane = _AnswerPane("Tuned", self)
        self.base_pane = _AnswerPane("Base (adapter off)", self)
        panes = QSplitter(Qt.Orientation.Horizontal, self)
        panes.addWidget(self.tuned_pane)
        panes.addWidget(self.base_pane)
        self.history = QListWidget(self)
        self.history.setObjectName("history")
        self.history.setMaximumWidth(220)
        history_box = QWidget(self)
        history_layout = QVBoxLayout(history_box)
        history_layout.setContentsMargins(0, 0, 0, 0)
        history_layout.addWidget(QLabel("<b>History</b>", self))
        history_layout.addWidget(self.history)
        panes.addWidget(history_box)
        panes.setStretchFactor(0, 3)
        panes.setStretchFactor(1, 3)
        panes.setStretchFactor(2, 1)
        self.prompt = QPlainTextEdit(self)
        self.prompt.setPlaceholderText("Ask something, e.g. Write a Python function `triple`…")
        self.prompt.setMaximumHeight(80)
        self.send_button = QPushButton("Send", self)
        self.send_button.setDefault(True)
        self.stop_button = QPushButton("Stop", self)
        self.new_button = QPushButton("New session", self)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)  # error messages are long sentences
        buttons = QVBoxLayout()
        for button in (self.send_button, self.stop_button, self.new_button):
            buttons.addWidget(button)
        prompt_row = QHBoxLayout()
        prompt_row.addWidget(self.prompt, 1)
        prompt_row.addLayout(buttons)
        options = QHBoxLayout()
        options.addWidget(self.compare_check)
        options.addWidget(self.chat_check)
        options.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.picker)
        layout.addLayout(options)
        layout.addLayout(knobs)
        layout.addWidget(panes, 1)
        layout.addLayout(prompt_row)
        layout.addWidget(self.status)

    def _connect_signals(self) -> None:
        self.send_button.clicked.connect(self._on_send_button_clicked)
        self.stop_button.clicked.connect(self._on_stop_button_clicked)
        self.new_button.clicked.connect(self._on_new_button_clicked)
        self.history.currentRowChanged.connect(self._on_history_current_row_changed)
        self.picker.changed.connect(lambda _v: self._update_buttons())

    # --- public -------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether a generation is running."""
        return self._controller is not None and self._controller.running

    def params(self) -> GenerationParams:
        """The decoding settings the knobs show."""
        stops = tuple(s for s in self.stops.text().split("|") if s)
        return GenerationParams(
            max_new_tokens=self.max_tokens.value(),
            temperature=self.temperature.value(),
            top_p=self.top_p.value(),
            top_k=self.top_k.value(),
            repetition_penalty=self.repetition.value(),
            seed=None if self.seed.value() < 0 else self.seed.value(),
            stop=stops,
        )

    def send(self, prompt: str) -> None:
        """Ask both variants ``prompt`` (with the conversation so far in chat mode)."""
        model = self.picker.value()
        if not model or not prompt.strip() or self.busy:
            return
        requests = [self._request(prompt, variant) for variant in self._variants()]
        exchange = _Exchange(prompt)
        self._exchanges.append(exchange)
        self.history.blockSignals(True)
        self.history.addItem(prompt.strip().splitlines()[0][:60])
        self.history.setCurrentRow(self.history.count() - 1)
        self.history.blockSignals(False)
        self._show_turn_header(prompt)
        host = GenerationHost(lambda: self._resolve(model), requests, device=self._device)
        self._controller = GenerationController(host, self)
        self._controller.events_received.connect(self._on_controller_events_received)
        self._controller.finished.connect(self._on_controller_finished)
        self.status.setText("Loading the model…")
        self._controller.start()
        self._update_buttons()

    def stop(self) -> None:
        """Stop the answers in progress (what arrived so far stays)."""
        if self._controller is not None:
            self._controller.stop()

    def shutdown(self) -> None:
        self.picker.shutdown()
        if self._controller is not None:
            self._controller.shutdown()

    def save_state(self) -> dict[str, Any]:
        return {
            "params": self.params().model_dump(mode="json"),
            "compare": self.compare_check.isChecked(),
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        params = state.get("params")
        if isinstance(params, dict):
            try:
                loaded = GenerationParams.model_validate(params)
            except ValueError:
                return
            self.max_tokens.setValue(loaded.max_new_tokens)
            self.temperature.setValue(loaded.temperature)
            self.top_p.setValue(loaded.top_p)
            self.top_k.setValue(loaded.top_k)
            self.repetition.setValue(loaded.repetition_penalty)
            self.seed.setValue(-1 if loaded.seed is None else loaded.seed)
            self.stops.setText("|".join(loaded.stop))
        self.compare_check.setChecked(bool(state.get("compare", True)))

    # --- internals ----------------------------------------------------------------------------

    def _variants(self) -> tuple[str, ...]:
        return ("tuned", "base") if self.compare_check.isChecked() else ("tuned",)

    def _request(self, prompt: str, variant: str) -> GenerationRequest:
        messages: list[ChatMessage] = []
        if self.chat_check.isChecked():
            for past in self._exchanges:
                messages.append(ChatMessage(role="user", content=past.prompt))
                messages.append(ChatMessage(role="assistant", content=past.answers[variant]))
        messages.append(ChatMessage(role="user", content=prompt))
        return GenerationRequest(
            id=variant,
            messages=tuple(messages),
            params=self.params(),
            variants=(variant,),
        )

    def _show_turn_header(self, prompt: str) -> None:
        for pane in self._panes():
            if not self.chat_check.isChecked():
                pane.text.clear()
            pane.append(("\n\n" if pane.text.toPlainText() else "") + f"▶ {prompt.strip()}\n\n")
            pane.stats.setText("")
        self.base_pane.setEnabled(self.compare_check.isChecked())

    def _panes(self) -> tuple[_AnswerPane, _AnswerPane]:
        return self.tuned_pane, self.base_pane

    def _pane(self, variant: str) -> _AnswerPane:
        return self.tuned_pane if variant == "tuned" else self.base_pane

    def _update_buttons(self) -> None:
        busy = self.busy
        self.send_button.setEnabled(not busy and bool(self.picker.value()))
        self.stop_button.setEnabled(busy)
        self.new_button.setEnabled(not busy)

    @safe_slot()
    def _on_send_button_clicked(self) -> None:
        self.send(self.prompt.toPlainText())
        self.prompt.clear()

    @safe_slot()
    def _on_stop_button_clicked(self) -> None:
        self.stop()

    @safe_slot()
    def _on_new_button_clicked(self) -> None:
        self._exchanges.clear()
        self.history.clear()
        for pane in self._panes():
            pane.text.clear()
            pane.stats.setText("")

    @safe_slot()
    def _on_history_current_row_changed(self, row: int) -> None:
        if self.busy or not 0 <= row < len(self._exchanges):
            return
        exchange = self._exchanges[row]
        for variant in ("tuned", "base"):
            pane = self._pane(variant)
            pane.text.setPlainText(f"▶ {exchange.prompt.strip()}\n\n{exchange.answers[variant]}")
            pane.stats.setText(exchange.stats.get(variant, ""))

    def _on_controller_events_received(self, events: list[Any]) -> None:
        exchange = self._exchanges[-1] if self._exchanges else None
        for event in events:
            if isinstance(event, ModelLoaded):
                self.status.setText(f"Model loaded on {event.device} in {event.seconds:.1f} s")
            elif isinstance(event, GenerationStarted):
                self._pane(event.variant).stats.setText("generating…")
            elif isinstance(event, TokensGenerated) and exchange is not None:
                exchange.answers[event.variant] += event.text
                self._pane(event.variant).append(event.text)
            elif isinstance(event, GenerationFinished) and exchange is not None:
                self._finish_answer(exchange, event)

    def _finish_answer(self, exchange: _Exchange, event: GenerationFinished) -> None:
        pane = self._pane(event.variant)
        missing = event.text[len(exchange.answers[event.variant]) :]
        if missing:  # streaming held back nothing, but keep the panes exact anyway
            pane.append(missing)
        exchange.answers[event.variant] = event.text
        reason = {"eos": "stopped on its own", "length": "hit the length limit",
                  "stop_string": "hit a stop string", "cancelled": "stopped"}[event.stop_reason]  # fmt: skip
        stats = f"{event.tokens} tokens · {event.tokens_per_s:.1f} tokens/s · {reason}"
        exchange.stats[event.variant] = stats
        pane.stats.setText(stats)

    def _on_controller_finished(self, error: str | None) -> None:
        controller = self._controller
        self._controller = None
        if controller is not None:
            controller.deleteLater()
        if error:
            self.status.setText(f"Generation failed: {error}")
            notify.error(error)
        else:
            self.status.setText("Done.")
        self._update_buttons()
        self.generation_finished.emit(error)


def _spin(parent: QWidget, low: int, high: int, value: int) -> QSpinBox:
    box = QSpinBox(parent)
    box.setRange(low, high)
    box.setValue(value)
    return box


def _double(parent: QWidget, low: float, high: float, value: float, step: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox(parent)
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setDecimals(2)
    box.setValue(value)
    return box

"""The Data tools panel: the tokenizer builder, and datasets made from a code folder.

Both run on worker threads. The tokenizer trains with the engine's builder (the one the starter
model's tokenizer comes from), reports how far it has read, and stops on Cancel; the result is
saved in Hugging Face format and can be compared with other tokenizers on a dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.core.cancel import CancelToken
from codetune_studio.ui import notify
from codetune_studio.ui.panels.base import Panel
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import TaskHandle, run_in_thread

if TYPE_CHECKING:
    from collections.abc import Callable

    from codetune_studio.engine.code_pairs import CodePairs
    from codetune_studio.engine.tokenizer_build import TokenizerStats

__all__ = ["DataToolsPanel"]

_CHATML = "<|endoftext|> <|pad|> <|im_start|> <|im_end|>"


class _Progress(QObject):
    """Carries progress from the training thread to the window (a queued signal)."""

    changed = Signal(int, int)


class DataToolsPanel(Panel):
    """Train and compare tokenizers; make a dataset from a Python project.

    Args:
        parent: The Qt parent.
        data_dir: The studio's data folder (for the starter model's tokenizer).
        current_dataset: Returns the dataset selected in the Datasets panel, if any.
    """

    panel_id: ClassVar[str] = "datatools"
    title: ClassVar[str] = "Data tools"
    default_area: ClassVar[Qt.DockWidgetArea] = Qt.DockWidgetArea.RightDockWidgetArea

    dataset_made = Signal(str)  # a dataset file written from a code folder

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        data_dir: Path | None = None,
        current_dataset: Callable[[], str | None] | None = None,
    ) -> None:
        super().__init__(parent)
        self._data_dir = data_dir
        self._current_dataset = current_dataset or (lambda: None)
        self._cancel: CancelToken | None = None
        self._tasks: list[TaskHandle] = []
        self._progress = _Progress(self)
        #: The folder of the last tokenizer trained here.
        self.trained_dir: Path | None = None
        #: The last comparison's figures.
        self.stats: list[TokenizerStats] = []
        #: The last dataset made from code.
        self.pairs: CodePairs | None = None
        self._build_ui()
        self._connect_signals()

    # --- construction -------------------------------------------------------------------------

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self._build_tokenizer_tab(), "Tokenizer builder")
        self.tabs.addTab(self._build_code_tab(), "Dataset from code")
        layout.addWidget(self.tabs)

    def _build_tokenizer_tab(self) -> QWidget:
        page = QWidget(self)
        layout = QVBoxLayout(page)
        inputs = QGroupBox("Train on", page)
        inputs_layout = QVBoxLayout(inputs)
        self.inputs = QListWidget(inputs)
        self.inputs.setObjectName("tokenizerInputs")
        self.inputs.setMaximumHeight(90)
        inputs_layout.addWidget(self.inputs)
        row = QHBoxLayout()
        self.add_input_file_button = QPushButton("Add file…", inputs)
        self.add_input_folder_button = QPushButton("Add folder…", inputs)
        self.add_current_button = QPushButton("Add selected dataset", inputs)
        self.remove_input_button = QPushButton("Remove", inputs)
        for button in (self.add_input_file_button, self.add_input_folder_button,
                       self.add_current_button, self.remove_input_button):  # fmt: skip
            row.addWidget(button)
        row.addStretch(1)
        inputs_layout.addLayout(row)
        layout.addWidget(inputs)

        options = QGroupBox("Tokenizer", page)
        form = QFormLayout(options)
        self.type_combo = QComboBox(options)
        self.type_combo.setObjectName("tokenizerType")
        self.type_combo.addItems(["bpe", "wordpiece", "unigram"])
        self.type_combo.setToolTip(
            "bpe: byte-level, nothing is ever unknown (GPT-2, Llama 3); wordpiece and unigram have "
            "an unknown token"
        )
        form.addRow("Type", self.type_combo)
        self.vocab_spin = QSpinBox(options)
        self.vocab_spin.setObjectName("tokenizerVocab")
        self.vocab_spin.setRange(100, 1_000_000)
        self.vocab_spin.setSingleStep(1000)
        self.vocab_spin.setValue(8000)
        form.addRow("Vocabulary size", self.vocab_spin)
        self.min_freq_spin = QSpinBox(options)
        self.min_freq_spin.setRange(1, 1_000_000)
        self.min_freq_spin.setValue(2)
        form.addRow("Minimum frequency", self.min_freq_spin)
        self.special_edit = QLineEdit(_CHATML, options)
        self.special_edit.setToolTip("Special tokens, space-separated, in id order")
        form.addRow("Special tokens", self.special_edit)
        out_row = QHBoxLayout()
        self.out_edit = QLineEdit(options)
        self.out_edit.setObjectName("tokenizerOut")
        self.out_edit.setPlaceholderText("folder to save it in")
        self.out_browse_button = QPushButton("Browse…", options)
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(self.out_browse_button)
        form.addRow("Save to", out_row)
        layout.addWidget(options)

        run_row = QHBoxLayout()
        self.train_button = QPushButton("Train tokenizer", page)
        self.train_button.setObjectName("tokenizerTrain")
        self.cancel_button = QPushButton("Cancel", page)
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar(page)
        self.progress.setObjectName("tokenizerProgress")
        self.progress.setMaximumHeight(16)
        run_row.addWidget(self.train_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.progress, 1)
        layout.addLayout(run_row)
        self.status = QLabel("Add datasets, text files or folders of code to train on.", page)
        self.status.setObjectName("tokenizerStatus")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        compare = QGroupBox("Compare on a dataset", page)
        compare_layout = QVBoxLayout(compare)
        compare_row = QHBoxLayout()
        self.compare_edit = QLineEdit("starter", compare)
        self.compare_edit.setToolTip(
            "Tokenizers to compare with the one trained here: 'starter', model folders or cached "
            "hub ids, comma-separated"
        )
        self.compare_button = QPushButton("Compare", compare)
        self.compare_button.setObjectName("tokenizerCompare")
        compare_row.addWidget(QLabel("with", compare))
        compare_row.addWidget(self.compare_edit, 1)
        compare_row.addWidget(self.compare_button)
        compare_layout.addLayout(compare_row)
        self.compare_table = QTableWidget(0, 6, compare)
        self.compare_table.setObjectName("tokenizerComparison")
        self.compare_table.setHorizontalHeaderLabels(
            ["Tokenizer", "Vocabulary", "Tokens/char", "Unknown", "Byte fallback", "Vocab used"]
        )
        header = self.compare_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.compare_table.verticalHeader().setVisible(False)
        self.compare_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        compare_layout.addWidget(self.compare_table)
        layout.addWidget(compare, 1)
        return page

    def _build_code_tab(self) -> QWidget:
        page = QWidget(self)
        layout = QVBoxLayout(page)
        form = QFormLayout()
        folder_row = QHBoxLayout()
        self.code_folder_edit = QLineEdit(page)
        self.code_folder_edit.setObjectName("codeFolder")
        self.code_folder_edit.setPlaceholderText("a Python project's root folder")
        self.code_browse_button = QPushButton("Browse…", page)
        folder_row.addWidget(self.code_folder_edit, 1)
        folder_row.addWidget(self.code_browse_button)
        form.addRow("Project", folder_row)
        self.kind_combo = QComboBox(page)
        self.kind_combo.setObjectName("codeKind")
        self.kind_combo.addItems(["docstring", "fim", "completion"])
        self.kind_combo.setToolTip(
            "docstring: signature and docstring to body; fim: fill in the middle; completion: "
            "whole functions"
        )
        form.addRow("Pairs", self.kind_combo)
        self.eval_share_spin = QDoubleSpinBox(page)
        self.eval_share_spin.setRange(0.0, 0.5)
        self.eval_share_spin.setSingleStep(0.05)
        self.eval_share_spin.setValue(0.1)
        form.addRow("Eval share (whole files)", self.eval_share_spin)
        self.code_out_edit = QLineEdit(page)
        self.code_out_edit.setObjectName("codeOut")
        self.code_out_edit.setPlaceholderText("pairs.jsonl (eval rows go to pairs.eval.jsonl)")
        form.addRow("Write to", self.code_out_edit)
        layout.addLayout(form)
        self.make_button = QPushButton("Make dataset", page)
        self.make_button.setObjectName("codeMake")
        layout.addWidget(self.make_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.code_status = QLabel(".gitignore is honoured; whole files go to train or eval.", page)
        self.code_status.setObjectName("codeStatus")
        self.code_status.setWordWrap(True)
        layout.addWidget(self.code_status)
        self.skipped_table = QTableWidget(0, 2, page)
        self.skipped_table.setObjectName("codeSkipped")
        self.skipped_table.setHorizontalHeaderLabels(["Skipped", "Reason"])
        self.skipped_table.horizontalHeader().setStretchLastSection(True)
        self.skipped_table.verticalHeader().setVisible(False)
        self.skipped_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout.addWidget(self.skipped_table, 1)
        return page

    def _connect_signals(self) -> None:
        self.add_input_file_button.clicked.connect(self._on_add_input_file_button_clicked)
        self.add_input_folder_button.clicked.connect(self._on_add_input_folder_button_clicked)
        self.add_current_button.clicked.connect(self._on_add_current_button_clicked)
        self.remove_input_button.clicked.connect(self._on_remove_input_button_clicked)
        self.out_browse_button.clicked.connect(self._on_out_browse_button_clicked)
        self.train_button.clicked.connect(self._on_train_button_clicked)
        self.cancel_button.clicked.connect(self._on_cancel_button_clicked)
        self.compare_button.clicked.connect(self._on_compare_button_clicked)
        self.code_browse_button.clicked.connect(self._on_code_browse_button_clicked)
        self.make_button.clicked.connect(self._on_make_button_clicked)
        self._progress.changed.connect(self._on_progress_changed)

    # --- public -------------------------------------------------------------------------------

    def add_input(self, path: str) -> None:
        """Add a dataset, text file or folder of code to train the tokenizer on."""
        existing = {self.inputs.item(i).text() for i in range(self.inputs.count())}
        if path and path not in existing:
            self.inputs.addItem(path)

    def input_paths(self) -> list[str]:
        """What the tokenizer trains on."""
        return [self.inputs.item(i).text() for i in range(self.inputs.count())]

    def shutdown(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()
        for task in self._tasks:
            task.cancel()

    # --- tokenizer ----------------------------------------------------------------------------

    @safe_slot()
    def _on_add_input_file_button_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Train on a file", str(Path.home()))
        if path:
            self.add_input(path)

    @safe_slot()
    def _on_add_input_folder_button_clicked(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Train on a folder", str(Path.home()))
        if path:
            self.add_input(path)

    @safe_slot()
    def _on_add_current_button_clicked(self) -> None:
        current = self._current_dataset()
        if current:
            self.add_input(current)
        else:
            self.status.setText("Select a dataset in the Datasets panel first.")

    @safe_slot()
    def _on_remove_input_button_clicked(self) -> None:
        for item in self.inputs.selectedItems():
            self.inputs.takeItem(self.inputs.row(item))

    @safe_slot()
    def _on_out_browse_button_clicked(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Save the tokenizer in", str(Path.home()))
        if path:
            self.out_edit.setText(path)

    @safe_slot()
    def _on_train_button_clicked(self) -> None:
        paths = self.input_paths()
        out = self.out_edit.text().strip()
        if not paths or not out:
            self.status.setText("Add something to train on, and a folder to save the tokenizer in.")
            return
        specials = tuple(self.special_edit.text().split())
        self._cancel = CancelToken()
        self.train_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.status.setText("Reading the texts…")
        self._tasks.append(
            run_in_thread(
                _train_and_save,
                paths,
                Path(out).expanduser(),
                self.type_combo.currentText(),
                self.vocab_spin.value(),
                self.min_freq_spin.value(),
                specials,
                self._cancel,
                self._progress.changed.emit,
                on_return=self._on_train_returned,
                on_error=self._on_train_errored,
                on_finish=self._on_train_finished,
            )
        )

    @safe_slot()
    def _on_cancel_button_clicked(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()
            self.status.setText("Cancelling…")

    @safe_slot()
    def _on_progress_changed(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.status.setText(f"Training: read {done:,} of {total:,} texts…")

    @safe_slot()
    def _on_train_returned(self, result: tuple[Path, int]) -> None:
        folder, size = result
        self.trained_dir = folder
        self.status.setText(
            f"Saved a {size:,}-token tokenizer to {folder} (loads with AutoTokenizer)."
        )
        notify.info(f"Tokenizer saved to {folder}.")

    def _on_train_errored(self, exc: BaseException) -> None:
        from codetune_studio.engine.tokenizer_build import TokenizerCancelledError

        if isinstance(exc, TokenizerCancelledError):
            self.status.setText("Cancelled: nothing was saved.")
            return
        self.status.setText(f"<span style='color:#dc2626'>{notify.message_for(exc)}</span>")

    def _on_train_finished(self) -> None:
        self.train_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)

    @safe_slot()
    def _on_compare_button_clicked(self) -> None:
        dataset = self._current_dataset() or next(iter(self.input_paths()), None)
        names = [n.strip() for n in self.compare_edit.text().split(",") if n.strip()]
        if self.trained_dir is not None:
            names.insert(0, str(self.trained_dir))
        if dataset is None or not names:
            self.status.setText("Pick a dataset and name the tokenizers to compare.")
            return
        self.status.setText(f"Comparing on {Path(dataset).name}…")
        self._tasks.append(
            run_in_thread(
                _compare,
                dataset,
                names,
                self._data_dir,
                on_return=self._on_compare_returned,
                on_error=self._on_train_errored,
            )
        )

    @safe_slot()
    def _on_compare_returned(self, stats: list[TokenizerStats]) -> None:
        self.stats = stats
        self.compare_table.setRowCount(len(stats))
        for row, item in enumerate(stats):
            cells = [
                Path(item.name).name or item.name,
                f"{item.vocab_size:,}",
                f"{item.tokens_per_char:.3f}",
                f"{item.unknown_share:.2%}",
                f"{item.byte_fallback_share:.2%}",
                f"{item.vocab_used:.1%}",
            ]
            for column, text in enumerate(cells):
                self.compare_table.setItem(row, column, QTableWidgetItem(text))
        self.status.setText(
            f"Compared {len(stats)} tokenizers on {stats[0].characters:,} characters."
            if stats
            else "Nothing to compare."
        )

    # --- dataset from code --------------------------------------------------------------------

    @safe_slot()
    def _on_code_browse_button_clicked(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "A Python project", str(Path.home()))
        if path:
            self.code_folder_edit.setText(path)
            if not self.code_out_edit.text().strip():
                self.code_out_edit.setText(
                    str(Path(path).parent / f"{Path(path).name}-pairs.jsonl")
                )

    @safe_slot()
    def _on_make_button_clicked(self) -> None:
        folder = self.code_folder_edit.text().strip()
        out = self.code_out_edit.text().strip()
        if not folder or not out:
            self.code_status.setText("Choose a project folder and a file to write.")
            return
        self.make_button.setEnabled(False)
        self.code_status.setText("Reading the project…")
        self._tasks.append(
            run_in_thread(
                _make_pairs,
                Path(folder).expanduser(),
                Path(out).expanduser(),
                self.kind_combo.currentText(),
                self.eval_share_spin.value(),
                on_return=self._on_make_returned,
                on_error=self._on_make_errored,
                on_finish=lambda: self.make_button.setEnabled(True),
            )
        )

    @safe_slot()
    def _on_make_returned(self, result: tuple[CodePairs, Path, Path | None]) -> None:
        pairs, train, eval_path = result
        self.pairs = pairs
        text = f"{len(pairs.train):,} train pairs from {pairs.files} files in {train.name}"
        if eval_path is not None:
            text += f"; {len(pairs.eval):,} eval pairs in {eval_path.name}"
        self.code_status.setText(text + f"; {len(pairs.skipped)} skipped (below).")
        self.skipped_table.setRowCount(len(pairs.skipped))
        for row, (where, reason) in enumerate(pairs.skipped):
            self.skipped_table.setItem(row, 0, QTableWidgetItem(where))
            self.skipped_table.setItem(row, 1, QTableWidgetItem(reason))
        self.skipped_table.resizeColumnToContents(0)
        self.dataset_made.emit(str(train))

    def _on_make_errored(self, exc: BaseException) -> None:
        self.code_status.setText(f"<span style='color:#dc2626'>{notify.message_for(exc)}</span>")


# --- work on worker threads -------------------------------------------------------------------


def _train_and_save(
    paths: list[str],
    out: Path,
    kind: str,
    vocab_size: int,
    min_frequency: int,
    specials: tuple[str, ...],
    cancel: CancelToken,
    progress: Callable[[int, int], Any],
) -> tuple[Path, int]:
    from codetune_studio.engine.tokenizer_build import (
        TokenizerCancelledError,
        TokenizerSpec,
        corpus_texts,
        save_tokenizer,
        train_tokenizer,
    )

    def pick(*names: str) -> str | None:
        return next((name for name in names if name in specials), None)

    spec = TokenizerSpec(
        kind=kind,  # type: ignore[arg-type]
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        bos_token=pick("<|endoftext|>", "<s>", "[CLS]"),
        eos_token=pick("<|im_end|>", "</s>", "<|endoftext|>", "[SEP]"),
        pad_token=pick("<|pad|>", "<pad>", "[PAD]"),
        extra_special=tuple(t for t in specials if t == "<|im_start|>"),
    )
    spec.check()
    texts = corpus_texts(paths)
    if cancel.cancelled:
        raise TokenizerCancelledError("Tokenizer training cancelled")
    tokenizer = train_tokenizer(texts, spec, progress=progress, cancel=cancel)
    save_tokenizer(tokenizer, out)
    return out, len(tokenizer)


def _compare(dataset: str, names: list[str], data_dir: Path | None) -> list[TokenizerStats]:
    from codetune_studio.core.errors import ConfigError
    from codetune_studio.engine.tokenizer_build import compare_tokenizers, corpus_texts
    from codetune_studio.services.dataset_preview import load_tokenizer, tokenizer_source

    tokenizers = {}
    for name in names:
        source, reason = tokenizer_source(name, data_dir)
        if source is None:
            raise ConfigError(f"Tokenizer {name}: {reason}")
        try:
            tokenizers[name] = load_tokenizer(source)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"Tokenizer {name}: cannot load it: {exc}") from None
    return compare_tokenizers(tokenizers, corpus_texts([dataset]))


def _make_pairs(
    folder: Path, out: Path, kind: str, eval_share: float
) -> tuple[CodePairs, Path, Path | None]:
    from codetune_studio.engine.code_pairs import build_code_pairs, write_code_pairs

    pairs = build_code_pairs(folder, kind=kind, eval_share=eval_share)
    train, eval_path = write_code_pairs(pairs, out)
    return pairs, train, eval_path

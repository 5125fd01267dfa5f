"""Training parameters: a form generated from the recipe's JSON schema, presets and a memory estimate."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError
from PySide6.QtCore import QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.core.errors import ConfigError, ConflictError
from codetune_studio.core.recipe import DatasetSpec, TrainingRecipe, load_recipe
from codetune_studio.services.memory_estimate import (
    estimate_memory,
    find_model_shape,
    format_bytes,
)
from codetune_studio.ui import notify
from codetune_studio.ui.panels.base import Panel
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import TaskHandle, run_in_thread

if TYPE_CHECKING:
    from collections.abc import Callable

    from codetune_studio.core.models import TrainingConfig
    from codetune_studio.services.experiments import ExperimentService

__all__ = ["ParametersPanel", "SchemaField"]

logger = logging.getLogger(__name__)

_SECTIONS = {"": "General", "dataset": "Dataset", "training": "Training", "lora": "LoRA adapter"}
#: Sections edited in the recipe file, not the form: they travel with the recipe unchanged.
_CARRIED = ("launch", "evaluation")
_HIDDEN = {"schema_version", "model", *_CARRIED}
_STARTER_LABEL = "starter"
_LABELS = {
    "per_device_train_batch_size": "batch size",
    "gradient_accumulation_steps": "grad. accumulation",
    "train_on_completions_only": "completions only",
    "gradient_checkpointing": "grad. checkpointing",
    "num_train_epochs": "epochs",
    "lr_scheduler_type": "scheduler",
    "save_total_limit": "keep checkpoints",
    "trust_remote_code": "trust remote code",
    "validation_split": "validation share",
}
_DEFERRED_MS = 1500
_PLACEHOLDER_DATASET = "Pick a dataset in the Datasets panel"


class SchemaField:
    """One form field made from a JSON-schema property: its widget, its error label, its parser.

    Args:
        path: The key path, e.g. ``("training", "learning_rate")``.
        schema: The property's resolved schema.
        parent: The widget the editor belongs to.
    """

    def __init__(self, path: tuple[str, ...], schema: dict[str, Any], parent: QWidget) -> None:
        self.path = path
        self.schema = schema
        types = _types(schema)
        self.nullable = "null" in types
        self.kind = _kind(schema, types)
        self.editor: QWidget
        if self.kind == "enum":
            combo = QComboBox(parent)
            _compact_combo(combo)
            combo.addItems([str(v) for v in _enum_values(schema)])
            self.editor = combo
        elif self.kind == "bool":
            self.editor = QCheckBox(parent)
        else:
            edit = QLineEdit(parent)
            if self.nullable:
                edit.setPlaceholderText("(none)")
            if self.kind == "mapping":
                edit.setPlaceholderText("field=column, …")
            if self.kind == "targets":
                edit.setPlaceholderText("auto, or q_proj, v_proj, …")
            if self.kind == "list":
                choices = _enum_values(schema.get("items", {}))
                edit.setPlaceholderText(", ".join(map(str, choices)) if choices else "a, b, …")
            self.editor = edit
        self.editor.setObjectName("field_" + "_".join(path))
        self.editor.setProperty("recipeKey", ".".join(path))  # F1 opens this key's entry
        self.editor.setToolTip(schema.get("description", ""))
        self.error_label = QLabel(parent)
        self.error_label.setObjectName("error_" + "_".join(path))
        self.error_label.setStyleSheet("color: #dc2626; font-size: 11px;")
        self.error_label.setWordWrap(True)
        self.error_label.hide()

    @property
    def key(self) -> str:
        """The dotted key path."""
        return ".".join(self.path)

    def connect(self, slot: Callable[[], None]) -> None:
        """Call ``slot`` whenever the user edits the field."""
        if isinstance(self.editor, QComboBox):
            self.editor.currentTextChanged.connect(slot)
        elif isinstance(self.editor, QCheckBox):
            self.editor.toggled.connect(slot)
        elif isinstance(self.editor, QLineEdit):
            self.editor.textEdited.connect(slot)

    def value(self) -> Any:
        """The field's value as the recipe expects it (text that does not parse stays text)."""
        if isinstance(self.editor, QCheckBox):
            return self.editor.isChecked()
        if isinstance(self.editor, QComboBox):
            return self.editor.currentText()
        assert isinstance(self.editor, QLineEdit)  # noqa: S101 - the three editor kinds
        text = self.editor.text().strip()
        if not text and self.nullable:
            return None
        parse = _TEXT_PARSERS.get(self.kind)
        return parse(text) if parse is not None else text

    def set_value(self, value: Any) -> None:
        """Show ``value`` without emitting edit signals."""
        with QSignalBlocker(self.editor):
            if isinstance(self.editor, QCheckBox):
                self.editor.setChecked(bool(value))
            elif isinstance(self.editor, QComboBox):
                self.editor.setCurrentText(str(value))
            elif isinstance(self.editor, QLineEdit):
                self.editor.setText(_to_text(value))

    def show_error(self, message: str | None) -> None:
        """Show (or clear) the validation message beside the field."""
        self.error_label.setText(message or "")
        self.error_label.setVisible(bool(message))
        self.editor.setProperty("invalid", bool(message))
        self.editor.setStyleSheet("border: 1px solid #dc2626;" if message else "")


def _compact_combo(combo: QComboBox) -> None:
    # A combo box is as wide as its longest item by default; in a narrow dock that forces scrolling.
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(8)


def _types(schema: dict[str, Any]) -> set[str]:
    options = schema.get("anyOf", [schema])
    types: set[str] = set()
    for option in options:
        if "type" in option:
            types.add(option["type"])
        if "const" in option or "enum" in option:
            types.add("enum")
    return types


def _enum_values(schema: dict[str, Any]) -> list[Any]:
    if "enum" in schema:
        return list(schema["enum"])
    if "const" in schema:
        return [schema["const"]]
    values: list[Any] = []
    for option in schema.get("anyOf", []):
        values += option.get("enum", [option["const"]] if "const" in option else [])
    return values


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _number(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ValueError:
            return text  # left as typed, so validation names the field and the bad value

    return parse


def _mapping(text: str) -> dict[str, str]:
    pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
    return {k.strip(): v.strip() for k, v in (p if len(p) == 2 else (p[0], "") for p in pairs)}


#: How a line edit's text becomes a recipe value, by field kind.
_TEXT_PARSERS: dict[str, Callable[[str], Any]] = {
    "int": _number(int),
    "float": _number(float),
    "mapping": _mapping,
    "targets": lambda text: "auto" if text in {"", "auto"} else _split_list(text),
    "list": _split_list,
}


def _kind(schema: dict[str, Any], types: set[str]) -> str:
    concrete = types - {"null"}
    if concrete == {"enum"} or (concrete == {"string", "enum"} and "enum" in schema):
        return "enum"
    if concrete == {"array"}:
        return "list"
    if "array" in concrete:
        # A list or a keyword such as "auto", as LoRA's target_modules.
        return "targets"
    if concrete == {"boolean"}:
        return "bool"
    if concrete == {"integer"}:
        return "int"
    if concrete == {"number"}:
        return "float"
    if concrete == {"object"}:
        return "mapping"
    return "text"


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return dict(defs[ref.rsplit("/", 1)[-1]])


class ParametersPanel(Panel):
    """Edits a :class:`TrainingRecipe`; the recipe is always the last valid state of the form.

    Args:
        experiments: Saves and lists training configs.
        presets_dir: Recipe presets (``*.yaml``).
        parent: The Qt parent.
    """

    panel_id = "parameters"
    title = "Parameters"
    default_area = Qt.DockWidgetArea.RightDockWidgetArea

    recipe_changed = Signal(object)  # a valid TrainingRecipe
    validity_changed = Signal(bool)
    model_changed = Signal(str, int)  # the model and max_seq_length the form now names

    def __init__(
        self, experiments: ExperimentService, presets_dir: Path, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._experiments = experiments
        self._presets_dir = presets_dir
        self._fields: dict[str, SchemaField] = {}
        self._section_errors: dict[str, QLabel] = {}
        self._device_memory: int | None = None
        self._on_gpu = False
        self._config: TrainingConfig | None = None
        self._scan: TaskHandle | None = None
        self._recent_models: list[str] = []
        self._configs: dict[str, TrainingConfig] = {}
        self._presets: dict[str, TrainingRecipe] = {}
        self.memory_over = False
        self._shut_down = False
        self.recipe: TrainingRecipe | None = None
        self.errors: dict[str, str] = {}
        self._model_settings: tuple[str, int] | None = None
        self._build_ui()
        self._connect_signals()
        self._load_presets()
        self.set_recipe(
            TrainingRecipe(dataset=DatasetSpec(path=_PLACEHOLDER_DATASET)), validate=False
        )
        self._fields["dataset.path"].set_value("")
        self._revalidate()
        # The cache scan imports huggingface_hub; holding the GIL for that while the window is
        # being built would delay its first paint, so it starts once the window is up.
        QTimer.singleShot(_DEFERRED_MS, self, self._scan_models)
        self._refresh_configs()

    # --- construction -------------------------------------------------------------------------

    def _build_ui(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget(scroll)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(8, 8, 8, 8)

        top = QFormLayout()
        self.preset_combo = QComboBox(body)
        self.preset_combo.setObjectName("presetCombo")
        _compact_combo(self.preset_combo)
        top.addRow("Preset", self.preset_combo)
        model_row = QHBoxLayout()
        self.model_combo = QComboBox(body)
        self.model_combo.setObjectName("modelPicker")
        self.model_combo.setEditable(True)
        _compact_combo(self.model_combo)
        self.model_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.model_combo.addItem(_STARTER_LABEL)
        self.model_combo.setItemData(
            0, "Bundled tiny model: trains in seconds, no download.", Qt.ItemDataRole.ToolTipRole
        )
        self.model_combo.setToolTip(
            "'starter', a local model folder, a model from the Hugging Face cache, or a hub id"
        )
        self.browse_model_button = QPushButton("Folder…", body)
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.browse_model_button)
        top.addRow("Model", model_row)
        self.model_error = QLabel(body)
        self.model_error.setStyleSheet("color: #dc2626; font-size: 11px;")
        self.model_error.hide()
        top.addRow("", self.model_error)
        layout.addLayout(top)

        schema = TrainingRecipe.model_json_schema()
        defs = schema.get("$defs", {})
        sections: dict[str, QFormLayout] = {}
        for section, title in _SECTIONS.items():
            box = QGroupBox(title, body)
            form = QFormLayout(box)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            error = QLabel(box)
            error.setStyleSheet("color: #dc2626; font-size: 11px;")
            error.setWordWrap(True)
            error.hide()
            form.addRow(error)
            self._section_errors[section] = error
            sections[section] = form
            layout.addWidget(box)
        for name, prop in schema["properties"].items():
            resolved = _resolve(prop, defs)
            if name in _SECTIONS and resolved.get("type") == "object":
                for sub, sub_prop in resolved["properties"].items():
                    self._add_field(sections[name], (name, sub), _resolve(sub_prop, defs), body)
            elif name not in _HIDDEN:
                self._add_field(sections[""], (name,), resolved, body)

        self.memory_label = QLabel(body)
        self.memory_label.setObjectName("memoryEstimate")
        self.memory_label.setWordWrap(True)
        self.memory_label.setTextFormat(Qt.TextFormat.RichText)
        memory_box = QGroupBox("Memory estimate", body)
        memory_layout = QVBoxLayout(memory_box)
        memory_layout.addWidget(self.memory_label)
        layout.addWidget(memory_box)

        buttons = QHBoxLayout()
        self.load_button = QPushButton("Open…", body)
        self.save_yaml_button = QPushButton("Export YAML…", body)
        self.save_db_button = QPushButton("Save", body)
        self.save_db_button.setToolTip("Save this recipe as a versioned config in the database")
        buttons.addWidget(self.load_button)
        buttons.addWidget(self.save_yaml_button)
        buttons.addStretch(1)
        buttons.addWidget(self.save_db_button)
        layout.addLayout(buttons)
        self.configs_combo = QComboBox(body)
        self.configs_combo.setObjectName("savedConfigs")
        _compact_combo(self.configs_combo)
        self.configs_combo.setPlaceholderText("Saved configs…")
        layout.addWidget(self.configs_combo)
        layout.addStretch(1)
        scroll.setWidget(body)
        outer.addWidget(scroll)

    def _add_field(
        self, form: QFormLayout, path: tuple[str, ...], schema: dict[str, Any], parent: QWidget
    ) -> None:
        field = SchemaField(path, schema, parent)
        label = QLabel(_LABELS.get(path[-1], path[-1].replace("_", " ")), parent)
        label.setToolTip(schema.get("description", ""))
        cell = QWidget(parent)
        cell_layout = QVBoxLayout(cell)
        cell_layout.setContentsMargins(0, 0, 0, 0)
        cell_layout.setSpacing(1)
        cell_layout.addWidget(field.editor)
        cell_layout.addWidget(field.error_label)
        form.addRow(label, cell)
        self._fields[field.key] = field

    def _connect_signals(self) -> None:
        for field in self._fields.values():
            field.connect(self._on_field_edited)
        self.model_combo.currentTextChanged.connect(self._on_field_edited)
        self.preset_combo.activated.connect(self._on_preset_combo_activated)
        self.browse_model_button.clicked.connect(self._on_browse_model_button_clicked)
        self.load_button.clicked.connect(self._on_load_button_clicked)
        self.save_yaml_button.clicked.connect(self._on_save_yaml_button_clicked)
        self.save_db_button.clicked.connect(self._on_save_db_button_clicked)
        self.configs_combo.activated.connect(self._on_configs_combo_activated)

    # --- public API ---------------------------------------------------------------------------

    def field(self, key: str) -> SchemaField:
        """The form field for a dotted key such as ``training.learning_rate``."""
        return self._fields[key]

    def set_recipe(self, recipe: TrainingRecipe, *, validate: bool = True) -> None:
        """Show a recipe in the form."""
        data = recipe.model_dump(mode="json")
        # The carried sections have no fields in the form; they travel with the recipe.
        self._carried = {key: data[key] for key in _CARRIED if data.get(key) is not None}
        for key, field in self._fields.items():
            value: Any = data
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            field.set_value(value)
        with QSignalBlocker(self.model_combo):
            self.model_combo.setCurrentText(recipe.model)
        if validate:
            self._revalidate()

    def set_dataset_path(self, path: str) -> None:
        """Train on this dataset."""
        field = self._fields["dataset.path"]
        field.set_value(path)
        self._revalidate()

    def set_dataset_mapping(self, fmt: str, columns: dict[str, str]) -> None:
        """Read the dataset as ``fmt`` (``auto`` detects it), renaming ``columns``."""
        self._fields["dataset.format"].set_value(fmt)
        self._fields["dataset.columns"].set_value(dict(columns))
        self._revalidate()

    def model_settings(self) -> tuple[str, int]:
        """The model the form names and its ``training.max_seq_length`` (512 while invalid)."""
        data = self.form_data()
        length = data.get("training", {}).get("max_seq_length")
        valid = isinstance(length, int) and not isinstance(length, bool) and length >= 8
        return str(data.get("model") or ""), length if valid else 512

    def set_model(self, model: str) -> None:
        """Train this model (``starter``, a folder or a hub id)."""
        self.model_combo.setCurrentText(model)
        self._revalidate()

    def apply_preset(self, name: str) -> bool:
        """Apply the preset called ``name`` (keeping the chosen dataset); returns whether found."""
        index = self.preset_combo.findText(name)
        if index < 0:
            return False
        self.preset_combo.setCurrentIndex(index)
        self._on_preset_combo_activated(index)
        return True

    def set_device_memory(self, total_bytes: int | None, *, on_gpu: bool) -> None:
        """Tell the estimate how much memory the training device has."""
        self._device_memory = total_bytes
        self._on_gpu = on_gpu
        self._update_estimate()

    def preset_names(self) -> list[str]:
        """The presets offered."""
        return [self.preset_combo.itemText(i) for i in range(self.preset_combo.count())]

    def save_state(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.model_dump(mode="json") if self.recipe is not None else None,
            "recent_models": self._recent_models[-10:],
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        for model in state.get("recent_models", []):
            if isinstance(model, str) and Path(model).is_dir():
                self._remember_model(model)
        data = state.get("recipe")
        if isinstance(data, dict):
            try:
                self.set_recipe(TrainingRecipe.model_validate(data))
            except ValidationError:
                logger.info("saved recipe no longer valid; keeping the defaults")

    def shutdown(self) -> None:
        self._shut_down = True
        if self._scan is not None:
            self._scan.cancel()

    # --- validation ---------------------------------------------------------------------------

    def form_data(self) -> dict[str, Any]:
        """The form's content as recipe data (may be invalid)."""
        data: dict[str, Any] = {"model": self.model_combo.currentText().strip()}
        data.update(getattr(self, "_carried", {}))
        for key, field in self._fields.items():
            node = data
            *parents, last = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = field.value()
        return data

    @safe_slot()
    def _on_field_edited(self) -> None:
        self._revalidate()

    def _revalidate(self) -> None:
        data = self.form_data()
        errors: dict[str, str] = {}
        recipe: TrainingRecipe | None = None
        try:
            recipe = TrainingRecipe.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                key = ".".join(str(part) for part in error["loc"])
                message = str(error["msg"]).removeprefix("Value error, ")
                if key == "dataset.path" and not data.get("dataset", {}).get("path"):
                    message = "Pick a dataset in the Datasets panel, or type a path."
                errors.setdefault(key, message)
        self.errors = errors
        for key, field in self._fields.items():
            field.show_error(errors.get(key) or _nested_error(errors, key))
        for section, label in self._section_errors.items():
            section_message = errors.get(section) if section else None
            label.setText(section_message or "")
            label.setVisible(bool(section_message))
        model_error = errors.get("model")
        self.model_error.setText(model_error or "")
        self.model_error.setVisible(bool(model_error))
        was_valid = self.recipe is not None
        if recipe is not None:
            self.recipe = recipe
            self.recipe_changed.emit(recipe)
        else:
            self.recipe = None
        if was_valid != (recipe is not None):
            self.validity_changed.emit(recipe is not None)
        settings = self.model_settings()
        if settings != self._model_settings:
            self._model_settings = settings
            self.model_changed.emit(*settings)
        self._update_estimate()

    @property
    def is_valid(self) -> bool:
        """Whether the form holds a valid recipe."""
        return self.recipe is not None

    # --- memory estimate ----------------------------------------------------------------------

    def _update_estimate(self) -> None:
        data = self.form_data()
        training = data.get("training", {})
        try:
            batch = int(training.get("per_device_train_batch_size"))
            seq = int(training.get("max_seq_length"))
            rank = int(data.get("lora", {}).get("r"))
        except (TypeError, ValueError):
            self.memory_label.setText("Fix the fields above to see an estimate.")
            return
        shape = find_model_shape(str(data.get("model", "")))
        if shape is None:
            self.memory_label.setText(
                "No estimate: the model's config.json is not on this machine yet."
            )
            return
        estimate = estimate_memory(
            shape,
            method=str(data.get("method", "lora")),
            batch_size=batch,
            seq_length=seq,
            precision=str(training.get("precision", "auto")),
            lora_rank=rank,
            gradient_checkpointing=bool(training.get("gradient_checkpointing")),
            on_gpu=self._on_gpu,
        )
        rows = [
            ("Weights", estimate.weights),
            ("Gradients", estimate.gradients),
            ("Optimizer", estimate.optimizer),
            ("Activations", estimate.activations),
        ]
        table = "".join(
            f"<tr><td>{name}</td><td align='right'>{format_bytes(size)}</td></tr>"
            for name, size in rows
        )
        text = (
            f"<table width='100%'>{table}<tr><td><b>Total</b></td>"
            f"<td align='right'><b>{format_bytes(estimate.total)}</b></td></tr></table>"
            f"<span style='color:gray'>{shape.parameters / 1e6:,.1f} M parameters, "
            f"{estimate.trainable_parameters / 1e6:,.2f} M trained</span>"
        )
        if self._device_memory and estimate.total > self._device_memory:
            text += (
                f"<p style='color:#dc2626'><b>More than the device's "
                f"{format_bytes(self._device_memory)}.</b> Lower the batch size or sequence "
                "length, use LoRA/QLoRA, or enable gradient checkpointing.</p>"
            )
        self.memory_label.setText(text)
        self.memory_over = bool(self._device_memory and estimate.total > self._device_memory)

    # --- presets, models, files ---------------------------------------------------------------

    def _load_presets(self) -> None:
        self._presets = {}
        paths = sorted(self._presets_dir.glob("*.y*ml")) if self._presets_dir.is_dir() else []
        for path in paths:
            try:
                self._presets[path.stem] = load_recipe(path)
            except ConfigError as exc:
                logger.info("preset %s skipped: %s", path, exc)
        with QSignalBlocker(self.preset_combo):
            self.preset_combo.clear()
            self.preset_combo.addItems(list(self._presets))
            self.preset_combo.setCurrentIndex(-1)
            self.preset_combo.setPlaceholderText("Choose a preset…" if self._presets else "(none)")

    @safe_slot()
    def _on_preset_combo_activated(self, index: int) -> None:
        preset = self._presets.get(self.preset_combo.itemText(index))
        if preset is None:
            return
        current = self._fields["dataset.path"].value()
        self.set_recipe(preset, validate=False)
        if current:
            self._fields["dataset.path"].set_value(current)
        self._revalidate()

    def _scan_models(self) -> None:
        if self._shut_down:
            return
        self._scan = run_in_thread(_cached_models, on_return=self._on_scan_returned)

    @safe_slot()
    def _on_scan_returned(self, models: list[str]) -> None:
        for model in models:
            if self.model_combo.findText(model) < 0:
                self.model_combo.addItem(model)
                self.model_combo.setItemData(
                    self.model_combo.count() - 1,
                    "In the Hugging Face cache",
                    Qt.ItemDataRole.ToolTipRole,
                )

    def _remember_model(self, folder: str) -> None:
        if folder not in self._recent_models:
            self._recent_models.append(folder)
        if self.model_combo.findText(folder) < 0:
            self.model_combo.addItem(folder)

    @safe_slot()
    def _on_browse_model_button_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder", str(Path.home()))
        if folder:
            self._remember_model(folder)
            self.set_model(folder)

    @safe_slot()
    def _on_load_button_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a recipe", str(self._presets_dir), "Recipes (*.yaml *.yml *.json)"
        )
        if path:
            self.load_file(Path(path))

    def load_file(self, path: Path) -> None:
        """Load a recipe file into the form.

        Raises:
            ConfigError: If the file is not a valid recipe.
        """
        self.set_recipe(load_recipe(path))
        notify.info(f"Recipe {path.name} loaded.")

    def export_file(self, path: Path) -> None:
        """Write the current recipe as YAML.

        Raises:
            ConfigError: If the form is not valid.
        """
        if self.recipe is None:
            raise ConfigError("The recipe has errors; fix the fields marked in red first.")
        text = yaml.safe_dump(self.recipe.model_dump(mode="json"), sort_keys=False)
        path.write_text(text, encoding="utf-8")
        notify.info(f"Recipe written to {path}.")

    @safe_slot()
    def _on_save_yaml_button_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export the recipe", str(Path.home() / "recipe.yaml"), "YAML (*.yaml *.yml)"
        )
        if path:
            self.export_file(Path(path))

    @safe_slot()
    def _on_save_db_button_clicked(self) -> None:
        self.save_to_database()

    def save_to_database(self, name: str | None = None) -> TrainingConfig | None:
        """Save the recipe as a versioned config (asking for a name the first time).

        Raises:
            ConfigError: If the form is not valid.
            ConflictError: If someone saved the same config since it was loaded.
        """
        if self.recipe is None:
            raise ConfigError("The recipe has errors; fix the fields marked in red first.")
        data = self.recipe.model_dump(mode="json")
        if self._config is not None and name is None:
            config = self._experiments.save_training_config(
                self._config.id, data, expected_version=self._config.version
            )
        else:
            if name is None:
                name, ok = QInputDialog.getText(
                    self, "Save recipe", "Name:", text=self.recipe.name or "my-recipe"
                )
                if not ok or not name.strip():
                    return None
            try:
                config = self._experiments.create_training_config(name.strip(), data)
            except ConflictError as exc:
                raise ConflictError(
                    f"A config called {name!r} exists already; choose another name."
                ) from exc
        self._config = config
        notify.info(f"Saved config {config.name} (version {config.version}).")
        self._refresh_configs()
        return config

    def _refresh_configs(self) -> None:
        run_in_thread(self._experiments.list_training_configs, on_return=self._on_configs_returned)

    @safe_slot()
    def _on_configs_returned(self, configs: list[TrainingConfig]) -> None:
        self._configs = {f"{c.name} (v{c.version})": c for c in configs}
        with QSignalBlocker(self.configs_combo):
            self.configs_combo.clear()
            self.configs_combo.addItems(list(self._configs))
            self.configs_combo.setCurrentIndex(-1)

    @safe_slot()
    def _on_configs_combo_activated(self, index: int) -> None:
        config = self._configs.get(self.configs_combo.itemText(index))
        if config is not None:
            self.set_recipe(TrainingRecipe.model_validate(config.recipe))
            self._config = config


def _nested_error(errors: dict[str, str], key: str) -> str | None:
    # An error inside a list field (lora.target_modules.0) belongs to the field.
    for where, message in errors.items():
        if where.startswith(key + "."):
            return message
    return None


def _cached_models() -> list[str]:
    """Model repositories in the Hugging Face cache (runs on a worker thread)."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
    except Exception:
        logger.debug("no Hugging Face cache to scan", exc_info=True)
        return []
    return sorted(repo.repo_id for repo in info.repos if repo.repo_type == "model")

"""The training recipe: what to train, on what data, and how.

A recipe is a validated, immutable pydantic model read from YAML or JSON. Its field names follow
Hugging Face's (``learning_rate``, ``per_device_train_batch_size``, ``lora_alpha``...) so that users
coming from ``transformers`` and ``peft`` feel at home. Every validation problem is reported in one
:class:`~codetune_studio.core.errors.ConfigError` whose message names the key path, the value, what is
allowed and, for a misspelt key, the nearest valid one.

This module imports no ML library: the window's parameter form is generated from its JSON schema.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from codetune_studio.core.errors import ConfigError, DatasetError
from codetune_studio.core.evaluation import load_tasks

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "DatasetFormat",
    "DatasetSpec",
    "EvaluationSpec",
    "LaunchSpec",
    "LoraSpec",
    "Method",
    "Precision",
    "ReportTarget",
    "SchedulerType",
    "TrainingRecipe",
    "TrainingSpec",
    "apply_overrides",
    "check_evaluation_tasks",
    "load_recipe",
    "parse_recipe",
    "recipe_hash",
    "safe_yaml_load",
]

logger = logging.getLogger(__name__)

#: The recipe layout this code writes and reads. Older layouts go through a migration first.
CURRENT_SCHEMA_VERSION = 1

Method = Literal["lora", "dora", "qlora", "full", "prompt_tuning"]
DatasetFormat = Literal["auto", "alpaca", "chat", "sharegpt", "completion", "text", "code"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
SchedulerType = Literal["linear", "cosine", "constant", "constant_with_warmup"]
ReportTarget = Literal["tensorboard"]

# allow_inf_nan=False: ``.inf`` in a learning rate trains to NaN; refuse it up front.
_FROZEN = ConfigDict(frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False)

#: A recipe is a few hundred bytes; anything near this is not a recipe (or is hostile).
MAX_RECIPE_BYTES = 1_000_000
#: Nodes a YAML document may expand to once its aliases are followed (an alias bomb expands
#: to billions from a few lines; a real recipe has a few hundred).
MAX_YAML_NODES = 100_000


def _reject_bool(value: object) -> object:
    # YAML turns "yes"/"on" into True, and pydantic's lax mode would then read it as 1.0.
    if isinstance(value, bool):
        raise ValueError("must be a number")  # noqa: TRY004 - pydantic wants ValueError
    return value


# Whole numbers and switches are strict (no True -> 1, no "5" -> 5); numbers stay lax because
# PyYAML reads 2e-4 (no dot) as a string, and users write it that way.
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Float = Annotated[float, BeforeValidator(_reject_bool)]


class DatasetSpec(BaseModel):
    """Where the training data comes from and how to read it."""

    model_config = _FROZEN

    path: str = Field(
        min_length=1,
        description="A JSON, JSONL, CSV, Parquet or text file, a folder of code files, or a hub id.",
    )
    format: DatasetFormat = Field("auto", description="Record layout; 'auto' detects it.")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Maps the format's field names to the file's, e.g. {prompt: question}.",
    )
    validation_split: Float = Field(
        0.1, ge=0.0, lt=0.5, description="Share of rows held out for evaluation."
    )
    drop_unparseable: Bool = Field(
        False,
        description=(
            "Drop rows whose completion holds Python code (```python blocks, or the whole "
            "completion for code data) that does not parse; each is listed in the data report."
        ),
    )
    skip_invalid_rows: Bool = Field(
        False,
        description=(
            "Train without the malformed rows (bad JSON, wrong shape, wrong field types) instead "
            "of refusing the dataset; each skipped row is listed in the run log."
        ),
    )


class TrainingSpec(BaseModel):
    """Optimisation settings, named as in ``transformers.TrainingArguments``.

    ``max_steps``, when set, wins over ``num_train_epochs`` (as in ``transformers``); at least one
    of the two must be set.
    """

    model_config = _FROZEN

    max_steps: Int | None = Field(None, ge=1, description="Optimizer steps to run.")
    num_train_epochs: Float | None = Field(
        3.0, gt=0.0, description="Passes over the data, used when max_steps is not set."
    )
    learning_rate: Float = Field(2.0e-4, gt=0.0, le=1.0)
    per_device_train_batch_size: Int = Field(8, ge=1, le=4096)
    gradient_accumulation_steps: Int = Field(1, ge=1, le=4096)
    max_seq_length: Int = Field(512, ge=8, le=1_048_576)
    packing: Bool = True
    train_on_completions_only: Bool = True
    warmup_ratio: Float = Field(0.03, ge=0.0, lt=1.0)
    lr_scheduler_type: SchedulerType = "cosine"
    weight_decay: Float = Field(0.0, ge=0.0)
    seed: Int = Field(42, ge=0, lt=2**32)
    precision: Precision = "auto"
    gradient_checkpointing: Bool = False
    eval_steps: Int | None = Field(50, ge=1, description="Evaluate every N steps; null: never.")
    save_steps: Int | None = Field(50, ge=1, description="Checkpoint every N steps; null: never.")
    save_total_limit: Int | None = Field(
        3, ge=1, description="Checkpoints kept (newest first); null: keep all."
    )
    logging_steps: Int = Field(1, ge=1)
    max_grad_norm: Float = Field(1.0, ge=0.0, description="Gradient clipping; 0 disables it.")
    max_nonfinite_steps: Int = Field(
        3,
        ge=1,
        le=1000,
        description="Stop the run as failed after this many consecutive steps whose loss is NaN "
        "or infinite (the weights are then ruined; the message names likely fixes).",
    )
    report_to: list[ReportTarget] = Field(
        default_factory=list,
        description="Experiment trackers, e.g. [tensorboard]: logs go to <output_dir>/tensorboard.",
    )

    @field_validator("report_to", mode="before")
    @classmethod
    def _listify_report_to(cls, value: object) -> object:
        # transformers accepts a bare name and "none" here; so do we.
        if value is None or value == "none":
            return []
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_length(self) -> TrainingSpec:
        if self.max_steps is None and self.num_train_epochs is None:
            raise ValueError("set max_steps or num_train_epochs")
        return self


class LoraSpec(BaseModel):
    """LoRA (and DoRA/QLoRA) adapter settings, named as in ``peft.LoraConfig``."""

    model_config = _FROZEN

    r: Int = Field(8, ge=1, le=1024, description="LoRA rank.")
    lora_alpha: Int = Field(16, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: Float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: Literal["auto"] | list[str] = Field(
        "auto", description="'auto' detects the attention/MLP projections, or a list of names."
    )

    @field_validator("target_modules", mode="before")
    @classmethod
    def _check_targets(cls, value: object) -> object:
        # Checked by hand: a union's own errors list one problem per member, which reads badly.
        if value == "auto":
            return value
        if (
            isinstance(value, list | tuple)
            and value
            and all(isinstance(item, str) and item for item in value)
        ):
            return list(value)
        raise ValueError("must be 'auto' or a non-empty list of module names")


MixedPrecision = Literal["no", "fp16", "bf16", "fp8"]


class LaunchSpec(BaseModel):
    """How to start the worker across processes and machines, in ``accelerate launch``'s terms.

    When a recipe has this section, the window and the queue start the worker through
    ``accelerate launch`` with these options, so one run can use every GPU of a workstation (or
    several machines). Field names are the launcher's own flags.
    """

    model_config = _FROZEN

    num_processes: Int = Field(1, ge=1, le=1024, description="Processes in total (GPUs).")
    num_machines: Int = Field(1, ge=1, le=1024, description="Machines taking part.")
    machine_rank: Int = Field(0, ge=0, description="This machine's rank (0: the main one).")
    main_process_ip: str | None = Field(None, description="The main machine's address.")
    main_process_port: Int | None = Field(None, ge=1, le=65535)
    mixed_precision: MixedPrecision | None = Field(None, description="Overrides precision.")
    gpu_ids: str | None = Field(None, description="Comma-separated GPU ids, or 'all'.")
    use_cpu: Bool = Field(False, description="Force CPU processes (tests, CPU-only boxes).")
    dynamo_backend: str | None = Field(None, description="torch.compile backend, e.g. inductor.")


class EvaluationSpec(BaseModel):
    """Code evaluation while training: pass@1 on a task file at every ``training.eval_steps``.

    The model being trained answers each task (on the main process), every answer runs with its
    tests in the sandbox, and ``eval_pass@1`` (and ``eval_pass@N`` for N samples) is stored
    beside the eval loss. A failure here is a warning; it never stops the training.
    """

    model_config = _FROZEN

    tasks: str = Field(
        min_length=1,
        description="A JSONL task file ({task_id, prompt, tests, entry_point} a line, and "
        "optionally answer_prefix: the text the answer is made to start with, such as the "
        "function's signature), relative to the recipe.",
    )
    samples: Int = Field(1, ge=1, le=100, description="Answers per task (n of pass@k).")
    max_new_tokens: Int = Field(128, ge=1, le=32768, description="Length limit of each answer.")
    temperature: Float = Field(0.0, ge=0.0, le=5.0, description="0: greedy decoding.")
    max_tasks: Int | None = Field(
        None, ge=1, description="Evaluate only the first N tasks; null: all of them."
    )
    chat: Bool = Field(
        True,
        description="Ask each task as a user turn through the chat template; false: the prompt "
        "is plain text for the model to continue.",
    )


class TrainingRecipe(BaseModel):
    """Everything a training run needs, as a user writes it in a recipe file."""

    model_config = _FROZEN

    schema_version: Int = Field(CURRENT_SCHEMA_VERSION, description="Recipe layout version.")
    name: str | None = Field(None, description="A label for runs made from this recipe.")
    model: str = Field(
        "starter",
        min_length=1,
        description="'starter', a local model folder, or a hub id (network needed once).",
    )
    method: Method = "lora"
    dataset: DatasetSpec
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    lora: LoraSpec = Field(default_factory=LoraSpec)
    output_dir: Path | None = Field(None, description="Default: <data dir>/runs/<run id>.")
    trust_remote_code: Bool = Field(False, description="Run model code from the model's folder.")
    allow_pickle: Bool = Field(
        False, description="Load pickled (.bin) weights; only safetensors otherwise."
    )
    launch: LaunchSpec | None = Field(
        None, description="Start through `accelerate launch` with these options."
    )
    evaluation: EvaluationSpec | None = Field(
        None, description="Measure pass@1 on code tasks at every eval step; null: off."
    )

    @field_validator("schema_version")
    @classmethod
    def _check_version(cls, value: int) -> int:
        if value != CURRENT_SCHEMA_VERSION:
            raise ValueError(f"must be {CURRENT_SCHEMA_VERSION} (this studio's recipe version)")
        return value


# --- reading and validating -------------------------------------------------------------------


def parse_recipe(data: Mapping[str, Any], *, source: str) -> TrainingRecipe:
    """Validate a recipe given as plain data (a parsed YAML or JSON document).

    Args:
        data: The recipe's keys and values.
        source: Where the data came from (a file name, ``"--set"``), used in the error message.

    Returns:
        The validated recipe.

    Raises:
        ConfigError: If the data is not a mapping or any key or value is invalid; the message
            lists every problem.
    """
    try:
        return TrainingRecipe.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors()]
        raise ConfigError(f"{source}: invalid recipe: " + "; ".join(problems)) from None


def load_recipe(path: Path) -> TrainingRecipe:
    """Read and validate a recipe file (YAML, or JSON by its ``.json`` suffix).

    A relative ``output_dir`` is relative to the recipe file. A relative ``dataset.path`` or ``model``
    that exists next to the recipe file is made absolute,
    so a recipe can name its data relative to itself and still run from any folder. Otherwise it is
    kept as written (relative to the working folder, or a hub id).

    Args:
        path: The recipe file.

    Returns:
        The validated recipe.

    Raises:
        ConfigError: If the file cannot be read or parsed, or the recipe is invalid.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_RECIPE_BYTES:
            raise ConfigError(
                f"{path}: {size} bytes is too large for a recipe (at most {MAX_RECIPE_BYTES}); "
                "pick the recipe file, not the data"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"Recipe file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read recipe {path}: {exc.strerror or exc}") from None
    data = _parse_document(text, path)
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path}: a recipe must be a mapping of keys to values, got {_kind(data)}"
        )
    recipe = parse_recipe(_anchor_paths(dict(data), path.parent), source=str(path))
    check_evaluation_tasks(recipe, source=str(path))
    return recipe


def check_evaluation_tasks(recipe: TrainingRecipe, *, source: str) -> None:
    """Check that the recipe's evaluation task file exists and every line of it is a task.

    Done when a recipe file is read (not in the schema itself: the window validates the form
    on every keystroke, and a recipe stored in the database may come from another machine).

    Args:
        recipe: The validated recipe.
        source: Where the recipe came from, for the message.

    Raises:
        ConfigError: The file is missing or malformed; the message names ``file:line``.
    """
    if recipe.evaluation is None:
        return
    path = Path(recipe.evaluation.tasks).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{source}: evaluation.tasks: task file not found: {path} (a JSONL file with one "
            "{task_id, prompt, tests, entry_point} object a line, relative to the recipe)"
        )
    try:
        load_tasks(path)
    except DatasetError as exc:
        raise ConfigError(f"{source}: evaluation.tasks: {exc}") from None


def apply_overrides(recipe: TrainingRecipe, overrides: Sequence[str]) -> TrainingRecipe:
    """Return a copy of ``recipe`` with ``key.path=value`` overrides applied and re-validated.

    Values are parsed as YAML scalars, so ``training.max_steps=5`` sets an integer,
    ``training.packing=false`` a boolean and ``output_dir=null`` clears a value.

    Args:
        recipe: The recipe to start from.
        overrides: Items such as ``"training.max_steps=5"`` or ``"lora.target_modules=[q, v]"``.

    Returns:
        The changed, validated recipe (``recipe`` itself is unchanged).

    Raises:
        ConfigError: If an item is not ``key=value``, names an unknown key, or gives an invalid
            value.
    """
    data: dict[str, Any] = recipe.model_dump(mode="json")
    problems: list[str] = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"{item!r}: expected key=value, e.g. training.max_steps=5")
            continue
        try:
            value = safe_yaml_load(raw) if raw.strip() else ""
        except (yaml.YAMLError, ConfigError):
            value = raw  # not a YAML scalar: keep the text and let validation judge it
        problem = _set_path(data, key.split("."), value)
        if problem:
            problems.append(problem)
    if problems:
        raise ConfigError("--set: " + "; ".join(problems))
    changed = parse_recipe(data, source="--set")
    if changed.evaluation != recipe.evaluation:
        check_evaluation_tasks(changed, source="--set")  # a new task file is checked too
    return changed


def recipe_hash(recipe: TrainingRecipe) -> str:
    """A stable fingerprint of what a recipe trains (its ``name`` excluded).

    Args:
        recipe: The recipe.

    Returns:
        A 64-character hexadecimal SHA-256 of the recipe's canonical JSON.
    """
    # A recipe without a launch section hashes as it did before the section existed. The
    # evaluation section never counts: it measures the model without changing a weight (its
    # sampling runs in a forked RNG), so a model version's hash stays that of its training.
    exclude = {"name", "evaluation"}
    if recipe.launch is None:
        exclude.add("launch")
    payload = recipe.model_dump(mode="json", exclude=exclude)
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --- helpers ----------------------------------------------------------------------------------


def _parse_document(text: str, path: Path) -> object:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
        except (ValueError, RecursionError) as exc:  # a 5000-digit number, 100k nested lists
            raise ConfigError(f"{path}: invalid JSON: {_short(exc)}") from None
    try:
        data = safe_yaml_load(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{path}: invalid YAML: {_short(exc)}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {reason}") from None
    if data is None:
        raise ConfigError(f"{path}: the recipe is empty; it needs at least a 'dataset' section")
    return data


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses documents whose aliases expand beyond a bound."""

    def construct_document(self, node: yaml.Node) -> Any:
        _check_expansion(node)
        return super().construct_document(node)


def _check_expansion(root: yaml.Node) -> None:
    """Count the nodes ``root`` expands to, each shared (aliased) node once per use."""
    sizes: dict[int, int] = {}
    # Children before parents, without recursion: a shared node's size is computed once.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, expanded = stack.pop()
        key = id(node)
        if key in sizes and not expanded:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if not expanded:
            if key in on_path:
                raise ConfigError("a YAML alias refers to itself; recipes cannot be recursive")
            on_path.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        on_path.discard(key)
        total = 1 + sum(sizes.get(id(child), 1) for child in children)
        if total > MAX_YAML_NODES:
            raise ConfigError(
                f"the YAML expands to more than {MAX_YAML_NODES} values (an alias bomb?); "
                "write the recipe without repeated aliases"
            )
        sizes[key] = total


def safe_yaml_load(text: str) -> Any:
    """Parse YAML with the safe loader, refusing alias bombs.

    Args:
        text: A YAML document.

    Returns:
        The parsed data (plain mappings, lists and scalars).

    Raises:
        ConfigError: The document expands beyond :data:`MAX_YAML_NODES` values.
        yaml.YAMLError: It is not valid YAML.
    """
    return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _anchor_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    dataset = data.get("dataset")
    if isinstance(dataset, Mapping) and isinstance(dataset.get("path"), str):
        anchored = _anchor(dataset["path"], base)
        if anchored is not None:
            data["dataset"] = {**dataset, "path": anchored}
    output_dir = data.get("output_dir")
    if (
        isinstance(output_dir, str)
        and output_dir
        and not Path(output_dir).expanduser().is_absolute()
    ):
        # The recipe's own folder, not the working one: the run lands in the same place
        # whichever folder `train` is started from.
        data["output_dir"] = str((base / output_dir).resolve())
    evaluation = data.get("evaluation")
    if isinstance(evaluation, Mapping) and isinstance(evaluation.get("tasks"), str):
        anchored = _anchor(evaluation["tasks"], base)
        if anchored is not None:
            data["evaluation"] = {**evaluation, "tasks": anchored}
    model = data.get("model")
    if isinstance(model, str) and model != "starter":
        anchored = _anchor(model, base)
        if anchored is not None:
            data["model"] = anchored
    return data


def _anchor(value: str, base: Path) -> str | None:
    candidate = Path(value).expanduser()
    if candidate.is_absolute() or not value:
        return None
    beside = base / candidate
    return str(beside.resolve()) if beside.exists() else None


def _set_path(data: dict[str, Any], parts: list[str], value: object) -> str | None:
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            dotted = ".".join(parts[: depth + 1])
            if isinstance(node, dict) and part not in node:
                return f"{dotted}: unknown key{_suggest(part, node.keys())}"
            return f"{dotted}: is not a section, cannot set {'.'.join(parts)}"
        node = child
    # An unknown last key is left for validation, which names it with a suggestion.
    node[parts[-1]] = value
    return None


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The recipe section a location points into, to suggest its field names."""
    model: type[BaseModel] = TrainingRecipe
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        # An optional section (launch, evaluation) is annotated ``Spec | None``.
        options = typing.get_args(annotation) or (annotation,)
        section = next(
            (o for o in options if isinstance(o, type) and issubclass(o, BaseModel)), None
        )
        if section is None:
            return None
        model = section
    return model


def _suggest(key: str, choices: Iterable[str]) -> str:
    matches = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}

_TYPE_WORDS = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "dict_type": "must be a mapping of names to names",
    "model_type": "must be a section (a mapping of keys to values)",
    "model_attributes_type": "must be a section (a mapping of keys to values)",
    "list_type": "must be a list",
    "path_type": "must be a folder path",
    "string_too_short": "must not be empty",
    "finite_number": "must be a finite number",
}


def _describe(error: ErrorDetails) -> str:
    """One problem as ``key.path: got VALUE, must be ...``."""
    loc = error["loc"]
    where = ".".join(_key_text(part) for part in loc) or "recipe"
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "extra_forbidden":
        section = _model_at(loc[:-1])
        choices = section.model_fields if section is not None else {}
        return f"{where}: unknown key{_suggest(str(loc[-1]), choices)}"
    if kind == "missing":
        return f"{where}: required key is missing"
    if kind in _BOUNDS:
        symbol, name = _BOUNDS[kind]
        return f"{where}: got {_show(value)}, must be {symbol} {ctx.get(name)}"
    if kind == "literal_error":
        return f"{where}: got {_show(value)}, must be one of {ctx.get('expected')}"
    if kind in _TYPE_WORDS:
        return f"{where}: got {_show(value)}, {_TYPE_WORDS[kind]}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "value_error" and (not loc or isinstance(value, Mapping)):
        return f"{where}: {message}" if loc else message
    return f"{where}: got {_show(value)}, {message}"


def _key_text(part: int | str) -> str:
    """A key as it reads in a one-line message: quoted when it holds spaces or control codes."""
    text = str(part)
    return text if text.isprintable() and text.strip() == text and text else repr(text)


def _show(value: object) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__

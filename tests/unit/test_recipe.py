"""The training recipe: defaults, validation messages, files, overrides, hashing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codetune_studio.core.errors import ConfigError
from codetune_studio.core.recipe import (
    TrainingRecipe,
    apply_overrides,
    load_recipe,
    parse_recipe,
    recipe_hash,
)

RESOURCES = Path(__file__).resolve().parents[2] / "resources"
MINIMAL: dict[str, Any] = {"dataset": {"path": "data.jsonl"}}

ISSUE_EXAMPLE = """\
model: starter
method: lora
dataset:
  path: resources/datasets/python-instructions.jsonl
  format: auto
  columns: {}
  validation_split: 0.1
training:
  max_steps: 200
  learning_rate: 2.0e-4
  per_device_train_batch_size: 8
  gradient_accumulation_steps: 1
  max_seq_length: 512
  packing: true
  train_on_completions_only: true
  warmup_ratio: 0.03
  lr_scheduler_type: cosine
  weight_decay: 0.0
  seed: 42
  precision: auto
  gradient_checkpointing: false
  eval_steps: 50
  save_steps: 50
  save_total_limit: 3
lora: {r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: auto}
output_dir: null
trust_remote_code: false
"""


def _with(section: str | None, **values: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(MINIMAL))
    if section is None:
        data.update(values)
    else:
        data.setdefault(section, {}).update(values)
    return data


def test_minimal_recipe_gets_hugging_face_defaults():
    recipe = parse_recipe(MINIMAL, source="test")

    assert recipe.model == "starter"
    assert recipe.method == "lora"
    assert recipe.dataset.format == "auto"
    assert recipe.dataset.validation_split == 0.1
    assert recipe.training.max_steps is None
    assert recipe.training.num_train_epochs == 3.0
    assert recipe.training.logging_steps == 1
    assert recipe.training.max_grad_norm == 1.0
    assert (recipe.lora.r, recipe.lora.lora_alpha, recipe.lora.target_modules) == (8, 16, "auto")
    assert (recipe.trust_remote_code, recipe.allow_pickle, recipe.output_dir) == (
        False,
        False,
        None,
    )


def test_issue_example_loads_as_written(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(ISSUE_EXAMPLE, encoding="utf-8")

    recipe = load_recipe(path)

    assert recipe.training.max_steps == 200
    assert recipe.training.learning_rate == pytest.approx(2e-4)
    assert recipe.training.lr_scheduler_type == "cosine"
    assert recipe.dataset.path == "resources/datasets/python-instructions.jsonl"


def test_recipe_is_frozen():
    recipe = parse_recipe(MINIMAL, source="test")

    with pytest.raises(ValueError, match="frozen"):
        recipe.model = "other"


# Each row: the data, and the exact message fragments the one error must contain.
INVALID: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "misspelt training key",
        _with("training", learning_rat=1e-4),
        ["training.learning_rat: unknown key (did you mean 'learning_rate'?)"],
    ),
    (
        "misspelt top-level key",
        _with(None, methd="lora"),
        ["methd: unknown key (did you mean 'method'?)"],
    ),
    ("unknown key far from any", _with(None, zzz=1), ["zzz: unknown key"]),
    (
        "negative steps",
        _with("training", max_steps=-3),
        ["training.max_steps: got -3, must be >= 1"],
    ),
    (
        "zero learning rate",
        _with("training", learning_rate=0),
        ["training.learning_rate: got 0, must be > 0.0"],
    ),
    (
        "validation split too large",
        {"dataset": {"path": "x", "validation_split": 0.5}},
        ["dataset.validation_split: got 0.5, must be < 0.5"],
    ),
    (
        "unknown method",
        _with(None, method="lorax"),
        ["method: got 'lorax', must be one of 'lora', 'dora', 'qlora', 'full' or 'prompt_tuning'"],
    ),
    (
        "unknown scheduler",
        _with("training", lr_scheduler_type="step"),
        ["training.lr_scheduler_type: got 'step', must be one of 'linear', 'cosine'"],
    ),
    (
        "unknown format",
        {"dataset": {"path": "x", "format": "csv"}},
        ["dataset.format: got 'csv', must be one of 'auto', 'alpaca'"],
    ),
    (
        "string for an int",
        _with("training", per_device_train_batch_size="eight"),
        ["training.per_device_train_batch_size: got 'eight', must be a whole number"],
    ),
    (
        "bool for an int",
        _with("training", seed=True),
        ["training.seed: got true, must be a whole number"],
    ),
    (
        "float for an int",
        _with("training", max_seq_length=2.5),
        ["training.max_seq_length: got 2.5, must be a whole number"],
    ),
    (
        "bool for a float",
        _with("training", learning_rate=True),
        ["training.learning_rate: got true, must be a number"],
    ),
    (
        "int for a bool",
        _with("training", packing=1),
        ["training.packing: got 1, must be true or false"],
    ),
    (
        "no length at all",
        _with("training", max_steps=None, num_train_epochs=None),
        ["training: set max_steps or num_train_epochs"],
    ),
    (
        "bad target modules",
        _with("lora", target_modules="q_proj"),
        ["lora.target_modules: got 'q_proj', must be 'auto' or a non-empty list of module names"],
    ),
    ("empty target list", _with("lora", target_modules=[]), ["lora.target_modules: got []"]),
    ("missing dataset", {}, ["dataset: required key is missing"]),
    ("dataset without path", {"dataset": {}}, ["dataset.path: required key is missing"]),
    ("section is a scalar", _with(None, training=5), ["training: got 5, must be a section"]),
    ("future schema", _with(None, schema_version=2), ["schema_version: got 2, must be 1"]),
    (
        "several problems at once",
        _with("training", max_steps=0, warmup_ratio=2, learning_rat=1),
        [
            "training.max_steps: got 0, must be >= 1",
            "training.warmup_ratio: got 2, must be < 1.0",
            "training.learning_rat: unknown key (did you mean 'learning_rate'?)",
        ],
    ),
]


@pytest.mark.parametrize(
    ("data", "fragments"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_recipe_names_key_value_and_rule(data, fragments):
    with pytest.raises(ConfigError) as caught:
        parse_recipe(data, source="r.yaml")

    message = str(caught.value)
    assert message.startswith("r.yaml: invalid recipe: ")
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_load_json_and_yaml_give_the_same_recipe(tmp_path):
    data = _with("training", max_steps=7)
    (tmp_path / "r.json").write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "r.yaml").write_text("dataset: {path: data.jsonl}\ntraining: {max_steps: 7}\n")

    assert load_recipe(tmp_path / "r.json") == load_recipe(tmp_path / "r.yaml")


def test_relative_dataset_path_is_anchored_at_the_recipe_when_it_exists_there(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.jsonl").write_text("{}\n")
    (tmp_path / "r.yaml").write_text("dataset: {path: data/d.jsonl}\n")
    (tmp_path / "s.yaml").write_text("dataset: {path: user/hub-dataset}\n")

    assert load_recipe(tmp_path / "r.yaml").dataset.path == str(
        (tmp_path / "data/d.jsonl").resolve()
    )
    assert load_recipe(tmp_path / "s.yaml").dataset.path == "user/hub-dataset"


BAD_FILES: list[tuple[str, str, str]] = [
    ("r.yaml", "dataset: [unclosed\n", r"r\.yaml:2:1: invalid YAML"),
    ("r.json", '{"dataset": }', r"r\.json:1:13: invalid JSON"),
    ("r.yaml", "", r"r\.yaml: the recipe is empty"),
    ("r.yaml", "- a\n- b\n", r"r\.yaml: a recipe must be a mapping of keys to values, got a list"),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD_FILES)
def test_unreadable_recipe_files(tmp_path, name, text, message):
    (tmp_path / name).write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError, match=message):
        load_recipe(tmp_path / name)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(ConfigError, match="Recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


OVERRIDES: list[tuple[list[str], str, Any]] = [
    (["training.max_steps=5"], "training.max_steps", 5),
    (["training.learning_rate=1e-3"], "training.learning_rate", 1e-3),
    (["training.packing=false"], "training.packing", False),
    (["lora.target_modules=[q_proj, v_proj]"], "lora.target_modules", ["q_proj", "v_proj"]),
    (["output_dir=null"], "output_dir", None),
    (["name=my run"], "name", "my run"),
    (["dataset.columns={prompt: q}"], "dataset.columns", {"prompt": "q"}),
    (["training.seed=1", "training.seed=2"], "training.seed", 2),
]


@pytest.mark.parametrize(("items", "key", "expected"), OVERRIDES)
def test_overrides_parse_yaml_scalars(items, key, expected):
    recipe = apply_overrides(parse_recipe(MINIMAL, source="test"), items)

    value: Any = recipe
    for part in key.split("."):
        value = getattr(value, part)
    assert value == expected


BAD_OVERRIDES: list[tuple[list[str], str]] = [
    (["training.max_stepz=5"], "training.max_stepz: unknown key (did you mean 'max_steps'?)"),
    (["trainin.max_steps=5"], "--set: trainin: unknown key (did you mean 'training'?)"),
    (["max_steps"], "--set: 'max_steps': expected key=value"),
    (["model.name=x"], "--set: model: is not a section"),
    (["training.max_steps=-1"], "training.max_steps: got -1, must be >= 1"),
]


@pytest.mark.parametrize(("items", "fragment"), BAD_OVERRIDES)
def test_bad_overrides_are_reported(items, fragment):
    with pytest.raises(ConfigError) as caught:
        apply_overrides(parse_recipe(MINIMAL, source="test"), items)

    assert fragment in str(caught.value)


def test_hash_is_stable_and_ignores_the_name():
    base = parse_recipe(MINIMAL, source="test")
    renamed = base.model_copy(update={"name": "another label"})
    changed = apply_overrides(base, ["training.seed=7"])

    assert recipe_hash(base) == recipe_hash(parse_recipe(MINIMAL, source="again"))
    assert recipe_hash(base) == recipe_hash(renamed)
    assert recipe_hash(base) != recipe_hash(changed)
    assert len(recipe_hash(base)) == 64


def test_json_round_trip_is_lossless():
    recipe = apply_overrides(parse_recipe(MINIMAL, source="t"), ["output_dir=/tmp/out"])

    again = TrainingRecipe.model_validate_json(recipe.model_dump_json())

    assert again == recipe


SHIPPED = sorted((RESOURCES / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_recipe_loads(path):
    recipe = load_recipe(path)

    assert recipe.name
    if recipe.model == "starter":
        assert Path(recipe.dataset.path).is_file()


def test_all_presets_are_shipped():
    names = {p.name for p in SHIPPED}
    assert {"quickstart.yaml", "lora-7b-24gb.yaml", "qlora-laptop.yaml", "full-small.yaml"} <= names

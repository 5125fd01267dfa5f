"""Hostile model folders: truncated weights, no config, a foreign tokenizer, pickled weights.

For ``train`` (the recipe's ``model:``), ``generate``, ``eval`` and a merged ``export``, each
ends in one line naming the folder or file and the fix, exit 2, within a bounded time, with no
traceback; a planted pickle that would run ``os.system`` never runs. The training worker (the
window's path) gets the same check from the engine, so its run fails with the same line.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.cli import main
from codetune_studio.core.errors import ConfigError
from codetune_studio.engine.starter import resolve_model
from tests.trainer_helpers import save_tiny_model, write_completion_dataset, write_recipe

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(120)]


class _Marker:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch '{self.path}'",))


def _truncated(folder: Path, _marker: Path) -> str:
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    return "model.safetensors is truncated or damaged"


def _no_config(folder: Path, _marker: Path) -> str:
    (folder / "config.json").unlink()
    return "config.json"


def _small_embeddings(folder: Path, _marker: Path) -> str:
    # The tokenizer of a 259-token model next to weights with 200 embeddings.
    config = json.loads((folder / "config.json").read_text())
    save_tiny_model(folder.parent / "other", vocab_size=200)
    shutil.copy(folder.parent / "other" / "config.json", folder / "config.json")
    shutil.copy(folder.parent / "other" / "model.safetensors", folder / "model.safetensors")
    assert config["vocab_size"] == 300
    return "the tokenizer in"


def _foreign_special_tokens(folder: Path, _marker: Path) -> str:
    # Another model's chat tokens, added as specials past the end of this model's embeddings.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [f"<|extra_{i}|>" for i in range(60)]}
    )
    tokenizer.save_pretrained(folder)
    return "the tokenizer belongs to another model"


def _pickled(folder: Path, marker: Path) -> str:
    (folder / "model.safetensors").unlink()
    with (folder / "pytorch_model.bin").open("wb") as handle:
        pickle.dump({"model.embed_tokens.weight": _Marker(marker)}, handle)
    return "pytorch_model.bin: the model has only pickled weights"


CASES: dict[str, Callable[[Path, Path], str]] = {
    "truncated-safetensors": _truncated,
    "no-config": _no_config,
    "tokenizer-larger-than-embeddings": _small_embeddings,
    "foreign-special-tokens": _foreign_special_tokens,
    "pickled-weights-without-opt-in": _pickled,
}


@pytest.fixture
def hostile_model(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path, str]:
    """A broken model folder, the pickle marker's path and the expected message part."""
    folder = save_tiny_model(tmp_path / "assets" / "model")
    marker = tmp_path / "PICKLE-RAN"
    expected = CASES[request.param](folder, marker)
    return folder, marker, expected


def _command(name: str, folder: Path, tmp_path: Path) -> list[str]:
    if name == "train":
        data = write_completion_dataset(tmp_path / "data.jsonl")
        recipe = write_recipe(tmp_path / "recipe.json", folder, data, max_steps=1)
        return ["train", str(recipe), "--no-progress"]
    if name == "generate":
        return ["generate", str(folder), "--prompt", "hello", "--max-new-tokens", "2"]
    if name == "eval":
        tasks = tmp_path / "tasks.jsonl"
        task = {"task_id": "t", "prompt": "def f():", "tests": "assert True", "entry_point": "f"}
        tasks.write_text(json.dumps(task) + "\n")
        return ["eval", str(folder), "--tasks", str(tasks), "--no-analyzer"]
    return ["export", str(folder), "--out", str(tmp_path / "export"), "--format", "merged"]


@pytest.mark.parametrize("hostile_model", list(CASES), indirect=True)
@pytest.mark.parametrize("command", ["train", "generate", "eval", "export"])
def test_a_hostile_model_folder_is_one_line_and_exit_2(
    command: str,
    hostile_model: tuple[Path, Path, str],
    isolated_dirs: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    folder, marker, expected = hostile_model
    code = main(["--offline", *_command(command, folder, tmp_path)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    record_property("message", lines[-1][:110] if lines else "(none)")
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert expected in lines[0], err
    assert str(folder) in lines[0], err
    assert "Traceback" not in err
    assert not marker.exists(), "code from the pickle ran"
    if command == "train":  # a bad recipe: no run was planned, no run folder made
        runs = isolated_dirs / "runs"
        assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize("hostile_model", list(CASES), indirect=True)
def test_the_engine_refuses_it_too(hostile_model: tuple[Path, Path, str], tmp_path: Path) -> None:
    # The worker the window starts resolves the recipe's model here: same check, same line.
    folder, marker, expected = hostile_model
    with pytest.raises(ConfigError, match=r"^model: ") as caught:
        resolve_model(str(folder), data_dir=tmp_path, offline=True)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not marker.exists()


def test_pickled_weights_with_opt_in_pass_the_check(tmp_path: Path) -> None:
    folder = save_tiny_model(tmp_path / "model")
    marker = tmp_path / "PICKLE-RAN"
    _pickled(folder, marker)
    assert resolve_model(str(folder), data_dir=tmp_path, offline=True, allow_pickle=True) == (
        folder.resolve()
    )
    assert not marker.exists()  # checking reads names and sizes, never the pickle


def test_a_sound_model_folder_passes(tmp_path: Path) -> None:
    folder = save_tiny_model(tmp_path / "model")
    assert resolve_model(str(folder), data_dir=tmp_path, offline=True) == folder.resolve()

"""Checkpoints: data only, written atomically, verified before anything is loaded.

A checkpoint folder ``checkpoint-N`` holds only files the studio wrote and can read without
running code:

* ``trainable.safetensors``: only the parameters that train (the adapter, or every weight for
  a full fine-tune), loaded with safetensors (no pickle);
* ``optimizer.pt``: the optimizer's state dict, read back with ``torch.load(weights_only=True)``,
  which refuses any object but tensors and plain containers;
* ``scheduler.json``, ``rng_state_<rank>.json`` and ``rng_state_<rank>.safetensors`` (plus
  ``scaler.json`` under fp16): plain JSON and tensors;
* ``trainer_state.json``: the step and the data position (epoch, micro-batches consumed in it,
  the sampler seed), which is what makes a resumed run replay the same batches;
* ``manifest.json``, written last: the run that wrote the checkpoint and the sha256 of every
  other file. Loading checks it first and refuses a folder holding a file it does not list, a
  file whose hash differs, or any pickle: Accelerate's ``load_state`` unpickles custom state,
  so a folder planted on a shared disk could run code; we never call it.

The folder is built as ``checkpoint-N.tmp``, every file is fsynced, and only then is it renamed:
a run killed mid-save leaves a ``.tmp`` folder that is ignored and cleaned up, never a
half-written checkpoint that looks complete.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import zipfile
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from codetune_studio.core.errors import TrainingError

if TYPE_CHECKING:
    from pathlib import Path

    from accelerate import Accelerator

__all__ = [
    "CHECKPOINT_PREFIX",
    "MANIFEST",
    "TRAINABLE_WEIGHTS",
    "TRAINER_STATE",
    "CheckpointManager",
    "Manifest",
    "TrainerState",
    "discard_checkpoint",
    "find_checkpoints",
    "latest_checkpoint",
    "read_trainer_state",
    "replace_folder",
    "verify_manifest",
    "write_manifest",
]

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
TRAINER_STATE = "trainer_state.json"
TRAINABLE_WEIGHTS = "trainable.safetensors"
OPTIMIZER_STATE = "optimizer.pt"
SCHEDULER_STATE = "scheduler.json"
SCALER_STATE = "scaler.json"
RNG_PREFIX = "rng_state_"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
#: File kinds that unpickle when loaded; the studio writes only ``optimizer.pt`` (weights-only).
_PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".bin", ".pt", ".pth", ".ckpt", ".joblib"})
_TMP_SUFFIX = ".tmp"
_NAME = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")


@dataclass(frozen=True, slots=True)
class TrainerState:
    """Where a run stood when a checkpoint was taken.

    Attributes:
        step: Optimizer steps completed.
        epoch: The epoch the next batch comes from (0-based).
        batches_in_epoch: Micro-batches of that epoch already consumed.
        seed: The seed the epoch orders derive from.
        total_steps: The run's planned number of steps.
        world_size: Processes that trained (the data order depends on it).
        data_fingerprint: The training data's fingerprint, to warn when it changed.
        method: The recipe's method, to refuse loading a LoRA checkpoint into a full run.
    """

    step: int
    epoch: int
    batches_in_epoch: int
    seed: int
    total_steps: int
    world_size: int = 1
    data_fingerprint: str = ""
    method: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerState:
        """Build from :meth:`to_dict`'s output, ignoring keys a newer studio may add."""
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``trainer_state.json``."""
        return asdict(self)


def find_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints in ``folder``, oldest (lowest step) first.

    Args:
        folder: A run's ``checkpoints`` folder, or a run folder containing one.

    Returns:
        The ``checkpoint-N`` folders that hold a ``trainer_state.json``.
    """
    if (folder / "checkpoints").is_dir():
        folder = folder / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = _NAME.match(child.name)
        if match and child.is_dir() and (child / TRAINER_STATE).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint in a run (or checkpoints) folder, if any."""
    found = find_checkpoints(folder)
    return found[-1] if found else None


def read_trainer_state(checkpoint: Path) -> TrainerState:
    """Read a checkpoint's ``trainer_state.json``.

    Args:
        checkpoint: A ``checkpoint-N`` folder.

    Returns:
        The state it records.

    Raises:
        TrainingError: If the file is missing or not valid; the message names it.
    """
    path = checkpoint / TRAINER_STATE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return TrainerState.from_dict(data)
    except FileNotFoundError:
        raise TrainingError(
            f"Cannot resume from {checkpoint}: {TRAINER_STATE} is missing; "
            "it is not a complete studio checkpoint (pick another checkpoint-N folder)"
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise TrainingError(
            f"Cannot resume from {checkpoint}: {path.name} is unreadable ({exc}); "
            "pick an earlier checkpoint"
        ) from exc


class CheckpointManager:
    """Saves and restores a run's full training state, as data only.

    Create it after ``accelerator.prepare(model, optimizer)``. Every process calls
    :meth:`save` and :meth:`load`; only the main process writes the shared files, each process
    its own random-number state.

    Args:
        accelerator: The run's accelerator.
        model: The prepared (possibly DDP-wrapped) model.
        scheduler: The learning-rate scheduler (anything with ``state_dict``/``load_state_dict``).
        folder: The ``checkpoints`` folder of the run.
        save_total_limit: How many checkpoints to keep (newest); ``None`` keeps all.
        optimizer: The prepared optimizer.
        run_id: The database id of the run writing checkpoints, recorded in each manifest.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        model: torch.nn.Module,
        scheduler: Any,
        folder: Path,
        save_total_limit: int | None,
        *,
        optimizer: Any = None,
        run_id: int | str | None = None,
    ) -> None:
        self._accelerator = accelerator
        self._model = model
        self._scheduler = scheduler
        self._optimizer = optimizer
        self._run_id = run_id
        self.folder = folder
        self._limit = save_total_limit

    # --- saving -------------------------------------------------------------------------------

    def save(self, state: TrainerState) -> Path:
        """Write a checkpoint for ``state.step`` atomically and prune old ones.

        Args:
            state: Where the run stands.

        Returns:
            The final ``checkpoint-N`` folder.

        Raises:
            TrainingError: If the disk refuses the write (full, read-only...).
        """
        accelerator = self._accelerator
        final = self.folder / f"{CHECKPOINT_PREFIX}{state.step}"
        staging = final.with_name(final.name + _TMP_SUFFIX)
        try:
            if accelerator.is_main_process:
                if staging.exists():
                    shutil.rmtree(staging)
                staging.mkdir(parents=True)
            accelerator.wait_for_everyone()
            save_rng_state(staging, accelerator.process_index)
            if accelerator.is_main_process:
                self._save_main(staging, state)
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                write_manifest(staging, run_id=self._run_id)
                # A re-save of the same step (a resumed run) keeps the old one until then.
                replace_folder(staging, final)
                self._prune()
            accelerator.wait_for_everyone()
        except OSError as exc:
            hint = (
                "; free some disk space or raise save_steps"
                if exc.errno in {errno.ENOSPC, errno.EDQUOT}
                else ""
            )
            raise TrainingError(
                f"Could not write checkpoint {final}: {exc.strerror or exc}{hint}"
            ) from exc
        logger.info("saved checkpoint %s", final)
        return final

    def _save_main(self, staging: Path, state: TrainerState) -> None:
        tensors = {
            name: parameter.detach().to("cpu").contiguous()
            for name, parameter in self._trainable().items()
        }
        save_file(tensors, str(staging / TRAINABLE_WEIGHTS))
        if self._optimizer is not None:
            torch.save(self._optimizer.state_dict(), staging / OPTIMIZER_STATE)
        _write_json(staging / SCHEDULER_STATE, _jsonable(self._scheduler.state_dict()))
        scaler = getattr(self._accelerator, "scaler", None)
        if scaler is not None:
            _write_json(staging / SCALER_STATE, _jsonable(scaler.state_dict()))
        _write_json(staging / TRAINER_STATE, state.to_dict())

    def remove_stale(self) -> None:
        """Delete ``.tmp`` folders left by a run killed while saving (main process only)."""
        if not self._accelerator.is_main_process or not self.folder.is_dir():
            return
        for child in self.folder.iterdir():
            if child.name.startswith(CHECKPOINT_PREFIX) and child.name.endswith(_TMP_SUFFIX):
                logger.info("removing incomplete checkpoint %s", child)
                shutil.rmtree(child, ignore_errors=True)

    def _prune(self) -> None:
        if self._limit is None:
            return
        existing = find_checkpoints(self.folder)
        for old in existing[: max(0, len(existing) - self._limit)]:
            logger.debug("removing old checkpoint %s", old)
            discard_checkpoint(old)

    # --- loading ------------------------------------------------------------------------------

    def load(self, checkpoint: Path) -> TrainerState:
        """Restore weights, optimizer, scheduler, RNG and data position from a checkpoint.

        Nothing in the folder is unpickled: the manifest is verified first, weights come from
        safetensors, the optimizer through ``torch.load(weights_only=True)``, the rest is JSON.

        Args:
            checkpoint: A ``checkpoint-N`` folder.

        Returns:
            The state to continue from.

        Raises:
            TrainingError: If the checkpoint is incomplete, altered, holds code, or does not fit
                this run; the message names the file and why.
        """
        manifest = verify_manifest(checkpoint)
        if manifest.run_id is not None and manifest.run_id != self._run_id:
            logger.info("checkpoint %s was written by run %s", checkpoint, manifest.run_id)
        state = read_trainer_state(checkpoint)
        self._check_files(checkpoint)
        try:
            self._load_weights(checkpoint)
            if self._optimizer is not None:
                self._optimizer.load_state_dict(
                    _torch_load_data(checkpoint / OPTIMIZER_STATE, checkpoint)
                )
            self._scheduler.load_state_dict(_read_json(checkpoint / SCHEDULER_STATE))
            scaler = getattr(self._accelerator, "scaler", None)
            if scaler is not None and (checkpoint / SCALER_STATE).is_file():
                scaler.load_state_dict(_read_json(checkpoint / SCALER_STATE))
            load_rng_state(checkpoint, self._accelerator.process_index)
        except TrainingError:
            raise
        except Exception as exc:
            raise TrainingError(
                f"Cannot resume from {checkpoint}: {type(exc).__name__}: {exc}; the checkpoint "
                "was made by a different recipe or is damaged (pick an earlier one)"
            ) from exc
        return state

    def _check_files(self, checkpoint: Path) -> None:
        """Name a missing or truncated file before loading trips over it."""
        rank = self._accelerator.process_index
        required = [TRAINABLE_WEIGHTS, SCHEDULER_STATE, f"{RNG_PREFIX}{rank}.json"]
        if self._optimizer is not None:
            required.append(OPTIMIZER_STATE)
        for name in required:
            path = checkpoint / name
            if not path.is_file():
                raise TrainingError(
                    f"Cannot resume from {checkpoint}: {name} is missing (the checkpoint is "
                    "incomplete; pick an earlier one)"
                )
            if name.endswith(".pt") and not zipfile.is_zipfile(path):
                raise TrainingError(
                    f"Cannot resume from {checkpoint}: {name} is truncated or not a torch file"
                )
        try:
            with safe_open(str(checkpoint / TRAINABLE_WEIGHTS), framework="pt"):
                pass
        except (SafetensorError, OSError) as exc:
            raise TrainingError(
                f"Cannot resume from {checkpoint}: {TRAINABLE_WEIGHTS} is damaged ({exc})"
            ) from exc

    def _load_weights(self, checkpoint: Path) -> None:
        saved = load_file(str(checkpoint / TRAINABLE_WEIGHTS))
        trainable = self._trainable()
        missing = sorted(set(trainable) - set(saved))
        unexpected = sorted(set(saved) - set(trainable))
        if missing or unexpected:
            raise TrainingError(
                f"Cannot resume from {checkpoint}: {TRAINABLE_WEIGHTS} does not match this "
                f"model ({len(missing)} missing, e.g. {missing[:2]}; {len(unexpected)} "
                f"unexpected, e.g. {unexpected[:2]}); resume with the recipe (method, lora "
                "settings, model) the checkpoint was made with"
            )
        with torch.no_grad():
            for name, parameter in trainable.items():
                value = saved[name]
                if value.shape != parameter.shape:
                    raise TrainingError(
                        f"Cannot resume from {checkpoint}: {TRAINABLE_WEIGHTS}: {name} has shape "
                        f"{tuple(value.shape)}, the model expects {tuple(parameter.shape)}"
                    )
                parameter.copy_(value.to(parameter.device, parameter.dtype))

    def _trainable(self) -> dict[str, torch.nn.Parameter]:
        model = self._accelerator.unwrap_model(self._model)
        return {name: p for name, p in model.named_parameters() if p.requires_grad}


# --- the manifest -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Manifest:
    """What ``manifest.json`` records.

    Attributes:
        run_id: The database id of the run that wrote the checkpoint (``None`` if unknown).
        files: Each file's name and sha256 hex digest.
    """

    run_id: int | str | None
    files: dict[str, str]


def write_manifest(folder: Path, *, run_id: int | str | None) -> Manifest:
    """Hash every file of ``folder`` into its ``manifest.json`` (call it last).

    Args:
        folder: The checkpoint being written.
        run_id: The run writing it.

    Returns:
        What was written.
    """
    files = {
        path.name: _sha256(path)
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != MANIFEST
    }
    manifest = Manifest(run_id=run_id, files=files)
    _write_json(
        folder / MANIFEST,
        {"format": MANIFEST_FORMAT, "run_id": run_id, "files": files},
    )
    return manifest


def verify_manifest(checkpoint: Path) -> Manifest:
    """Check a checkpoint against its manifest before anything in it is read.

    Args:
        checkpoint: A ``checkpoint-N`` folder.

    Returns:
        The verified manifest.

    Raises:
        TrainingError: The manifest is missing or unreadable, a file is missing, altered or
            not listed, or the folder holds a pickle the studio never writes.
    """
    manifest = _read_manifest(checkpoint)
    files = manifest.files
    for child in sorted(checkpoint.iterdir()):
        if child.name == MANIFEST or child.name in files:
            continue
        if child.suffix.lower() in _PICKLE_SUFFIXES:
            raise TrainingError(
                f"Cannot resume from {checkpoint}: {child.name} is a pickle the studio did not "
                "write (pickles can run code); refusing to load this folder"
            )
        raise TrainingError(
            f"Cannot resume from {checkpoint}: {child.name} is not in its {MANIFEST} "
            "(the folder was altered); refusing to load it"
        )
    for name, digest in files.items():
        file = checkpoint / name
        if "/" in name or "\\" in name or name.startswith(".") or not file.is_file():
            raise TrainingError(
                f"Cannot resume from {checkpoint}: {name} is missing (the checkpoint is "
                "incomplete; pick an earlier one)"
            )
        if _sha256(file) != digest:
            raise TrainingError(
                f"Cannot resume from {checkpoint}: {name} does not match its sha256 in "
                f"{MANIFEST} (damaged or altered); pick an earlier checkpoint"
            )
    return manifest


def _read_manifest(checkpoint: Path) -> Manifest:
    path = checkpoint / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = {str(k): str(v) for k, v in dict(data["files"]).items()}
        run_id = data.get("run_id")
    except FileNotFoundError:
        raise TrainingError(
            f"Cannot resume from {checkpoint}: {MANIFEST} is missing; it was not written by "
            "this studio version (or is incomplete) and is not loaded, because an unlisted "
            "file could run code; start the run afresh or pick another checkpoint"
        ) from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise TrainingError(
            f"Cannot resume from {checkpoint}: {MANIFEST} is unreadable ({exc}); pick another "
            "checkpoint"
        ) from exc
    if run_id is not None and not isinstance(run_id, int | str):
        raise TrainingError(f"Cannot resume from {checkpoint}: {MANIFEST} has a bad run_id")
    return Manifest(run_id=run_id, files=files)


# --- random-number state, as data -------------------------------------------------------------


def save_rng_state(folder: Path, rank: int) -> None:
    """Write this process's Python, NumPy and torch random states as JSON and safetensors."""
    import random

    import numpy as np

    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    _write_json(
        folder / f"{RNG_PREFIX}{rank}.json",
        {
            "python": [version, list(internal), gauss],
            "numpy": [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
        },
    )
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{index}"] = cuda_state
    save_file(tensors, str(folder / f"{RNG_PREFIX}{rank}.safetensors"))


def load_rng_state(checkpoint: Path, rank: int) -> None:
    """Restore what :func:`save_rng_state` wrote (missing parts are left as they are)."""
    import random

    import numpy as np

    data = _read_json(checkpoint / f"{RNG_PREFIX}{rank}.json")
    version, internal, gauss = data["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    kind, keys, pos, has_gauss, cached = data["numpy"]
    np.random.set_state((str(kind), np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    tensors_path = checkpoint / f"{RNG_PREFIX}{rank}.safetensors"
    if tensors_path.is_file():
        tensors = load_file(str(tensors_path))
        torch.set_rng_state(tensors["torch"])
        if torch.cuda.is_available():
            for index in range(torch.cuda.device_count()):
                if f"cuda_{index}" in tensors:
                    torch.cuda.set_rng_state(tensors[f"cuda_{index}"], index)


def _torch_load_data(path: Path, checkpoint: Path) -> Any:
    """``torch.load`` that only accepts tensors and plain containers, never code."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise TrainingError(
            f"Cannot resume from {checkpoint}: {path.name} holds objects other than tensors "
            "and plain data (refused: loading them could run code)"
        ) from exc


def _jsonable(value: Any) -> Any:
    """A state dict as JSON-safe data (tensors and tuples become lists)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint as JSON")


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def discard_checkpoint(checkpoint: Path) -> None:
    """Delete a checkpoint so that no moment of the deletion looks like a complete checkpoint.

    ``rmtree`` removes files one by one; a run killed half-way would leave a folder that still
    holds ``trainer_state.json`` but not its optimizer state (found by the kill-and-resume
    trials). Renaming it to ``.tmp`` first makes it incomplete in one atomic step; a leftover is
    cleaned up by the next run.
    """
    doomed = checkpoint.with_name(checkpoint.name + _TMP_SUFFIX)
    if doomed.exists():
        shutil.rmtree(doomed, ignore_errors=True)
    try:
        checkpoint.rename(doomed)
    except OSError:
        logger.warning("could not remove old checkpoint %s", checkpoint)
        return
    shutil.rmtree(doomed, ignore_errors=True)


def replace_folder(staging: Path, final: Path) -> None:
    """Publish a completely written folder under its final name, keeping the old one until then.

    ``final`` is renamed to ``<final>.old`` only once ``staging`` is flushed to disk, and that
    old copy is removed only after ``staging`` took its place: whenever the process dies, either
    the old or the new folder is complete on disk (a leftover ``.old`` is the previous one).

    Args:
        staging: The new folder, fully written.
        final: Where it belongs.
    """
    _fsync_tree(staging)
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    _fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_tree(folder: Path) -> None:
    """Flush every file of ``folder`` to disk, so the rename publishes complete data."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms (Windows) cannot open folders; the rename still stands
        return
    try:
        os.fsync(fd)
    except OSError:
        logger.debug("fsync of folder %s not supported", folder)
    finally:
        os.close(fd)

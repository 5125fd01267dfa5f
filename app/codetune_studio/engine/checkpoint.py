"""Checkpoints: Accelerate's own state files plus ours, written atomically.

A checkpoint folder ``checkpoint-N`` holds:

* ``trainable.safetensors``: only the parameters that train (the adapter, or every weight for
  a full fine-tune). Accelerate would save the whole model, which for a 7B LoRA run means 14 GB
  per checkpoint for a few MB of adapter, so a save/load hook replaces that part;
* Accelerate's ``optimizer.bin``, ``scheduler.bin``, ``random_states_<rank>.pkl`` (and
  ``scaler.pt`` under fp16), written by ``Accelerator.save_state``;
* ``trainer_state.json``: the step and the data position (epoch, micro-batches consumed in it,
  the sampler seed), which is what makes a resumed run replay the same batches.

The folder is built as ``checkpoint-N.tmp``, every file is fsynced, and only then is it renamed:
a run killed mid-save leaves a ``.tmp`` folder that is ignored and cleaned up, never a
half-written checkpoint that looks complete.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from codetune_studio.core.errors import TrainingError

if TYPE_CHECKING:
    from accelerate import Accelerator

__all__ = [
    "CHECKPOINT_PREFIX",
    "TRAINABLE_WEIGHTS",
    "TRAINER_STATE",
    "CheckpointManager",
    "TrainerState",
    "find_checkpoints",
    "latest_checkpoint",
    "read_trainer_state",
]

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
TRAINER_STATE = "trainer_state.json"
TRAINABLE_WEIGHTS = "trainable.safetensors"
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
    """Saves and restores a run's full training state through an ``Accelerator``.

    Create it after ``accelerator.prepare(model, optimizer)``. The scheduler is registered for
    checkpointing rather than prepared: a prepared scheduler steps once per process, which would
    make the learning-rate curve depend on the number of processes. Every process calls
    :meth:`save` and :meth:`load`; only the main process writes the shared files.

    Args:
        accelerator: The run's accelerator.
        model: The prepared (possibly DDP-wrapped) model.
        scheduler: The learning-rate scheduler (anything with ``state_dict``/``load_state_dict``).
        folder: The ``checkpoints`` folder of the run.
        save_total_limit: How many checkpoints to keep (newest); ``None`` keeps all.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        model: torch.nn.Module,
        scheduler: Any,
        folder: Path,
        save_total_limit: int | None,
    ) -> None:
        self._accelerator = accelerator
        self._model = model
        self.folder = folder
        self._limit = save_total_limit
        accelerator.register_for_checkpointing(scheduler)
        self._custom_objects = 1
        accelerator.register_save_state_pre_hook(self._save_hook)
        accelerator.register_load_state_pre_hook(self._load_hook)

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
            accelerator.save_state(str(staging), safe_serialization=True)
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                _write_json(staging / TRAINER_STATE, state.to_dict())
                _fsync_tree(staging)
                if final.exists():  # a re-save of the same step (a resumed run)
                    shutil.rmtree(final)
                staging.rename(final)
                _fsync_dir(self.folder)
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
            shutil.rmtree(old, ignore_errors=True)

    def _save_hook(self, _models: list[Any], weights: list[Any], output_dir: str) -> None:
        # Replace Accelerate's whole-model save with the trainable parameters only.
        weights.clear()
        if not self._accelerator.is_main_process:
            return
        tensors = {
            name: parameter.detach().to("cpu").contiguous()
            for name, parameter in self._trainable().items()
        }
        save_file(tensors, str(Path(output_dir) / TRAINABLE_WEIGHTS))

    # --- loading ------------------------------------------------------------------------------

    def load(self, checkpoint: Path) -> TrainerState:
        """Restore weights, optimizer, scheduler, RNG and data position from a checkpoint.

        Args:
            checkpoint: A ``checkpoint-N`` folder.

        Returns:
            The state to continue from.

        Raises:
            TrainingError: If the checkpoint is incomplete or does not fit this run; the message
                names the file and why.
        """
        state = read_trainer_state(checkpoint)
        self._check_files(checkpoint)
        try:
            self._accelerator.load_state(str(checkpoint))
        except TrainingError:
            raise
        except Exception as exc:
            raise TrainingError(
                f"Cannot resume from {checkpoint}: {type(exc).__name__}: {exc}; the checkpoint "
                "was made by a different recipe or is damaged (pick an earlier one)"
            ) from exc
        return state

    def _check_files(self, checkpoint: Path) -> None:
        """Name a missing or truncated file before Accelerate trips over it."""
        rank = self._accelerator.process_index
        # The scheduler is registered for checkpointing (not prepared), so it is a custom object.
        required = [TRAINABLE_WEIGHTS, "optimizer.bin", f"random_states_{rank}.pkl"]
        required += [f"custom_checkpoint_{i}.pkl" for i in range(self._custom_objects)]
        for name in required:
            path = checkpoint / name
            if not path.is_file():
                raise TrainingError(
                    f"Cannot resume from {checkpoint}: {name} is missing (the checkpoint is "
                    "incomplete; pick an earlier one)"
                )
            if name.endswith((".bin", ".pkl")) and not zipfile.is_zipfile(path):
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

    def _load_hook(self, models: list[Any], input_dir: str) -> None:
        # We load the weights ourselves, so Accelerate must not look for model.safetensors.
        models.clear()
        path = Path(input_dir) / TRAINABLE_WEIGHTS
        saved = load_file(str(path))
        trainable = self._trainable()
        missing = sorted(set(trainable) - set(saved))
        unexpected = sorted(set(saved) - set(trainable))
        if missing or unexpected:
            raise TrainingError(
                f"Cannot resume from {input_dir}: {TRAINABLE_WEIGHTS} does not match this "
                f"model ({len(missing)} missing, e.g. {missing[:2]}; {len(unexpected)} "
                f"unexpected, e.g. {unexpected[:2]}); resume with the recipe (method, lora "
                "settings, model) the checkpoint was made with"
            )
        with torch.no_grad():
            for name, parameter in trainable.items():
                value = saved[name]
                if value.shape != parameter.shape:
                    raise TrainingError(
                        f"Cannot resume from {input_dir}: {TRAINABLE_WEIGHTS}: {name} has shape "
                        f"{tuple(value.shape)}, the model expects {tuple(parameter.shape)}"
                    )
                parameter.copy_(value.to(parameter.device, parameter.dtype))

    def _trainable(self) -> dict[str, torch.nn.Parameter]:
        model = self._accelerator.unwrap_model(self._model)
        return {name: p for name, p in model.named_parameters() if p.requires_grad}


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

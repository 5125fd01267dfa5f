"""The training loop: an Accelerate loop over a PEFT-wrapped model.

:func:`run_training` is the engine's one entry point; the worker process and ``codetune-studio
train`` both call it. It needs no window and no database: everything it does goes out as events
through an :class:`~codetune_studio.engine.sinks.EventSink`, and it stops at the next optimizer
step when its :class:`~codetune_studio.core.cancel.CancelToken` is cancelled.

Why our own loop rather than ``transformers.Trainer``: exact resume (a seeded, index-based data
order we can fast-forward), cancellation and pause between optimizer steps, events instead of
callbacks, and one code path for one process or many (Accelerate reads ``torchrun``'s and
``accelerate launch``'s environment). ``benchmarks/train_throughput.py`` checks it keeps pace.

Data order: the rows (packed or not) are shuffled once per epoch by a generator seeded with
``seed + epoch``; a micro-batch is a contiguous slice of that order, so the position in the data
is just ``(epoch, micro-batches consumed)``, stored in every checkpoint.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import AutoModelForCausalLM, AutoTokenizer, get_scheduler

from codetune_studio.core.errors import CodetuneError, ConfigError, TrainingError
from codetune_studio.core.events import (
    CheckpointSaved,
    CodeEvalCompleted,
    EvalCompleted,
    LogRecorded,
    MetricsLogged,
    RunFinished,
    RunStarted,
)
from codetune_studio.core.redact import known_secret_values, scrub
from codetune_studio.core.status import RunStatus
from codetune_studio.engine.checkpoint import (
    CheckpointManager,
    TrainerState,
    read_trainer_state,
    replace_folder,
)
from codetune_studio.engine.packing import (
    Batch,
    MaskMode,
    PackedRow,
    SupportsTokens,
    collate_packed,
    collate_padded,
    pack_examples,
    token_losses,
)
from codetune_studio.engine.peft_setup import (
    PEFT_METHODS,
    MixedPrecision,
    base_load_dtype,
    bf16_supported,
    device_type,
    prepare_model,
    quantization_config,
    resolve_mixed_precision,
    trainable_parameters,
)
from codetune_studio.engine.sinks import EventSink, NullSink
from codetune_studio.engine.threads import configure_torch_threads

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from codetune_studio.core.cancel import CancelToken
    from codetune_studio.core.events import Event
    from codetune_studio.core.recipe import TrainingRecipe
    from codetune_studio.engine.code_eval import CodeEvalScore, CodeJudge, TrainingCodeEval
    from codetune_studio.engine.data import PreparedData

__all__ = [
    "ADAPTER_DIR",
    "CHECKPOINTS_DIR",
    "TENSORBOARD_DIR",
    "RunResult",
    "out_of_memory_advice",
    "run_training",
]

logger = logging.getLogger(__name__)

#: Attention implementations that isolate packed samples given restarting position_ids alone.
_POSITION_ONLY_ATTENTION = frozenset({"flash_attention_2", "flash_attention_3"})

#: Sub-folders of a run's output folder.
ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"
#: Where ``training.report_to: [tensorboard]`` writes (Accelerate's tracker, named after it).
TENSORBOARD_DIR = "tensorboard"


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended.

    Attributes:
        status: ``FINISHED``, ``CANCELLED`` or ``FAILED``.
        final_step: The last optimizer step completed.
        output_dir: The run's folder.
        adapter_path: The trained adapter (or model) folder, for a finished run.
        checkpoint_path: The newest checkpoint written, if any.
        error: What went wrong and what to do, for a failed run.
        train_loss: The last logged training loss.
        eval_loss: The last evaluation loss.
        pass_at_1: The last pass@1 on the recipe's evaluation tasks, when it has them.
        dataset_fingerprint: The content hash of the training data, for the model's lineage.
    """

    status: RunStatus
    final_step: int
    output_dir: Path
    adapter_path: Path | None = None
    checkpoint_path: Path | None = None
    error: str | None = None
    train_loss: float | None = None
    eval_loss: float | None = None
    pass_at_1: float | None = None
    dataset_fingerprint: str | None = None


def run_training(
    recipe: TrainingRecipe,
    sink: EventSink,
    cancel: CancelToken,
    *,
    run_id: str | int,
    output_dir: Path,
    data_dir: Path,
    resume_from: Path | None = None,
    offline: bool = True,
    code_judge: CodeJudge | None = None,
) -> RunResult:
    """Train a model as the recipe says, reporting through ``sink``.

    Every process of a multi-process launch calls this; only rank 0 emits events and writes
    the adapter. It never raises for a training failure: the run ends with a ``RunFinished``
    event (``FAILED`` with a message naming the cause and the fix) and the same result. The
    caller owns ``sink`` and closes it.

    Args:
        recipe: The validated recipe.
        sink: Receives the run's events, ending with ``RunFinished``.
        cancel: Cancelled (or paused) by another thread; checked between optimizer steps.
        run_id: The run's id, echoed in ``RunStarted``.
        output_dir: The run's folder: ``checkpoints/`` and ``adapter/`` go there.
        data_dir: The studio's data folder (where the starter model is cached).
        resume_from: A ``checkpoint-N`` folder to continue from exactly.
        offline: Never touch the network (models must be local or cached).
        code_judge: Runs generated code with its tests, for the recipe's ``evaluation``
            section (the worker passes the sandbox); without one that section is skipped
            with a warning.

    Returns:
        How the run ended.
    """
    if int(os.environ.get("RANK", "0")) != 0:
        sink = NullSink()  # rank 0 alone reports; the others train silently
    session = _Session(
        recipe, sink, cancel, run_id=run_id, output_dir=Path(output_dir), code_judge=code_judge
    )
    try:
        session.setup(data_dir=Path(data_dir), resume_from=resume_from, offline=offline)
        return session.train()
    except CodetuneError as exc:
        return session.fail(str(exc))
    except Exception as exc:
        if _is_out_of_memory(exc):
            return session.fail(out_of_memory_advice(recipe, exc))
        logger.exception("training failed")
        return session.fail(f"Unexpected error: {type(exc).__name__}: {exc}")
    finally:
        session.release()


def out_of_memory_advice(recipe: TrainingRecipe, exc: BaseException | None = None) -> str:
    """A message naming the settings that would make a run fit in memory.

    Args:
        recipe: The recipe that ran out of memory.
        exc: The original error, summarised at the end.

    Returns:
        One paragraph with concrete values to try.
    """
    training = recipe.training
    batch = training.per_device_train_batch_size
    tips = []
    if batch > 1:
        smaller = max(1, batch // 2)
        tips.append(
            f"training.per_device_train_batch_size={smaller} with "
            f"training.gradient_accumulation_steps="
            f"{training.gradient_accumulation_steps * (batch // smaller)} (same effective batch)"
        )
    if training.max_seq_length > 128:
        tips.append(f"training.max_seq_length={training.max_seq_length // 2}")
    if not training.gradient_checkpointing:
        tips.append("training.gradient_checkpointing=true")
    if recipe.method in {"lora", "dora", "full"}:
        tips.append("method=qlora (4-bit base model, on an NVIDIA GPU)")
    detail = f" ({str(exc).splitlines()[0][:200]})" if exc is not None and str(exc) else ""
    return (
        "Out of memory: the model, batch and sequence length do not fit. Try "
        + "; or ".join(tips or ["a smaller model"])
        + "."
        + detail
    )


# --- the session ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    """The run's shape, worked out from the data and the recipe."""

    rows: Sequence[SupportsTokens]
    validation: Sequence[SupportsTokens]
    packed: bool
    batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int


class _Session:
    """One run's state; split out of :func:`run_training` to keep each step readable."""

    def __init__(
        self,
        recipe: TrainingRecipe,
        sink: EventSink,
        cancel: CancelToken,
        *,
        run_id: str | int,
        output_dir: Path,
        code_judge: CodeJudge | None = None,
    ) -> None:
        self.recipe = recipe
        self.sink = sink
        self.cancel = cancel
        self.run_id = run_id
        self.output_dir = output_dir
        self.accelerator: Accelerator | None = None
        self.step = 0
        self.last_checkpoint: Path | None = None
        self.last_loss: float | None = None
        # The newest finite training loss and its step, and how many steps since were not finite.
        self.last_finite_loss: tuple[int, float] | None = None
        self.nonfinite_steps = 0
        self.last_eval: float | None = None
        self.last_eval_step = -1
        # Code evaluation (the recipe's evaluation section): main process only.
        self.code_judge = code_judge
        self.code_eval: TrainingCodeEval | None = None
        self.last_code_eval_step = -1
        self.last_pass_at_1: float | None = None
        self.mask_mode: MaskMode = "block"
        self.mask_dtype = torch.bool
        self.pad_token_id = 0
        self.tokenizer: Any = None
        self.model: Any = None
        self.optimizer: Any = None
        self.scheduler: Any = None
        self.checkpoints: CheckpointManager | None = None
        self.plan: _Plan | None = None
        self.data_fingerprint = ""
        self.start_epoch = 0
        self.start_batch = 0
        # (epoch, micro-batches of it consumed) after the last completed step.
        self.position = (0, 0)

    # --- reporting ----------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        self.sink.emit(event)

    def log(self, level: int, message: str, *args: object) -> None:
        """Log locally and show the message in the run's log panel."""
        logger.log(level, message, *args)
        text = scrub(message % args, known_secret_values())
        self.emit(LogRecorded(level=logging.getLevelName(level), message=text))

    def fail(self, error: str) -> RunResult:
        # An error's text may quote a credential (a database URL, a key): the events file, the
        # run's record and the console get it masked.
        error = scrub(error, known_secret_values())
        logger.error("run %s failed: %s", self.run_id, error)
        self.emit(RunFinished(status=RunStatus.FAILED, final_step=self.step, error=error))
        return self._result(RunStatus.FAILED, error=error)

    def _result(
        self, status: RunStatus, *, adapter: Path | None = None, error: str | None = None
    ) -> RunResult:
        return RunResult(
            status=status,
            final_step=self.step,
            output_dir=self.output_dir,
            adapter_path=adapter,
            checkpoint_path=self.last_checkpoint,
            error=error,
            train_loss=self.last_loss,
            eval_loss=self.last_eval,
            pass_at_1=self.last_pass_at_1,
            dataset_fingerprint=self.data_fingerprint or None,
        )

    def release(self) -> None:
        """Close the trackers; drop references so a caller running several runs gets memory back."""
        self.model = self.optimizer = self.scheduler = None
        if self.accelerator is not None:
            # What Accelerator.end_training does, less destroying the process group: that
            # belongs to the launcher (torchrun), not to this run.
            for tracker in self.accelerator.trackers:
                tracker.finish()
            self.accelerator.trackers = []
            self.accelerator.free_memory()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # --- setup --------------------------------------------------------------------------------

    def setup(self, *, data_dir: Path, resume_from: Path | None, offline: bool) -> None:
        recipe = self.recipe
        training = recipe.training
        report_to = list(training.report_to)
        _check_trackers(report_to)  # before minutes of model building, not after
        configure_torch_threads()  # CODETUNE_TORCH_THREADS; before the starter model's build
        device = device_type()
        mixed = resolve_mixed_precision(
            training.precision, device_type=device, bf16_supported=bf16_supported(device)
        )
        # cpu=True is what makes Accelerate read torchrun's environment on a machine without
        # a GPU (MULTI_CPU over gloo); without it each process would train alone. Otherwise
        # Accelerate picks the GPU (CUDA or MPS) itself.
        self.accelerator = Accelerator(
            mixed_precision=mixed,
            cpu=device == "cpu",
            log_with=report_to or None,
            # Accelerate's trackers log under <project_dir>/<project name>.
            project_dir=str(self.output_dir) if report_to else None,
        )
        set_seed(training.seed)
        model_path = self._resolve_model(data_dir, offline)
        self.tokenizer = self._load_tokenizer(model_path, offline)
        data = self._prepare_data()
        self.model = self._load_model(model_path, mixed, offline)
        self.plan = self._plan(data)
        self._build_optimizer()
        self.checkpoints = CheckpointManager(
            self.accelerator,
            self.model,
            self.scheduler,
            self.output_dir / CHECKPOINTS_DIR,
            training.save_total_limit,
            optimizer=self.optimizer,
            run_id=self.run_id,
        )
        self.checkpoints.remove_stale()
        if resume_from is not None:
            self._resume(Path(resume_from))
        self._setup_code_eval()
        if report_to:
            # Rank 0 alone writes; a resumed run appends to the same folder by step.
            self.accelerator.init_trackers(TENSORBOARD_DIR)

    def _resolve_model(self, data_dir: Path, offline: bool) -> str | Path:
        from codetune_studio.engine.starter import resolve_model

        if offline:
            # Make transformers fail at once instead of retrying the hub for ~20 s.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        last = [0.0]

        def on_progress(done: int, total: int, message: str) -> None:
            # The first start builds the starter model (a few minutes): say so, a few times.
            now = time.monotonic()
            if now - last[0] >= 5.0 or done >= total:
                last[0] = now
                self.log(logging.INFO, "starter model: %s (%d/%d)", message, done, total)

        return resolve_model(
            self.recipe.model,
            data_dir=data_dir,
            offline=offline,
            on_progress=on_progress,
            allow_pickle=self.recipe.allow_pickle,
        )

    def _load_tokenizer(self, model_path: str | Path, offline: bool) -> Any:
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                str(model_path),
                trust_remote_code=self.recipe.trust_remote_code,
                local_files_only=offline,
            )
        except (OSError, ValueError) as exc:
            raise TrainingError(
                f"Cannot load the tokenizer of {model_path}: {exc}"
                + _remote_code_hint(exc, self.recipe)
            ) from exc
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token_id is None:
                raise TrainingError(
                    f"The tokenizer of {model_path} has neither a padding nor an end-of-sequence "
                    "token; add one to its tokenizer_config.json"
                )
            # Padding never reaches the loss (labels are -100 there), so EOS is a safe stand-in.
            tokenizer.pad_token = tokenizer.eos_token
        self.pad_token_id = int(tokenizer.pad_token_id)
        return tokenizer

    def _prepare_data(self) -> PreparedData:
        from codetune_studio.engine.data import prepare_data

        training = self.recipe.training
        data = prepare_data(
            self.recipe.dataset,
            self.tokenizer,
            max_seq_length=training.max_seq_length,
            train_on_completions_only=training.train_on_completions_only,
            seed=training.seed,
        )
        self.data_fingerprint = data.fingerprint
        report = data.report
        self.log(
            logging.INFO,
            "dataset %s (%s): %d of %d rows kept, %d dropped (%d unparseable), %d duplicates",
            report.path,
            report.format,
            report.examples,
            report.rows,
            len(report.dropped),
            report.unparseable_rows,
            report.duplicate_rows,
        )
        return data

    def _load_model(self, model_path: str | Path, mixed: MixedPrecision, offline: bool) -> Any:
        recipe = self.recipe
        cuda = torch.cuda.is_available()
        compute = torch.bfloat16 if mixed == "bf16" else torch.float16
        quant = quantization_config(recipe, cuda_available=cuda, compute_dtype=compute)
        kwargs: dict[str, Any] = {
            "dtype": base_load_dtype(recipe.method, mixed),
            "trust_remote_code": recipe.trust_remote_code,
            "local_files_only": offline,
            # None lets transformers fall back to .bin files; True refuses them.
            "use_safetensors": None if recipe.allow_pickle else True,
        }
        if quant is not None:
            kwargs["quantization_config"] = quant
            kwargs["device_map"] = {"": self._device().index or 0}
        try:
            model = AutoModelForCausalLM.from_pretrained(str(model_path), **kwargs)
        except (OSError, ValueError) as exc:
            raise TrainingError(_model_load_message(model_path, exc, recipe)) from exc
        attn = getattr(model.config, "_attn_implementation", None)
        # Flash kernels isolate packed samples from position_ids alone (variable-length
        # attention, no mask). For sdpa/eager we build the block mask ourselves: transformers
        # 5.x can derive it from positions too, but that path was 5x slower per step on CPU
        # (measured on the starter model), and remote code may not derive it at all.
        if attn in _POSITION_ONLY_ATTENTION and not recipe.trust_remote_code:
            self.mask_mode = "position_ids"
        else:
            self.mask_mode = "block"
        self.mask_dtype = torch.bool if attn == "sdpa" else model.dtype
        model = prepare_model(
            model, recipe, gradient_checkpointing=recipe.training.gradient_checkpointing
        )
        trainable, total = trainable_parameters(model)
        self.log(
            logging.INFO,
            "%s: training %s of %s parameters (%.2f%%) with %s",
            model_path,
            f"{trainable:,}",
            f"{total:,}",
            100.0 * trainable / max(total, 1),
            recipe.method,
        )
        return model

    def _plan(self, data: PreparedData) -> _Plan:
        training = self.recipe.training
        packed = training.packing
        if packed and self.recipe.method == "prompt_tuning":
            # PEFT drops position_ids under prompt tuning, which packing relies on.
            self.log(logging.WARNING, "packing is off: prompt tuning cannot isolate packed samples")
            packed = False
        rows: Sequence[SupportsTokens] = (
            pack_examples(data.train, training.max_seq_length) if packed else data.train
        )
        world = self._accelerator().num_processes
        global_batch = training.per_device_train_batch_size * world
        batches = math.ceil(len(rows) / global_batch)
        steps_per_epoch = math.ceil(batches / training.gradient_accumulation_steps)
        if training.max_steps is not None:
            total = training.max_steps
        else:
            epochs = training.num_train_epochs or 1.0
            total = max(1, math.ceil(epochs * steps_per_epoch))
        if packed:
            self.log(
                logging.INFO,
                "packed %d examples into %d rows of %d tokens",
                len(data.train),
                len(rows),
                training.max_seq_length,
            )
        return _Plan(rows, data.validation, packed, batches, steps_per_epoch, total)

    def _build_optimizer(self) -> None:
        training = self.recipe.training
        plan = self._plan_or_fail()
        decay: list[torch.nn.Parameter] = []
        no_decay: list[torch.nn.Parameter] = []
        for parameter in self.model.parameters():
            if parameter.requires_grad:
                # Biases and norm weights are not decayed, as in transformers' Trainer.
                (decay if parameter.ndim >= 2 else no_decay).append(parameter)
        groups = [
            {"params": decay, "weight_decay": training.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(
            [group for group in groups if group["params"]], lr=training.learning_rate
        )
        self.scheduler = get_scheduler(
            training.lr_scheduler_type,
            optimizer=optimizer,
            num_warmup_steps=math.ceil(training.warmup_ratio * plan.total_steps),
            num_training_steps=plan.total_steps,
        )
        self.model, self.optimizer = self._accelerator().prepare(self.model, optimizer)

    def _resume(self, checkpoint: Path) -> None:
        assert self.checkpoints is not None  # noqa: S101 - set up just before
        saved = read_trainer_state(checkpoint)
        if saved.method and saved.method != self.recipe.method:
            raise TrainingError(
                f"Cannot resume from {checkpoint}: it was trained with method "
                f"{saved.method}, the recipe says {self.recipe.method}"
            )
        state = self.checkpoints.load(checkpoint)
        plan = self._plan_or_fail()
        world = self._accelerator().num_processes
        if state.world_size != world:
            self.log(
                logging.WARNING,
                "checkpoint was made with %d processes, resuming with %d: the data order differs",
                state.world_size,
                world,
            )
        if state.data_fingerprint and state.data_fingerprint != self.data_fingerprint:
            self.log(logging.WARNING, "the training data changed since the checkpoint was saved")
        self.step = state.step
        self.start_epoch, self.start_batch = state.epoch, state.batches_in_epoch
        self.position = (state.epoch, state.batches_in_epoch)
        self.last_checkpoint = checkpoint
        if self.step >= plan.total_steps:
            self.log(logging.INFO, "checkpoint is at step %d of %d", self.step, plan.total_steps)

    # --- the loop -----------------------------------------------------------------------------

    def train(self) -> RunResult:
        plan = self._plan_or_fail()
        accelerator = self._accelerator()
        self.emit(
            RunStarted(
                run_id=self.run_id,
                total_steps=plan.total_steps,
                output_dir=self.output_dir,
                resumed_from_step=self.step,
            )
        )
        self.model.train()
        windows = self._windows(plan)
        while self.step < plan.total_steps:
            if self._should_stop():
                return self._cancelled()
            epoch, position, window = next(windows)
            metrics = self._optimizer_step(window)
            self.step += 1
            self.position = (epoch, position)
            metrics["epoch"] = epoch + position / max(plan.batches_per_epoch, 1)
            self._after_step(metrics, epoch, position)
            if self.nonfinite_steps >= self.recipe.training.max_nonfinite_steps:
                return self.fail(self._divergence_message(metrics["loss"]))
        accelerator.wait_for_everyone()
        if self.recipe.training.eval_steps and plan.validation and self.last_eval_step != self.step:
            self._evaluate()  # the final model's score, even off the eval_steps grid
        if self.last_code_eval_step != self.step:
            self._evaluate_code()  # likewise for pass@1: the saved adapter's score
        adapter = self._save_output()
        self.emit(
            RunFinished(status=RunStatus.FINISHED, final_step=self.step, adapter_path=adapter)
        )
        return self._result(RunStatus.FINISHED, adapter=adapter)

    def _after_step(self, metrics: dict[str, float], epoch: int, position: int) -> None:
        training = self.recipe.training
        plan = self._plan_or_fail()
        loss = metrics["loss"]
        self.last_loss = loss
        finite = math.isfinite(loss)
        if finite:
            self.last_finite_loss = (self.step, loss)
            self.nonfinite_steps = 0
        else:
            self.nonfinite_steps += 1
            self.log(logging.WARNING, "step %d: the training loss is %s", self.step, loss)
        # A non-finite step is always logged, off the logging_steps grid, so the curves show it.
        if not finite or self.step % training.logging_steps == 0 or self.step == plan.total_steps:
            self.emit(MetricsLogged(step=self.step, metrics=metrics))
            self._track("train", metrics)
        if self.nonfinite_steps:
            return  # nothing changed since the last finite step: no evaluation or checkpoint
        if training.eval_steps and self.step % training.eval_steps == 0:
            if plan.validation:
                self._evaluate()
            self._evaluate_code()
        if training.save_steps and self.step % training.save_steps == 0:
            self._checkpoint(epoch, position)

    def _windows(self, plan: _Plan) -> Iterator[tuple[int, int, list[Batch]]]:
        """Yield ``(epoch, micro-batches consumed after it, window)`` per optimizer step.

        A window is the ``gradient_accumulation_steps`` micro-batches of one optimizer step;
        windows never straddle an epoch. The first epoch starts at the resumed position.
        """
        accum = self.recipe.training.gradient_accumulation_steps
        epoch, start = self.start_epoch, self.start_batch
        while True:
            if start >= plan.batches_per_epoch:
                epoch, start = epoch + 1, 0
            batches = self._epoch_batches(plan, epoch)
            for first in range(start, plan.batches_per_epoch, accum):
                window_ids = batches[first : first + accum]
                window = [self._collate(plan, ids) for ids in window_ids]
                yield epoch, first + len(window_ids), window
            epoch, start = epoch + 1, 0

    def _epoch_batches(self, plan: _Plan, epoch: int) -> list[list[int]]:
        """This process's row indices for every micro-batch of an epoch."""
        accelerator = self._accelerator()
        world, rank = accelerator.num_processes, accelerator.process_index
        per_device = self.recipe.training.per_device_train_batch_size
        generator = torch.Generator().manual_seed(self.recipe.training.seed + epoch)
        order = torch.randperm(len(plan.rows), generator=generator).tolist()
        global_batch = per_device * world
        if world > 1 and len(order) % global_batch:
            # Every process needs a full batch each step (DDP), so wrap around like
            # DistributedSampler does.
            missing = global_batch - len(order) % global_batch
            order += (order * (missing // len(order) + 1))[:missing]
        batches = []
        for start in range(0, len(order), global_batch):
            chunk = order[start : start + global_batch]
            batches.append(chunk[rank::world])
        return batches

    def _collate(self, plan: _Plan, indices: list[int]) -> Batch:
        rows = [plan.rows[i] for i in indices]
        if plan.packed:
            return collate_packed(
                [row for row in rows if isinstance(row, PackedRow)],
                pad_token_id=self.pad_token_id,
                mode=self.mask_mode,
                mask_dtype=self.mask_dtype,
            )
        return collate_padded(rows, pad_token_id=self.pad_token_id)

    def _optimizer_step(self, window: list[Batch]) -> dict[str, float]:
        accelerator = self._accelerator()
        started = time.perf_counter()
        label_tokens = max(1, sum(batch.label_tokens for batch in window))
        loss_sum = 0.0
        for index, batch in enumerate(window):
            last = index == len(window) - 1
            # Skip the gradient all-reduce on all but the last micro-batch of the window.
            sync = nullcontext() if last else accelerator.no_sync(self.model)
            with sync, accelerator.autocast():
                logits = self.model(**batch.model_inputs(accelerator.device)).logits
                losses, _ = token_losses(logits, batch.labels.to(accelerator.device))
                # Token-weighted over the whole window, so accumulation equals one big batch.
                loss = losses.sum() / label_tokens
            accelerator.backward(loss)
            loss_sum += float(loss.detach())
        real = sum(batch.real_tokens for batch in window)
        total = sum(batch.total_tokens for batch in window)
        stats = torch.tensor([loss_sum, float(real), float(total)], device=accelerator.device)
        if accelerator.num_processes > 1:
            stats = accelerator.reduce(stats, reduction="sum")
            stats[0] /= accelerator.num_processes
        learning_rate = float(self.scheduler.get_last_lr()[0])
        if math.isfinite(float(stats[0])):
            grad_norm = self._clip_gradients()
            self.optimizer.step()
            if not accelerator.optimizer_step_was_skipped:
                self.scheduler.step()
        else:
            # Stepping on a NaN or infinite gradient would ruin every weight: skip the update
            # (every process agrees, the loss is reduced) and let train() count the step.
            grad_norm = math.nan
        self.optimizer.zero_grad(set_to_none=True)
        elapsed = max(time.perf_counter() - started, 1e-9)
        return {
            "loss": float(stats[0]),
            "learning_rate": learning_rate,
            "grad_norm": grad_norm,
            "tokens": float(stats[1]),
            "tokens_per_second": float(stats[1]) / elapsed,
            "padding_share": 1.0 - float(stats[1]) / max(float(stats[2]), 1.0),
            "memory_mb": _memory_mb(accelerator.device),
        }

    def _clip_gradients(self) -> float:
        accelerator = self._accelerator()
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        max_norm = self.recipe.training.max_grad_norm
        if max_norm > 0:
            norm = accelerator.clip_grad_norm_(parameters, max_norm)
        else:
            accelerator.unscale_gradients()
            grads = [p.grad for p in parameters if p.grad is not None]
            norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])
            )
        return float(norm)

    def _divergence_message(self, loss: float) -> str:
        """Why a run whose loss stopped being finite failed, and what to change."""
        training = self.recipe.training
        count = self.nonfinite_steps
        first = self.step - count + 1
        steps = f"step {first}" if count == 1 else f"steps {first}-{self.step}"
        if self.last_finite_loss is None:
            before = "no step had a finite loss"
        else:
            step, value = self.last_finite_loss
            before = f"the last finite loss was {value:.4f} at step {step}"
        fixes = [
            f"lower training.learning_rate (now {training.learning_rate:g}; try "
            f"{training.learning_rate / 10:g})"
        ]
        if training.precision in {"fp16", "auto"}:
            fixes.append("use training.precision: bf16 (or fp32) instead of fp16")
        if training.max_grad_norm <= 0:
            fixes.append("turn gradient clipping on with training.max_grad_norm: 1.0")
        else:
            fixes.append(
                f"clip gradients harder with training.max_grad_norm below {training.max_grad_norm:g}"
            )
        return (
            f"Training diverged: the loss was {loss} at {steps} "
            f"(training.max_nonfinite_steps: {training.max_nonfinite_steps}); {before}. "
            "Those steps' updates were skipped and no adapter was saved. Likely fixes: "
            + "; ".join(fixes)
            + "."
        )

    def _should_stop(self) -> bool:
        """Honour pause and stop; all processes agree, since only rank 0 hears the user."""
        if self.cancel.paused and not self.cancel.cancelled:
            self.log(logging.INFO, "paused at step %d", self.step)
            self.cancel.wait_if_paused()
            if not self.cancel.cancelled:
                self.log(logging.INFO, "resumed at step %d", self.step)
        accelerator = self._accelerator()
        if accelerator.num_processes == 1:
            return self.cancel.cancelled
        flag = torch.tensor([1.0 if self.cancel.cancelled else 0.0], device=accelerator.device)
        return bool(accelerator.reduce(flag, reduction="sum").item() > 0)

    def _cancelled(self) -> RunResult:
        self.log(logging.INFO, "stopping at step %d: saving a checkpoint", self.step)
        if self.step > 0 and not self._saved_at(self.step):
            self._checkpoint(*self.position)
        self.emit(RunFinished(status=RunStatus.CANCELLED, final_step=self.step))
        return self._result(RunStatus.CANCELLED)

    def _saved_at(self, step: int) -> bool:
        return self.last_checkpoint is not None and self.last_checkpoint.name.endswith(f"-{step}")

    # --- evaluation, checkpoints, output ------------------------------------------------------

    def _evaluate(self) -> None:
        plan = self._plan_or_fail()
        accelerator = self._accelerator()
        per_device = self.recipe.training.per_device_train_batch_size
        rank, world = accelerator.process_index, accelerator.num_processes
        mine = list(plan.validation)[rank::world]
        totals = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(mine), per_device):
                batch = collate_padded(
                    mine[start : start + per_device], pad_token_id=self.pad_token_id
                )
                with accelerator.autocast():
                    logits = self.model(**batch.model_inputs(accelerator.device)).logits
                losses, mask = token_losses(logits, batch.labels.to(accelerator.device))
                totals[0] += losses.sum().double()
                totals[1] += mask.sum().double()
        self.model.train()
        if world > 1:
            totals = accelerator.reduce(totals, reduction="sum")
        eval_loss = float(totals[0] / totals[1]) if totals[1] > 0 else math.nan
        perplexity = math.exp(eval_loss) if eval_loss < 700 else math.inf
        self.last_eval = eval_loss
        self.last_eval_step = self.step
        self.emit(EvalCompleted(step=self.step, eval_loss=eval_loss, perplexity=perplexity))
        self._track("eval", {"loss": eval_loss, "perplexity": perplexity})

    def _setup_code_eval(self) -> None:
        """Read the recipe's evaluation tasks (main process); a problem only turns it off."""
        from codetune_studio.engine.code_eval import TrainingCodeEval

        spec = self.recipe.evaluation
        if spec is None or not self._accelerator().is_main_process:
            return
        if self.code_judge is None:
            self.log(
                logging.WARNING,
                "evaluation is off for this run: nothing here can run the generated code "
                "(start the run through the worker or `codetune-studio train`)",
            )
            return
        try:
            self.code_eval = TrainingCodeEval(spec, self.code_judge, seed=self.recipe.training.seed)
        except CodetuneError as exc:
            self.log(logging.WARNING, "evaluation is off for this run: %s", exc)
            return
        self.log(
            logging.INFO,
            "evaluation: %d tasks from %s, %d sample(s) each, at every eval step and at the end",
            len(self.code_eval.tasks),
            spec.tasks,
            spec.samples,
        )

    def _evaluate_code(self) -> None:
        """pass@k of the model being trained on the recipe's tasks; never fails the run.

        The main process answers and judges while the others wait at a barrier (they have
        nothing to add: the tasks are few and generation is sequential). The wait counts
        against the process group's timeout (10 minutes with NCCL by default), which is one
        more reason to keep the task set small.
        """
        if self.recipe.evaluation is None:
            return
        accelerator = self._accelerator()
        self.last_code_eval_step = self.step
        if self.code_eval is not None:
            model = accelerator.unwrap_model(self.model)
            try:
                score = self.code_eval.evaluate(
                    model, self.tokenizer, step=self.step, cancel=self.cancel
                )
            except Exception as exc:  # an evaluator failure must never end the run
                self.code_eval = None  # one warning, not one per eval step
                logger.debug("in-training evaluation failed", exc_info=True)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()  # an out-of-memory in generation leaves blocks
                self.log(
                    logging.WARNING,
                    "evaluation failed at step %d and is off for the rest of this run "
                    "(training continues): %s: %s",
                    self.step,
                    type(exc).__name__,
                    str(exc).splitlines()[0][:300] if str(exc) else "no detail",
                )
            else:
                if score is not None:  # None: a stop request cut it short
                    self._report_code_eval(score)
        if accelerator.num_processes > 1:
            accelerator.wait_for_everyone()

    def _report_code_eval(self, score: CodeEvalScore) -> None:
        pass_at_1 = score.metrics["eval_pass@1"]
        self.last_pass_at_1 = pass_at_1
        self.log(
            logging.INFO,
            "step %d: pass@1 %.3f on %d tasks (%d of %d answers passed) in %.1f s",
            self.step,
            pass_at_1,
            score.tasks,
            score.passed,
            score.tasks * score.samples,
            score.seconds,
        )
        self.emit(
            CodeEvalCompleted(
                step=self.step,
                metrics=score.metrics,
                tasks=score.tasks,
                samples=score.samples,
                seconds=score.seconds,
            )
        )
        self._track("eval", {k.removeprefix("eval_"): v for k, v in score.metrics.items()})

    def _track(self, prefix: str, metrics: dict[str, float]) -> None:
        """Send metrics to the recipe's trackers (``training.report_to``), if any."""
        accelerator = self._accelerator()
        if accelerator.trackers:
            accelerator.log({f"{prefix}/{k}": v for k, v in metrics.items()}, step=self.step)

    def _checkpoint(self, epoch: int, position: int) -> None:
        assert self.checkpoints is not None  # noqa: S101 - set up in setup()
        state = TrainerState(
            step=self.step,
            epoch=epoch,
            batches_in_epoch=position,
            seed=self.recipe.training.seed,
            total_steps=self._plan_or_fail().total_steps,
            world_size=self._accelerator().num_processes,
            data_fingerprint=self.data_fingerprint,
            method=self.recipe.method,
        )
        path = self.checkpoints.save(state)
        self.last_checkpoint = path
        self.emit(CheckpointSaved(step=self.step, path=path))

    def _save_output(self) -> Path:
        """Write the adapter (or the full model) and the tokenizer; main process only."""
        accelerator = self._accelerator()
        final = self.output_dir / ADAPTER_DIR
        if accelerator.is_main_process:
            staging = final.with_name(final.name + ".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            model = accelerator.unwrap_model(self.model)
            model.save_pretrained(str(staging), safe_serialization=True)
            self.tokenizer.save_pretrained(str(staging))
            # The old output stays in place until the new one is complete on disk.
            replace_folder(staging, final)
            kind = "adapter" if self.recipe.method in PEFT_METHODS else "model"
            self.log(logging.INFO, "saved the %s to %s", kind, final)
        accelerator.wait_for_everyone()
        return final

    # --- small helpers ------------------------------------------------------------------------

    def _accelerator(self) -> Accelerator:
        if self.accelerator is None:
            raise TrainingError("the training session was used before setup")
        return self.accelerator

    def _plan_or_fail(self) -> _Plan:
        if self.plan is None:
            raise TrainingError("the training session was used before setup")
        return self.plan

    def _device(self) -> torch.device:
        device: torch.device = self._accelerator().device
        return device


def _check_trackers(report_to: Sequence[str]) -> None:
    """Fail before training when a tracker's package is missing (Accelerate would skip it).

    Args:
        report_to: The recipe's ``training.report_to``.

    Raises:
        ConfigError: A tracker's package is not installed; the message says how to install it.
    """
    # Accelerate's TensorBoard tracker writes through torch.utils.tensorboard (which needs the
    # tensorboard package) or, failing that, tensorboardX.
    if "tensorboard" in report_to and not any(
        importlib.util.find_spec(name) is not None for name in ("tensorboard", "tensorboardX")
    ):
        raise ConfigError(
            "training.report_to: tensorboard needs the tensorboard package, which is not "
            "installed: pip install tensorboard (or remove tensorboard from training.report_to)"
        )


def _memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    if device.type == "mps":
        # Metal allocations live outside the process's resident set.
        return torch.mps.current_allocated_memory() / 2**20
    # psutil comes with accelerate; imported by name because it ships no type stubs.
    psutil = importlib.import_module("psutil")
    return float(psutil.Process().memory_info().rss) / 2**20


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError | MemoryError) and (
        "out of memory" in text or "can't allocate memory" in text or isinstance(exc, MemoryError)
    )


def _remote_code_hint(exc: BaseException, recipe: TrainingRecipe) -> str:
    if "trust_remote_code" in str(exc) and not recipe.trust_remote_code:
        return "; this model needs its own code: set trust_remote_code: true if you trust it"
    return ""


def _model_load_message(model_path: str | Path, exc: BaseException, recipe: TrainingRecipe) -> str:
    text = str(exc)
    hint = _remote_code_hint(exc, recipe)
    if not recipe.allow_pickle and ("safetensors" in text or ".bin" in text):
        hint += (
            "; the model has no safetensors weights: convert it, or set allow_pickle: true "
            "if you trust its pickled .bin files"
        )
    return f"Cannot load model {model_path}: {text.splitlines()[0] if text else type(exc).__name__}{hint}"

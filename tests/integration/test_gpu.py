"""What only a CUDA GPU can show: QLoRA, bf16 autocast and a real CUDA out-of-memory.

Marked ``gpu``: skipped, with the reason printed, where ``torch.cuda.is_available()`` is false
(as on the CPU CI machines); a GPU job runs them. QLoRA needs ``bitsandbytes`` there, imported
plainly so a GPU job without it fails instead of skipping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.core.cancel import CancelToken
from codetune_studio.core.status import RunStatus
from codetune_studio.engine.sinks import ListSink
from tests.trainer_helpers import losses, make_recipe, save_tiny_model, write_completion_dataset

if TYPE_CHECKING:
    from pathlib import Path

    from codetune_studio.core.events import Event

pytestmark = [pytest.mark.integration, pytest.mark.gpu]


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("gpu")
    return save_tiny_model(root / "model"), write_completion_dataset(root / "data.jsonl")


def _train(recipe: Any, tmp_path: Path) -> tuple[Any, list[Event]]:
    from codetune_studio.engine.run import run_training

    sink = ListSink()
    result = run_training(
        recipe, sink, CancelToken(), run_id="gpu", output_dir=tmp_path / "run", data_dir=tmp_path
    )
    return result, sink.events


def test_qlora_trains_a_4bit_base_and_saves_the_adapter(
    assets: tuple[Path, Path], tmp_path: Path
) -> None:
    import bitsandbytes  # noqa: F401  # QLoRA's 4-bit layers; a GPU job must have it

    model, data = assets
    result, events = _train(make_recipe(model, data, method="qlora", max_steps=3), tmp_path)
    assert result.status is RunStatus.FINISHED, result.error
    assert sorted(losses(events)) == [1, 2, 3]
    assert result.adapter_path is not None
    assert (result.adapter_path / "adapter_config.json").is_file()


def test_bf16_autocast_computes_in_bfloat16_on_cuda(
    assets: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import codetune_studio.engine.run as engine_run
    from codetune_studio.engine.packing import token_losses

    dtypes: list[torch.dtype] = []

    def recording(logits: Any, labels: Any) -> Any:
        dtypes.append(logits.dtype)
        return token_losses(logits, labels)

    monkeypatch.setattr(engine_run, "token_losses", recording)
    recipe = make_recipe(model=assets[0], dataset=assets[1], precision="bf16", max_steps=2)
    result, events = _train(recipe, tmp_path)
    assert result.status is RunStatus.FINISHED, result.error
    assert dtypes
    assert set(dtypes) == {torch.bfloat16}
    assert all(loss == loss for loss in losses(events).values())  # finite, not NaN


@pytest.mark.expect_logs(r"run gpu failed: Out of memory")
def test_cuda_out_of_memory_fails_the_run_with_settings_that_would_fit(
    assets: tuple[Path, Path], tmp_path: Path
) -> None:
    import torch

    model, data = assets
    # A real CUDA OOM from the caching allocator: allow this process almost no GPU memory.
    torch.cuda.set_per_process_memory_fraction(1e-6)
    try:
        result, _ = _train(make_recipe(model, data, max_steps=2), tmp_path)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert result.status is RunStatus.FAILED
    assert (result.error or "").startswith("Out of memory")
    assert "per_device_train_batch_size" in (result.error or "")

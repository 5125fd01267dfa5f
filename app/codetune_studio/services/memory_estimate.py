"""A rough training-memory estimate: weights, gradients, optimizer state and activations. Qt-free.

The numbers follow the usual accounting (Hugging Face's "Model memory anatomy", Korthikanti et
al. for activations): weights at the load precision; gradients and AdamW's two moments for the
trainable parameters only (all of them for full fine-tuning, the adapters for LoRA); activations
of about 34 bytes per token, hidden unit and layer at 16-bit, far fewer with gradient
checkpointing; and the logits, which for a large vocabulary often dominate a small model.

This module belongs in ``services/`` (it has no Qt): the window's engineer asks for it to move.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MemoryEstimate", "ModelShape", "estimate_memory", "find_model_shape", "format_bytes"]

logger = logging.getLogger(__name__)

#: The bundled starter model's shape (a tiny Llama-style model, see engine/starter.py).
STARTER_SHAPE_DEFAULTS = {"hidden_size": 256, "num_hidden_layers": 4, "vocab_size": 4096,
                          "intermediate_size": 688, "num_attention_heads": 4}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ModelShape:
    """What the estimate needs to know about a model.

    Attributes:
        parameters: Total parameter count.
        hidden_size: Width of the residual stream.
        num_layers: Transformer blocks.
        vocab_size: Vocabulary size (the logits' width).
    """

    parameters: int
    hidden_size: int
    num_layers: int
    vocab_size: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        """Work out the shape from a ``config.json``; parameters are counted if not given."""
        hidden = int(
            config.get("hidden_size") or config.get("n_embd") or config.get("d_model") or 768
        )
        layers = int(config.get("num_hidden_layers") or config.get("n_layer") or 12)
        vocab = int(config.get("vocab_size") or 32000)
        inter = int(config.get("intermediate_size") or config.get("n_inner") or 4 * hidden)
        heads = int(config.get("num_attention_heads") or 1)
        kv_heads = int(config.get("num_key_value_heads") or heads)
        kv = hidden * kv_heads // max(heads, 1)
        per_layer = hidden * (2 * hidden + 2 * kv) + 3 * hidden * inter + 2 * hidden
        tied = bool(config.get("tie_word_embeddings", False))
        embeddings = vocab * hidden * (1 if tied else 2)
        return cls(per_layer * layers + embeddings + hidden, hidden, layers, vocab)


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    """Bytes each part of training needs.

    Attributes:
        weights: The model's weights.
        gradients: Gradients of the trainable parameters.
        optimizer: AdamW's state (and fp32 master weights for full mixed-precision training).
        activations: Activations kept for the backward pass, logits included.
        trainable_parameters: How many parameters are trained.
    """

    weights: int
    gradients: int
    optimizer: int
    activations: int
    trainable_parameters: int

    @property
    def total(self) -> int:
        """All parts together, plus about 10 % for the framework and fragmentation."""
        return int((self.weights + self.gradients + self.optimizer + self.activations) * 1.1)


def find_model_shape(model: str, starter_dir: Path | None = None) -> ModelShape | None:
    """Read a model's shape from its ``config.json``: a local folder, the starter, or the HF cache.

    Args:
        model: ``"starter"``, a local folder, or a hub id.
        starter_dir: Where the starter model lives, if it was built.

    Returns:
        The shape, or ``None`` when no config can be found without the network.
    """
    if model == "starter":
        config_path = starter_dir / "config.json" if starter_dir is not None else None
        if config_path is not None and config_path.is_file():
            return _read_shape(config_path)
        return ModelShape.from_config(dict(STARTER_SHAPE_DEFAULTS))
    local = Path(model).expanduser()
    if (local / "config.json").is_file():
        return _read_shape(local / "config.json")
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json")
    except Exception:
        logger.debug("no cached config for %s", model, exc_info=True)
        return None
    return _read_shape(Path(cached)) if isinstance(cached, str) else None


def _read_shape(path: Path) -> ModelShape | None:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(config.get("text_config"), dict):  # multimodal wrappers
        config = {**config, **config["text_config"]}
    return ModelShape.from_config(config) if isinstance(config, dict) else None


def estimate_memory(
    shape: ModelShape,
    *,
    method: str,
    batch_size: int,
    seq_length: int,
    precision: str = "auto",
    lora_rank: int = 8,
    gradient_checkpointing: bool = False,
    on_gpu: bool = False,
) -> MemoryEstimate:
    """Estimate training memory.

    Args:
        shape: The model's shape.
        method: ``lora``, ``dora``, ``qlora``, ``full`` or ``prompt_tuning``.
        batch_size: Examples per device step.
        seq_length: Tokens per example.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        lora_rank: The adapters' rank.
        gradient_checkpointing: Whether activations are recomputed.
        on_gpu: Whether ``auto`` precision means 16-bit (GPU) or fp32 (CPU).

    Returns:
        The estimate.
    """
    half = precision in {"bf16", "fp16"} or (precision == "auto" and on_gpu)
    weight_bytes = 0.55 if method == "qlora" else (2 if half else 4)
    weights = int(shape.parameters * weight_bytes)
    if method == "full":
        trainable = shape.parameters
    elif method == "prompt_tuning":
        trainable = 20 * shape.hidden_size
    else:
        # Adapters on the four attention projections and the three MLP ones, each r * (in + out).
        trainable = shape.num_layers * 7 * lora_rank * 2 * shape.hidden_size
    gradients = trainable * 4
    optimizer = trainable * 8 + (trainable * 4 if half and method == "full" else 0)
    act_bytes = 2 if half else 4
    tokens = batch_size * seq_length
    per_layer = 34 * tokens * shape.hidden_size * act_bytes // 2
    if gradient_checkpointing:
        layers_part = tokens * shape.hidden_size * act_bytes * shape.num_layers + per_layer
    else:
        layers_part = per_layer * shape.num_layers
    logits = tokens * shape.vocab_size * 4 * 2  # fp32 logits and their gradient
    return MemoryEstimate(weights, gradients, optimizer, int(layers_part + logits), trainable)


def format_bytes(count: float) -> str:
    """``1536`` -> ``"1.5 KB"``; binary units, one decimal."""
    if count < 1024:
        return f"{int(count)} B"
    exponent = min(int(math.log(count, 1024)), 4)
    return f"{count / 1024**exponent:.1f} {'BKMGT'[exponent]}B"

"""Tiny, offline models and tokenizers for the trainer's tests (Lightning's ``BoringModel`` idea).

Everything here is built from configs in memory: no download, a few thousand parameters, so a
training step takes milliseconds on one CPU core.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

#: Architectures the target-detection test builds, with the config overrides that make them tiny.
TINY_ARCHS: dict[str, dict[str, Any]] = {
    "llama": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
    "mistral": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
    "qwen2": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
    "phi": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
    },
    # GPT-2 defaults its special tokens to 50256, outside this vocabulary (transformers warns).
    "gpt2": {
        "n_embd": 32,
        "n_layer": 1,
        "n_head": 4,
        "n_positions": 128,
        "bos_token_id": 0,
        "eos_token_id": 0,
    },
    "falcon": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4},
    "gpt_neox": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
    },
    "opt": {
        "hidden_size": 32,
        "ffn_dim": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "word_embed_proj_dim": 32,
    },
}

VOCAB_SIZE = 300  # 256 bytes + a few specials, rounded up


def tiny_causal_lm(arch: str = "llama", *, seed: int = 0, **overrides: Any) -> Any:
    """A one-layer random causal LM of the given architecture."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    settings = {**TINY_ARCHS[arch], "vocab_size": VOCAB_SIZE, **overrides}
    if arch not in {"gpt2"}:
        settings.setdefault("max_position_embeddings", 128)
    config = AutoConfig.for_model(arch, **settings)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]


def byte_tokenizer() -> Any:
    """A byte-level tokenizer with no merges: every UTF-8 byte is one token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2}
    for char in sorted(alphabet):
        vocab[char] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
    )


def save_tiny_model(folder: Path, arch: str = "llama", *, seed: int = 0, **overrides: Any) -> Path:
    """Write a tiny model and its tokenizer to ``folder`` (safetensors) and return it."""
    model = tiny_causal_lm(arch, seed=seed, **overrides)
    tokenizer = byte_tokenizer()
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.bos_token_id = tokenizer.bos_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_completion_dataset(path: Path, rows: int = 48) -> Path:
    """A JSONL prompt/completion set a tiny model learns in a few dozen steps."""
    lines = []
    for index in range(rows):
        word = ["alpha", "beta", "gamma", "delta"][index % 4]
        lines.append(json.dumps({"prompt": f"say {word}:", "completion": f" {word} {word}."}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def recipe_data(
    model: Path, dataset: Path, *, method: str = "lora", **training: Any
) -> dict[str, Any]:
    """A small recipe as plain data: tiny batches and rows, no evaluation or saving unless asked."""
    settings: dict[str, Any] = {
        "max_steps": 6,
        "per_device_train_batch_size": 4,
        "max_seq_length": 64,
        "learning_rate": 1e-2,
        "eval_steps": None,
        "save_steps": None,
        "warmup_ratio": 0.0,
    }
    settings.update(training)
    return {
        "model": str(model),
        "method": method,
        "dataset": {"path": str(dataset), "validation_split": 0.1},
        "training": settings,
        "lora": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.1},
    }


def make_recipe(model: Path, dataset: Path, **kwargs: Any) -> Any:
    """A validated ``TrainingRecipe`` built by :func:`recipe_data`."""
    from codetune_studio.core.recipe import TrainingRecipe

    return TrainingRecipe.model_validate(recipe_data(model, dataset, **kwargs))


def write_recipe(path: Path, model: Path, dataset: Path, **kwargs: Any) -> Path:
    """Write :func:`recipe_data` as a JSON recipe file."""
    path.write_text(json.dumps(recipe_data(model, dataset, **kwargs)), encoding="utf-8")
    return path


def losses(events: list[Any]) -> dict[int, float]:
    """Step to training loss, from a run's events."""
    from codetune_studio.core.events import MetricsLogged

    return {e.step: e.metrics["loss"] for e in events if isinstance(e, MetricsLogged)}

"""Write a merged model as GGUF, the file format of llama.cpp and Ollama.

Built on the ``gguf`` package that llama.cpp maintains (its writer, its HF-to-GGUF tensor name
map, its Q8_0 quantizer), with our own choices about what goes in:

- The Llama family: ``llama`` and ``mistral`` (both written as GGUF's ``llama`` architecture)
  and ``qwen2``. Anything else is refused with a message naming these.
- Llama's Q and K projections are written with their rows reordered: HF stores each head's rotary
  halves one after the other, llama.cpp expects the pairs interleaved. Qwen2 is converted without
  that reordering (llama.cpp's rotary mode for it matches HF's layout).
- The tokenizer: byte-level BPE only (``tokenizer.ggml.model = gpt2``), the vocabulary in id order
  with each token's type, the merges, the pre-tokenizer, the chat template, and the end-of-sequence
  and end-of-turn ids, so that llama.cpp stops where the model was trained to stop.
- ``f16``: matrices in float16, vectors (norms, biases) in float32. ``q8_0``: matrices whose
  rows are a multiple of 32 in Q8_0, other matrices in float16, vectors in float32.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from codetune_studio.core.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["SUPPORTED_ARCHITECTURES", "gguf_architecture", "permute_qk", "write_gguf"]

logger = logging.getLogger(__name__)

#: HF ``model_type`` -> (GGUF architecture name, whether Q/K rows are reordered).
SUPPORTED_ARCHITECTURES: Final[dict[str, tuple[str, bool]]] = {
    "llama": ("llama", True),
    "mistral": ("llama", True),
    "qwen2": ("qwen2", False),
}
_Q8_BLOCK: Final = 32
#: llama.cpp's name for the GPT-2 regex split that a plain ``ByteLevel`` pre-tokenizer applies.
_GPT2_PRE: Final = "gpt-2"


def gguf_architecture(model_type: str) -> tuple[str, bool]:
    """The GGUF architecture for an HF ``model_type``, and whether Q/K are reordered.

    Raises:
        ConfigError: The architecture is not one GGUF export supports.
    """
    try:
        return SUPPORTED_ARCHITECTURES[model_type]
    except KeyError:
        supported = ", ".join(sorted(SUPPORTED_ARCHITECTURES))
        raise ConfigError(
            f"GGUF export does not support the {model_type!r} architecture; it supports "
            f"{supported}. Export it as --format merged and convert it with llama.cpp's "
            "convert_hf_to_gguf.py"
        ) from None


def permute_qk(weight: np.ndarray, heads: int) -> np.ndarray:
    """Reorder a Q or K projection's rows from HF's rotary layout to llama.cpp's.

    Within each head HF keeps the first halves of the rotary pairs, then the second halves;
    llama.cpp expects them interleaved (first of pair 0, second of pair 0, first of pair 1...).
    """
    rows = weight.shape[0]
    return (
        weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def write_gguf(
    model: Any, tokenizer_dir: Path, path: Path, gguf_type: str, *, name: str = "model"
) -> None:
    """Write ``model`` (an HF causal LM, adapter already merged) and its tokenizer to ``path``.

    Args:
        model: The merged model.
        tokenizer_dir: Folder of its HF tokenizer.
        path: The ``.gguf`` file to write.
        gguf_type: ``f16`` or ``q8_0``.
        name: The model's name in the file's metadata.

    Raises:
        ConfigError: The architecture or the tokenizer is one GGUF export does not support.
    """
    import gguf

    config = model.config
    arch, reorder = gguf_architecture(config.model_type)
    tokenizer = _load_tokenizer(tokenizer_dir)
    writer = gguf.GGUFWriter(str(path), arch)
    try:
        _write_hparams(writer, config, name, gguf_type)
        _write_tokenizer(writer, tokenizer, tokenizer_dir, config.vocab_size)
        _write_tensors(writer, model, arch, reorder, gguf_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=False)
    finally:
        writer.close()


def _load_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    spec_path = Path(folder) / "tokenizer.json"
    spec = json.loads(spec_path.read_text(encoding="utf-8")) if spec_path.is_file() else {}
    if spec.get("model", {}).get("type") != "BPE" or not _is_byte_level(spec):
        raise ConfigError(
            f"GGUF export supports byte-level BPE tokenizers (GPT-2, Llama 3, Qwen2 style); the "
            f"tokenizer in {folder} is not one. Export --format merged and convert it with "
            "llama.cpp's convert_hf_to_gguf.py"
        )
    return tokenizer


def _is_byte_level(spec: dict[str, Any]) -> bool:
    return _pre_tokenizer_kind(spec) is not None


def _pre_tokenizer_kind(spec: dict[str, Any]) -> str | None:
    """llama.cpp's pre-tokenizer name for this tokenizer, or ``None`` when unknown."""
    pre = spec.get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return _GPT2_PRE
    return None


def _write_hparams(writer: Any, config: Any, name: str, gguf_type: str) -> None:
    import gguf

    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    theta = getattr(config, "rope_theta", None)
    if theta is None:  # transformers 5 keeps it in rope_parameters
        theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
    writer.add_rope_freq_base(float(theta))
    writer.add_vocab_size(config.vocab_size)
    file_type = (
        gguf.LlamaFileType.MOSTLY_Q8_0 if gguf_type == "q8_0" else gguf.LlamaFileType.MOSTLY_F16
    )
    writer.add_file_type(int(file_type))


def _write_tokenizer(writer: Any, tokenizer: Any, folder: Path, vocab_size: int) -> None:
    import gguf

    by_id = {token_id: token for token, token_id in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder  # id -> AddedToken
    tokens: list[str] = []
    types: list[int] = []
    for token_id in range(max(vocab_size, len(by_id))):
        token = by_id.get(token_id)
        if token is None:
            # The embedding matrix is larger than the vocabulary (padded): name the rows.
            tokens.append(f"[PAD{token_id}]")
            types.append(int(gguf.TokenType.UNUSED))
        elif token_id in added:
            tokens.append(token)
            special = added[token_id].special
            types.append(int(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED))
        else:
            tokens.append(token)
            types.append(int(gguf.TokenType.NORMAL))
    writer.add_tokenizer_model("gpt2")
    spec = json.loads((Path(folder) / "tokenizer.json").read_text(encoding="utf-8"))
    writer.add_tokenizer_pre(_pre_tokenizer_kind(spec) or _GPT2_PRE)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens))
    special.chat_template = tokenizer.chat_template  # the jinja file too, not only the config
    # Say explicitly whether a BOS/EOS is added to a prompt, as the HF tokenizer does: left
    # unset, llama.cpp falls back to its own default for the vocabulary type.
    sample = tokenizer("a")["input_ids"]
    special.add_special_token["bos"] = bool(sample) and sample[0] == tokenizer.bos_token_id
    special.add_special_token["eos"] = bool(sample) and sample[-1] == tokenizer.eos_token_id
    special.add_to_gguf(writer, quiet=True)
    eot = _end_of_turn_id(tokenizer)
    if eot is not None:
        writer.add_eot_token_id(eot)


def _end_of_turn_id(tokenizer: Any) -> int | None:
    """The token that closes an assistant turn in the chat template (else EOS)."""
    from codetune_studio.engine.modelfile import turn_stop_tokens

    for token in turn_stop_tokens(tokenizer):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            return token_id
    eos = tokenizer.eos_token_id
    return int(eos) if eos is not None else None


def _write_tensors(writer: Any, model: Any, arch: str, reorder: bool, gguf_type: str) -> None:
    import gguf

    config = model.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    model_arch = next(key for key, value in gguf.MODEL_ARCH_NAMES.items() if value == arch)
    name_map = gguf.get_tensor_name_map(model_arch, config.num_hidden_layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp uses token_embd as the output when output.weight is absent
        gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            if hf_name.endswith("rotary_emb.inv_freq"):
                continue  # recomputed from rope_theta
            raise ConfigError(f"GGUF export cannot map the tensor {hf_name!r} to a GGUF name")
        data = tensor.detach().float().cpu().numpy()
        if reorder and hf_name.endswith("q_proj.weight"):
            data = permute_qk(data, heads)
        elif reorder and hf_name.endswith("k_proj.weight"):
            data = permute_qk(data, kv_heads)
        _add_tensor(writer, gguf_name, data, gguf_type)


def _add_tensor(writer: Any, name: str, data: np.ndarray, gguf_type: str) -> None:
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize

    if data.ndim < 2:
        writer.add_tensor(name, data.astype(np.float32))
    elif gguf_type == "q8_0" and data.shape[-1] % _Q8_BLOCK == 0:
        packed = quantize(data.astype(np.float32), GGMLQuantizationType.Q8_0)
        writer.add_tensor(name, packed, raw_shape=packed.shape, raw_dtype=GGMLQuantizationType.Q8_0)
    else:
        writer.add_tensor(name, data.astype(np.float16))

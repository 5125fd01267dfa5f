"""Training tokenizers with the ``tokenizers`` library, and comparing them on a dataset.

One function, :func:`train_tokenizer`, builds every tokenizer the studio trains: the builder's
(``codetune-studio tokenizer train``, the Tokenizer panel) and the starter model's. It saves in
Hugging Face format, so ``AutoTokenizer.from_pretrained(folder)`` loads the result with no studio
code. The texts are fed through an iterator, which is where progress is counted and a cancel is
honoured (the Rust trainer stops when the iterator raises).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from codetune_studio.core.errors import ConfigError, DatasetError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

    from codetune_studio.core.cancel import CancelToken

__all__ = [
    "CHATML_SPECIAL_TOKENS",
    "TOKENIZER_TYPES",
    "TokenizerCancelledError",
    "TokenizerSpec",
    "TokenizerStats",
    "compare_tokenizers",
    "corpus_texts",
    "save_tokenizer",
    "train_tokenizer",
]

TokenizerType = Literal["bpe", "wordpiece", "unigram"]
TOKENIZER_TYPES: Final = ("bpe", "wordpiece", "unigram")
#: The studio's chat tokens (the default chat template is ChatML): BOS, pad, turn start, EOS.
CHATML_SPECIAL_TOKENS: Final = ("<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>")
_UNK: Final = "<unk>"
_BYTE_TOKEN = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")  # SentencePiece-style byte fallback


class TokenizerCancelledError(Exception):
    """The training was cancelled; nothing was saved."""


@dataclass(frozen=True)
class TokenizerSpec:
    """What to train.

    Attributes:
        kind: ``bpe`` (byte-level: every input encodes, no unknown token), ``wordpiece`` or
            ``unigram`` (both with an unknown token; wordpiece splits on white space, so it
            does not round-trip code indentation).
        vocab_size: Vocabulary size, special tokens included.
        min_frequency: Pairs seen fewer times are not merged (bpe, wordpiece).
        special_tokens: Tokens added first, in this order (ids 0, 1, ...).
        bos_token: The beginning-of-sequence token (one of ``special_tokens``) or ``None``.
        eos_token: The end-of-sequence token training appends (one of ``special_tokens``).
        pad_token: The padding token, or ``None``.
        chat_template: Saved with the tokenizer, or ``None``.
        model_max_length: The longest input the tokenizer claims to handle.
        extra_special: Special tokens besides BOS, EOS and pad that the saved tokenizer names
            as additional special tokens (ChatML's turn start).
    """

    kind: TokenizerType = "bpe"
    vocab_size: int = 8000
    min_frequency: int = 2
    special_tokens: tuple[str, ...] = CHATML_SPECIAL_TOKENS
    bos_token: str | None = "<|endoftext|>"  # noqa: S105 - a token, not a password
    eos_token: str | None = "<|im_end|>"  # noqa: S105
    pad_token: str | None = "<|pad|>"  # noqa: S105
    chat_template: str | None = None
    model_max_length: int = 2048
    extra_special: tuple[str, ...] = field(default=("<|im_start|>",))

    def check(self) -> None:
        """Raise :class:`ConfigError` for a spec that cannot train."""
        if self.kind not in TOKENIZER_TYPES:
            raise ConfigError(
                f"--type: got {self.kind!r}, expected one of {', '.join(TOKENIZER_TYPES)}"
            )
        floor = len(self.special_tokens) + (256 if self.kind == "bpe" else 1)
        if self.vocab_size < floor:
            raise ConfigError(
                f"--vocab-size: got {self.vocab_size}, must be at least {floor} for {self.kind} "
                f"({len(self.special_tokens)} special tokens"
                + (" and 256 byte tokens)" if self.kind == "bpe" else ")")
            )
        if self.min_frequency < 1:
            raise ConfigError(f"--min-frequency: got {self.min_frequency}, must be >= 1")
        for name in (self.bos_token, self.eos_token, self.pad_token, *self.extra_special):
            if name is not None and name not in self.special_tokens:
                raise ConfigError(
                    f"--special-tokens: {name!r} is missing; the tokenizer needs it as a special "
                    f"token (give it, or a list that includes it)"
                )


def train_tokenizer(
    texts: Sequence[str],
    spec: TokenizerSpec,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelToken | None = None,
) -> PreTrainedTokenizerFast:
    """Train a tokenizer on ``texts``.

    Args:
        texts: The corpus, one document per item.
        spec: What to train.
        progress: Called with ``(texts read, total)`` as the trainer reads the corpus.
        cancel: Stops the training when cancelled.

    Returns:
        A ``PreTrainedTokenizerFast`` (save it with ``save_pretrained``).

    Raises:
        ConfigError: If the spec is invalid.
        DatasetError: If there is no text to train on.
        TokenizerCancelledError: If ``cancel`` was cancelled.
    """
    from transformers import PreTrainedTokenizerFast

    spec.check()
    if not any(text.strip() for text in texts):
        raise DatasetError("No text to train the tokenizer on: the inputs hold only blank rows")
    core, trainer = _core_and_trainer(spec)
    core.train_from_iterator(_fed(texts, progress, cancel), trainer=trainer, length=len(texts))
    if cancel is not None and cancel.cancelled:
        raise TokenizerCancelledError("Tokenizer training cancelled")
    extra = [
        t for t in spec.extra_special if t not in {spec.bos_token, spec.eos_token, spec.pad_token}
    ]
    kwargs: dict[str, object] = {}
    if spec.kind != "bpe":
        kwargs["unk_token"] = _UNK
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core,
        bos_token=spec.bos_token,
        eos_token=spec.eos_token,
        pad_token=spec.pad_token,
        additional_special_tokens=extra,
        chat_template=spec.chat_template,
        model_max_length=spec.model_max_length,
        clean_up_tokenization_spaces=False,
        **kwargs,
    )


def _fed(
    texts: Sequence[str],
    progress: Callable[[int, int], None] | None,
    cancel: CancelToken | None,
) -> Iterator[str]:
    step = max(1, len(texts) // 100)
    for done, text in enumerate(texts, start=1):
        if cancel is not None and cancel.cancelled:
            return  # the trainer finishes on what it has read; the caller then discards it
        yield text
        if progress is not None and (done % step == 0 or done == len(texts)):
            progress(done, len(texts))


def _core_and_trainer(spec: TokenizerSpec) -> tuple[Any, Any]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    special = list(spec.special_tokens)
    if spec.kind == "bpe":
        core = Tokenizer(models.BPE())
        core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        core.decoder = decoders.ByteLevel()
        # trim_offsets=False keeps each token's leading space in its offsets, so masking by
        # character spans labels whole tokens.
        core.post_processor = processors.ByteLevel(trim_offsets=False)
        trainer: Any = trainers.BpeTrainer(
            vocab_size=spec.vocab_size,
            special_tokens=special,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            min_frequency=spec.min_frequency,
            show_progress=False,
        )
        return core, trainer
    if _UNK not in special:
        special.append(_UNK)
    if spec.kind == "wordpiece":
        core = Tokenizer(models.WordPiece(unk_token=_UNK))
        core.pre_tokenizer = pre_tokenizers.Whitespace()
        core.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=spec.vocab_size,
            special_tokens=special,
            min_frequency=spec.min_frequency,
            show_progress=False,
        )
        return core, trainer
    core = Tokenizer(models.Unigram())
    core.pre_tokenizer = pre_tokenizers.Metaspace()
    core.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=spec.vocab_size, special_tokens=special, unk_token=_UNK, show_progress=False
    )
    return core, trainer


def corpus_texts(paths: Sequence[str]) -> list[str]:
    """The texts of datasets, text files or folders of code, as training would read them.

    Args:
        paths: Dataset files, folders of code or hub ids.

    Returns:
        One text per sample (a conversation's turns joined by new lines).

    Raises:
        DatasetError: If a path cannot be read.
    """
    from codetune_studio.core.recipe import DatasetSpec
    from codetune_studio.engine.data import load_samples

    texts: list[str] = []
    for path in paths:
        for sample in load_samples(DatasetSpec(path=path)):
            if sample.is_chat:
                texts.append("\n".join(m.content for m in sample.messages))
            else:
                texts.append(sample.prompt + sample.completion)
    return texts


@dataclass(frozen=True)
class TokenizerStats:
    """How a tokenizer fares on a corpus.

    Attributes:
        name: The tokenizer (its folder or hub id).
        vocab_size: Its vocabulary size.
        tokens: Tokens the corpus became.
        characters: Characters in the corpus.
        unknown_share: Share of tokens that are the unknown token.
        byte_fallback_share: Share of tokens that are single-byte fallbacks (``<0x41>``).
        vocab_used: Share of the vocabulary that occurs at least once.
    """

    name: str
    vocab_size: int
    tokens: int
    characters: int
    unknown_share: float
    byte_fallback_share: float
    vocab_used: float

    @property
    def tokens_per_char(self) -> float:
        """Tokens per character: lower packs more text into ``max_seq_length``."""
        return self.tokens / self.characters if self.characters else 0.0


def compare_tokenizers(
    tokenizers: dict[str, PreTrainedTokenizerBase], texts: Sequence[str]
) -> list[TokenizerStats]:
    """Measure each tokenizer on the same texts.

    Args:
        tokenizers: ``{name: tokenizer}``.
        texts: The corpus.

    Returns:
        One :class:`TokenizerStats` per tokenizer, in the order given.
    """
    characters = sum(len(text) for text in texts)
    stats = []
    for name, tokenizer in tokenizers.items():
        vocab = tokenizer.get_vocab()
        byte_ids = {i for token, i in vocab.items() if _BYTE_TOKEN.match(token)}
        unk = tokenizer.unk_token_id
        seen: set[int] = set()
        total = unknown = fallback = 0
        for start in range(0, len(texts), 256):  # batches: bounded memory on big corpora
            encoded = tokenizer(list(texts[start : start + 256]), add_special_tokens=False)
            for ids in encoded["input_ids"]:
                total += len(ids)
                seen.update(ids)
                unknown += sum(1 for i in ids if i == unk) if unk is not None else 0
                fallback += sum(1 for i in ids if i in byte_ids) if byte_ids else 0
        stats.append(
            TokenizerStats(
                name=name,
                vocab_size=len(vocab),
                tokens=total,
                characters=characters,
                unknown_share=unknown / total if total else 0.0,
                byte_fallback_share=fallback / total if total else 0.0,
                vocab_used=len(seen) / len(vocab) if vocab else 0.0,
            )
        )
    return stats


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, folder: Path) -> Path:
    """Save in Hugging Face format (``tokenizer.json``, ``tokenizer_config.json``, ...).

    Returns:
        The folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    return folder

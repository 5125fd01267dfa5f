"""The token and label inspector: a sample as the trainer sees it, token by token.

Everything here comes from :func:`codetune_studio.engine.data.label_samples`, the function
:func:`~codetune_studio.engine.data.prepare_data` builds training examples with, so what the
inspector shows as trained is what the loss covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from codetune_studio.core.errors import ConfigError
from codetune_studio.engine.data import IGNORE_INDEX, LabelledSample, label_samples, load_samples

if TYPE_CHECKING:
    from collections.abc import Sequence

    from transformers import PreTrainedTokenizerBase

    from codetune_studio.core.recipe import DatasetSpec

__all__ = ["WORST_KINDS", "TokenView", "Worst", "describe", "labelled_dataset", "rank_worst"]

Worst = Literal["truncated", "longest", "no-eos"]
#: The orders ``--worst`` and the panel's "Jump to worst" offer.
WORST_KINDS: Final[tuple[str, ...]] = ("truncated", "longest", "no-eos")


@dataclass(frozen=True)
class TokenView:
    """One sample's tokens, labels and what training makes of them.

    Attributes:
        index: The sample's position among the dataset's samples (0-based).
        source: The record (``file:line``).
        text: The rendered text (chat template applied).
        pieces: Each token's text.
        input_ids: Every token id, EOS included, before truncation.
        labels: Same length; ``-100`` where masked.
        max_seq_length: Where training cuts the example.
        eos_token_id: The tokenizer's EOS id.
    """

    index: int
    source: str
    text: str
    pieces: list[str]
    input_ids: list[int]
    labels: list[int]
    max_seq_length: int
    eos_token_id: int

    @property
    def truncated(self) -> bool:
        """Whether training cuts the example at ``max_seq_length``."""
        return len(self.input_ids) > self.max_seq_length

    @property
    def kept_labels(self) -> list[int]:
        """The labels training keeps."""
        return self.labels[: self.max_seq_length]

    @property
    def trained_tokens(self) -> int:
        """Tokens the loss covers, after truncation."""
        return sum(1 for label in self.kept_labels if label != IGNORE_INDEX)

    @property
    def eos_present(self) -> bool:
        """Whether the kept example ends with the EOS token."""
        kept = self.input_ids[: self.max_seq_length]
        return bool(kept) and kept[-1] == self.eos_token_id

    @property
    def eos_trained(self) -> bool:
        """Whether the model is taught to write that EOS (it learns to stop)."""
        return self.eos_present and self.kept_labels[-1] == self.eos_token_id

    def summary(self) -> str:
        """One line: length, trained tokens, truncation and EOS."""
        parts = [
            f"{len(self.input_ids)} tokens",
            f"{self.trained_tokens} trained",
            f"truncated at {self.max_seq_length}" if self.truncated else "not truncated",
        ]
        if self.eos_trained:
            parts.append("EOS present and trained")
        elif self.eos_present:
            parts.append("EOS present but masked: the model never learns to stop here")
        else:
            parts.append("no EOS (cut off by truncation)")
        return ", ".join(parts)


def labelled_dataset(
    spec: DatasetSpec, tokenizer: PreTrainedTokenizerBase, *, train_on_completions_only: bool
) -> list[LabelledSample]:
    """Every sample of a dataset, tokenized and labelled as training does.

    Args:
        spec: Where the data is and how to read it.
        tokenizer: The model's tokenizer.
        train_on_completions_only: The recipe's masking setting.

    Returns:
        One labelled sample per usable record.
    """
    samples = load_samples(spec)
    return label_samples(samples, tokenizer, mask_prompt=train_on_completions_only)


def describe(
    labelled: Sequence[LabelledSample],
    index: int,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
) -> TokenView:
    """The view of one sample.

    Args:
        labelled: The dataset's labelled samples.
        index: Which one (0-based).
        tokenizer: Turns ids back into text, one token at a time.
        max_seq_length: Where training cuts examples.

    Returns:
        The view.

    Raises:
        ConfigError: If ``index`` is out of range.
    """
    if not 0 <= index < len(labelled):
        raise ConfigError(f"row {index + 1}: out of range; the dataset has {len(labelled)} samples")
    item = labelled[index]
    pieces = tokenizer.batch_decode([[token] for token in item.input_ids])
    eos = tokenizer.eos_token_id
    return TokenView(
        index=index,
        source=item.source,
        text=item.text,
        pieces=[str(piece) for piece in pieces],
        input_ids=list(item.input_ids),
        labels=list(item.labels),
        max_seq_length=max_seq_length,
        eos_token_id=int(eos) if isinstance(eos, int) else -1,
    )


def rank_worst(
    labelled: Sequence[LabelledSample], kind: str, max_seq_length: int, eos_token_id: int
) -> list[int]:
    """Sample indices, worst first, for one kind of problem; samples without it are left out.

    Args:
        labelled: The dataset's labelled samples.
        kind: ``"truncated"`` (most cut off first), ``"longest"`` (all, longest first) or
            ``"no-eos"`` (samples whose kept example has no trained EOS).
        max_seq_length: Where training cuts examples.
        eos_token_id: The tokenizer's EOS id.

    Returns:
        The indices.

    Raises:
        ConfigError: If ``kind`` is unknown.
    """
    if kind not in WORST_KINDS:
        raise ConfigError(f"--worst: got {kind!r}, expected one of {', '.join(WORST_KINDS)}")
    lengths = [len(item.input_ids) for item in labelled]
    order = sorted(range(len(labelled)), key=lambda i: -lengths[i])
    if kind == "longest":
        return order
    if kind == "truncated":
        return [i for i in order if lengths[i] > max_seq_length]
    return [
        i
        for i in range(len(labelled))
        if not _eos_trained(labelled[i], max_seq_length, eos_token_id)
    ]


def _eos_trained(item: LabelledSample, max_seq_length: int, eos: int) -> bool:
    ids, labels = item.input_ids[:max_seq_length], item.labels[:max_seq_length]
    return bool(ids) and ids[-1] == eos and labels[-1] == eos

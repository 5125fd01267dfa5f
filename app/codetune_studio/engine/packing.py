"""Batching examples: packing into shared rows without cross-talk, or padding to the longest.

Packing puts several short examples in one row so that little compute goes to padding. Done
naively, a token of the second example can attend to the first and the first example's last token
is trained to predict the second's first: the samples contaminate each other. We prevent both:

* the first label of every packed sample is ``-100``, so no loss crosses a boundary;
* attention stays inside each sample, in one of two ways (:data:`MaskMode`):

  - ``"block"`` (what the engine uses with sdpa and eager attention): an explicit 4D
    block-diagonal causal mask, plus positions restarting at 0 for each sample. Works with any
    model code that accepts a 4D mask. Memory O(length^2), as any sdpa mask is.
  - ``"position_ids"`` (flash attention): positions restart at 0 and no mask is passed; the
    variable-length kernels split the samples. transformers 5.x also derives a block mask from
    positions for sdpa/eager, so this mode is correct there too, but it measured about 5x
    slower per training step on CPU than ``"block"``.

``tests/unit/test_packing.py`` checks that a packed row gives the same per-token loss as its
samples run one by one.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import torch

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "IGNORE_INDEX",
    "Batch",
    "MaskMode",
    "PackedRow",
    "SupportsTokens",
    "block_causal_mask",
    "collate_packed",
    "collate_padded",
    "pack_examples",
    "padding_share",
    "token_losses",
]

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
MaskMode = Literal["position_ids", "block"]


class SupportsTokens(Protocol):
    """Anything with token ids and labels of the same length (``TokenizedExample``)."""

    @property
    def input_ids(self) -> Sequence[int]:
        """Token ids."""
        ...

    @property
    def labels(self) -> Sequence[int]:
        """Labels, ``-100`` where no loss is computed."""
        ...


@dataclass(frozen=True, slots=True)
class PackedRow:
    """Several examples laid end to end.

    Attributes:
        input_ids: The concatenated token ids.
        labels: The concatenated labels, with each sample's first label set to ``-100``.
        position_ids: Positions restarting at 0 at each sample.
        samples: How many examples the row holds.
    """

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    samples: int

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True, slots=True)
class Batch:
    """One collated micro-batch, ready for the model.

    Attributes:
        input_ids: ``[batch, length]`` token ids.
        labels: ``[batch, length]`` labels (not shifted), ``-100`` where no loss is computed.
        attention_mask: A ``[batch, length]`` padding mask, a ``[batch, 1, length, length]``
            block mask, or ``None`` (packed rows in ``position_ids`` mode).
        position_ids: ``[batch, length]`` positions for packed rows, else ``None``.
        real_tokens: Tokens that are not padding.
        label_tokens: Tokens the loss is computed on (after the shift).
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor | None
    position_ids: torch.Tensor | None
    real_tokens: int
    label_tokens: int

    @property
    def total_tokens(self) -> int:
        """Every slot in the batch, padding included."""
        return int(self.input_ids.numel())

    @property
    def padding_share(self) -> float:
        """The share of slots that hold padding."""
        return padding_share(self.real_tokens, self.total_tokens)

    def model_inputs(self, device: torch.device | None = None) -> dict[str, Any]:
        """Keyword arguments for the model's forward (labels excluded: we compute the loss).

        ``use_cache=False`` matters beyond memory: transformers only derives the packed-sample
        mask from ``position_ids`` when no KV cache is in play.

        Args:
            device: Where to move the tensors, or ``None`` to leave them.

        Returns:
            ``input_ids`` plus ``attention_mask`` and/or ``position_ids`` when present.
        """
        tensors = {"input_ids": self.input_ids}
        if self.attention_mask is not None:
            tensors["attention_mask"] = self.attention_mask
        if self.position_ids is not None:
            tensors["position_ids"] = self.position_ids
        if device is not None:
            tensors = {name: tensor.to(device) for name, tensor in tensors.items()}
        return {**tensors, "use_cache": False}


def padding_share(real_tokens: int, total_tokens: int) -> float:
    """The share of ``total_tokens`` that is padding (0.0 for an empty batch)."""
    return 0.0 if total_tokens <= 0 else 1.0 - real_tokens / total_tokens


def pack_examples(examples: Sequence[SupportsTokens], max_seq_length: int) -> list[PackedRow]:
    """Pack examples into rows of at most ``max_seq_length`` tokens.

    Best-fit decreasing: longest examples first, each into the row with the least room that still
    fits it. The result depends only on the examples, so a resumed run packs identically.
    Examples are never split (a split sample would lose its context).

    Args:
        examples: Tokenized examples, each at most ``max_seq_length`` long.
        max_seq_length: The row length.

    Returns:
        The packed rows, in the order they were opened.

    Raises:
        ValueError: If an example is longer than ``max_seq_length``.
    """
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i].input_ids), i))
    rows: list[list[int]] = []
    # (room left, row index), kept sorted so the best fit is one bisect away.
    room: list[tuple[int, int]] = []
    for index in order:
        length = len(examples[index].input_ids)
        if length > max_seq_length:
            raise ValueError(f"example {index} has {length} tokens, more than {max_seq_length}")
        if length == 0:
            continue
        slot = bisect.bisect_left(room, (length, -1))
        if slot < len(room):
            left, row = room.pop(slot)
            rows[row].append(index)
            bisect.insort(room, (left - length, row))
        else:
            rows.append([index])
            bisect.insort(room, (max_seq_length - length, len(rows) - 1))
    packed = [_join([examples[i] for i in members]) for members in rows]
    logger.debug(
        "packed %d examples into %d rows of %d", len(examples), len(packed), max_seq_length
    )
    return packed


def _join(members: Sequence[SupportsTokens]) -> PackedRow:
    input_ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for example in members:
        ids = list(example.input_ids)
        input_ids += ids
        # The first label would be predicted from the previous sample's last token.
        labels += [IGNORE_INDEX, *list(example.labels)[1:]]
        positions += range(len(ids))
    return PackedRow(input_ids, labels, positions, len(members))


def collate_packed(
    rows: Sequence[PackedRow],
    *,
    pad_token_id: int,
    mode: MaskMode = "block",
    pad_to: int | None = None,
    mask_dtype: torch.dtype = torch.bool,
) -> Batch:
    """Stack packed rows into a batch, padding to the longest row (or ``pad_to``).

    Padding gets positions restarting at 0, so it forms its own segment that no real token
    attends to (it comes last, and attention is causal).

    Args:
        rows: The packed rows.
        pad_token_id: The id to pad with.
        mode: How attention is confined to each sample (see the module docstring).
        pad_to: A fixed row length; the longest row's length when ``None``.
        mask_dtype: For ``"block"`` mode: ``torch.bool`` (sdpa) or a float dtype, giving an
            additive mask of 0 and the dtype's minimum (eager attention).

    Returns:
        The batch.
    """
    length = max(pad_to or 0, *(len(row) for row in rows))
    ids, labels, positions, segments = [], [], [], []
    real = 0
    for row in rows:
        pad = length - len(row)
        real += len(row)
        ids.append(row.input_ids + [pad_token_id] * pad)
        labels.append(row.labels + [IGNORE_INDEX] * pad)
        positions.append(row.position_ids + list(range(pad)))
        segments.append(_segments(row.position_ids, pad))
    labels_tensor = torch.tensor(labels, dtype=torch.long)
    position_ids = torch.tensor(positions, dtype=torch.long)
    mask = None
    if mode == "block":
        mask = block_causal_mask(torch.tensor(segments, dtype=torch.long), dtype=mask_dtype)
    return Batch(
        input_ids=torch.tensor(ids, dtype=torch.long),
        labels=labels_tensor,
        attention_mask=mask,
        position_ids=position_ids,
        real_tokens=real,
        label_tokens=_count_labels(labels_tensor),
    )


def collate_padded(
    examples: Sequence[SupportsTokens], *, pad_token_id: int, pad_to: int | None = None
) -> Batch:
    """Pad unpacked examples on the right to the longest one (or ``pad_to``).

    Args:
        examples: Tokenized examples.
        pad_token_id: The id to pad with.
        pad_to: A fixed row length; the longest example's length when ``None``.

    Returns:
        The batch, with a 2D padding mask and ``-100`` labels on padding.
    """
    length = max(pad_to or 0, *(len(example.input_ids) for example in examples))
    ids, labels, mask = [], [], []
    real = 0
    for example in examples:
        size = len(example.input_ids)
        pad = length - size
        real += size
        ids.append([*example.input_ids, *[pad_token_id] * pad])
        labels.append([*example.labels, *[IGNORE_INDEX] * pad])
        mask.append([1] * size + [0] * pad)
    labels_tensor = torch.tensor(labels, dtype=torch.long)
    return Batch(
        input_ids=torch.tensor(ids, dtype=torch.long),
        labels=labels_tensor,
        attention_mask=torch.tensor(mask, dtype=torch.long),
        position_ids=None,
        real_tokens=real,
        label_tokens=_count_labels(labels_tensor),
    )


def block_causal_mask(segments: torch.Tensor, *, dtype: torch.dtype = torch.bool) -> torch.Tensor:
    """A 4D causal mask that also keeps each token inside its own segment.

    Args:
        segments: ``[batch, length]`` segment ids (equal ids = same sample).
        dtype: ``torch.bool`` gives True where attention is allowed; a float dtype gives an
            additive mask (0 allowed, the dtype's minimum blocked).

    Returns:
        ``[batch, 1, length, length]``.
    """
    length = segments.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    same = segments[:, :, None] == segments[:, None, :]
    allowed = (same & causal)[:, None, :, :]
    if dtype == torch.bool:
        return allowed
    blocked = torch.zeros(allowed.shape, dtype=dtype)
    return blocked.masked_fill(~allowed, torch.finfo(dtype).min)


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token cross-entropy of a causal LM, in fp32, with the usual one-token shift.

    Args:
        logits: ``[batch, length, vocab]``. Extra leading positions (prompt tuning's virtual
            tokens) are dropped so the logits line up with ``labels``.
        labels: ``[batch, length]``, ``-100`` where no loss is computed.

    Returns:
        ``(losses, mask)``: ``[batch, length - 1]`` losses (0 where masked) and the boolean mask
        of positions that count.
    """
    logits = logits[:, -labels.shape[1] :, :]
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:].to(shift_logits.device)
    losses = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(shift_labels.shape)
    return losses, shift_labels != IGNORE_INDEX


def _segments(positions: Sequence[int], pad: int) -> list[int]:
    segment = 0
    out: list[int] = []
    for index, position in enumerate(positions):
        if position == 0 and index > 0:
            segment += 1
        out.append(segment)
    return out + [segment + 1] * pad


def _count_labels(labels: torch.Tensor) -> int:
    return int((labels[:, 1:] != IGNORE_INDEX).sum())

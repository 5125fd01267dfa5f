from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from codetune_studio.engine.packing import (
    IGNORE_INDEX,
    PackedRow,
    block_causal_mask,
    collate_packed,
    collate_padded,
    pack_examples,
    token_losses,
)
from tests.trainer_helpers import tiny_causal_lm


@dataclass(frozen=True)
class Ex:
    input_ids: list[int]
    labels: list[int]


def _examples(lengths: list[int], seed: int = 0) -> list[Ex]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(3, 250, (n,), generator=gen).tolist()
        labels = [IGNORE_INDEX] * (n // 3) + ids[n // 3 :]  # a masked prompt, then completion
        out.append(Ex(ids, labels))
    return out


def test_pack_fills_rows_best_fit_and_keeps_every_example() -> None:
    examples = _examples([10, 7, 5, 3, 3, 2, 12])
    rows = pack_examples(examples, 16)
    assert sum(row.samples for row in rows) == len(examples)
    assert sum(len(r) for r in rows) == sum(len(e.input_ids) for e in examples)
    assert all(len(r) <= 16 for r in rows)
    assert len(rows) == 3  # 42 tokens in rows of 16
    assert pack_examples(examples, 16) == rows  # deterministic
    with pytest.raises(ValueError, match="more than 8"):
        pack_examples(examples, 8)


def test_packed_row_restarts_positions_and_masks_each_first_label() -> None:
    a, b = _examples([4, 3])
    (row,) = pack_examples([a, b], 8)
    assert row.position_ids == [0, 1, 2, 3, 0, 1, 2]
    assert row.labels[0] == IGNORE_INDEX
    assert row.labels[4] == IGNORE_INDEX


def test_block_mask_is_causal_within_segments() -> None:
    mask = block_causal_mask(torch.tensor([[0, 0, 1, 1, 2]]))
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [0, 0, 1, 0, 0],
            [0, 0, 1, 1, 0],
            [0, 0, 0, 0, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask[0, 0], expected)
    additive = block_causal_mask(torch.tensor([[0, 1]]), dtype=torch.float32)
    assert additive[0, 0, 1, 0] == torch.finfo(torch.float32).min
    assert additive[0, 0, 1, 1] == 0


def test_padded_collation_measures_padding_and_masks_labels() -> None:
    batch = collate_padded(_examples([4, 2]), pad_token_id=0)
    assert batch.input_ids.shape == (2, 4)
    assert batch.labels[1, 2:].tolist() == [IGNORE_INDEX, IGNORE_INDEX]
    assert batch.attention_mask is not None
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch.real_tokens == 6
    assert batch.padding_share == pytest.approx(0.25)


def _separate_losses(model: Any, examples: list[Ex]) -> list[torch.Tensor]:
    out = []
    for ex in examples:
        ids = torch.tensor([ex.input_ids])
        logits = model(input_ids=ids).logits
        losses, mask = token_losses(logits, torch.tensor([ex.labels]))
        out.append(losses[0][mask[0]])
    return out


@pytest.mark.parametrize(
    ("arch", "attn", "mode"),
    [
        ("llama", "sdpa", "position_ids"),
        ("llama", "eager", "position_ids"),
        ("llama", "sdpa", "block"),
        ("llama", "eager", "block"),
        ("gpt2", "sdpa", "position_ids"),
        ("qwen2", "sdpa", "position_ids"),
        ("gpt_neox", "eager", "block"),
    ],
)
def test_packed_row_gives_the_same_per_token_loss_as_separate_samples(
    arch: str, attn: str, mode: str
) -> None:
    model = tiny_causal_lm(arch, attn_implementation=attn).eval()
    examples = _examples([9, 5, 7, 3], seed=1)
    rows = pack_examples(examples, 32)
    assert len(rows) == 1
    dtype = torch.bool if attn == "sdpa" else torch.float32
    batch = collate_packed(rows, pad_token_id=0, mode=mode, pad_to=30, mask_dtype=dtype)  # type: ignore[arg-type]
    assert batch.padding_share == pytest.approx(6 / 30)
    with torch.no_grad():
        logits = model(**batch.model_inputs()).logits
        packed, mask = token_losses(logits, batch.labels)
        separate = _separate_losses(model, [examples[i] for i in _row_order(rows[0], examples)])
    got = packed[0][mask[0]]
    # The packed row drops each sample's first label; so does the separate run (shift).
    want = torch.cat(separate)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_unmasked_packing_would_differ() -> None:
    """Guards the equivalence test itself: without restarted positions the losses change."""
    model = tiny_causal_lm("llama").eval()
    examples = _examples([9, 5], seed=2)
    (row,) = pack_examples(examples, 32)
    ids = torch.tensor([row.input_ids])
    with torch.no_grad():
        losses, mask = token_losses(model(input_ids=ids).logits, torch.tensor([row.labels]))
        separate = torch.cat(
            _separate_losses(model, [examples[i] for i in _row_order(row, examples)])
        )
    assert not torch.allclose(losses[0][mask[0]], separate, atol=1e-5)


def _row_order(row: PackedRow, examples: list[Ex]) -> list[int]:
    """Which examples a row holds, in row order (matched by their token ids)."""
    order, _start = [], 0
    starts = [i for i, p in enumerate(row.position_ids) if p == 0] + [len(row)]
    for a, b in itertools.pairwise(starts):
        ids = row.input_ids[a:b]
        order.append(next(i for i, e in enumerate(examples) if e.input_ids == ids))
    return order

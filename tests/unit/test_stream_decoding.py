"""Streamed text: the pieces a user watches arrive add up to the final answer, character for character."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests import engine_fixtures

if TYPE_CHECKING:
    from pathlib import Path

tiny_model_dir = engine_fixtures.tiny_model_dir

# Accented letters, an arrow and an emoji span several bytes, so byte-level tokens split them.
ANSWER = "def café(x):\n    return '→ ok 🙂'  # über\n\treturn x , y ."


@pytest.mark.parametrize("clean_up", [False, True], ids=["rust-stream", "windowed-decode"])
# transformers warns (once a process) that the clean-up this test turns on is meant for WordPiece.
@pytest.mark.expect_logs(r"clean_up_tokenization_spaces", level="WARNING")
def test_streamed_pieces_add_up_to_the_answer_without_broken_characters(
    tiny_model_dir: Path, clean_up: bool
) -> None:
    from transformers import AutoTokenizer

    from codetune_studio.engine.generation import _Stream

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.clean_up_tokenization_spaces = clean_up  # the windowed decode keeps this clean-up
    ids = tokenizer(ANSWER, add_special_tokens=False)["input_ids"]
    pieces: list[str] = []
    stream = _Stream(tokenizer, 0, (), pieces.append)
    import torch

    for token in ids:
        stream.put(torch.tensor([token]))
    stream.end()

    assert "".join(pieces) == stream.text() == tokenizer.decode(ids, skip_special_tokens=True)
    assert len(pieces) > 1
    assert not any("\ufffd" in piece for piece in pieces)

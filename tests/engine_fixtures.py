"""Shared engine fixtures: a tiny, fully offline starter-style model and its tokenizer.

Import the fixtures into a test module to use them (session-scoped: built once per run)::

    from tests import engine_fixtures

    tiny_model_dir = engine_fixtures.tiny_model_dir
    tiny_tokenizer = engine_fixtures.tiny_tokenizer

(A plain ``from tests.engine_fixtures import tiny_model_dir`` works too, but ruff then reports
each test's parameter as F811, a redefinition of the import.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from transformers import PreTrainedTokenizerBase

__all__ = ["tiny_model_dir", "tiny_tokenizer"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-layer Llama-style model (hidden 64, vocab 512) with a ChatML tokenizer, in about 1 s.

    The folder loads with ``AutoModelForCausalLM.from_pretrained`` and
    ``AutoTokenizer.from_pretrained``; its weights are random (not pre-trained). Treat it as
    read-only: it is shared by every test in the session.
    """
    from codetune_studio.engine.starter import build_tiny_model_and_tokenizer

    return build_tiny_model_and_tokenizer(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path) -> PreTrainedTokenizerBase:
    """The tiny model's tokenizer (eos ``<|im_end|>``, pad ``<|pad|>``, ChatML chat template)."""
    from transformers import AutoTokenizer

    tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(tiny_model_dir)
    return tokenizer

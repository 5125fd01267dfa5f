"""The token inspector's data for the window: a dataset tokenized once, viewed sample by sample.

Qt-free. :func:`load_inspection` runs on a worker thread (it loads the tokenizer and tokenizes
every sample with the engine's own function); :class:`TokenInspection` then gives each sample's
view and the worst samples at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from codetune_studio.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Generator
    from pathlib import Path

    from codetune_studio.engine.data import LabelledSample
    from codetune_studio.engine.token_view import TokenView

__all__ = ["TokenInspection", "load_inspection"]


@dataclass
class TokenInspection:
    """A dataset's samples, tokenized and labelled as training does.

    Attributes:
        path: The dataset.
        model: The model whose tokenizer was used.
        tokenizer: That tokenizer.
        labelled: Every usable sample, tokenized and labelled, untruncated.
    """

    path: str
    model: str
    tokenizer: Any
    labelled: list[LabelledSample]

    @property
    def count(self) -> int:
        """How many samples there are."""
        return len(self.labelled)

    def view(self, index: int, max_seq_length: int) -> TokenView:
        """One sample's tokens, labels, truncation and EOS (0-based ``index``)."""
        from codetune_studio.engine.token_view import describe

        return describe(self.labelled, index, self.tokenizer, max_seq_length)

    def worst(self, kind: str, max_seq_length: int) -> list[int]:
        """Sample indices, worst first, for ``truncated``, ``longest`` or ``no-eos``."""
        from codetune_studio.engine.token_view import rank_worst

        eos = self.tokenizer.eos_token_id
        return rank_worst(self.labelled, kind, max_seq_length, int(eos) if eos is not None else -1)


def load_inspection(
    path: str,
    fmt: str,
    columns: dict[str, str],
    model: str | None,
    data_dir: Path | None,
    *,
    train_on_completions_only: bool = True,
) -> Generator[str, None, TokenInspection]:
    """Load the model's tokenizer (never from the network) and tokenize the dataset.

    Yields:
        What it is doing, for the progress line.

    Returns:
        The inspection.

    Raises:
        ConfigError: If the model has no tokenizer on disk.
        DatasetError: If the dataset cannot be read.
    """
    from codetune_studio.core.recipe import DatasetSpec
    from codetune_studio.engine.token_view import labelled_dataset
    from codetune_studio.services.dataset_preview import load_tokenizer, tokenizer_source

    source, reason = tokenizer_source(model, data_dir)
    if source is None or model is None:
        raise ConfigError(f"No tokenizer to inspect with: {reason}; pick a model in Parameters")
    yield f"Loading {model}'s tokenizer…"
    try:
        tokenizer = load_tokenizer(source)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot load the tokenizer of {model}: {exc}") from None
    yield "Tokenizing samples…"
    spec = DatasetSpec(path=path, format=fmt, columns=columns)
    labelled = labelled_dataset(
        spec, tokenizer, train_on_completions_only=train_on_completions_only
    )
    return TokenInspection(path, model, tokenizer, labelled)

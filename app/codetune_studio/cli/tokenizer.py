"""``codetune-studio tokenizer``: train a tokenizer on your data, and compare tokenizers on it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from codetune_studio.cli.context import CliContext, echo
from codetune_studio.core.errors import ConfigError

if TYPE_CHECKING:
    import argparse

    from codetune_studio.cli.types import Subparsers

__all__ = ["register"]


def register(subparsers: Subparsers) -> None:
    """Add the ``tokenizer`` command with ``train`` and ``compare``."""
    from codetune_studio.engine.tokenizer_build import CHATML_SPECIAL_TOKENS, TOKENIZER_TYPES

    parser = subparsers.add_parser("tokenizer", help="train and compare tokenizers")
    commands = parser.add_subparsers(title="tokenizer commands", metavar="COMMAND", required=True)
    train = commands.add_parser(
        "train",
        help="train a tokenizer on datasets or folders of code",
        description="Train a tokenizer with the tokenizers library on the texts of datasets, text "
        "files or folders of code, and save it in Hugging Face format (AutoTokenizer loads it). "
        "Ctrl-C cancels; nothing is saved then.",
    )
    train.add_argument("paths", nargs="+", metavar="PATH", help="datasets, files or code folders")
    train.add_argument("--vocab-size", type=int, required=True, metavar="N")
    train.add_argument("--out", required=True, metavar="DIR", help="the folder to save it in")
    train.add_argument("--type", choices=TOKENIZER_TYPES, default="bpe", dest="kind")
    train.add_argument("--min-frequency", type=int, default=2, metavar="F")
    train.add_argument(
        "--special-tokens",
        nargs="+",
        default=list(CHATML_SPECIAL_TOKENS),
        metavar="TOKEN",
        help="special tokens, in id order (default: the ChatML tokens the studio's chat "
        "template uses: " + " ".join(CHATML_SPECIAL_TOKENS) + ")",
    )
    train.set_defaults(handler=_train)
    compare = commands.add_parser(
        "compare",
        help="compare tokenizers on a dataset: tokens per character, unknowns, vocabulary used",
    )
    compare.add_argument("dataset", metavar="PATH", help="a dataset, text file or code folder")
    compare.add_argument(
        "--tokenizer",
        action="append",
        required=True,
        metavar="DIR",
        help="a tokenizer folder, 'starter', or a cached hub id (repeatable)",
    )
    compare.set_defaults(handler=_compare)


def _train(args: argparse.Namespace, _context: CliContext) -> int:
    from codetune_studio.engine.tokenizer_build import (
        TokenizerSpec,
        corpus_texts,
        save_tokenizer,
        train_tokenizer,
    )

    specials = tuple(args.special_tokens)
    if len(set(specials)) != len(specials):
        raise ConfigError(f"--special-tokens: got duplicates in {' '.join(specials)}")
    spec = TokenizerSpec(
        kind=args.kind,
        vocab_size=args.vocab_size,
        min_frequency=args.min_frequency,
        special_tokens=specials,
        bos_token=_pick(specials, "<|endoftext|>", "<s>", "[CLS]"),
        eos_token=_pick(specials, "<|im_end|>", "</s>", "<|endoftext|>", "[SEP]"),
        pad_token=_pick(specials, "<|pad|>", "<pad>", "[PAD]"),
        extra_special=tuple(t for t in specials if t == "<|im_start|>"),
    )
    spec.check()
    out = Path(args.out).expanduser()
    texts = corpus_texts(args.paths)
    echo(f"Training a {spec.kind} tokenizer (vocabulary {spec.vocab_size}) on {len(texts)} texts")
    tokenizer = train_tokenizer(texts, spec, progress=_progress)
    save_tokenizer(tokenizer, out)
    echo(f"Saved {len(tokenizer)} tokens to {out} (load it with AutoTokenizer.from_pretrained)")
    return 0


def _pick(specials: tuple[str, ...], *names: str) -> str | None:
    return next((name for name in names if name in specials), None)


def _progress(done: int, total: int) -> None:
    share = done / total if total else 1.0
    bar = "#" * int(share * 30)
    sys.stderr.write(f"\rreading texts [{bar:<30}] {share:4.0%} ({done}/{total})")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _compare(args: argparse.Namespace, context: CliContext) -> int:
    from codetune_studio.engine.tokenizer_build import compare_tokenizers, corpus_texts
    from codetune_studio.services.dataset_preview import load_tokenizer, tokenizer_source

    tokenizers = {}
    for name in args.tokenizer:
        source, reason = tokenizer_source(name, context.paths.data_dir)
        if source is None:
            raise ConfigError(f"--tokenizer {name}: {reason}")
        try:
            tokenizers[name] = load_tokenizer(source)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--tokenizer {name}: cannot load it: {exc}") from None
    texts = corpus_texts([args.dataset])
    echo(f"{'tokenizer':<32} {'vocab':>7} {'tokens':>10} {'tok/char':>9} {'unknown':>8} "
         f"{'bytes':>7} {'vocab used':>10}")  # fmt: skip
    for stats in compare_tokenizers(tokenizers, texts):
        echo(
            f"{stats.name[-32:]:<32} {stats.vocab_size:>7} {stats.tokens:>10} "
            f"{stats.tokens_per_char:>9.3f} {stats.unknown_share:>8.2%} "
            f"{stats.byte_fallback_share:>7.2%} {stats.vocab_used:>10.1%}"
        )
    return 0

"""The tokenizer builder: train, save in HF format, cancel, compare; the starter's tokenizer."""

from __future__ import annotations

import json
import re

import pytest

from codetune_studio.cli import main
from codetune_studio.core.cancel import CancelToken
from codetune_studio.core.errors import ConfigError
from codetune_studio.engine.data import DEFAULT_CHAT_TEMPLATE
from codetune_studio.engine.tokenizer_build import (
    TokenizerCancelledError,
    TokenizerSpec,
    compare_tokenizers,
    save_tokenizer,
    train_tokenizer,
)

CODE = [
    f"def function_{i}(value):\n    total = value * {i}\n    return total + {i % 7}\n"
    for i in range(200)
] + ["class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n"] * 20


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "unigram"])
def test_trained_tokenizer_saves_and_loads_with_autotokenizer(tmp_path, kind):
    from transformers import AutoTokenizer

    progress: list[tuple[int, int]] = []
    tokenizer = train_tokenizer(
        CODE,
        TokenizerSpec(kind=kind, vocab_size=400),
        progress=lambda d, t: progress.append((d, t)),
    )
    save_tokenizer(tokenizer, tmp_path / kind)

    loaded = AutoTokenizer.from_pretrained(tmp_path / kind)
    assert loaded.eos_token == "<|im_end|>"
    assert loaded.pad_token == "<|pad|>"
    assert len(loaded) <= 400
    ids = loaded("def function_3(value):", add_special_tokens=False)["input_ids"]
    assert ids == tokenizer("def function_3(value):", add_special_tokens=False)["input_ids"]
    assert progress[-1] == (len(CODE), len(CODE))
    if kind == "bpe":  # byte-level: code round-trips exactly, indentation included
        assert loaded.decode(loaded(CODE[0], add_special_tokens=False)["input_ids"]) == CODE[0]


def test_cancelled_training_raises_and_saves_nothing():
    token = CancelToken()
    token.cancel()

    with pytest.raises(TokenizerCancelledError):
        train_tokenizer(CODE, TokenizerSpec(vocab_size=400), cancel=token)


def test_invalid_specs_are_config_errors():
    with pytest.raises(ConfigError, match="--vocab-size: got 100, must be at least 260"):
        train_tokenizer(CODE, TokenizerSpec(vocab_size=100))
    with pytest.raises(ConfigError, match=re.escape("'<|endoftext|>' is missing")):
        train_tokenizer(CODE, TokenizerSpec(vocab_size=400, special_tokens=("<|pad|>",)))


def test_starter_tokenizer_is_unchanged_by_the_shared_builder():
    """The starter's tokenizer, now built by the builder, equals what starter-v1 was built with."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    from codetune_studio.engine import starter

    # The starter-v1 recipe, as it was written before the builder existed.
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=list(starter.SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    core.train_from_iterator(CODE, trainer=trainer, length=len(CODE))

    built = starter._train_tokenizer(CODE, 500)

    assert json.loads(built.backend_tokenizer.to_str()) == json.loads(core.to_str())
    assert built.chat_template == DEFAULT_CHAT_TEMPLATE
    assert (built.bos_token, built.eos_token, built.pad_token) == (
        "<|endoftext|>",
        "<|im_end|>",
        "<|pad|>",
    )
    assert built.model_max_length == 1024


def test_compare_reports_tokens_per_char_unknowns_and_vocabulary_used():
    bpe = train_tokenizer(CODE, TokenizerSpec(kind="bpe", vocab_size=400))
    wordpiece = train_tokenizer(CODE, TokenizerSpec(kind="wordpiece", vocab_size=400))
    texts = ["def function_9(value):\n    return value", "naïve café → ünïcödé"]

    by_name = {s.name: s for s in compare_tokenizers({"bpe": bpe, "wp": wordpiece}, texts)}

    assert by_name["bpe"].unknown_share == 0.0  # byte-level: nothing is unknown
    assert by_name["wp"].unknown_share > 0.0  # characters it never saw
    assert by_name["bpe"].characters == sum(len(t) for t in texts)
    assert 0.0 < by_name["bpe"].tokens_per_char < 1.0
    assert 0.0 < by_name["bpe"].vocab_used < 0.5


def test_cli_trains_and_compares(tmp_path, capsys):
    data = tmp_path / "code.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in CODE), encoding="utf-8")
    out = tmp_path / "tok"

    status = main(["--data-dir", str(tmp_path / "studio"), "tokenizer", "train", str(data),
                   "--vocab-size", "400", "--out", str(out), "--type", "bpe"])  # fmt: skip

    assert status == 0
    assert (out / "tokenizer.json").is_file()
    assert f"to {out} (load it with AutoTokenizer.from_pretrained)" in capsys.readouterr().out
    status = main(["--data-dir", str(tmp_path / "studio"), "tokenizer", "compare", str(data),
                   "--tokenizer", str(out)])  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines[0].split() == ["tokenizer", "vocab", "tokens", "tok/char", "unknown", "bytes",
                                "vocab", "used"]  # fmt: skip
    assert 260 < int(lines[1].split()[1]) <= 400
    assert lines[1].split()[4] == "0.00%"

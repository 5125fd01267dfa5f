"""Datasets for training: read, check, render, tokenize, mask, split and report.

:func:`prepare_data` turns a :class:`~codetune_studio.core.recipe.DatasetSpec` into tokenized
train and validation examples; :func:`inspect_dataset` does the same reading and checking and
returns only the :class:`DatasetReport` (``codetune-studio dataset inspect`` prints it).

Conversations are rendered with the tokenizer's chat template, or with ChatML when it has none.
With ``train_on_completions_only`` the labels of every token outside the assistant turns (or the
completion) are ``-100``, so the loss covers only what the model should learn to write. Each
example ends with the EOS token; an example longer than ``max_seq_length`` is cut there and loses
its EOS on purpose, since teaching the model to stop mid-answer would be wrong.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Final, TypeVar

from codetune_studio.core.errors import ConfigError, DatasetError
from codetune_studio.engine.data_checks import (
    NearDuplicate,
    SecretFinding,
    find_near_duplicates,
    find_secrets,
    normalize,
)
from codetune_studio.engine.formats import (
    FORMATS,
    Sample,
    apply_columns,
    check_columns,
    detect_format,
    to_sample,
)
from codetune_studio.engine.sources import (
    CODE_SUFFIXES,
    BadRow,
    RawRecord,
    RawSource,
    read_source,
)
from codetune_studio.plugins.code_lint import is_raw_code, unparseable_reason

if TYPE_CHECKING:
    from collections.abc import Sequence

    from transformers import PreTrainedTokenizerBase

    from codetune_studio.core.recipe import DatasetSpec

__all__ = [
    "DEFAULT_CHAT_TEMPLATE",
    "IGNORE_INDEX",
    "MAX_LISTED_BAD_ROWS",
    "DatasetReport",
    "DroppedRow",
    "DuplicateRow",
    "LabelledSample",
    "LengthStats",
    "PreparedData",
    "TokenizedExample",
    "inspect_dataset",
    "label_samples",
    "load_samples",
    "prepare_data",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Label value the loss ignores (PyTorch's ``CrossEntropyLoss`` default).
IGNORE_INDEX: Final = -100

#: ChatML, used when a tokenizer brings no chat template of its own.
DEFAULT_CHAT_TEMPLATE: Final = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

#: Bad rows a report lists; beyond this it gives only their number.
MAX_LISTED_BAD_ROWS: Final = 1000
_BATCH: Final = 512  # texts per tokenizer call: fast, and bounded memory on big datasets
_PYTHON_SUFFIXES: Final = frozenset({".py", ".pyi", ".pyw"})


@dataclass(frozen=True, slots=True)
class TokenizedExample:
    """One training example.

    Attributes:
        input_ids: Token ids, at most ``max_seq_length`` long.
        labels: Same length; ``-100`` where no loss is computed.
        source: The record it came from (``file:line``).
    """

    input_ids: list[int]
    labels: list[int]
    source: str


@dataclass(frozen=True, slots=True)
class DroppedRow:
    """A record left out, and why."""

    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class DuplicateRow:
    """A record whose content repeats an earlier one (kept, but reported)."""

    source: str
    same_as: str


@dataclass(frozen=True, slots=True)
class LengthStats:
    """Length distribution of the examples (before truncation)."""

    unit: str  # "tokens", or "characters" when no tokenizer was given
    min: int
    mean: float
    p50: int
    p95: int
    max: int

    @classmethod
    def of(cls, lengths: Sequence[int], unit: str) -> LengthStats | None:
        """Summarise ``lengths``; ``None`` when there are none."""
        if not lengths:
            return None
        ordered = sorted(lengths)
        return cls(
            unit=unit,
            min=ordered[0],
            mean=round(sum(ordered) / len(ordered), 1),
            p50=_percentile(ordered, 50),
            p95=_percentile(ordered, 95),
            max=ordered[-1],
        )


@dataclass(frozen=True)
class DatasetReport:
    """What reading a dataset found: format, counts, lengths and every dropped row.

    Attributes:
        path: The dataset location.
        format: The detected (or given) format.
        rows: Records read (a skipped file in a code folder counts as one).
        examples: Records kept as examples.
        empty_rows: Records dropped because a field that must hold text was empty.
        duplicate_rows: Records repeating an earlier one's content (kept).
        truncated: Examples longer than ``max_seq_length`` (0 without a tokenizer).
        max_seq_length: The limit the truncation count refers to.
        lengths: Length statistics, in tokens (characters without a tokenizer).
        dropped: Every dropped record with its reason.
        duplicates: Every duplicate with the record it repeats.
        fingerprint: A hash of the data, its format and column mapping.
        unparseable_rows: Records dropped by ``dataset.drop_unparseable`` (also in ``dropped``).
        bad_rows: Malformed rows (bad JSON, wrong shape, wrong field types), at most
            :data:`MAX_LISTED_BAD_ROWS` of them.
        bad_row_count: How many malformed rows there are in all.
        near_duplicates: Rows whose content nearly repeats an earlier row (when asked for).
        split_leaks: Validation rows whose content is also in the training split.
        eval_leaks: Rows whose prompt or answer is also in the eval file (when one was given).
        truncated_rows: The rows longer than ``max_seq_length`` (with a tokenizer).
        untrained_rows: The rows left with no trained token after masking and truncation.
        secrets: Likely credentials, by row.
    """

    path: str
    format: str
    rows: int
    examples: int
    empty_rows: int
    duplicate_rows: int
    truncated: int
    max_seq_length: int
    lengths: LengthStats | None
    dropped: tuple[DroppedRow, ...] = ()
    duplicates: tuple[DuplicateRow, ...] = ()
    fingerprint: str = ""
    unparseable_rows: int = 0
    bad_rows: tuple[BadRow, ...] = ()
    bad_row_count: int = 0
    near_duplicates: tuple[NearDuplicate, ...] = ()
    split_leaks: tuple[DuplicateRow, ...] = ()
    eval_leaks: tuple[DuplicateRow, ...] = ()
    truncated_rows: tuple[str, ...] = ()
    untrained_rows: tuple[str, ...] = ()
    secrets: tuple[SecretFinding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class PreparedData:
    """Tokenized examples ready for batching or packing.

    Attributes:
        train: Training examples, in dataset order.
        validation: Held-out examples (empty when ``validation_split`` is 0).
        format: The detected (or given) format.
        fingerprint: A hash of the data, its format and column mapping (not the tokenizer).
        report: What reading the data found.
    """

    train: list[TokenizedExample]
    validation: list[TokenizedExample]
    format: str
    fingerprint: str
    report: DatasetReport


@dataclass
class _Loaded:
    source: RawSource
    format: str
    samples: list[Sample]
    dropped: list[DroppedRow]
    duplicates: list[DuplicateRow] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)
    empty: int = 0
    unparseable: int = 0
    truncated: list[str] = field(default_factory=list)
    untrained: list[str] = field(default_factory=list)


def prepare_data(
    spec: DatasetSpec,
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_seq_length: int,
    train_on_completions_only: bool,
    seed: int,
) -> PreparedData:
    """Read, check, tokenize and split a dataset.

    Args:
        spec: The recipe's dataset section.
        tokenizer: The model's tokenizer; it must have an EOS token.
        max_seq_length: Longer examples are cut to this many tokens.
        train_on_completions_only: Mask everything but the assistant turns or the completion.
        seed: Seeds the train/validation split.

    Returns:
        The train and validation examples, the format, a data fingerprint and the report.

    Raises:
        DatasetError: If the data is missing or malformed, or no example is left.
        ConfigError: If the column mapping is invalid or the tokenizer has no EOS token.
    """
    loaded = _load(spec)
    _refuse_or_log_bad_rows(loaded.bad, spec)
    examples, lengths, dropped_late = _tokenize_all(
        loaded, tokenizer, max_seq_length, mask_prompt=train_on_completions_only
    )
    loaded.dropped.extend(dropped_late)
    report = _report(loaded, spec, examples, lengths, max_seq_length, unit="tokens")
    _log_drops(report)
    if not examples:
        raise DatasetError(
            f"{spec.path}: no usable examples: all {report.rows} records were dropped "
            f"(first: {report.dropped[0].source}: {report.dropped[0].reason})"
            if report.dropped
            else f"{spec.path}: no usable examples"
        )
    train, validation = _split(examples, spec.validation_split, seed)
    logger.info(
        "dataset %s (%s): %d train and %d validation examples",
        spec.path,
        loaded.format,
        len(train),
        len(validation),
    )
    return PreparedData(train, validation, loaded.format, report.fingerprint, report)


def inspect_dataset(
    spec: DatasetSpec,
    tokenizer: PreTrainedTokenizerBase | None,
    *,
    max_seq_length: int,
    near_duplicates: bool = False,
    near_duplicates_up_to: int | None = None,
    eval_path: str | None = None,
    seed: int = 42,
) -> DatasetReport:
    """Read and check a dataset and report what was found, without keeping the examples.

    Malformed rows do not stop the check: every one is listed in the report.

    Args:
        spec: Where the data is and its format (``auto`` detects it).
        tokenizer: Counts tokens and truncation; ``None`` reports lengths in characters.
        max_seq_length: The limit the truncation count refers to.
        near_duplicates: Also look for rows that nearly repeat another (MinHash; slower).
        near_duplicates_up_to: Also look for them when the dataset has at most this many
            samples (the window's quick check on small and medium datasets).
        eval_path: An eval task or dataset file whose prompts and answers must not be trained on.
        seed: The training seed, which decides the train/validation split checked for leaks.

    Returns:
        The report.

    Raises:
        DatasetError: If the data is missing or malformed as a whole.
        ConfigError: If the column mapping is invalid.
    """
    loaded = _load(spec)
    if tokenizer is None:
        lengths = [len(_plain_text(sample)) for sample in loaded.samples]
        kept: Sequence[Sample] | list[TokenizedExample] = loaded.samples
        report = _report(loaded, spec, kept, lengths, max_seq_length, unit="characters")
        sources = [sample.source for sample in loaded.samples]
    else:
        examples, lengths, dropped_late = _tokenize_all(
            loaded, tokenizer, max_seq_length, mask_prompt=True
        )
        loaded.dropped.extend(dropped_late)
        report = _report(loaded, spec, examples, lengths, max_seq_length, unit="tokens")
        sources = [example.source for example in examples]
    near = near_duplicates or (
        near_duplicates_up_to is not None and len(loaded.samples) <= near_duplicates_up_to
    )
    return _with_checks(report, loaded, spec, sources, near=near, eval_path=eval_path, seed=seed)


def _with_checks(
    report: DatasetReport,
    loaded: _Loaded,
    spec: DatasetSpec,
    kept: list[str],
    *,
    near: bool,
    eval_path: str | None,
    seed: int,
) -> DatasetReport:
    """The report with the row checks added: secrets, leaks and (if asked) near-duplicates."""
    from dataclasses import replace

    by_source = {sample.source: sample for sample in loaded.samples}
    texts = {source: _plain_text(sample) for source, sample in by_source.items()}
    secrets = [f for source, text in texts.items() for f in find_secrets(source, text)]
    near_rows: list[NearDuplicate] = []
    if near:
        exact = [row.source for row in loaded.duplicates]
        near_rows = find_near_duplicates(list(texts.items()), exact=exact)
    return replace(
        report,
        near_duplicates=tuple(near_rows),
        split_leaks=tuple(_split_leaks(kept, by_source, spec.validation_split, seed)),
        eval_leaks=tuple(_eval_leaks(loaded.samples, eval_path)) if eval_path else (),
        secrets=tuple(secrets),
    )


def _split_leaks(
    kept: list[str], by_source: dict[str, Sample], share: float, seed: int
) -> list[DuplicateRow]:
    """Validation rows whose content (white space and case aside) is also a training row."""
    train, validation = _split(kept, share, seed)
    seen: dict[str, str] = {}
    for source in train:
        seen.setdefault(normalize(by_source[source].content_key()), source)
    leaks = []
    for source in validation:
        twin = seen.get(normalize(by_source[source].content_key()))
        if twin is not None:
            leaks.append(DuplicateRow(source, twin))
    return leaks


def _eval_leaks(samples: list[Sample], eval_path: str) -> list[DuplicateRow]:
    """Rows whose prompt or answer text is also a text in the eval file."""
    # Short strings ("yes", "4") match by chance; only texts this long count as a leak.
    shortest = 20
    texts: dict[str, str] = {}
    for record in read_source(eval_path).records:
        for value in record.data.values():
            if isinstance(value, str) and len(value.strip()) >= shortest:
                texts.setdefault(normalize(value), record.source)
    leaks = []
    for sample in samples:
        pieces = [m.content for m in sample.messages] or [sample.prompt, sample.completion]
        for piece in pieces:
            twin = texts.get(normalize(piece)) if len(piece.strip()) >= shortest else None
            if twin is not None:
                leaks.append(DuplicateRow(sample.source, twin))
                break
    return leaks


def load_samples(spec: DatasetSpec) -> list[Sample]:
    """The dataset's samples, as training reads them (bad and empty rows left out).

    Args:
        spec: The recipe's dataset section.

    Returns:
        The samples, in dataset order.

    Raises:
        DatasetError: If the data is missing or malformed as a whole.
    """
    return _load(spec).samples


@dataclass(frozen=True, slots=True)
class LabelledSample:
    """A sample tokenized and labelled, before truncation: what training cuts its example from.

    Attributes:
        source: The record (``file:line``).
        text: The sample rendered (through the chat template for conversations).
        input_ids: Every token id, EOS included; training keeps the first ``max_seq_length``.
        labels: Same length; ``-100`` where no loss is computed.
    """

    source: str
    text: str
    input_ids: list[int]
    labels: list[int]


def label_samples(
    samples: Sequence[Sample],
    tokenizer: PreTrainedTokenizerBase,
    *,
    mask_prompt: bool,
) -> list[LabelledSample]:
    """Render, tokenize and label samples exactly as :func:`prepare_data` does, untruncated.

    Training's examples are these, cut to ``max_seq_length`` (and dropped when no label is
    left): the token inspector and the trainer share this one function.

    Args:
        samples: The samples.
        tokenizer: The model's tokenizer; it must have an EOS token.
        mask_prompt: Mask everything but the assistant turns or the completion.

    Returns:
        One labelled sample per sample, in order.

    Raises:
        ConfigError: If the tokenizer has no EOS token.
        DatasetError: If the chat template rejects a conversation.
    """
    eos = tokenizer.eos_token_id
    if not isinstance(eos, int):
        raise ConfigError(
            f"The tokenizer ({type(tokenizer).__name__}) has no EOS token; examples need one to "
            "mark where they end. Set eos_token in its tokenizer_config.json."
        )
    template = _chat_template(tokenizer)
    rendered = [_render(sample, tokenizer, template) for sample in samples]
    labelled: list[LabelledSample] = []
    for start in range(0, len(rendered), _BATCH):
        batch = rendered[start : start + _BATCH]
        for item, (ids, labels) in zip(batch, _encode(batch, tokenizer), strict=True):
            trainable = labels if mask_prompt else list(ids)
            ids, trainable = _end_with_eos(ids, trainable, eos)
            labelled.append(LabelledSample(item.source, item.text, ids, trainable))
    return labelled


# --- reading and checking ---------------------------------------------------------------------


def _load(spec: DatasetSpec) -> _Loaded:
    check_columns(spec.columns)
    source = read_source(spec.path)
    records, bad = _mapped_records(source, spec.columns)
    fmt = spec.format if spec.format != "auto" else detect_format(records[0], kind=source.kind)
    if fmt not in FORMATS:  # pragma: no cover - the recipe's Literal already rules this out
        raise ConfigError(f"dataset.format: got {fmt!r}, must be one of {', '.join(FORMATS)}")
    loaded = _Loaded(source, fmt, [], [DroppedRow(s, r) for s, r in source.skipped], bad=bad)
    samples: list[Sample] = []
    for record in records:
        try:
            result = to_sample(record, fmt)
        except DatasetError as exc:
            loaded.bad.append(BadRow.from_error(record.source, exc))
            continue
        if isinstance(result, str):
            loaded.dropped.append(DroppedRow(record.source, result))
            loaded.empty += 1
            continue
        samples.append(result)
    if not samples and not loaded.empty:  # every record is bad: nothing to report beyond that
        first = loaded.bad[0]
        raise DatasetError(
            f"{first.source}: {first.problem} (no valid record: {len(loaded.bad)} bad)"
        )
    if spec.drop_unparseable:
        samples = _drop_unparseable(samples, fmt, loaded)
    seen: dict[str, str] = {}
    for sample in samples:
        key = sample.content_key()
        if key in seen:
            loaded.duplicates.append(DuplicateRow(sample.source, seen[key]))
        else:
            seen[key] = sample.source
        loaded.samples.append(sample)
    return loaded


def _mapped_records(
    source: RawSource, columns: dict[str, str]
) -> tuple[list[RawRecord], list[BadRow]]:
    bad = list(source.bad_rows)
    records = []
    for record in source.records:
        try:
            records.append(apply_columns(record, columns))
        except DatasetError as exc:  # a row without a mapped column is one bad row, not all
            bad.append(BadRow.from_error(record.source, exc))
    if not records:
        first = bad[0]
        raise DatasetError(f"{first.source}: {first.problem} (no valid record: {len(bad)} bad)")
    return records, bad


def _refuse_or_log_bad_rows(bad: list[BadRow], spec: DatasetSpec) -> None:
    """Stop training on a dataset with bad rows, unless ``skip_invalid_rows`` lets it go on."""
    if not bad:
        return
    first = bad[0]
    if not spec.skip_invalid_rows:
        raise DatasetError(
            f"{spec.path}: {len(bad)} invalid rows (first: {first.source}: {first.problem}); "
            f"fix them, or set dataset.skip_invalid_rows: true to train without them "
            f"(`codetune-studio dataset inspect {spec.path}` lists them all)"
        )
    for row in bad[:MAX_LISTED_BAD_ROWS]:
        logger.info("skipped invalid row %s: %s", row.source, row.problem)
    if len(bad) > MAX_LISTED_BAD_ROWS:
        logger.info("... and %d more invalid rows", len(bad) - MAX_LISTED_BAD_ROWS)
    logger.info("skipped %d invalid rows of %s (dataset.skip_invalid_rows)", len(bad), spec.path)


def _drop_unparseable(samples: list[Sample], fmt: str, loaded: _Loaded) -> list[Sample]:
    """Leave out samples whose completion holds Python code that does not parse.

    What counts as the code is :mod:`codetune_studio.plugins.code_lint`'s rule, the one the
    dataset lint uses: ``python`` fenced blocks, or the whole completion for code records and
    for datasets whose bare completions are Python (so one broken row among code answers is
    caught, while prose answers are never checked as code).
    """
    completions = {id(sample): _completions(sample) for sample in samples}
    raw_code = fmt == "code" or is_raw_code(t for texts in completions.values() for t in texts)
    kept: list[Sample] = []
    for sample in samples:
        whole = raw_code and _may_be_python(sample.source)
        reason = next(
            (
                found
                for text in completions[id(sample)]
                if (found := unparseable_reason(text, whole=whole)) is not None
            ),
            None,
        )
        if reason is None:
            kept.append(sample)
            continue
        loaded.dropped.append(DroppedRow(sample.source, reason))
        loaded.unparseable += 1
    return kept


def _completions(sample: Sample) -> list[str]:
    if sample.is_chat:
        return [m.content for m in sample.messages if m.role == "assistant"]
    return [sample.completion]


def _may_be_python(source: str) -> bool:
    """False for a record read from a source file in another language (``app.js:1``)."""
    suffix = PurePath(source.rsplit(":", 1)[0]).suffix.lower()
    return suffix in _PYTHON_SUFFIXES or suffix not in CODE_SUFFIXES


def _report(
    loaded: _Loaded,
    spec: DatasetSpec,
    examples: Sequence[object],
    lengths: Sequence[int],
    max_seq_length: int,
    *,
    unit: str,
) -> DatasetReport:
    parts: list[object] = [loaded.source.fingerprint, loaded.format, sorted(spec.columns.items())]
    if spec.drop_unparseable:  # other rows train; only then, so older fingerprints still match
        parts.append("drop_unparseable")
    payload = json.dumps(parts)
    return DatasetReport(
        path=spec.path,
        format=loaded.format,
        # skipped files count, and so do bad rows: they are rows of the file
        rows=len(loaded.source.records) + len(loaded.source.skipped) + len(loaded.source.bad_rows),
        examples=len(examples),
        empty_rows=loaded.empty,
        duplicate_rows=len(loaded.duplicates),
        truncated=sum(1 for n in lengths if n > max_seq_length) if unit == "tokens" else 0,
        max_seq_length=max_seq_length,
        lengths=LengthStats.of(lengths, unit),
        dropped=tuple(loaded.dropped),
        duplicates=tuple(loaded.duplicates),
        fingerprint=hashlib.sha256(payload.encode("utf-8")).hexdigest(),
        unparseable_rows=loaded.unparseable,
        bad_rows=tuple(loaded.bad[:MAX_LISTED_BAD_ROWS]),
        bad_row_count=len(loaded.bad),
        truncated_rows=tuple(loaded.truncated),
        untrained_rows=tuple(loaded.untrained),
    )


def _log_drops(report: DatasetReport) -> None:
    for row in report.dropped:
        logger.info("dropped %s: %s", row.source, row.reason)
    if report.dropped:
        logger.info(
            "dropped %d of %d records from %s", len(report.dropped), report.rows, report.path
        )


# --- rendering and tokenizing -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rendered:
    source: str
    text: str
    spans: tuple[tuple[int, int], ...]  # character ranges that carry labels
    chat: bool


def _tokenize_all(
    loaded: _Loaded,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    *,
    mask_prompt: bool,
) -> tuple[list[TokenizedExample], list[int], list[DroppedRow]]:
    examples: list[TokenizedExample] = []
    lengths: list[int] = []
    dropped: list[DroppedRow] = []
    for item in label_samples(loaded.samples, tokenizer, mask_prompt=mask_prompt):
        lengths.append(len(item.input_ids))
        if len(item.input_ids) > max_seq_length:
            loaded.truncated.append(item.source)
        ids, trainable = item.input_ids[:max_seq_length], item.labels[:max_seq_length]
        if all(label == IGNORE_INDEX for label in trainable):
            loaded.untrained.append(item.source)
            dropped.append(
                DroppedRow(
                    item.source,
                    f"no completion tokens within max_seq_length={max_seq_length}",
                )
            )
            continue
        examples.append(TokenizedExample(ids, trainable, item.source))
    return examples, lengths, dropped


def _chat_template(tokenizer: PreTrainedTokenizerBase) -> str:
    template: object = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates: "default" is the one for plain chat
        template = template.get("default") or next(iter(template.values()), None)
    return template if isinstance(template, str) and template else DEFAULT_CHAT_TEMPLATE


def _end_with_eos(ids: list[int], labels: list[int], eos: int) -> tuple[list[int], list[int]]:
    if ids and ids[-1] == eos:
        return ids, labels
    # The EOS is learnt when the text before it is: the model learns to stop after an answer.
    eos_label = eos if labels and labels[-1] != IGNORE_INDEX else IGNORE_INDEX
    return [*ids, eos], [*labels, eos_label]


def _render(sample: Sample, tokenizer: PreTrainedTokenizerBase, template: str) -> _Rendered:
    if not sample.is_chat:
        text = sample.prompt + sample.completion.rstrip()
        return _Rendered(sample.source, text, ((len(sample.prompt), len(text)),), chat=False)
    conversation = [{"role": m.role, "content": m.content} for m in sample.messages]
    full = _apply_template(tokenizer, template, conversation, sample.source, generation=False)
    spans = []
    for index, message in enumerate(sample.messages):
        if message.role != "assistant":
            continue
        # The assistant turn is what rendering it adds to the conversation before it, with the
        # generation prompt; this holds for ChatML, Llama 3, Mistral, Qwen, Phi and Gemma.
        before = (
            _apply_template(
                tokenizer, template, conversation[:index], sample.source, generation=True
            )
            if index
            else ""
        )
        upto = _apply_template(
            tokenizer, template, conversation[: index + 1], sample.source, generation=False
        )
        if not (upto.startswith(before) and full.startswith(upto)):
            logger.debug(
                "template does not render %s incrementally; training on all", sample.source
            )
            return _Rendered(sample.source, full.rstrip(), ((0, len(full)),), chat=True)
        spans.append((len(before), len(upto)))
    return _Rendered(sample.source, full.rstrip(), tuple(spans), chat=True)


def _apply_template(
    tokenizer: PreTrainedTokenizerBase,
    template: str,
    conversation: list[dict[str, str]],
    source: str,
    *,
    generation: bool,
) -> str:
    try:
        text = tokenizer.apply_chat_template(
            conversation, chat_template=template, tokenize=False, add_generation_prompt=generation
        )
    except Exception as exc:  # noqa: BLE001 - Jinja raises its own errors for rejected turns
        raise DatasetError(
            f"{source}: the chat template rejected this conversation: {exc}"
        ) from None
    if not isinstance(text, str):  # pragma: no cover - tokenize=False always gives text
        raise DatasetError(f"{source}: the chat template did not produce text")
    return text


def _encode(
    batch: Sequence[_Rendered], tokenizer: PreTrainedTokenizerBase
) -> list[tuple[list[int], list[int]]]:
    """Token ids and labels (``-100`` outside the spans) for each rendered text."""
    if not tokenizer.is_fast:
        return [_encode_slow(item, tokenizer) for item in batch]
    results: list[tuple[list[int], list[int]]] = [([], [])] * len(batch)
    # Chat templates write their own BOS; plain text gets the tokenizer's usual special tokens.
    for chat in (True, False):
        indices = [i for i, item in enumerate(batch) if item.chat is chat]
        if not indices:
            continue
        encoded = tokenizer(
            [batch[i].text for i in indices],
            add_special_tokens=not chat,
            return_offsets_mapping=True,
            verbose=False,  # long examples are expected: they are truncated and counted below
        )
        for i, ids, offsets in zip(
            indices, encoded["input_ids"], encoded["offset_mapping"], strict=True
        ):
            spans = batch[i].spans
            labels = [
                token if _inside(start, end, spans) else IGNORE_INDEX
                for token, (start, end) in zip(ids, offsets, strict=True)
            ]
            results[i] = (list(ids), labels)
    return results


def _encode_slow(
    item: _Rendered, tokenizer: PreTrainedTokenizerBase
) -> tuple[list[int], list[int]]:
    # Without offsets, tokenize each labelled and unlabelled piece on its own and join them.
    ids: list[int] = []
    labels: list[int] = []
    cursor = 0
    pieces = []
    for start, end in item.spans:
        pieces += [(item.text[cursor:start], False), (item.text[start:end], True)]
        cursor = end
    pieces.append((item.text[cursor:], False))
    for text, trainable in pieces:
        if not text:
            continue
        piece = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        ids += piece
        labels += piece if trainable else [IGNORE_INDEX] * len(piece)
    return ids, labels


def _inside(start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    if start == end:  # special tokens the tokenizer added (BOS) have an empty offset
        return False
    return any(lo <= start < hi for lo, hi in spans)


def _plain_text(sample: Sample) -> str:
    if sample.is_chat:
        return "\n".join(m.content for m in sample.messages)
    return sample.prompt + sample.completion


# --- splitting and statistics -----------------------------------------------------------------


def _split(examples: list[_T], share: float, seed: int) -> tuple[list[_T], list[_T]]:
    """A deterministic, seeded split; both parts keep the dataset's order."""
    count = len(examples)
    # Never an empty train set, and never a 0-row eval when one was asked for.
    held = min(max(round(count * share), 1), count - 1) if share > 0 and count >= 2 else 0
    order = list(range(count))
    random.Random(seed).shuffle(order)  # noqa: S311 - reproducibility, not secrecy
    chosen = set(order[:held])
    train = [e for i, e in enumerate(examples) if i not in chosen]
    validation = [e for i, e in enumerate(examples) if i in chosen]
    return train, validation


def _percentile(ordered: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of an already sorted sequence."""
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]

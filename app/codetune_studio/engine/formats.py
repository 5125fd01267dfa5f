"""Dataset record formats: detecting them and turning each record into a :class:`Sample`.

A sample is either a conversation (alpaca, chat and ShareGPT records become one) or a prompt and a
completion (prompt/completion records; raw text and code are completions with an empty prompt).
Structural problems (a missing field, a wrong type, an unknown role) raise
:class:`~codetune_studio.core.errors.DatasetError` naming the record's ``file:line``; records that are
well formed but empty are dropped with a reason the caller reports.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from codetune_studio.core.errors import ConfigError, DatasetError
from codetune_studio.engine.sources import RawRecord

__all__ = [
    "FORMATS",
    "FORMAT_FIELDS",
    "ChatMessage",
    "Sample",
    "apply_columns",
    "check_columns",
    "detect_format",
    "format_roles",
    "guess_columns",
    "mapping_from_choices",
    "to_sample",
]

logger = logging.getLogger(__name__)

#: The concrete formats (``auto`` picks one of these).
FORMATS: Final = ("alpaca", "chat", "sharegpt", "completion", "text", "code")

#: Each format's field names: required ones first, then optional ones.
FORMAT_FIELDS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "alpaca": (("instruction", "output"), ("input", "system")),
    "chat": (("messages",), ()),
    "sharegpt": (("conversations",), ("system",)),
    "completion": (("prompt", "completion"), ()),
    "text": (("text",), ()),
    "code": (("text",), ("path",)),
}

_CHAT_ROLES: Final = frozenset({"system", "user", "assistant", "tool"})
_SHAREGPT_ROLES: Final = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "tool": "tool",
    "function_call": "tool",
    "observation": "tool",
}
# Columns that hold code in code datasets (The Stack uses "content").
_CODE_ALIASES: Final = ("content", "code")


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of a conversation."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Sample:
    """A record in a form the tokenizer step understands.

    Attributes:
        source: Where the record came from (``file:line``).
        messages: The conversation, for alpaca, chat and ShareGPT records; empty otherwise.
        prompt: Text the model reads but is not trained to write (completion records).
        completion: Text the model is trained to write (completion, text and code records).
    """

    source: str
    messages: tuple[ChatMessage, ...] = ()
    prompt: str = ""
    completion: str = ""

    @property
    def is_chat(self) -> bool:
        """Whether the sample is rendered with a chat template."""
        return bool(self.messages)

    def content_key(self) -> str:
        """The sample's content, canonically, to find duplicates."""
        if self.messages:
            return json.dumps([[m.role, m.content] for m in self.messages], ensure_ascii=False)
        return json.dumps([self.prompt, self.completion], ensure_ascii=False)


def apply_columns(record: RawRecord, columns: Mapping[str, str]) -> RawRecord:
    """Rename a record's columns to a format's field names.

    Args:
        record: The record as read.
        columns: ``{field name: column in the file}``, e.g. ``{"prompt": "question"}``.

    Returns:
        The record with each mapped field added under its format name.

    Raises:
        DatasetError: If a mapped column is not in the record.
    """
    if not columns:
        return record
    data = dict(record.data)
    for field_name, column in columns.items():
        if column not in record.data:
            raise DatasetError(
                f"{record.source}: column {column!r} (mapped to {field_name!r} by dataset.columns) "
                f"not found; found columns {_keys(record.data)}{_nearest(column, record.data)}"
            )
        data[field_name] = record.data[column]
    return RawRecord(record.source, data)


def format_roles(fmt: str) -> tuple[str, ...]:
    """The fields a format reads, required ones first, then optional ones.

    Args:
        fmt: One of :data:`FORMATS`; ``"auto"`` or an unknown name has no roles.

    Returns:
        The field names a column mapping may map (``("prompt", "completion")`` for completion).
    """
    required, optional = FORMAT_FIELDS.get(fmt, ((), ()))
    return (*required, *optional)


def guess_columns(
    fmt: str, columns: Sequence[str], mapping: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Preselect a file column for each of a format's roles.

    A role keeps the column ``mapping`` gives it when the file has that column; otherwise it takes
    the column of the same name (or, for code, one of the usual code columns); otherwise ``""``.

    Args:
        fmt: One of :data:`FORMATS`.
        columns: The file's columns.
        mapping: The mapping in use (``{field: column}``), if any.

    Returns:
        ``{role: column or ""}`` for every role of the format.
    """
    present = set(columns)
    mapping = mapping or {}
    guessed: dict[str, str] = {}
    for role in format_roles(fmt):
        chosen = mapping.get(role, "")
        if chosen not in present:
            chosen = role if role in present else ""
        if not chosen and fmt == "code" and role == "text":
            chosen = next((alias for alias in _CODE_ALIASES if alias in present), "")
        guessed[role] = chosen
    return guessed


def mapping_from_choices(choices: Mapping[str, str]) -> dict[str, str]:
    """The ``dataset.columns`` mapping for a role-to-column choice.

    Roles left unmapped (``""``) and roles mapped to the column of their own name are left out,
    so a file whose columns already match the format keeps an empty mapping.

    Args:
        choices: ``{role: column or ""}``.

    Returns:
        ``{role: column}`` for the roles that need renaming.
    """
    return {role: column for role, column in choices.items() if column and column != role}


def check_columns(columns: Mapping[str, str]) -> None:
    """Check that a column mapping names only fields some format has.

    Raises:
        ConfigError: If a key is not a format field name.
    """
    known = sorted({name for req, opt in FORMAT_FIELDS.values() for name in (*req, *opt)})
    for field_name in columns:
        if field_name not in known:
            raise ConfigError(
                f"dataset.columns: unknown field {field_name!r}{_nearest(field_name, known)}; "
                f"fields are {', '.join(known)}"
            )


def detect_format(record: RawRecord, *, kind: str) -> str:
    """Work out a dataset's format from its first record.

    Args:
        record: The first record (after column mapping).
        kind: What the files say: ``"code"`` or ``"text"`` for code and text files,
            ``"records"`` for JSON, CSV and the like.

    Returns:
        One of :data:`FORMATS`.

    Raises:
        DatasetError: If no format matches the record's keys.
    """
    if kind in {"code", "text"}:
        return kind
    keys = record.data.keys()
    for name in ("chat", "sharegpt", "alpaca", "completion", "text"):
        if all(field in keys for field in FORMAT_FIELDS[name][0]):
            return name
    if any(alias in keys for alias in _CODE_ALIASES):
        return "code"
    raise DatasetError(
        f"{record.source}: cannot detect the format from columns {_keys(record.data)}; expected "
        "alpaca (instruction, output), chat (messages), sharegpt (conversations), "
        "completion (prompt, completion) or text (text). Set dataset.format, and dataset.columns "
        "to map your columns, e.g. {prompt: question, completion: answer}"
    )


def to_sample(record: RawRecord, fmt: str) -> Sample | str:
    """Turn one record into a :class:`Sample`.

    Args:
        record: The record (after column mapping).
        fmt: One of :data:`FORMATS`.

    Returns:
        The sample, or the reason the record is dropped (for example ``"empty output"``).

    Raises:
        DatasetError: If the record lacks a required field or a field has the wrong type.
    """
    if fmt == "code" and "text" not in record.data:
        alias = next((a for a in _CODE_ALIASES if a in record.data), None)
        if alias is not None:
            record = RawRecord(record.source, {**record.data, "text": record.data[alias]})
    required, _ = FORMAT_FIELDS[fmt]
    missing = [name for name in required if name not in record.data]
    if missing:
        raise DatasetError(
            f"{record.source}: missing {', '.join(repr(m) for m in missing)}; found columns "
            f"{_keys(record.data)}, expected {fmt} records with {', '.join(required)} "
            "(set dataset.columns to map yours)"
        )
    if fmt == "alpaca":
        return _alpaca(record)
    if fmt == "chat":
        return _chat(record)
    if fmt == "sharegpt":
        return _sharegpt(record)
    if fmt == "completion":
        prompt = _text(record, "prompt")
        completion = _text(record, "completion")
        if not completion.strip():
            return "empty completion"
        return Sample(record.source, prompt=prompt, completion=completion)
    text = _text(record, "text")
    if not text.strip():
        return "empty text"
    return Sample(record.source, completion=text)


def _alpaca(record: RawRecord) -> Sample | str:
    instruction = _text(record, "instruction")
    extra = _text(record, "input")
    output = _text(record, "output")
    system = _text(record, "system")
    if not instruction.strip():
        return "empty instruction"
    if not output.strip():
        return "empty output"
    user = f"{instruction.strip()}\n\n{extra.strip()}" if extra.strip() else instruction.strip()
    messages = [ChatMessage("user", user), ChatMessage("assistant", output)]
    if system.strip():
        messages.insert(0, ChatMessage("system", system.strip()))
    return Sample(record.source, messages=tuple(messages))


def _chat(record: RawRecord) -> Sample | str:
    turns = _turn_list(record, "messages")
    messages = []
    for index, turn in enumerate(turns):
        where = f"{record.source}: messages[{index}]"
        if not isinstance(turn, Mapping) or "role" not in turn or "content" not in turn:
            raise DatasetError(
                f"{where}: found {_short(turn)}, expected an object with 'role' and 'content'"
            )
        role = turn["role"]
        if role not in _CHAT_ROLES:
            raise DatasetError(
                f"{where}: found role {role!r}, expected one of {', '.join(sorted(_CHAT_ROLES))}"
            )
        messages.append(ChatMessage(role, _content(turn["content"], where)))
    return _conversation(record.source, messages)


def _sharegpt(record: RawRecord) -> Sample | str:
    turns = _turn_list(record, "conversations")
    messages = []
    system = _text(record, "system")
    if system.strip():
        messages.append(ChatMessage("system", system.strip()))
    for index, turn in enumerate(turns):
        where = f"{record.source}: conversations[{index}]"
        if not isinstance(turn, Mapping) or "from" not in turn or "value" not in turn:
            raise DatasetError(
                f"{where}: found {_short(turn)}, expected an object with 'from' and 'value'"
            )
        speaker = str(turn["from"]).lower()
        if speaker not in _SHAREGPT_ROLES:
            raise DatasetError(
                f"{where}: found from={turn['from']!r}, expected one of "
                f"{', '.join(sorted(_SHAREGPT_ROLES))}"
            )
        messages.append(ChatMessage(_SHAREGPT_ROLES[speaker], _content(turn["value"], where)))
    return _conversation(record.source, messages)


def _conversation(source: str, messages: list[ChatMessage]) -> Sample | str:
    if not messages:
        return "empty conversation"
    if not any(m.role == "assistant" and m.content.strip() for m in messages):
        return "no non-empty assistant message"
    return Sample(source, messages=tuple(messages))


def _turn_list(record: RawRecord, name: str) -> Sequence[Any]:
    value = record.data[name]
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise DatasetError(
            f"{record.source}: {name!r} is {_short(value)}, expected a list of messages"
        )
    return value


def _content(value: object, where: str) -> str:
    if value is None:  # an assistant turn that only calls a tool has no text
        return ""
    if isinstance(value, str):
        return value
    # OpenAI's content parts: [{"type": "text", "text": "..."}, ...]; only text is trainable here.
    if isinstance(value, list) and all(isinstance(part, Mapping) for part in value):
        return "".join(str(part.get("text", "")) for part in value if part.get("type") == "text")
    raise DatasetError(f"{where}: content is {_short(value)}, expected a string")


def _text(record: RawRecord, name: str) -> str:
    value = record.data.get(name)
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN: a missing cell from Parquet/pandas
        return ""
    if not isinstance(value, str):
        raise DatasetError(f"{record.source}: {name!r} is {_short(value)}, expected a string")
    return value


def _short(value: object) -> str:
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, Mapping):
        return f"an object with keys {_keys(value)}"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    if isinstance(value, str):
        return f"a string ({value[:30]!r})"
    return type(value).__name__


def _keys(data: Mapping[str, Any]) -> str:
    return "[" + ", ".join(str(key) for key in data) + "]"


def _nearest(name: str, choices: Any) -> str:
    matches = difflib.get_close_matches(name, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""

"""An Ollama ``Modelfile`` whose ``TEMPLATE`` and ``stop`` come from the model's chat template.

Ollama speaks Go's ``text/template``, not Jinja, so the chat template is translated by what it
*does* rather than by its source: it is rendered with marker contents for one message of each
role, which shows the text it puts before and after a message of that role (its header and
footer) and the prompt that opens the assistant's answer. The Go template rebuilds exactly that::

    {{ range .Messages }}{{ if eq .Role "user" }}HEADER{{ .Content }}FOOTER...{{ end }}{{ end }}PROMPT

Before anything is written, the Go template is rendered (by :func:`render_go_template`, a renderer
for exactly the subset we emit) on a multi-turn chat and compared with the tokenizer's own
``apply_chat_template``; a template that does not decompose this way (one that injects a default
system prompt, say) is refused rather than written wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from codetune_studio.core.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "MODELFILE",
    "ChatLayout",
    "chat_layout",
    "go_template",
    "modelfile_text",
    "render_go_template",
    "turn_stop_tokens",
    "write_modelfile",
]

MODELFILE: Final = "Modelfile"
_ROLES: Final = ("system", "user", "assistant")
_MARK: Final = "\x00CONTENT\x00"
#: A conversation every supported template must render the same way both ways.
SAMPLE_CHAT: Final = (
    {"role": "system", "content": "You write Python."},
    {"role": "user", "content": "Reverse a string."},
    {"role": "assistant", "content": "def rev(s):\n    return s[::-1]"},
    {"role": "user", "content": "Now a list."},
)


@dataclass(frozen=True, slots=True)
class ChatLayout:
    """What a chat template puts around each message.

    Attributes:
        prefix: Text before the first message (a BOS token, say).
        headers: Per role, the text before the content.
        footers: Per role, the text after the content.
        generation_prompt: The text that opens the assistant's answer.
    """

    prefix: str
    headers: dict[str, str]
    footers: dict[str, str]
    generation_prompt: str


def _render(tokenizer: Any, messages: list[dict[str, str]], generation: bool) -> str:
    text: str = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation
    )
    return text


def chat_layout(tokenizer: Any) -> ChatLayout:
    """Find the header and footer of each role by rendering marker messages.

    Raises:
        ConfigError: The tokenizer has no chat template, or one that does not wrap each message
            in a fixed header and footer.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("the model has no chat template, so no Modelfile TEMPLATE can be made")
    headers: dict[str, str] = {}
    footers: dict[str, str] = {}
    prefixes: set[str] = set()
    for role in _ROLES:
        before, footers[role] = _split_single(tokenizer, role)
        header = _header_from_pair(tokenizer, role, footers[role])
        if header is None or not before.endswith(header):
            header = before  # the template takes no two messages of a role in a row
        headers[role] = header
        prefixes.add(before[: len(before) - len(header)])
    if len(prefixes) != 1:
        raise _cannot_translate("the text before the first message depends on its role")
    empty = _render(tokenizer, [{"role": "user", "content": _MARK}], False)
    with_prompt = _render(tokenizer, [{"role": "user", "content": _MARK}], True)
    if not with_prompt.startswith(empty):
        raise _cannot_translate("the generation prompt is not appended at the end")
    return ChatLayout(prefixes.pop(), headers, footers, with_prompt[len(empty) :])


def _split_single(tokenizer: Any, role: str) -> tuple[str, str]:
    """Render one message of ``role``: the text before its content, and after it."""
    try:
        text = _render(tokenizer, [{"role": role, "content": _MARK}], False)
    except Exception as exc:
        raise _cannot_translate(f"it rejects a lone {role} message ({exc})") from exc
    if text.count(_MARK) != 1:
        raise _cannot_translate(f"a {role} message's content appears {text.count(_MARK)} times")
    before, after = text.split(_MARK)
    return before, after


def _header_from_pair(tokenizer: Any, role: str, footer: str) -> str | None:
    """A role's header, from what stands between two messages of it (footer, then header).

    This tells a once-only prefix (a BOS token) apart from the header that every message
    repeats; ``None`` when the template will not render two messages of a role in a row.
    """
    second = _MARK.replace("CONTENT", "SECOND")
    try:
        text = _render(
            tokenizer, [{"role": role, "content": _MARK}, {"role": role, "content": second}], False
        )
    except Exception:  # noqa: BLE001 - e.g. templates that insist on alternating roles
        return None
    if text.count(_MARK) != 1 or text.count(second) != 1:
        return None
    between = text.split(_MARK)[1].split(second)[0]
    return between[len(footer) :] if between.startswith(footer) else None


def _cannot_translate(reason: str) -> ConfigError:
    return ConfigError(
        f"the chat template cannot be written as an Ollama TEMPLATE: {reason}; "
        "export without --ollama and write the Modelfile by hand"
    )


def _go_string(text: str) -> str:
    """Text as it stands literally in a Go template (no delimiters to escape in ours)."""
    if "{{" in text:
        return text.replace("{{", '{{ "{{" }}')
    return text


def go_template(layout: ChatLayout) -> str:
    """The Go ``text/template`` that renders ``.Messages`` the way the chat template does."""
    # Plain {{ }} throughout: "{{-" would trim the newline a footer ends with.
    parts = [_go_string(layout.prefix), "{{ range .Messages }}"]
    for index, role in enumerate(_ROLES):
        keyword = "if" if index == 0 else "else if"
        parts.append(
            f'{{{{ {keyword} eq .Role "{role}" }}}}'
            f"{_go_string(layout.headers[role])}{{{{ .Content }}}}{_go_string(layout.footers[role])}"
        )
    parts.append("{{ end }}{{ end }}")
    parts.append(_go_string(layout.generation_prompt))
    return "".join(parts)


_TOKEN = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.DOTALL)


def render_go_template(template: str, messages: list[dict[str, str]]) -> str:
    """Render the subset of Go templates that :func:`go_template` emits.

    Supports literal text, ``{{ range .Messages }}``, ``{{ if eq .Role "x" }}``,
    ``{{ else if eq .Role "x" }}``, ``{{ end }}`` and ``{{ .Content }}``, with ``{{-`` trimming
    whitespace to its left as Go does. Anything else raises ``ValueError``.
    """
    tokens = _tokenize_go(template)
    out: list[str] = []
    position = 0
    while position < len(tokens):
        kind, value = tokens[position]
        if kind == "text":
            out.append(value)
            position += 1
        elif value == "range .Messages":
            end = _matching_end(tokens, position)
            body = tokens[position + 1 : end]
            for message in messages:
                out.append(_render_body(body, message))
            position = end + 1
        else:
            raise ValueError(f"unsupported action outside range: {value!r}")
    return "".join(out)


def _tokenize_go(template: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    last = 0
    for match in _TOKEN.finditer(template):
        text = template[last : match.start()]
        if match.group(0).startswith("{{-"):
            text = text.rstrip()
        if text:
            tokens.append(("text", text))
        tokens.append(("action", match.group(1)))
        last = match.end()
    if template[last:]:
        tokens.append(("text", template[last:]))
    return tokens


def _matching_end(tokens: list[tuple[str, str]], start: int) -> int:
    depth = 0
    for index in range(start, len(tokens)):
        kind, value = tokens[index]
        if kind != "action":
            continue
        if value.startswith(("range ", "if ")):
            depth += 1
        elif value == "end":
            depth -= 1
            if depth == 0:
                return index
    raise ValueError("unterminated block")


_EQ_ROLE = re.compile(r'^(?:else )?if eq \.Role "(\w+)"$')


def _render_body(body: list[tuple[str, str]], message: dict[str, str]) -> str:
    out: list[str] = []
    active = False  # inside the branch that matched
    matched = False
    for kind, value in body:
        if kind == "action" and (found := _EQ_ROLE.match(value)):
            active = not matched and message["role"] == found.group(1)
            matched = matched or active
        elif kind == "action" and value == "end":
            active = False
        elif kind == "action" and value == ".Content":
            if active:
                out.append(message["content"])
        elif kind == "action" and value.startswith('"'):
            if active:
                out.append(value.strip('"'))
        elif kind == "text":
            if active:
                out.append(value)
        else:
            raise ValueError(f"unsupported action: {value!r}")
    return "".join(out)


def turn_stop_tokens(tokenizer: Any) -> list[str]:
    """Special tokens that end a turn: those in the assistant's footer, then EOS."""
    stops: list[str] = []
    try:
        footer = chat_layout(tokenizer).footers["assistant"]
    except ConfigError:
        footer = ""
    specials = sorted(
        (str(token) for token in getattr(tokenizer, "all_special_tokens", [])),
        key=len,
        reverse=True,
    )
    for token in specials:
        if token and token in footer and token not in stops:
            stops.append(token)
    eos = getattr(tokenizer, "eos_token", None)
    if eos and eos not in stops:
        stops.append(str(eos))
    return stops


def modelfile_text(gguf_name: str, tokenizer: Any) -> str:
    """The Modelfile for ``gguf_name``, checked against the chat template on a sample chat.

    Raises:
        ConfigError: The chat template cannot be expressed as our Go template.
    """
    template = go_template(chat_layout(tokenizer))
    messages = [dict(message) for message in SAMPLE_CHAT]
    expected = _render(tokenizer, messages, True)
    got = render_go_template(template, messages)
    if got != expected:
        raise _cannot_translate("a multi-turn chat renders differently")
    if '"""' in template:
        raise _cannot_translate('it contains """')
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""']
    lines += [f'PARAMETER stop "{token}"' for token in turn_stop_tokens(tokenizer)]
    return "\n".join(lines) + "\n"


def write_modelfile(folder: Path, gguf_name: str, tokenizer_dir: Path) -> Path:
    """Write ``folder/Modelfile`` for the GGUF file ``gguf_name``."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    path = folder / MODELFILE
    path.write_text(modelfile_text(gguf_name, tokenizer), encoding="utf-8")
    return path


def parse_modelfile(text: str) -> tuple[str, list[str]]:
    """The ``TEMPLATE`` and the ``stop`` parameters of a Modelfile we wrote."""
    match = re.search(r'^TEMPLATE """(.*?)"""$', text, re.DOTALL | re.MULTILINE)
    if match is None:
        raise ValueError("no TEMPLATE")
    stops = re.findall(r'^PARAMETER stop "(.*)"$', text, re.MULTILINE)
    return match.group(1), stops

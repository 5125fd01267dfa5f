"""Scrubbing secrets out of text the studio stores or shows (plugin errors, log lines).

Two passes: first every *known* secret value (the keys a plugin was given, the values of
secret-looking environment variables) is replaced; then anything that merely *looks* like a
credential (``sk-...``, ``ghp_...``, ``AKIA...``, ``Bearer ...``, ``password=...``, the password
in a URL) is masked, so a key the studio never saw does not land in the database either.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["MASK", "is_secret_name", "known_secret_values", "scrub"]

MASK = "***"

#: Values shorter than this are not replaced by value (``1`` or ``true`` would mask everything).
_MIN_SECRET_LEN = 6

_SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?|_PAT|_AUTH"
    r"|DATABASE_URL|_DSN)$|^PGPASSWORD$|^HF_TOKEN$",
    re.IGNORECASE,
)

_TOKEN_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}"),  # OpenAI / Anthropic
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),  # GitHub tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),  # Hugging Face
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),  # Slack
    re.compile(r"\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"),  # JWT
)
_BEARER = re.compile(r"(\b(?:Bearer|Basic|Token)\s+)[A-Za-z0-9._~+/=\-]{8,}", re.IGNORECASE)
# The name must end in the credential word, so ``max_new_tokens: 2048`` or
# ``tokens_per_second=310`` stay readable in logs; a tokenizer's special tokens are not secrets.
_ASSIGNMENT = re.compile(
    r"(\b[\w\-]*(?:password|passwd|pwd|secret(?:[_\-]?key)?|private[_\-]?key|(?<!bos_)(?<!eos_)(?<!pad_)(?<!unk_)(?<!sep_)"
    r"(?<!cls_)(?<!mask_)token|api[_\-]?key|access[_\-]?key)"
    r"[\"']?\s*[=:]\s*[\"']?)([^\s\"',;&}]{4,})",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^:/@\s]*:)([^@\s/]+)(@)", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a credential."""
    return bool(_SECRET_NAME.search(name))


def known_secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of secret-looking variables in ``environ`` (the process's by default).

    A URL variable contributes its password only, so the host name is not masked everywhere.
    """
    source = os.environ if environ is None else environ
    values: list[str] = []
    for name, value in source.items():
        if not value or not is_secret_name(name):
            continue
        match = _URL_PASSWORD.search(value)
        values.append(match.group(2) if match else value)
    return values


def scrub(text: str, known: Iterable[str] = ()) -> str:
    """Return ``text`` with known secret values and credential-looking tokens masked.

    Args:
        text: What is about to be stored, logged or shown.
        known: Secret values to replace wherever they appear (short ones are ignored).

    Returns:
        The text with each secret replaced by ``***``.
    """
    for value in sorted({v for v in known if v and len(v) >= _MIN_SECRET_LEN}, key=len)[::-1]:
        text = text.replace(value, MASK)
    text = _URL_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", text)
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(MASK, text)
    text = _BEARER.sub(rf"\g<1>{MASK}", text)
    return _ASSIGNMENT.sub(rf"\g<1>{MASK}", text)

"""Log lines keep their ordinary numbers while credentials in them are masked."""

from __future__ import annotations

import pytest

from codetune_studio.core.redact import MASK, scrub


@pytest.mark.parametrize(
    "line",
    [
        "max_new_tokens: 2048",
        "tokens_per_second=310.5",
        "eos_token: <|im_end|>",
        "pad_token=<pad>",
    ],
)
def test_ordinary_settings_that_mention_tokens_stay_readable(line: str) -> None:
    assert scrub(line) == line


@pytest.mark.parametrize(
    "line",
    [
        "password=hunter22",
        "HF_TOKEN=abcdefgh",
        "db_password: s3cr3tpw",
        "secret_key=zzzzzz",
        "private_key: abcdefg",
        "AWS_SECRET_ACCESS_KEY=abcdefgh",
        "client_secret=abcdef",
        "auth_token: abcd1234",
    ],
)
def test_credentials_in_assignments_are_masked(line: str) -> None:
    masked = scrub(line)
    assert masked.endswith(MASK)
    assert line.split("=")[-1].split(": ")[-1] not in masked

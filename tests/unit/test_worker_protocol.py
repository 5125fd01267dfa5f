from __future__ import annotations

import json
import logging

import pytest

from codetune_studio.core.status import RunStatus
from codetune_studio.worker import exit_code_for, parse_command


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ('{"cmd": "stop"}\n', "stop"),
        ('{"cmd": "pause"}', "pause"),
        ('  {"cmd":"resume"}  ', "resume"),
        ("stop\n", "stop"),
        ('{"cmd": "explode"}', None),
        ("[1]", None),
        ("", None),
    ],
)
def test_parse_command(line: str, command: str | None) -> None:
    assert parse_command(line) == command


@pytest.mark.parametrize(
    ("status", "code"),
    [(RunStatus.FINISHED, 0), (RunStatus.FAILED, 1), (RunStatus.CANCELLED, 130)],
)
def test_exit_codes(status: RunStatus, code: int) -> None:
    assert exit_code_for(status) == code


def test_log_records_become_json_lines() -> None:
    from codetune_studio.worker.__main__ import JsonLogFormatter

    record = logging.LogRecord("x.y", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    payload = json.loads(JsonLogFormatter().format(record))
    assert payload["level"] == "WARNING"
    assert payload["logger"] == "x.y"
    assert payload["message"] == "a b"

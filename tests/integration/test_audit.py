"""The audit log: recorded with who, when, what and where, never with the secret."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import pytest

from codetune_studio.cli import main
from codetune_studio.core.audit import AuditAction
from codetune_studio.services.audit import AuditService
from codetune_studio.services.experiments import current_host, current_user
from codetune_studio.storage.db import Database

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration


@pytest.fixture
def audit(database_url: str) -> Iterator[AuditService]:
    database = Database.connect(database_url, connect_timeout=5)
    database.upgrade()
    yield AuditService(database)
    database.dispose()


def test_an_action_is_recorded_with_who_when_and_where(audit: AuditService) -> None:
    entry = audit.record(AuditAction.RUN_DELETED, "run 12", {"runs": 1, "folder_removed": True})
    assert (entry.actor, entry.host) == (current_user(), current_host())
    assert entry.at.tzinfo is not None
    (listed,) = audit.list()
    assert listed == entry
    assert listed.details == {"runs": 1, "folder_removed": True}


def test_secrets_never_reach_the_audit_log(
    audit: AuditService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_canaryTOKEN0123456789abcdef")
    audit.record(
        AuditAction.PUSHED,
        "https://user:pw-in-url@hub.example/models/x",
        {"token": "hf_canaryTOKEN0123456789abcdef", "note": "api_key=sk-abcdefghijklmnop1234"},
    )
    text = json.dumps([entry.model_dump(mode="json") for entry in audit.list()])
    for secret in ("hf_canaryTOKEN0123456789abcdef", "pw-in-url", "sk-abcdefghijklmnop1234"):
        assert secret not in text


def test_list_filters_by_action_newest_first(audit: AuditService) -> None:
    audit.record(AuditAction.KEY_SET, "openai")
    audit.record(AuditAction.KEY_DELETED, "openai")
    audit.record(AuditAction.KEY_SET, "anthropic")
    assert [e.target for e in audit.list(action=AuditAction.KEY_SET)] == ["anthropic", "openai"]
    assert len(audit.list(limit=2)) == 2


def test_cli_keys_are_audited_and_listed_as_json(
    isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("sk-audit-canary-0123456789\n"))
    assert main(["keys", "set", "openai", "--stdin"]) == 0
    assert main(["keys", "delete", "openai"]) == 0
    capsys.readouterr()
    assert main(["audit", "--format", "json"]) == 0
    out = capsys.readouterr().out
    entries = json.loads(out)
    assert [(e["action"], e["target"]) for e in entries] == [
        ("key.deleted", "openai"),
        ("key.set", "openai"),
    ]
    assert entries[0]["actor"] == current_user()
    assert "sk-audit-canary" not in out
    assert main(["audit"]) == 0
    table = capsys.readouterr().out
    assert "key.set" in table
    assert f"{current_user()}@{current_host()}" in table

"""Puts the fake plugin distribution on ``sys.path`` (and the children's ``PYTHONPATH``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FAKE_PLUGIN_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "fake_plugin"


@pytest.fixture
def fake_plugins(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install the fake plugin distribution the way pip would leave it: a dist-info on sys.path."""
    monkeypatch.syspath_prepend(str(FAKE_PLUGIN_DIR))
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(p for p in (str(FAKE_PLUGIN_DIR), existing) if p)
    )
    return FAKE_PLUGIN_DIR

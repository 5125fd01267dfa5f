from __future__ import annotations

import sys

import pytest

from codetune_studio.core import child_cmd


def test_source_install_runs_modules_with_this_python() -> None:
    assert child_cmd.python_module_command("pkg.mod", "--x", "1") == [
        sys.executable,
        "-m",
        "pkg.mod",
        "--x",
        "1",
    ]
    assert child_cmd.python_module_command("pkg.mod", isolated=True)[1] == "-P"


def test_frozen_install_reenters_its_own_executable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert child_cmd.python_module_command("pkg.mod", "a") == [
        sys.executable,
        child_cmd.FROZEN_MODULE_FLAG,
        "pkg.mod",
        "a",
    ]


def test_frozen_entry_runs_the_named_module_with_its_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    with pytest.raises(SystemExit) as stopped:
        child_cmd.run_frozen_module(["exe", child_cmd.FROZEN_MODULE_FLAG, "json.tool", "--help"])
    assert stopped.value.code == 0
    assert not child_cmd.run_frozen_module(["exe", "train", "r.yaml"])

"""A packaged studio starts its own children: the worker and plugin runner re-enter the executable.

The frozen flag is monkeypatched; a small launcher script stands in for the PyInstaller executable
(it runs ``packaging/entry.py``, the bundle's real entry point), so the whole re-entry path is
exercised without building a bundle.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from codetune_studio.core.child_cmd import FROZEN_MODULE_FLAG
from codetune_studio.plugins import isolation
from codetune_studio.plugins.api import ToolInputs
from codetune_studio.plugins.builtin.code_analyzer import plugin_spec as analyzer_spec
from codetune_studio.ui.studio_services import default_worker_launch

ENTRY = Path(__file__).resolve().parents[2] / "packaging" / "entry.py"


@pytest.fixture
def frozen_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Pretend to be a frozen studio whose executable is a launcher for ``packaging/entry.py``."""
    launcher = tmp_path / "codetune-studio"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ENTRY}" "$@"\n', encoding="utf-8")
    launcher.chmod(0o755)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(launcher))
    return launcher


def _worker_argv(tmp_path: Path) -> list[str]:
    # The launch reads the recipe's launch section; the file then goes away, so the worker
    # started from this argv fails at once, the same way in both kinds of install.
    recipe = tmp_path / "vanishing-recipe.json"
    recipe.write_text('{"model": "starter", "dataset": {"path": "data.jsonl"}}', encoding="utf-8")
    argv = default_worker_launch(
        recipe_file=recipe,
        run_id=7,
        output_dir=tmp_path / "out",
        data_dir=tmp_path / "data",
        database_url=None,
    ).argv
    recipe.unlink()
    return argv


def test_source_install_starts_the_worker_with_this_python(tmp_path: Path) -> None:
    argv = _worker_argv(tmp_path)
    assert argv[:3] == [sys.executable, "-m", "codetune_studio.worker"]
    assert "--record" in argv


def test_frozen_studio_starts_the_worker_as_itself(frozen_executable: Path, tmp_path: Path) -> None:
    argv = _worker_argv(tmp_path)
    assert argv[:3] == [str(frozen_executable), FROZEN_MODULE_FLAG, "codetune_studio.worker"]
    assert "-m" not in argv
    # The re-entered executable really runs the worker: it reads the recipe and says it is missing.
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, check=False, env=dict(os.environ)
    )
    assert result.returncode == 2, result.stderr
    assert '"event":"run_finished"' in result.stdout
    assert "Recipe file not found" in result.stdout


@pytest.mark.parametrize("frozen", [False, True])
def test_plugin_runner_is_started_through_python_module_command(
    frozen: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if frozen:
        monkeypatch.setattr(sys, "frozen", True, raising=False)
    started: list[list[str]] = []

    class RefusedError(Exception):
        pass

    def fake_popen(command: list[str], **_: object) -> None:
        started.append(command)
        raise RefusedError

    monkeypatch.setattr(subprocess, "Popen", fake_popen)
    session = isolation._ChildSession(analyzer_spec, [], 1.0)
    with pytest.raises(RefusedError):
        session.start(b"{}")
    expected = (
        [sys.executable, FROZEN_MODULE_FLAG, "codetune_studio.plugins.runner"]
        if frozen
        else [sys.executable, "-P", "-m", "codetune_studio.plugins.runner"]
    )
    assert started == [expected]


def test_frozen_studio_runs_a_plugin_in_its_own_runner(
    frozen_executable: Path, tmp_path: Path
) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f(x):\n    return eval(x)\n", encoding="utf-8")
    results = isolation.run_isolated(
        analyzer_spec, [ToolInputs(path=str(sample), code=sample.read_text())], timeout_s=120
    )
    assert len(results) == 1
    assert results[0].error is None, results[0].error
    assert results[0].plugin == analyzer_spec.name
    assert results[0].findings, "the analyzer found nothing in code that calls eval"

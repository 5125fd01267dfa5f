"""The committed dependency locks: fresh, hashed, and free of the releases we exclude."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "packaging" / "locks"
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)")


def _lock_inputs() -> ModuleType:
    # Loaded by path: the folder is called "packaging", like the PyPI package.
    spec = importlib.util.spec_from_file_location(
        "lock_inputs", ROOT / "packaging" / "lock_inputs.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lock_inputs"] = module
    spec.loader.exec_module(module)
    return module


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def test_the_locks_were_made_from_the_current_pyproject() -> None:
    lock_inputs = _lock_inputs()
    current = lock_inputs.fingerprint(ROOT)
    for flavour in ("cpu", "cuda"):
        assert lock_inputs.recorded(LOCKS / f"{flavour}.txt") == current, (
            f"packaging/locks/{flavour}.txt is stale: run `make lock` and commit it"
        )


def test_a_changed_dependency_makes_the_locks_stale(tmp_path: Path) -> None:
    lock_inputs = _lock_inputs()
    (tmp_path / "packaging" / "locks").mkdir(parents=True)
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    for path in LOCKS.glob("*.in"):
        (tmp_path / "packaging" / "locks" / path.name).write_text(path.read_text("utf-8"), "utf-8")
    assert lock_inputs.fingerprint(tmp_path) == lock_inputs.fingerprint(ROOT)
    (tmp_path / "pyproject.toml").write_text(
        pyproject.replace('"pyqtgraph>=0.13.4",', '"pyqtgraph>=0.13.4",\n  "gguf>=0.10",'),
        encoding="utf-8",
    )
    assert lock_inputs.fingerprint(tmp_path) != lock_inputs.fingerprint(ROOT)


def test_every_locked_package_has_a_hash_and_the_painting_bug_is_excluded() -> None:
    for flavour in ("cpu", "cuda"):
        text = (LOCKS / f"{flavour}.txt").read_text(encoding="utf-8")
        pins = _pins(LOCKS / f"{flavour}.txt")
        assert len(pins) > 50
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 4)[4])
        assert all("--hash=sha256:" in entry for entry in entries if PIN.match(entry))
        assert pins["pyside6-essentials"] != "6.12.0"
        assert pins["torch"].startswith("2.13.0")
    assert _pins(LOCKS / "cpu.txt")["torch"] == "2.13.0+cpu"

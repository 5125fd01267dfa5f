"""What a packaged (frozen) studio knows about itself and where it keeps things.

The frozen flag and PyInstaller's ``sys._MEIPASS`` are monkeypatched; nothing here builds a bundle.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codetune_studio import __version__
from codetune_studio.core import build_info
from codetune_studio.core.paths import resolve_paths
from codetune_studio.engine import starter

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Pretend to run from a PyInstaller bundle unpacked at ``tmp_path / "_internal"``."""
    folder = tmp_path / "_internal"
    folder.mkdir()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(folder), raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "codetune-studio"))
    return folder


@pytest.mark.parametrize(
    ("version", "cuda_runtime", "expected"),
    [
        ("2.5.1+cpu", None, "2.5.1+cpu (CPU)"),
        ("2.5.1+cu124", None, "2.5.1+cu124 (CUDA 12.4)"),
        ("2.4.0+cu118", None, "2.4.0+cu118 (CUDA 11.8)"),
        ("2.5.1+rocm6.2", None, "2.5.1+rocm6.2 (ROCm 6.2)"),
        ("2.5.1", "12.4.127", "2.5.1 (CUDA 12.4)"),
    ],
)
def test_torch_build_is_named_from_its_version(
    version: str, cuda_runtime: str | None, expected: str
) -> None:
    assert build_info.describe_torch_build(version, cuda_runtime=cuda_runtime) == expected


def test_source_checkout_reports_the_installed_torch_without_importing_it() -> None:
    from importlib import metadata

    info = build_info.current_build_info()
    assert info.version == __version__
    assert info.frozen is False
    assert info.torch.startswith(metadata.version("torch") + " (")
    script = (
        "import sys\n"
        "from codetune_studio.core.build_info import current_build_info\n"
        "current_build_info()\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


def test_commit_comes_from_git_and_is_absent_without_a_repository(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.fail("git is needed to test reading the commit")
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "one"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    commit = build_info.git_commit(repo)
    assert commit is not None
    assert head.startswith(commit)
    assert build_info.git_commit(tmp_path / "not-a-repo") is None


def test_packaged_studio_reports_what_was_baked_in_at_package_time(bundle: Path) -> None:
    written = build_info.write_build_info(bundle / build_info.BUILD_INFO_FILE, commit="abc1234def")
    # The build machine's git and torch are not consulted at run time: the record wins.
    record = json.loads((bundle / build_info.BUILD_INFO_FILE).read_text(encoding="utf-8"))
    record["torch"] = "2.5.1+cpu (CPU)"
    (bundle / build_info.BUILD_INFO_FILE).write_text(json.dumps(record), encoding="utf-8")
    info = build_info.current_build_info()
    assert info == build_info.BuildInfo(
        version=__version__, commit="abc1234def", torch="2.5.1+cpu (CPU)", frozen=True
    )
    assert written.commit == "abc1234def"
    assert info.lines() == ["commit: abc1234def (packaged)", "torch: 2.5.1+cpu (CPU)"]


def test_packaged_studio_without_a_record_still_answers(bundle: Path) -> None:
    info = build_info.current_build_info()
    assert info.version == __version__
    assert info.frozen is True
    assert info.torch


def test_frozen_studio_keeps_user_data_where_the_source_install_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CODETUNE_DATA_DIR", "CODETUNE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    from_source = resolve_paths()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "bundle" / "_internal"), raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bundle" / "codetune-studio"))
    frozen = resolve_paths()
    assert frozen == from_source
    assert frozen.settings_file == from_source.settings_file
    assert frozen.database_file == from_source.database_file
    # Nothing points into the bundle: an update that replaces the folder loses no user data.
    bundle_root = str(tmp_path / "bundle")
    for folder in (frozen.data_dir, frozen.config_dir, frozen.log_dir, frozen.cache_dir):
        assert not str(folder).startswith(bundle_root)
        assert str(folder).startswith(str(tmp_path / "home"))


def _fake_starter(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "starter.json"):
        (folder / name).write_text(f"{name} from the bundle", encoding="utf-8")
    (folder / "model.safetensors").chmod(0o444)  # a bundle may be read-only
    return folder


def test_first_use_copies_the_bundled_starter_model_instead_of_building_it(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = _fake_starter(bundle / "models" / starter.STARTER_NAME)

    def no_build(*_: object) -> None:
        pytest.fail("the starter model was built although the bundle carries one")

    monkeypatch.setattr(starter, "_build_atomically", no_build)
    data = tmp_path / "data"
    assert starter.is_starter_cached(data)
    assert starter.cached_starter_dir(data) == shipped
    folder = starter.ensure_starter_model(data)
    assert folder == data / "models" / starter.STARTER_NAME
    assert (folder / "model.safetensors").read_text(encoding="utf-8") == (
        "model.safetensors from the bundle"
    )
    # The user's copy is writable (the bundle's read-only mode is not carried over).
    assert (folder / "model.safetensors").stat().st_mode & 0o200
    assert starter.cached_starter_dir(data) == folder
    assert not list(folder.parent.glob(".*.tmp-*"))


def test_source_install_has_no_bundled_starter_model() -> None:
    assert starter.bundled_starter_dir() is None

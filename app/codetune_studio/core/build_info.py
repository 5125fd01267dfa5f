"""What this studio is: its version, the commit it was built from and the build of torch it carries.

``--version`` and Help > About show it, so a bug report names the exact build. A frozen
(PyInstaller) studio reads :data:`BUILD_INFO_FILE`, written beside its code at package time; a
source checkout asks git for the commit (and says nothing when git or the repository is absent).
The torch build comes from the installed distribution's metadata: importing torch costs seconds
and must never happen while the window starts.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Final

from codetune_studio import __version__
from codetune_studio.core.child_cmd import is_frozen

__all__ = [
    "BUILD_INFO_FILE",
    "BuildInfo",
    "bundle_dir",
    "current_build_info",
    "describe_torch_build",
    "git_commit",
    "torch_build",
    "write_build_info",
]

logger = logging.getLogger(__name__)

#: The file a packaged studio carries beside its code (in PyInstaller's ``_internal``).
BUILD_INFO_FILE: Final = "codetune-build.json"
#: The checkout this module sits in when it runs from source (``app/codetune_studio/core/..``).
_SOURCE_ROOT: Final = Path(__file__).resolve().parents[3]
_LOCAL_VERSION = re.compile(r"\+(?P<tag>cpu|cu(?P<cuda>\d+)|rocm(?P<rocm>[\d.]+))")


@dataclass(frozen=True, slots=True)
class BuildInfo:
    """Which studio this is.

    Attributes:
        version: The studio's version.
        commit: The git commit (short hash) it was built from; ``None`` when unknown.
        torch: The torch build, e.g. ``"2.5.1+cpu (CPU)"``.
        frozen: Whether this is a packaged (PyInstaller) studio.
    """

    version: str
    commit: str | None
    torch: str
    frozen: bool

    def lines(self) -> list[str]:
        """``label: value`` lines, as ``--version`` prints them (after the name and version)."""
        kind = "packaged" if self.frozen else "source"
        return [
            f"commit: {self.commit or 'unknown'} ({kind})",
            f"torch: {self.torch}",
        ]


def bundle_dir() -> Path | None:
    """The folder a frozen studio unpacked its data files to; ``None`` from source."""
    folder = getattr(sys, "_MEIPASS", None)
    return Path(folder) if is_frozen() and folder else None


def current_build_info() -> BuildInfo:
    """This process's build: baked in when packaged, asked of git and metadata otherwise."""
    baked = _read_baked(bundle_dir())
    if baked is not None:
        return baked
    return BuildInfo(
        version=__version__,
        commit=git_commit(_SOURCE_ROOT),
        torch=torch_build(),
        frozen=is_frozen(),
    )


def write_build_info(path: Path, *, commit: str | None) -> BuildInfo:
    """Write the build record a packaged studio reads (called at package time).

    Args:
        path: The file to write.
        commit: The commit being packaged.

    Returns:
        What was written.
    """
    info = BuildInfo(version=__version__, commit=commit, torch=torch_build(), frozen=True)
    path.write_text(json.dumps(asdict(info), indent=2) + "\n", encoding="utf-8")
    return info


def git_commit(repo: Path, timeout_s: float = 2.0) -> str | None:
    """The short hash of ``repo``'s checked-out commit, or ``None`` without git or a repository.

    Args:
        repo: A folder inside a git work tree.
        timeout_s: How long git may take.
    """
    git = shutil.which("git")
    if git is None or not (repo / ".git").exists():
        return None
    try:
        result = subprocess.run(  # noqa: S603 - a fixed command line
            [git, "-C", str(repo), "rev-parse", "--short=10", "HEAD"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        logger.debug("git did not name the commit", exc_info=True)
        return None
    return result.stdout.strip() or None


def torch_build() -> str:
    """The installed torch and what it was built for, from its metadata (torch is not imported)."""
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "not installed"
    return describe_torch_build(version, cuda_runtime=_cuda_runtime_version())


def describe_torch_build(version: str, *, cuda_runtime: str | None = None) -> str:
    """Say what a torch version string was built for.

    Args:
        version: torch's distribution version, e.g. ``"2.5.1+cpu"`` or ``"2.5.1+cu124"``.
        cuda_runtime: The version of the ``nvidia-cuda-runtime`` wheel beside it, if any: PyPI's
            Linux torch is the CUDA build without saying so in its version.

    Returns:
        For example ``"2.5.1+cpu (CPU)"``, ``"2.5.1+cu124 (CUDA 12.4)"``.
    """
    match = _LOCAL_VERSION.search(version)
    if match is None:
        if cuda_runtime:
            return f"{version} (CUDA {'.'.join(cuda_runtime.split('.')[:2])})"
        return f"{version} ({'CUDA or CPU' if sys.platform.startswith('linux') else 'CPU'})"
    if match["cuda"]:
        digits = match["cuda"]
        return f"{version} (CUDA {digits[:-1]}.{digits[-1]})"
    if match["rocm"]:
        return f"{version} (ROCm {match['rocm']})"
    return f"{version} (CPU)"


def _cuda_runtime_version() -> str | None:
    for name in ("nvidia-cuda-runtime-cu12", "nvidia-cuda-runtime-cu11", "nvidia-cuda-runtime"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _read_baked(folder: Path | None) -> BuildInfo | None:
    if folder is None:
        return None
    path = folder / BUILD_INFO_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return BuildInfo(
            version=str(data["version"]),
            commit=data.get("commit") or None,
            torch=str(data["torch"]),
            frozen=True,
        )
    except (OSError, ValueError, KeyError, TypeError):
        logger.debug("no readable build record at %s", path, exc_info=True)
        return None

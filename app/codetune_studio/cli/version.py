"""``codetune-studio --version``: the version, the commit, the torch build and the device."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["VersionAction", "version_text"]


def version_text() -> str:
    """What ``--version`` prints: ``codetune-studio VERSION`` first, then one fact a line."""
    from codetune_studio.core.build_info import current_build_info
    from codetune_studio.services.device import detect_device

    info = current_build_info()
    lines = [f"codetune-studio {info.version}", *info.lines()]
    lines.append(f"device: {detect_device().label}")
    return "\n".join(lines)


class VersionAction(argparse.Action):
    """Print :func:`version_text` and exit, like argparse's own ``version`` action."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "show the version, commit, torch build and device, then exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        _namespace: argparse.Namespace,
        _values: str | Sequence[Any] | None,
        _option_string: str | None = None,
    ) -> NoReturn:
        """Print the build facts and exit 0 (argparse calls this when it meets ``--version``)."""
        sys.stdout.write(version_text() + "\n")
        parser.exit()

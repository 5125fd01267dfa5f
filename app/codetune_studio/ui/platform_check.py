"""Start-up checks for Qt's X11 (xcb) platform plugin, before ``QApplication`` exists.

Without one of the plugin's system libraries (``libxcb-cursor0`` since Qt 6.5 is the usual one)
Qt aborts the whole process with "Could not load the Qt platform plugin xcb", which names neither
the missing library nor the package to install. These checks find that out first, by loading the
plugin's libraries the way the dynamic loader would, and say which Debian/Ubuntu package to
install.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "XCB_LIBRARIES",
    "load_error",
    "missing_xcb_packages",
    "plugin_problem",
    "uses_xcb",
    "xcb_problem",
]

#: The system libraries Qt 6's xcb platform plugin links against (its ``ldd``, less what PySide6
#: ships and what every Linux has), with the Debian/Ubuntu package that provides each.
XCB_LIBRARIES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
}

_MISSING_SONAME = re.compile(r"([\w.+-]+\.so(?:\.\d+)*): cannot open shared object file")


def load_error(path: str) -> str | None:
    """Load a shared library as the dynamic loader would; the loader's message if it fails.

    Args:
        path: A soname (``libxcb-cursor.so.0``) or a file path.

    Returns:
        ``None`` when it loads, else the loader's error text.
    """
    try:
        ctypes.CDLL(path)
    except OSError as exc:
        return str(exc)
    return None


def uses_xcb(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """Whether Qt would start on its xcb plugin with this environment.

    Args:
        environ: The process environment.
        platform: ``sys.platform``.

    Returns:
        True on Linux when ``QT_QPA_PLATFORM`` asks for xcb, or is unset with an X11 display and
        no Wayland session (Qt prefers Wayland there).
    """
    if not platform.startswith("linux"):
        return False
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(":", 1)[0].split(";", 1)[0] == "xcb"
    wayland = environ.get("WAYLAND_DISPLAY") and environ.get("XDG_SESSION_TYPE") == "wayland"
    return bool(environ.get("DISPLAY")) and not wayland


def missing_xcb_packages(load: Callable[[str], str | None] = load_error) -> list[str]:
    """The packages whose libraries the xcb plugin needs and the loader cannot find.

    Args:
        load: Loads a soname and returns an error text, or ``None`` (tests inject one).

    Returns:
        Debian/Ubuntu package names, in the order of :data:`XCB_LIBRARIES`, without repeats.
    """
    packages: list[str] = []
    for soname, package in XCB_LIBRARIES.items():
        if load(soname) is not None and package not in packages:
            packages.append(package)
    return packages


def plugin_problem(plugin: Path, load: Callable[[str], str | None] = load_error) -> str | None:
    """Why the xcb plugin itself cannot be loaded, in one line, or ``None`` when it can.

    Args:
        plugin: The plugin file (``.../plugins/platforms/libqxcb.so``).
        load: Loads a path and returns an error text, or ``None``.

    Returns:
        A one-line problem naming the missing library (and its package when known), or ``None``.
    """
    if not plugin.is_file():
        return (
            f"Qt's X11 platform plugin is missing ({plugin}). Reinstall PySide6-Essentials "
            "(make clean && make setup), or set QT_QPA_PLATFORM=wayland on a Wayland desktop."
        )
    error = load(str(plugin))
    if error is None:
        return None
    match = _MISSING_SONAME.search(error)
    if match:
        soname = match.group(1)
        package = XCB_LIBRARIES.get(soname)
        fix = f"sudo apt-get install {package}" if package else "install the package providing it"
        return f"Qt's X11 platform plugin cannot load {soname}: {fix} (Debian/Ubuntu)."
    first_line = error.splitlines()[0] if error else "unknown error"
    return f"Qt's X11 platform plugin cannot be loaded ({plugin}): {first_line}"


def _plugin_path() -> Path:
    from PySide6.QtCore import QLibraryInfo

    plugins = QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)
    return Path(plugins) / "platforms" / "libqxcb.so"


def xcb_problem(
    environ: Mapping[str, str] | None = None,
    *,
    platform: str = sys.platform,
    load: Callable[[str], str | None] | None = None,
    plugin: Path | None = None,
) -> str | None:
    """One line saying what to install before the window can open on X11, or ``None``.

    Args:
        environ: The environment (default: this process's).
        platform: ``sys.platform``.
        load: Loads a soname or path and returns an error text, or ``None`` (default:
            :func:`load_error`; tests inject one).
        plugin: The xcb plugin file (default: the one this PySide6 would load).

    Returns:
        The problem and the fix in one line, or ``None`` when the xcb plugin will load (or Qt
        will not use it).
    """
    if not uses_xcb(os.environ if environ is None else environ, platform):
        return None
    load = load or load_error
    missing = missing_xcb_packages(load)
    if missing:
        return (
            "The studio window needs system libraries that are missing: "
            f"sudo apt-get install {' '.join(missing)} (Debian/Ubuntu package names)."
        )
    return plugin_problem(plugin or _plugin_path(), load)

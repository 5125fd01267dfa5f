"""The start-up check that names the package to install instead of letting Qt abort."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from codetune_studio.ui.platform_check import (
    XCB_LIBRARIES,
    missing_xcb_packages,
    plugin_problem,
    uses_xcb,
    xcb_problem,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

X11 = {"DISPLAY": ":0"}


def _loader(*missing: str) -> Callable[[str], str | None]:
    """A fake dynamic loader that cannot find the named sonames (or paths)."""

    def load(name: str) -> str | None:
        if name in missing:
            return f"{name}: cannot open shared object file: No such file or directory"
        return None

    return load


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    path = tmp_path / "platforms" / "libqxcb.so"
    path.parent.mkdir()
    path.write_bytes(b"\x7fELF")
    return path


def test_a_missing_xcb_cursor_names_the_debian_package(plugin: Path) -> None:
    problem = xcb_problem(X11, platform="linux", load=_loader("libxcb-cursor.so.0"), plugin=plugin)
    assert problem is not None
    assert "sudo apt-get install libxcb-cursor0 " in problem
    assert "\n" not in problem


def test_every_missing_library_is_named_once(plugin: Path) -> None:
    load = _loader("libxcb-cursor.so.0", "libxkbcommon-x11.so.0", "libxcb-icccm.so.4")
    assert missing_xcb_packages(load) == ["libxcb-cursor0", "libxkbcommon-x11-0", "libxcb-icccm4"]


def test_nothing_to_say_when_every_library_and_the_plugin_load(plugin: Path) -> None:
    assert xcb_problem(X11, platform="linux", load=_loader(), plugin=plugin) is None


def test_a_plugin_that_fails_on_a_library_outside_the_list_names_that_library(
    plugin: Path,
) -> None:
    def load(name: str) -> str | None:
        if name == str(plugin):
            return "libfoo.so.3: cannot open shared object file: No such file or directory"
        return None

    problem = xcb_problem(X11, platform="linux", load=load, plugin=plugin)
    assert problem == (
        "Qt's X11 platform plugin cannot load libfoo.so.3: "
        "install the package providing it (Debian/Ubuntu)."
    )


def test_a_plugin_that_fails_on_a_known_library_names_its_package(plugin: Path) -> None:
    def load(name: str) -> str | None:
        if name == str(plugin):
            return "libxcb-cursor.so.0: cannot open shared object file: No such file or directory"
        return None

    problem = plugin_problem(plugin, load)
    assert problem is not None
    assert "sudo apt-get install libxcb-cursor0" in problem


def test_a_missing_plugin_file_says_to_reinstall(tmp_path: Path) -> None:
    problem = plugin_problem(tmp_path / "libqxcb.so", _loader())
    assert problem is not None
    assert "Reinstall PySide6-Essentials" in problem


@pytest.mark.parametrize(
    ("environ", "platform", "expected"),
    [
        ({"DISPLAY": ":0"}, "linux", True),
        ({"DISPLAY": ":0"}, "darwin", False),
        ({"DISPLAY": ":0"}, "win32", False),
        ({}, "linux", False),
        ({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}, "linux", False),
        ({"QT_QPA_PLATFORM": "xcb"}, "linux", True),
        ({"QT_QPA_PLATFORM": "wayland;xcb", "DISPLAY": ":0"}, "linux", False),
        (
            {"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"},
            "linux",
            False,
        ),
    ],
)
def test_only_an_xcb_start_is_checked(
    environ: dict[str, str], platform: str, expected: bool
) -> None:
    assert uses_xcb(environ, platform) is expected


def test_offscreen_skips_the_check_even_with_every_library_missing(plugin: Path) -> None:
    everything = _loader(*XCB_LIBRARIES, str(plugin))
    environ = {"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}
    assert xcb_problem(environ, platform="linux", load=everything, plugin=plugin) is None


def test_the_real_loader_reports_a_library_that_does_not_exist() -> None:
    from codetune_studio.ui.platform_check import load_error

    error = load_error("libcodetune-does-not-exist.so.9")
    assert error is not None
    assert "libcodetune-does-not-exist.so.9" in error
    assert load_error("libc.so.6") is None

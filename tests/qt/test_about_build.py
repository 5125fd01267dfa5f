"""Help > About names the build: version, commit, torch build and device."""

from __future__ import annotations

from typing import Any

from codetune_studio import __version__
from codetune_studio.core.build_info import current_build_info
from codetune_studio.services.device import DeviceInfo


def test_about_names_version_commit_torch_build_and_device(make_window: Any) -> None:
    window = make_window()
    info = current_build_info()
    text = window.about_text()
    assert f"CodeTune Studio {__version__}" in text
    assert f"Commit: {info.commit or 'unknown'} (source install)" in text
    assert f"torch: {info.torch}" in text
    assert "Device: still being detected" in text

    window._on_device_detected(DeviceInfo("NVIDIA H200", 141 * 1024**3, is_gpu=True))
    assert "Device: GPU: NVIDIA H200 (141 GB)" in window.about_text()

"""Which device a run would train on, found without importing torch. Qt-free.

The window asks ``nvidia-smi`` (in a background task) rather than importing torch, which takes
seconds and would hold the GIL while the window is meant to be responsive.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["DeviceInfo", "detect_device"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """The training device.

    Attributes:
        name: ``"CPU"`` or the GPU's name.
        memory_bytes: The GPU's memory, or the machine's RAM for the CPU; ``None`` if unknown.
        is_gpu: Whether it is a GPU.
        count: How many GPUs.
    """

    name: str
    memory_bytes: int | None
    is_gpu: bool
    count: int = 1

    @property
    def label(self) -> str:
        """What the status bar says, e.g. ``"GPU: NVIDIA H100 (80 GB)"``."""
        memory = f" ({self.memory_bytes / 1024**3:.0f} GB)" if self.memory_bytes else ""
        if not self.is_gpu:
            return f"CPU{memory.replace('(', '(RAM ')}"
        many = f"{self.count} x " if self.count > 1 else ""
        return f"GPU: {many}{self.name}{memory}"


def detect_device(timeout_s: float = 5.0) -> DeviceInfo:
    """Find the GPU through ``nvidia-smi``, or describe the CPU.

    Args:
        timeout_s: How long ``nvidia-smi`` may take.

    Returns:
        The device.
    """
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            result = subprocess.run(  # noqa: S603 - a fixed command line
                [smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=True,
            )
            rows = [line.split(",") for line in result.stdout.strip().splitlines() if "," in line]
            if rows:
                name, memory_mib = rows[0][0].strip(), rows[0][1].strip()
                memory = (
                    int(float(memory_mib) * 1024**2)
                    if memory_mib.replace(".", "").isdigit()
                    else None
                )
                return DeviceInfo(name, memory, is_gpu=True, count=len(rows))
        except (OSError, subprocess.SubprocessError, ValueError):
            logger.debug("nvidia-smi did not answer", exc_info=True)
    if sys.platform == "darwin":
        return DeviceInfo("Apple GPU (MPS)", _ram_bytes(), is_gpu=True)
    return DeviceInfo("CPU", _ram_bytes(), is_gpu=False)


def _ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None

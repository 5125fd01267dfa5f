"""The environment every child process of the studio starts with: an allow-list.

A deny-list of secret-looking names always misses one (``PGPASSWORD``, ``AWS_SECRET_ACCESS_KEY``,
a company's ``*_PAT``), so children (the training worker, the plugin runner, generation, the eval
sandbox, export verification) get only the variables named here, plus what their caller passes
explicitly. Database URLs are deliberately absent: they can carry a password.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["ALLOWED_NAMES", "ALLOWED_PREFIXES", "child_environment"]

#: Variables a child may inherit as they are.
ALLOWED_NAMES: frozenset[str] = frozenset(
    {
        # Finding programs, the user's folders, locale and time.
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
        # Windows needs these for platformdirs, sockets and the C runtime.
        "SYSTEMROOT", "WINDIR", "COMSPEC", "PATHEXT", "APPDATA", "LOCALAPPDATA", "USERPROFILE",
        "PROGRAMDATA",
        # The Python that runs the child, and how it behaves.
        "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONUNBUFFERED", "PYTHONIOENCODING",
        "PYTHONFAULTHANDLER", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "PYTHONUTF8",
        # Devices, native libraries and threads.
        "CUDA_VISIBLE_DEVICES", "CUDA_HOME", "CUDA_PATH", "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH",
        "NVIDIA_VISIBLE_DEVICES", "PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ENABLE_MPS_FALLBACK",
        "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "OMP_NUM_THREADS", "OMP_WAIT_POLICY",
        "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
        "TOKENIZERS_PARALLELISM",
        # Hugging Face caches and offline switches (never HF_TOKEN).
        "HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
        "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "HF_HUB_DISABLE_TELEMETRY",
        # The studio's own non-secret switches.
        "CODETUNE_DATA_DIR", "CODETUNE_CONFIG_DIR", "CODETUNE_RESOURCES_DIR", "CODETUNE_OFFLINE",
        "CODETUNE_TORCH_THREADS", "CODETUNE_LOG_LEVEL",
    }
)  # fmt: skip

#: Families of variables a child may inherit (locale categories, XDG folders).
ALLOWED_PREFIXES: tuple[str, ...] = ("LC_", "XDG_")


def child_environment(
    extra: Mapping[str, str] | None = None,
    *,
    allow: Iterable[str] = (),
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Build a child process's environment from the allow-list.

    Args:
        extra: Variables the caller sets on purpose (they win over inherited ones), for example a
            database URL the worker must use.
        allow: Further names this particular child may inherit, for example ``DISPLAY``.
        source: The environment to filter; the current process's by default.

    Returns:
        A new dictionary, safe to pass as ``env=`` to :mod:`subprocess`.
    """
    environ = os.environ if source is None else source
    allowed = ALLOWED_NAMES | frozenset(allow)
    env = {
        name: value
        for name, value in environ.items()
        if name in allowed or name.startswith(ALLOWED_PREFIXES)
    }
    env.update(extra or {})
    return env

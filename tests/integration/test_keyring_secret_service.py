"""One trip through a real Secret Service: gnome-keyring in a private D-Bus session.

The test starts its own session bus and keyring daemon, so it needs no desktop and leaves the
user's keyring alone. CI installs gnome-keyring; elsewhere the test skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.keyring]

SECRET = "sk-real-keyring-5e4d3c2b1a"
NEEDED = ("dbus-run-session", "gnome-keyring-daemon", "secret-tool")


def _require_tools() -> None:
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        reason = f"needs {', '.join(missing)} (apt-get install gnome-keyring libsecret-tools dbus)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Secret Service test: {reason}")
        pytest.skip(reason)


def test_cli_stores_reads_and_deletes_a_key_in_gnome_keyring(tmp_path: Path) -> None:
    _require_tools()
    home = tmp_path / "home"
    data = tmp_path / "studio"
    home.mkdir()
    cli = f"{sys.executable} -m codetune_studio --data-dir {data}"
    script = textwrap.dedent(
        f"""
        set -e
        printf pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null
        printf '%s\\n' '{SECRET}' | {cli} keys set openai
        {cli} keys list
        echo "lookup=$(secret-tool lookup service codetune-studio username openai)"
        {sys.executable} -c "
        from codetune_studio.secrets import KeyringSecretStore
        print('read-back-matches', KeyringSecretStore().get('openai').get_secret_value() == '{SECRET}')
        "
        {cli} keys delete openai
        {cli} keys list
        """
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "OPENAI", "XDG_RUNTIME"))
    }
    env |= {"HOME": str(home), "XDG_DATA_HOME": str(home / ".local/share"), "LOG_LEVEL": "DEBUG"}
    result = subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Stored the OpenAI key in the OS keyring." in out
    assert "openai       set (OS keyring)" in out
    assert f"lookup={SECRET}" in out  # secret-tool sees it: it really is in the Secret Service
    assert "read-back-matches True" in out
    assert "Deleted the OpenAI key" in out
    after_delete = out.split("Deleted the OpenAI key", 1)[1]
    assert "openai       not set" in after_delete
    # The key went to the keyring and nowhere else the studio writes.
    for path in data.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
    assert SECRET not in result.stderr

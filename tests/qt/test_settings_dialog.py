from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from PySide6.QtWidgets import QLabel, QLineEdit

from codetune_studio.core.errors import StorageUnavailableError
from codetune_studio.ui.dialogs.settings import SettingsDialog

if TYPE_CHECKING:
    from pathlib import Path

    from codetune_studio.settings import SettingsStore
    from codetune_studio.ui.studio_services import StudioServices

SECRET = "sk-test-abcdef123456"


def _dialog(qtbot: Any, services: StudioServices, store: SettingsStore) -> SettingsDialog:
    dialog = SettingsDialog(services, store)
    qtbot.addWidget(dialog)
    return dialog


def _all_text(dialog: SettingsDialog) -> str:
    texts = [edit.text() + edit.placeholderText() for edit in dialog.findChildren(QLineEdit)]
    texts += [label.text() + label.toolTip() for label in dialog.findChildren(QLabel)]
    return "\n".join(texts)


def test_settings_dialog_never_shows_a_stored_key(
    qtbot: Any, services: StudioServices, settings_store: SettingsStore
) -> None:
    services.secrets.set("openai", SecretStr(SECRET))
    dialog = _dialog(qtbot, services, settings_store)
    assert SECRET not in _all_text(dialog)
    assert dialog.key_states["openai"].text() == "set"
    assert dialog.key_states["anthropic"].text() == "not set"
    assert dialog.key_edits["openai"].echoMode() is QLineEdit.EchoMode.Password
    assert dialog.key_edits["openai"].text() == ""


def test_saving_writes_keys_to_the_store_and_clears_the_field(
    qtbot: Any, services: StudioServices, settings_store: SettingsStore
) -> None:
    dialog = _dialog(qtbot, services, settings_store)
    qtbot.keyClicks(dialog.key_edits["huggingface"], "hf_secret_value")
    dialog.offline_check.setChecked(True)
    dialog.url_edit.setText("postgresql+psycopg://user@db.example/studio")
    dialog.save()
    assert services.secrets.get("huggingface").get_secret_value() == "hf_secret_value"
    assert dialog.key_edits["huggingface"].text() == ""
    assert dialog.key_states["huggingface"].text() == "set"
    settings = settings_store.load()
    assert settings.offline
    assert settings.database.url == "postgresql+psycopg://user@db.example/studio"
    assert "hf_secret_value" not in settings_store.path.read_text()
    dialog._on_remove_key_clicked("huggingface")
    assert dialog.key_states["huggingface"].text() == "not set"


def test_test_connection_runs_off_the_gui_thread_and_reports(
    qtbot: Any, services: StudioServices, settings_store: SettingsStore
) -> None:
    import threading

    threads: list[threading.Thread] = []

    def fake_test(url: str, sqlite_path: Path) -> str:
        threads.append(threading.current_thread())
        if "bad" in url:
            raise StorageUnavailableError("PostgreSQL at bad:5432 is unreachable")
        return "Connected to sqlite (current)"

    services.test_database = fake_test
    dialog = _dialog(qtbot, services, settings_store)
    dialog.test_button.click()
    qtbot.waitUntil(lambda: "Connected" in dialog.test_result.text(), timeout=5000)
    assert threads
    assert threads[0] is not threading.main_thread()
    qtbot.waitUntil(dialog.test_button.isEnabled, timeout=5000)
    dialog.url_edit.setText("postgresql+psycopg://bad/db")
    dialog.test_button.click()
    qtbot.waitUntil(lambda: "unreachable" in dialog.test_result.text(), timeout=5000)


def test_probe_database_describes_a_sqlite_store(tmp_path: Path) -> None:
    from codetune_studio.ui.studio_services import probe_database

    message = probe_database("", tmp_path / "probe.db")
    assert message.startswith("Connected to sqlite")

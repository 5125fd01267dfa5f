"""The Settings dialog keeps the database password in the keyring, typed in a password field."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QLineEdit

from codetune_studio.ui.dialogs.settings import SettingsDialog

if TYPE_CHECKING:
    from codetune_studio.settings import SettingsStore
    from codetune_studio.ui.studio_services import StudioServices

PASSWORD = "canary-dialog-pw-31337"


def test_a_password_typed_in_the_url_goes_to_the_keyring_not_the_file(
    qtbot: Any, services: StudioServices, settings_store: SettingsStore
) -> None:
    dialog = SettingsDialog(services, settings_store)
    qtbot.addWidget(dialog)
    assert dialog.key_edits["database"].echoMode() is QLineEdit.EchoMode.Password
    dialog.url_edit.setText(f"postgresql+psycopg://team:{PASSWORD}@db.example:5432/studio")
    dialog.save()
    saved = settings_store.path.read_text()
    assert PASSWORD not in saved
    assert (
        json.loads(saved)["database"]["url"] == "postgresql+psycopg://team@db.example:5432/studio"
    )
    assert services.secrets.get("database").get_secret_value() == PASSWORD
    assert PASSWORD not in dialog.url_edit.text()


def test_the_database_password_field_stores_it_in_the_keyring(
    qtbot: Any, services: StudioServices, settings_store: SettingsStore
) -> None:
    dialog = SettingsDialog(services, settings_store)
    qtbot.addWidget(dialog)
    dialog.url_edit.setText("postgresql+psycopg://team@db.example:5432/studio")
    dialog.key_edits["database"].setText(PASSWORD)
    dialog.save()
    assert PASSWORD not in settings_store.path.read_text()
    assert services.secrets.get("database").get_secret_value() == PASSWORD
    assert dialog.key_edits["database"].text() == ""

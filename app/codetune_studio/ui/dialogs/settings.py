"""The Settings dialog: database, API keys, offline mode and the data folder."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic import SecretStr
from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from codetune_studio.core.audit import AuditAction
from codetune_studio.core.errors import CodetuneError
from codetune_studio.secrets.store import KNOWN_SECRETS
from codetune_studio.services.credentials import (
    mask_database_url,
    resolve_database_url,
    store_database_url,
)
from codetune_studio.settings.model import DatabaseSettings
from codetune_studio.ui import notify
from codetune_studio.ui.safe_slot import safe_slot
from codetune_studio.ui.tasks import TaskHandle, run_in_thread

if TYPE_CHECKING:
    from pathlib import Path

    from codetune_studio.settings import AppSettings, SettingsStore
    from codetune_studio.ui.studio_services import StudioServices

__all__ = ["SettingsDialog"]

logger = logging.getLogger(__name__)


class SettingsDialog(QDialog):
    """Edits the settings file and the keyring; keys are written, never read back.

    Args:
        services: The studio's services (secrets, paths, the connection tester).
        settings_store: The settings file.
        parent: The Qt parent.
    """

    #: The settings file was written; the window applies what can change while it runs.
    settings_saved = Signal(object)  # AppSettings

    def __init__(
        self,
        services: StudioServices,
        settings_store: SettingsStore,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("settingsDialog")
        self.setMinimumWidth(560)
        self._services = services
        self._store = settings_store
        self._settings: AppSettings = settings_store.load()
        self._test: TaskHandle | None = None
        self.key_edits: dict[str, QLineEdit] = {}
        self.key_states: dict[str, QLabel] = {}
        self._build_ui()
        self._connect_signals()
        self._show_key_states()

    def _build_ui(self) -> None:
        layout = QVBoxLayout(self)
        database = QGroupBox("Database", self)
        form = QFormLayout(database)
        self.url_edit = QLineEdit(self._settings.database.url or "", database)
        self.url_edit.setObjectName("databaseUrl")
        self.url_edit.setPlaceholderText(
            "empty: the local SQLite store; or postgresql+psycopg://user@host/db"
        )
        self.url_edit.setToolTip(
            "A password typed here is moved to the system keyring when you save; "
            "the settings file keeps the URL without it."
        )
        form.addRow("URL", self.url_edit)
        self.fallback_check = QCheckBox(
            "Use the local store when the server is unreachable", database
        )
        self.fallback_check.setChecked(self._settings.database.fallback_to_sqlite)
        form.addRow("", self.fallback_check)
        test_row = QHBoxLayout()
        self.test_button = QPushButton("Test connection", database)
        self.test_button.setObjectName("testConnectionButton")
        self.test_result = QLabel(database)
        self.test_result.setObjectName("testConnectionResult")
        self.test_result.setWordWrap(True)
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.test_result, 1)
        form.addRow("", test_row)
        self.restart_note = QLabel(
            "A new database is used from the next start: restart CodeTune Studio after saving.",
            database,
        )
        self.restart_note.setObjectName("restartNote")
        self.restart_note.setWordWrap(True)
        self.restart_note.setStyleSheet("color: #d97706")
        self.restart_note.setVisible(False)
        form.addRow("", self.restart_note)
        layout.addWidget(database)

        keys = QGroupBox("Keys and passwords (stored in the system keyring)", self)
        keys_form = QFormLayout(keys)
        for name, kind in KNOWN_SECRETS.items():
            row = QHBoxLayout()
            edit = QLineEdit(keys)
            edit.setObjectName(f"key_{name}")
            edit.setEchoMode(QLineEdit.EchoMode.Password)
            edit.setPlaceholderText("type a new key to replace the stored one")
            state = QLabel(keys)
            state.setObjectName(f"keyState_{name}")
            state.setMinimumWidth(140)
            clear = QPushButton("Remove", keys)
            clear.setObjectName(f"removeKey_{name}")
            clear.clicked.connect(lambda _=False, n=name: self._on_remove_key_clicked(n))
            row.addWidget(edit, 1)
            row.addWidget(state)
            row.addWidget(clear)
            keys_form.addRow(kind.label, row)
            self.key_edits[name] = edit
            self.key_states[name] = state
        layout.addWidget(keys)

        general = QGroupBox("General", self)
        general_form = QFormLayout(general)
        self.offline_check = QCheckBox("Never use the network (offline mode)", general)
        self.offline_check.setObjectName("offlineCheck")
        self.offline_check.setChecked(self._settings.offline)
        general_form.addRow("", self.offline_check)
        folder_row = QHBoxLayout()
        folder = QLineEdit(str(self._services.paths.data_dir), general)
        folder.setReadOnly(True)
        folder.setToolTip("Change it with --data-dir or CODETUNE_DATA_DIR")
        self.open_folder_button = QPushButton("Open folder", general)
        folder_row.addWidget(folder, 1)
        folder_row.addWidget(self.open_folder_button)
        general_form.addRow("Data folder", folder_row)
        layout.addWidget(general)
        note = QLabel(
            "Offline mode and plugin options apply at once; a database change needs a restart.",
            self,
        )
        note.setStyleSheet("color: gray")
        layout.addWidget(note)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        layout.addWidget(self.buttons)

    def _connect_signals(self) -> None:
        self.url_edit.textChanged.connect(self._on_url_edit_text_changed)
        self.test_button.clicked.connect(self._on_test_button_clicked)
        self.open_folder_button.clicked.connect(self._on_open_folder_button_clicked)
        self.buttons.accepted.connect(self._on_buttons_accepted)
        self.buttons.rejected.connect(self.reject)

    def _show_key_states(self) -> None:
        for name, label in self.key_states.items():
            try:
                info = self._services.secrets.info(name)
                text = "set" if info.is_set else "not set"
                if info.source == "environment":
                    text = f"set (from {info.env_var})"
            except CodetuneError as exc:
                text = "keyring unavailable"
                label.setToolTip(str(exc))
            label.setText(text)
            label.setStyleSheet("color: #16a34a" if text.startswith("set") else "color: gray")

    def _on_url_edit_text_changed(self, text: str) -> None:
        self.restart_note.setVisible(self._restart_needed(text))

    def _restart_needed(self, text: str) -> bool:
        return (text.strip() or None) != self._settings.database.url

    @safe_slot()
    def _on_test_button_clicked(self) -> None:
        if self._test is not None and not self._test.done:
            return
        self.test_button.setEnabled(False)
        self.test_result.setText("Connecting…")
        self._test = run_in_thread(
            self._probe_database,
            self.url_edit.text().strip(),
            self._services.paths.database_file,
            on_return=self._on_test_returned,
            on_error=self._on_test_errored,
            on_finish=lambda: self.test_button.setEnabled(True),
        )

    def _probe_database(self, url: str, sqlite_path: Path) -> str:
        # Runs off the GUI thread: the keyring and the server may both take a while.
        resolved = resolve_database_url(url, self._services.secrets) if url else url
        return self._services.test_database(resolved or "", sqlite_path)

    def _on_test_returned(self, message: str) -> None:
        self.test_result.setStyleSheet("color: #16a34a")
        self.test_result.setText(message)

    def _on_test_errored(self, exc: BaseException) -> None:
        self.test_result.setStyleSheet("color: #dc2626")
        self.test_result.setText(notify.message_for(exc))

    @safe_slot()
    def _on_remove_key_clicked(self, name: str) -> None:
        if self._services.secrets.delete(name):
            self._audit(AuditAction.KEY_DELETED, name, {"store": "keyring"})
            notify.info(f"{KNOWN_SECRETS[name].label} key removed from the keyring.")
        self.key_edits[name].clear()
        self._show_key_states()

    @safe_slot()
    def _on_open_folder_button_clicked(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self._services.paths.data_dir)))

    @safe_slot()
    def _on_buttons_accepted(self) -> None:
        self.save()
        self.accept()

    def save(self) -> None:
        """Write the settings file and any keys typed in.

        Raises:
            ConfigError: If a value is invalid.
            SecretError: If the keyring refuses a key.
        """
        for name, edit in self.key_edits.items():
            value = edit.text().strip()
            if value:
                self._services.secrets.set(name, SecretStr(value))
                edit.clear()
                self._audit(AuditAction.KEY_SET, name, {"store": "keyring"})
        # A password in the URL goes to the keyring; the file keeps the URL without it.
        url = store_database_url(self.url_edit.text().strip() or None, self._services.secrets)
        if url != (self.url_edit.text().strip() or None):
            self.url_edit.setText(url or "")
        database = DatabaseSettings(
            url=url,
            fallback_to_sqlite=self.fallback_check.isChecked(),
            connect_timeout_s=self._settings.database.connect_timeout_s,
        )
        restart = self._restart_needed(self.url_edit.text())
        if restart:
            self._audit(
                AuditAction.DATABASE_SWITCHED,
                mask_database_url(url) if url else "local SQLite store",
                {"from": mask_database_url(self._settings.database.url or "") or "local"},
            )
        self._settings = self._store.update(
            database=database, offline=self.offline_check.isChecked()
        )
        self._show_key_states()
        self.restart_note.setVisible(False)
        self.settings_saved.emit(self._settings)
        if restart:
            notify.info("Settings saved. Restart CodeTune Studio to use the new database.")
        else:
            notify.info("Settings saved.")

    def _audit(self, action: str, target: str, details: dict[str, object]) -> None:
        # Off the GUI thread: the audit log is a database write.
        if self._services.audit is not None:
            run_in_thread(self._services.audit.record_quietly, action, target, details)

    def done(self, result: int) -> None:
        if self._test is not None:
            self._test.cancel()
        # Never keep a typed key around in a hidden widget.
        for edit in self.key_edits.values():
            edit.clear()
        super().done(result)

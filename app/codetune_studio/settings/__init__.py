"""Validated user settings, stored as JSON in the per-user config folder."""

from codetune_studio.settings.model import AppSettings, DatabaseSettings, PluginSettings, UiSettings
from codetune_studio.settings.store import SettingsStore

__all__ = ["AppSettings", "DatabaseSettings", "PluginSettings", "SettingsStore", "UiSettings"]

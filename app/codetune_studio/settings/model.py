"""The validated settings a user edits in the Settings dialog or the settings file."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = [
    "SCHEMA_VERSION",
    "AppSettings",
    "DatabaseSettings",
    "FileSettings",
    "PluginSettings",
    "UiSettings",
]

#: The settings file layout this code writes. Bump it and add a migration when a field moves.
SCHEMA_VERSION = 2


class DatabaseSettings(BaseModel):
    """Where runs, configs and metrics are stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(
        None,
        description="SQLAlchemy URL of a shared PostgreSQL database; empty for the local SQLite store.",
    )
    fallback_to_sqlite: bool = Field(
        False,
        description="Use the local SQLite store (and say so) when the PostgreSQL server is unreachable.",
    )
    connect_timeout_s: float = Field(
        8.0, gt=0, le=120, description="Give up connecting after this long."
    )


class PluginSettings(BaseModel):
    """Which plugins are switched off, and each plugin's own options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    disabled: tuple[str, ...] = ()
    options: dict[str, dict[str, str]] = Field(default_factory=dict)


class UiSettings(BaseModel):
    """Window preferences."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    theme: Literal["system", "light", "dark"] = "system"
    confirm_stop_on_close: bool = True


class AppSettings(BaseSettings):
    """Everything the studio remembers between sessions, apart from the database's content.

    Environment variables override the file: ``CODETUNE_OFFLINE=1``,
    ``CODETUNE_LOG_LEVEL=DEBUG``, ``CODETUNE_DATABASE__URL=...`` (nested fields use ``__``).
    API keys are never stored here: they live in the OS keyring.
    """

    model_config = SettingsConfigDict(
        env_prefix="CODETUNE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    schema_version: int = SCHEMA_VERSION
    offline: bool = Field(False, description="Never touch the network (Hugging Face offline mode).")
    log_level: str = Field("WARNING", description="Console log level.")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    ui: UiSettings = Field(default_factory=UiSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],  # noqa: ARG003 - pydantic-settings' signature
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - pydantic-settings' signature
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - pydantic-settings' signature
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Let the environment override what the file (passed as init values) says."""
        return env_settings, init_settings


class FileSettings(AppSettings):
    """The settings file alone, without environment overrides: what is validated and saved."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],  # noqa: ARG003 - pydantic-settings' signature
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - pydantic-settings' signature
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - pydantic-settings' signature
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - pydantic-settings' signature
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read nothing but the values passed in."""
        return (init_settings,)

"""What a plugin's entry point returns: its metadata, without creating the tool.

An entry point in the ``codetune_studio.plugins`` group resolves to a :class:`PluginSpec`. The
spec names the tool's class as a ``"module:attr"`` string (npe2's ``python_name`` idea), so the
studio can list a plugin, check its API version and show what it needs without importing the
tool's heavy dependencies; the class is imported only when the tool runs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from codetune_studio.plugins.api import BaseTool

__all__ = ["API_VERSION", "ENTRY_POINT_GROUP", "KNOWN_SECRETS", "PluginSpec", "is_compatible"]

#: The plugin API's version, ``"MAJOR.MINOR"``. A plugin written for ``1.0`` runs on any ``1.x``;
#: a plugin for ``1.3`` needs at least ``1.3``; a different major number is refused.
API_VERSION = "1.0"

#: The entry-point group the registry reads.
ENTRY_POINT_GROUP = "codetune_studio.plugins"

#: The API keys a plugin may ask for. Names match ``codetune-studio keys set NAME``.
KNOWN_SECRETS: frozenset[str] = frozenset({"openai", "anthropic", "huggingface"})

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)$")
_FACTORY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def _parse_api_version(value: str) -> tuple[int, int]:
    match = _VERSION_RE.match(value)
    if match is None:
        raise ValueError(f"api_version must look like '1.0', not {value!r}")
    return int(match.group(1)), int(match.group(2))


def is_compatible(api_version: str, host_version: str = API_VERSION) -> bool:
    """Whether a plugin written for ``api_version`` runs on ``host_version`` of the API.

    Args:
        api_version: The version the plugin declares, ``"MAJOR.MINOR"``.
        host_version: The studio's :data:`API_VERSION`.
    """
    plugin_major, plugin_minor = _parse_api_version(api_version)
    host_major, host_minor = _parse_api_version(host_version)
    return plugin_major == host_major and plugin_minor <= host_minor


class PluginSpec(BaseModel):
    """A plugin's metadata, as its entry point announces it.

    Attributes:
        name: Unique identifier, ``snake_case``.
        version: The plugin's own version.
        api_version: The plugin API version it was written for (:data:`API_VERSION`).
        description: One line for lists.
        needs_network: Whether running it talks to a server.
        secrets: API keys it needs, from :data:`KNOWN_SECRETS`.
        factory: ``"module:attr"`` naming the :class:`~codetune_studio.plugins.api.BaseTool`
            subclass; imported only when the tool runs.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: str = Field(min_length=1)
    api_version: str
    description: str = ""
    needs_network: bool = False
    secrets: tuple[str, ...] = ()
    factory: str

    @field_validator("api_version")
    @classmethod
    def _check_api_version(cls, value: str) -> str:
        _parse_api_version(value)
        return value

    @field_validator("secrets")
    @classmethod
    def _check_secrets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - KNOWN_SECRETS)
        if unknown:
            known = ", ".join(sorted(KNOWN_SECRETS))
            raise ValueError(f"unknown secret names {unknown}: use {known}")
        return value

    @field_validator("factory")
    @classmethod
    def _check_factory(cls, value: str) -> str:
        if not _FACTORY_RE.match(value):
            raise ValueError(f"factory must look like 'package.module:ClassName', not {value!r}")
        return value

    @classmethod
    def from_tool(cls, tool: type[BaseTool], *, api_version: str = API_VERSION) -> PluginSpec:
        """Build the spec from a tool class's metadata, naming the class as the factory.

        Args:
            tool: The :class:`~codetune_studio.plugins.api.BaseTool` subclass.
            api_version: The API version the tool was written for.
        """
        return cls(
            name=tool.name,
            version=tool.version,
            api_version=api_version,
            description=tool.description,
            needs_network=tool.needs_network,
            secrets=tool.secrets,
            factory=f"{tool.__module__}:{tool.__qualname__}",
        )

"""Finding plugins through entry points, and loading a tool when it is about to run.

:func:`discover` reads the ``codetune_studio.plugins`` entry-point group once. Each entry point
resolves to a :class:`~codetune_studio.plugins.spec.PluginSpec`; importing it must be cheap, and
any failure (an import error, a wrong object, an incompatible API version, a duplicate name) is
recorded on that plugin's :class:`PluginEntry` instead of being raised, so one broken plugin
shows up as broken in the Plugins panel and never stops the studio.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from enum import StrEnum
from importlib import metadata
from importlib.metadata import EntryPoint
from typing import TYPE_CHECKING

from pydantic import ValidationError

from codetune_studio.core.errors import PluginError
from codetune_studio.plugins.api import BaseTool
from codetune_studio.plugins.spec import API_VERSION, ENTRY_POINT_GROUP, PluginSpec, is_compatible

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

__all__ = [
    "BUILTIN_ENTRY_POINTS",
    "PluginEntry",
    "PluginLoadError",
    "PluginState",
    "discover",
    "find_plugin",
    "load_tool_class",
]

logger = logging.getLogger(__name__)


#: The built-in plugins, as ``pyproject.toml`` declares them in the entry-point group.
BUILTIN_ENTRY_POINTS: tuple[EntryPoint, ...] = tuple(
    EntryPoint(
        name=name,
        value=f"codetune_studio.plugins.builtin.{module}:plugin_spec",
        group=ENTRY_POINT_GROUP,
    )
    for name, module in (
        ("code_analyzer", "code_analyzer"),
        ("openai_code_analyzer", "openai_analyzer"),
        ("anthropic_code_suggester", "anthropic_suggester"),
    )
)


class PluginLoadError(PluginError):
    """A plugin's entry point or tool class could not be loaded."""


class PluginState(StrEnum):
    """Whether a discovered plugin can be used."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class PluginEntry:
    """One discovered plugin, usable or not.

    Attributes:
        name: The plugin's name (the spec's name; the entry point's name when the spec is
            missing).
        state: ``enabled``, ``disabled`` (by the user) or ``error``.
        spec: Its metadata; ``None`` when the entry point could not be loaded.
        error: Why it is in the ``error`` state.
        entry_point: The entry point's target, ``"module:attr"``.
        distribution: The installed distribution that provides it, when known.
    """

    name: str
    state: PluginState
    spec: PluginSpec | None
    error: str | None = None
    entry_point: str = ""
    distribution: str | None = None

    @property
    def usable(self) -> bool:
        """Whether the plugin loaded and is switched on."""
        return self.state is PluginState.ENABLED


def discover(
    disabled: Collection[str] = (),
    *,
    entry_points: Iterable[EntryPoint] | None = None,
) -> list[PluginEntry]:
    """List every plugin in the entry-point group, sorted by name. Never raises.

    Args:
        disabled: Names the user switched off (from settings).
        entry_points: Entry points to read instead of the installed ones (tests, embedding).

    Returns:
        One entry per entry point, including broken ones in the ``error`` state.
    """
    if entry_points is None:
        installed = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
        names = {ep.name for ep in installed}
        # A source checkout that was not reinstalled lacks the built-ins' entry points; they
        # are part of the studio, so they are always there.
        entry_points = installed + [ep for ep in BUILTIN_ENTRY_POINTS if ep.name not in names]
    entries: list[PluginEntry] = []
    seen: dict[str, PluginEntry] = {}
    for ep in entry_points:
        entry = _load_entry(ep, disabled)
        if entry.spec is not None and entry.name in seen:
            other = seen[entry.name]
            entry = PluginEntry(
                name=entry.name,
                state=PluginState.ERROR,
                spec=entry.spec,
                error=f"another plugin is already called {entry.name!r} ({other.entry_point})",
                entry_point=entry.entry_point,
                distribution=entry.distribution,
            )
        elif entry.spec is not None:
            seen[entry.name] = entry
        if entry.state is PluginState.ERROR:
            logger.info("plugin %s cannot be used: %s", entry.name, entry.error)
        entries.append(entry)
    entries.sort(key=lambda e: (e.name, e.entry_point))
    return entries


def find_plugin(entries: Iterable[PluginEntry], name: str) -> PluginEntry:
    """Return the usable plugin called ``name``.

    Raises:
        PluginError: No plugin has that name, it is disabled, or it is broken.
    """
    entries = list(entries)
    for entry in entries:
        if entry.name != name:
            continue
        if entry.state is PluginState.DISABLED:
            raise PluginError(f"plugin {name!r} is disabled; enable it in Settings > Plugins")
        if entry.state is PluginState.ERROR:
            raise PluginError(f"plugin {name!r} cannot be used: {entry.error}")
        return entry
    known = ", ".join(e.name for e in entries) or "none installed"
    raise PluginError(f"no plugin called {name!r} (available: {known})")


def load_tool_class(factory: str) -> type[BaseTool]:
    """Import the tool class that a spec's ``factory`` names.

    Args:
        factory: ``"module:attr"``, where ``attr`` may be dotted.

    Raises:
        PluginLoadError: The module cannot be imported or the attribute is not a tool class.
    """
    module_name, _, attr = factory.partition(":")
    try:
        target: object = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except Exception as exc:  # any failure of third-party code is a load error
        raise PluginLoadError(f"cannot load {factory}: {_describe(exc)}") from exc
    if not (isinstance(target, type) and issubclass(target, BaseTool)):
        raise PluginLoadError(f"{factory} is not a BaseTool subclass")
    return target


def _load_entry(ep: EntryPoint, disabled: Collection[str]) -> PluginEntry:
    distribution = ep.dist.name if ep.dist is not None else None

    def entry(
        name: str, state: PluginState, spec: PluginSpec | None, error: str | None
    ) -> PluginEntry:
        return PluginEntry(
            name, state, spec, error, entry_point=ep.value, distribution=distribution
        )

    try:
        loaded = ep.load()
    except Exception as exc:  # a broken plugin must never stop discovery
        logger.debug("entry point %s failed to load", ep.value, exc_info=True)
        return entry(ep.name, PluginState.ERROR, None, f"failed to load: {_describe(exc)}")
    try:
        spec = loaded if isinstance(loaded, PluginSpec) else PluginSpec.model_validate(loaded)
    except ValidationError as exc:
        return entry(
            ep.name, PluginState.ERROR, None, f"{ep.value} is not a PluginSpec: {_first_error(exc)}"
        )
    if not is_compatible(spec.api_version):
        message = (
            f"written for plugin API {spec.api_version}, but this studio provides {API_VERSION}; "
            "update the plugin"
        )
        return entry(spec.name, PluginState.ERROR, spec, message)
    state = PluginState.DISABLED if spec.name in disabled else PluginState.ENABLED
    return entry(spec.name, state, spec, None)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "value"
    return f"{location}: {first['msg']}"

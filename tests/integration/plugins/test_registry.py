"""Discovery through real entry points: a dist-info folder that importlib.metadata finds."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import TYPE_CHECKING

import pytest

from codetune_studio.core.errors import PluginError
from codetune_studio.plugins.builtin.code_analyzer import CodeAnalyzer
from codetune_studio.plugins.registry import (
    PluginLoadError,
    PluginState,
    discover,
    find_plugin,
    load_tool_class,
)
from codetune_studio.plugins.spec import API_VERSION, PluginSpec, is_compatible

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration


def test_installed_plugin_is_discovered_with_metadata_and_no_instance(fake_plugins: Path) -> None:
    entries = [e for e in discover() if e.distribution == "codetune-fake-plugins"]

    echo = next(e for e in entries if e.name == "fake_echo")
    assert echo.state is PluginState.ENABLED
    assert echo.spec is not None
    assert echo.spec.version == "1.0"
    assert echo.spec.secrets == ("anthropic",)
    assert echo.spec.factory == "codetune_fake_plugins.tools:EchoTool"
    assert echo.entry_point == "codetune_fake_plugins.tools:echo_spec"


def test_broken_plugins_are_listed_with_their_error_and_never_raise(fake_plugins: Path) -> None:
    entries = {e.name: e for e in discover() if e.distribution == "codetune-fake-plugins"}

    assert entries["fake_broken"].state is PluginState.ERROR
    assert (
        entries["fake_broken"].error
        == "failed to load: ImportError: No module named 'missing_dependency'"
    )
    assert entries["fake_not_a_spec"].state is PluginState.ERROR
    assert "is not a PluginSpec" in (entries["fake_not_a_spec"].error or "")


def test_plugin_for_another_api_major_version_is_refused(fake_plugins: Path) -> None:
    future = next(e for e in discover() if e.name == "fake_future")

    assert future.state is PluginState.ERROR
    assert future.error == (
        f"written for plugin API 99.0, but this studio provides {API_VERSION}; update the plugin"
    )
    assert future.spec is not None  # still shown with its metadata in the Plugins panel


def test_second_plugin_with_the_same_name_is_an_error(fake_plugins: Path) -> None:
    echoes = [e for e in discover() if e.name == "fake_echo"]

    assert [e.state for e in echoes] == [PluginState.ENABLED, PluginState.ERROR]
    assert "another plugin is already called 'fake_echo'" in (echoes[1].error or "")


def test_disabled_plugin_is_listed_as_disabled_and_cannot_be_used(fake_plugins: Path) -> None:
    entries = discover(disabled=["fake_echo"])

    assert next(e for e in entries if e.name == "fake_echo").state is PluginState.DISABLED
    with pytest.raises(PluginError, match="'fake_echo' is disabled"):
        find_plugin(entries, "fake_echo")


def test_injected_entry_points_replace_the_installed_ones() -> None:
    builtin = EntryPoint(
        name="code_analyzer",
        value="codetune_studio.plugins.builtin.code_analyzer:plugin_spec",
        group="codetune_studio.plugins",
    )
    missing = EntryPoint(
        name="ghost", value="no_such_module_xyz:spec", group="codetune_studio.plugins"
    )

    entries = discover(entry_points=[missing, builtin])

    assert [(e.name, e.state) for e in entries] == [
        ("code_analyzer", PluginState.ENABLED),
        ("ghost", PluginState.ERROR),
    ]
    assert "ModuleNotFoundError" in (entries[1].error or "")
    with pytest.raises(
        PluginError, match="no plugin called 'nope' \\(available: code_analyzer, ghost\\)"
    ):
        find_plugin(entries, "nope")


def test_builtin_specs_describe_their_tools() -> None:
    from codetune_studio.plugins.builtin import anthropic_suggester, code_analyzer, openai_analyzer

    specs = [
        code_analyzer.plugin_spec,
        openai_analyzer.plugin_spec,
        anthropic_suggester.plugin_spec,
    ]

    assert [(s.name, s.needs_network, s.secrets) for s in specs] == [
        ("code_analyzer", False, ()),
        ("openai_code_analyzer", True, ("openai",)),
        ("anthropic_code_suggester", True, ("anthropic",)),
    ]
    assert load_tool_class(specs[0].factory) is CodeAnalyzer


def test_factory_that_is_not_a_tool_is_a_load_error() -> None:
    with pytest.raises(PluginLoadError, match="is not a BaseTool subclass"):
        load_tool_class("codetune_studio.plugins.spec:PluginSpec")


@pytest.mark.parametrize(
    ("plugin", "host", "ok"),
    [("1.0", "1.0", True), ("1.0", "1.4", True), ("1.5", "1.4", False), ("2.0", "1.9", False)],
)
def test_api_versions_are_compatible_within_a_major_version(
    plugin: str, host: str, ok: bool
) -> None:
    assert is_compatible(plugin, host) is ok


def test_spec_rejects_unknown_secrets_and_bad_factories() -> None:
    with pytest.raises(ValueError, match="unknown secret names \\['github'\\]"):
        PluginSpec(name="x", version="1", api_version="1.0", secrets=("github",), factory="m:C")
    with pytest.raises(ValueError, match="factory must look like"):
        PluginSpec(name="x", version="1", api_version="1.0", factory="not a factory")

"""The plugin API: the one module a code-analysis plugin imports.

A plugin is a :class:`BaseTool` subclass with class-level metadata and a :meth:`BaseTool.run`
method. The studio announces it through the ``codetune_studio.plugins`` entry-point group with a
:class:`PluginSpec`, runs it in a child process with a deadline, and hands it only the API keys
it declared in :attr:`BaseTool.secrets`::

    from codetune_studio.plugins.api import (
        BaseTool, Finding, PluginSpec, ToolContext, ToolInputs, ToolResult,
    )

    class TodoFinder(BaseTool):
        name = "todo_finder"
        version = "1.0"
        description = "Flags TODO comments."

        def run(self, inputs: ToolInputs, context: ToolContext) -> ToolResult:
            findings = [
                Finding(severity="info", message="TODO left in code", line=number, rule="todo")
                for number, text in enumerate(inputs.code.splitlines(), start=1)
                if "TODO" in text
            ]
            return self.result(findings, inputs=inputs)

    plugin_spec = PluginSpec.from_tool(TodoFinder)

and in the plugin's ``pyproject.toml``::

    [project.entry-points."codetune_studio.plugins"]
    todo_finder = "my_package.todo:plugin_spec"

Every change to this module is an API change: bump :data:`API_VERSION` (the minor number for
additions, the major number for anything that breaks an existing plugin).

The value types are frozen pydantic models rather than dataclasses because they cross trust and
process boundaries: findings come back from a child process and from language models as JSON,
and results go to the database as JSON. Pydantic validates them on the way in and round-trips
them losslessly (``model_dump(mode="json")`` / ``model_validate``). :class:`ToolContext` is a
plain class because it holds a callable and never leaves its process.
"""

from __future__ import annotations

import time
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from codetune_studio.core.errors import PluginError
from codetune_studio.plugins.spec import API_VERSION, KNOWN_SECRETS, PluginSpec

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "API_VERSION",
    "KNOWN_SECRETS",
    "BaseTool",
    "Finding",
    "PluginCancelledError",
    "PluginError",
    "PluginSpec",
    "Severity",
    "ToolContext",
    "ToolInputs",
    "ToolResult",
]

#: How bad a finding is: ``error`` (the code is broken), ``warning`` (likely a problem),
#: ``info`` (worth knowing).
Severity = Literal["error", "warning", "info"]


class PluginCancelledError(PluginError):
    """The run was cancelled or ran out of time; raised by :meth:`ToolContext.check`."""


class ToolInputs(BaseModel):
    """What a tool analyses: one piece of code.

    Attributes:
        code: The source text.
        path: Where it came from, for display and for findings: a file path, or a label such
            as ``"train.jsonl[row 12]"`` or ``"<pasted>"``.
        language: The code's language, lower case (``"python"``).
        row: The dataset row the code came from (its line in the file, from 1), if any.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    path: str = "<input>"
    language: str = "python"
    row: int | None = None


class Finding(BaseModel):
    """One thing a tool found.

    Lines and columns are 1-based, as editors show them; ``None`` when the finding is about the
    whole input.

    Attributes:
        severity: ``error``, ``warning`` or ``info``.
        message: One sentence a developer can act on.
        line: First line the finding is about.
        column: Column on that line.
        end_line: Last line the finding is about, for findings that span a block.
        rule: A short stable identifier (``"unused-import"``), for filtering and counting.
        path: The input's path or label; :meth:`BaseTool.result` fills it in.
        suggestion: Replacement code or a concrete fix, when the tool has one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    severity: Severity
    message: str = Field(min_length=1)
    line: int | None = Field(default=None, ge=1)
    column: int | None = Field(default=None, ge=1)
    end_line: int | None = Field(default=None, ge=1)
    rule: str = "general"
    path: str | None = None
    suggestion: str | None = None


class ToolResult(BaseModel):
    """What one run of a tool over one input produced.

    ``model_dump(mode="json")`` is the form stored in the plugin results table and sent between
    processes.

    Attributes:
        plugin: The tool's name.
        plugin_version: The tool's version.
        path: The input's path or label.
        row: The input's dataset row, if any.
        findings: What was found, in source order.
        metrics: Numbers about the input (for example ``{"functions": 3}``); JSON values only.
        error: Why the tool could not analyse the input; ``None`` when it ran to the end.
        duration_s: Wall time the tool took, in seconds.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    plugin: str
    plugin_version: str = ""
    path: str | None = None
    row: int | None = None
    findings: tuple[Finding, ...] = ()
    metrics: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    duration_s: float | None = None

    @property
    def ok(self) -> bool:
        """Whether the tool ran to the end."""
        return self.error is None


class ToolContext:
    """What a running tool may use besides its inputs: keys, settings and the clock.

    The studio builds one per run. ``secrets`` holds only the keys the tool declared and the
    user has set; a missing key is simply absent, and the tool reports that in its own words.

    Args:
        secrets: Declared and available API keys, by name (``"openai"``).
        settings: The tool's options from Settings (for example ``model``, ``base_url``).
        deadline: :func:`time.monotonic` value after which the run counts as too slow;
            ``None`` for no deadline.
        cancelled: Returns ``True`` once the user has asked to stop.
    """

    def __init__(
        self,
        *,
        secrets: Mapping[str, SecretStr] | None = None,
        settings: Mapping[str, str] | None = None,
        deadline: float | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self.secrets: Mapping[str, SecretStr] = MappingProxyType(dict(secrets or {}))
        self.settings: Mapping[str, str] = MappingProxyType(dict(settings or {}))
        self.deadline = deadline
        self._cancelled = cancelled

    @classmethod
    def with_timeout(
        cls,
        timeout_s: float | None,
        *,
        secrets: Mapping[str, SecretStr] | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> ToolContext:
        """Build a context whose deadline is ``timeout_s`` seconds from now."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        return cls(secrets=secrets, settings=settings, deadline=deadline)

    def secret(self, name: str) -> SecretStr | None:
        """The key called ``name``, or ``None`` when it was not declared or is not set."""
        return self.secrets.get(name)

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or ``None`` for no deadline."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def is_cancelled(self) -> bool:
        """Whether the user asked to stop or the deadline has passed."""
        if self._cancelled is not None and self._cancelled():
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    def check(self) -> None:
        """Raise :class:`PluginCancelledError` if the run should stop; call it between steps.

        Raises:
            PluginCancelledError: The user cancelled or the deadline passed.
        """
        if self._cancelled is not None and self._cancelled():
            raise PluginCancelledError("cancelled")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise PluginCancelledError("ran out of time")


class BaseTool:
    """Base class of every analysis tool.

    Subclasses set the metadata class attributes and implement :meth:`run`. A tool is created
    with no arguments, in the process that runs it, so creating one must be cheap and must not
    touch the network.

    Attributes:
        name: Unique identifier (``snake_case``), also the entry point's name.
        version: The tool's own version.
        description: One line for the Plugins panel and ``plugins list``.
        needs_network: Whether :meth:`run` talks to a server.
        secrets: The API keys the tool needs, from :data:`KNOWN_SECRETS`.
        languages: Languages the tool understands; empty means any.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0.0.0"
    description: ClassVar[str] = ""
    needs_network: ClassVar[bool] = False
    secrets: ClassVar[tuple[str, ...]] = ()
    languages: ClassVar[tuple[str, ...]] = ()

    def validate_inputs(self, inputs: ToolInputs) -> None:
        """Check that the tool can analyse ``inputs`` before running it.

        The default accepts any non-empty code in one of :attr:`languages`.

        Raises:
            PluginError: With a message saying what is wrong with the input.
        """
        if not inputs.code.strip():
            raise PluginError(f"{inputs.path}: there is no code to analyse")
        if self.languages and inputs.language.lower() not in self.languages:
            supported = ", ".join(self.languages)
            raise PluginError(
                f"{self.name} analyses {supported} code, not {inputs.language} ({inputs.path})"
            )

    def run(self, inputs: ToolInputs, context: ToolContext) -> ToolResult:
        """Analyse ``inputs`` and return what was found.

        Args:
            inputs: The code to analyse.
            context: Keys, settings, deadline and cancellation for this run.

        Returns:
            The findings and metrics; build it with :meth:`result`.

        Raises:
            PluginError: The input cannot be analysed, with a message for the user. Any other
                exception is reported as a crash of the tool.
        """
        raise NotImplementedError

    def result(
        self,
        findings: list[Finding] | tuple[Finding, ...],
        metrics: Mapping[str, Any] | None = None,
        *,
        inputs: ToolInputs | None = None,
    ) -> ToolResult:
        """Build this tool's result, stamping each finding with the input's path.

        Args:
            findings: What was found.
            metrics: Numbers about the input.
            inputs: The analysed input; its path and row label the result and the findings.
        """
        path = inputs.path if inputs is not None else None
        stamped = tuple(
            f if f.path is not None or path is None else f.model_copy(update={"path": path})
            for f in findings
        )
        return ToolResult(
            plugin=self.name,
            plugin_version=self.version,
            path=path,
            row=inputs.row if inputs is not None else None,
            findings=stamped,
            metrics=dict(metrics or {}),
        )

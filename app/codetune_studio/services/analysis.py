"""Running analysis plugins over code, files and datasets, and recording what they found.

:class:`AnalysisService` is the use case behind the Plugins panel (and usable from the CLI): it
turns pasted code, a file or a dataset into inputs, runs a plugin over them in a child process
(:func:`~codetune_studio.plugins.isolation.run_isolated`) with only the keys it declared,
reports progress as a generator (each ``yield`` is a cancellation point for
:func:`~codetune_studio.ui.tasks.run_in_thread`), flattens the results into finding rows, and
stores each run through :meth:`ExperimentService.record_plugin_result`.
:class:`PluginPreferences` keeps which plugins are switched off and each plugin's options in
the settings file. :func:`export_findings` writes finding rows as JSON or CSV.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from codetune_studio.core.errors import ConfigError, PluginError, SecretError
from codetune_studio.core.fileio import atomic_write_text
from codetune_studio.plugins import code_lint
from codetune_studio.plugins.api import ToolInputs
from codetune_studio.plugins.isolation import run_isolated

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Mapping, Sequence

    from pydantic import SecretStr

    from codetune_studio.plugins.api import ToolResult
    from codetune_studio.plugins.spec import PluginSpec
    from codetune_studio.secrets import SecretStore
    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.settings import SettingsStore
    from codetune_studio.settings.model import PluginSettings

__all__ = [
    "FINDING_FIELDS",
    "PLUGIN_OPTION_KEYS",
    "AnalysisOutcome",
    "AnalysisProgress",
    "AnalysisService",
    "AnalysisTarget",
    "FindingRow",
    "PluginPreferences",
    "export_findings",
    "finding_rows",
]

logger = logging.getLogger(__name__)

#: The columns of an exported finding, in order.
FINDING_FIELDS = ("severity", "path", "row", "line", "column", "rule", "message", "plugin")

#: Options the Plugins panel edits for every plugin; a plugin reads those it understands.
PLUGIN_OPTION_KEYS = ("model", "base_url")

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}  # noqa: S104 - compared, not bound
_POLL_S = 0.1  # how often the progress generator yields while the plugin works

ExportFormat = Literal["json", "csv"]
TargetKind = Literal["code", "file", "dataset"]


@dataclass(frozen=True, slots=True)
class AnalysisTarget:
    """What the user asked to analyse.

    Attributes:
        kind: ``code`` (pasted text), ``file`` (a file or folder) or ``dataset`` (a JSONL file).
        value: The code, or the path.
    """

    kind: TargetKind
    value: str

    @property
    def label(self) -> str:
        """How the target is named in results and records."""
        return "<pasted>" if self.kind == "code" else self.value


@dataclass(frozen=True, slots=True)
class FindingRow:
    """One finding, flattened for tables and exports.

    Attributes:
        severity: ``error``, ``warning`` or ``info``.
        path: The file or dataset; ``<pasted>`` for pasted code.
        row: The dataset row (its line in the file, from 1), if any.
        line: The line inside the input's code, if known.
        column: The column on that line, if known.
        rule: The finding's rule; ``plugin-error`` when the plugin could not analyse the input.
        message: What was found.
        plugin: The plugin that found it.
    """

    severity: str
    path: str | None
    row: int | None
    line: int | None
    column: int | None
    rule: str
    message: str
    plugin: str

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-ready data, keys in :data:`FINDING_FIELDS` order."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AnalysisProgress:
    """How far a run has got.

    Attributes:
        done: Inputs finished so far.
        total: Inputs in the run.
        result: The result that just arrived, or ``None`` for a heartbeat.
    """

    done: int
    total: int
    result: ToolResult | None = None


@dataclass(frozen=True, slots=True)
class AnalysisOutcome:
    """What one run of a plugin over its inputs produced.

    Attributes:
        plugin: The plugin's name.
        target: What was analysed (a path, a dataset, ``<pasted>``).
        status: ``ok`` (every input analysed), ``error`` (some failed) or ``cancelled``.
        results: One result per input that was run.
        findings: Every finding, plus one ``plugin-error`` row per input that failed.
        parse: Parse rate and failing rows, for the local analyzer.
        record_id: The stored plugin result's id, when it was recorded.
        duration_s: Wall time of the run.
    """

    plugin: str
    target: str
    status: str
    results: tuple[ToolResult, ...]
    findings: tuple[FindingRow, ...]
    parse: code_lint.ParseSummary | None = None
    record_id: int | None = None
    duration_s: float = 0.0
    errors: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """One line for a status label: counts, parse rate and the first error."""
        counts = {s: sum(f.severity == s for f in self.findings) for s in ("error", "warning")}
        text = (
            f"{self.plugin}: {len(self.findings)} findings in {len(self.results)} inputs "
            f"({counts['error']} errors, {counts['warning']} warnings)"
        )
        if self.parse is not None and self.parse.analysed:
            text += f"; {self.parse.describe()}"
        if self.status == "cancelled":
            text += "; cancelled"
        elif self.errors:
            text += f"; {len(self.errors)} inputs failed: {self.errors[0]}"
        return text


class AnalysisService:
    """Runs analysis plugins over inputs and records each run.

    Args:
        secrets: Where API keys live; a plugin receives only those it declared.
        experiments: Records each run; ``None`` records nothing.
        offline: Whether the network is off limits (network plugins then need a local server).
        timeout_s: Deadline for a whole run.
        runner: Runs a plugin over inputs (:func:`run_isolated`; tests may swap it).
    """

    def __init__(
        self,
        secrets: SecretStore,
        experiments: ExperimentService | None = None,
        *,
        offline: bool = False,
        timeout_s: float = 600.0,
        runner: Callable[..., list[ToolResult]] = run_isolated,
    ) -> None:
        self._secrets = secrets
        self._experiments = experiments
        self._offline = offline
        self._timeout_s = timeout_s
        self._runner = runner

    # --- inputs -------------------------------------------------------------------------------

    @staticmethod
    def inputs_for_code(code: str, label: str = "<pasted>") -> list[ToolInputs]:
        """One input for pasted code.

        Raises:
            ConfigError: There is no code.
        """
        if not code.strip():
            raise ConfigError("Paste some code to analyse first")
        return [ToolInputs(code=code, path=label)]

    @staticmethod
    def inputs_for_path(path: str | Path) -> list[ToolInputs]:
        """Inputs for a Python file, a folder of them, or a JSONL dataset (one per row).

        Raises:
            ConfigError: The path does not exist or cannot be read.
            DatasetError: A dataset line is not a JSON object.
        """
        return code_lint.collect_inputs(Path(path)).inputs

    def inputs_for(self, target: AnalysisTarget) -> list[ToolInputs]:
        """The inputs a target stands for.

        Raises:
            ConfigError: No code was pasted, or the path does not exist or cannot be read.
            DatasetError: A dataset line is not a JSON object.
        """
        if target.kind == "code":
            return self.inputs_for_code(target.value)
        if not target.value:
            what = "a dataset in the Datasets panel" if target.kind == "dataset" else "a file"
            raise ConfigError(f"Choose {what} to analyse first")
        suffix = Path(target.value).suffix.lower()
        if target.kind == "dataset" and suffix not in code_lint.DATASET_SUFFIXES:
            # Rows of CSV, Parquet or JSON files are not read here yet; never lint them as code.
            raise ConfigError(f"{target.value}: only JSONL datasets can be analysed row by row")
        return self.inputs_for_path(target.value)

    # --- running ------------------------------------------------------------------------------

    def analyse(
        self,
        spec: PluginSpec,
        target: AnalysisTarget,
        *,
        options: Mapping[str, str] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> Generator[AnalysisProgress, None, AnalysisOutcome]:
        """Read a target's inputs, then :meth:`run` the plugin over them (a work generator).

        Raises:
            ConfigError: The target holds nothing to analyse.
            DatasetError: A dataset line is not a JSON object.
            PluginError: The plugin cannot run here.
        """
        inputs = self.inputs_for(target)
        if not inputs:
            raise ConfigError(f"{target.label}: found no code to analyse")
        yield AnalysisProgress(0, len(inputs))
        return (
            yield from self.run(
                spec,
                inputs,
                target=target.label,
                options=options,
                dataset_path=target.value if target.kind == "dataset" else None,
                cancelled=cancelled,
            )
        )

    def secrets_for(self, spec: PluginSpec) -> dict[str, SecretStr]:
        """The keys ``spec`` declared that are set; a missing one is left for the plugin to report."""
        found: dict[str, SecretStr] = {}
        for name in spec.secrets:
            try:
                found[name] = self._secrets.get(name)
            except SecretError:
                logger.debug("no %s key for %s", name, spec.name)
        return found

    def check_can_run(self, spec: PluginSpec, options: Mapping[str, str]) -> None:
        """Refuse a network plugin while offline, unless it points at a local server.

        Raises:
            PluginError: With what to do instead.
        """
        base_url = options.get("base_url") or None
        host = (urlparse(base_url).hostname or "") if base_url else ""
        if spec.needs_network and self._offline and host not in _LOCAL_HOSTS:
            raise PluginError(
                f"{spec.name} needs the network, and the studio is offline: set its base URL to "
                "a local server (http://127.0.0.1:PORT/v1), or go online"
            )

    def run(
        self,
        spec: PluginSpec,
        inputs: Sequence[ToolInputs],
        *,
        target: str,
        options: Mapping[str, str] | None = None,
        dataset_path: str | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> Generator[AnalysisProgress, None, AnalysisOutcome]:
        """Run ``spec`` over ``inputs``, yielding progress; return (and record) the outcome.

        The plugin runs in a child process driven from a helper thread; this generator yields
        a heartbeat about ten times a second and one progress value per result. Stopping it
        (``cancelled`` returning ``True``, or closing the generator) stops the child; results
        that arrived before are kept and recorded.

        Args:
            spec: The plugin.
            inputs: What to analyse.
            target: What the run is about, for the record (a path, ``<pasted>``).
            options: The plugin's settings (``model``, ``base_url``...).
            dataset_path: The dataset the inputs came from, to link the record to it.
            cancelled: Polled; returning ``True`` stops the run.

        Returns:
            The outcome, with the stored record's id when an experiment service was given.

        Raises:
            PluginError: The plugin cannot run here (network while offline).
        """
        settings = dict(options or {})
        self.check_can_run(spec, settings)
        started = time.perf_counter()
        stop = threading.Event()
        arrived: queue.Queue[ToolResult | None] = queue.Queue()
        box: dict[str, Any] = {}

        def should_stop() -> bool:
            return stop.is_set() or (cancelled is not None and cancelled())

        def work() -> None:
            try:
                box["results"] = self._runner(
                    spec,
                    list(inputs),
                    secrets=self.secrets_for(spec),
                    settings=settings,
                    timeout_s=self._timeout_s,
                    cancelled=should_stop,
                    on_result=arrived.put,
                )
            except BaseException as exc:  # noqa: BLE001 - handed to the generator's caller
                box["error"] = exc
            finally:
                arrived.put(None)

        thread = threading.Thread(target=work, name=f"analysis-{spec.name}", daemon=True)
        thread.start()
        done = 0
        stopped_at: int | None = None
        try:
            while True:
                try:
                    item = arrived.get(timeout=_POLL_S)
                except queue.Empty:
                    if stopped_at is None and should_stop():
                        stopped_at = done
                    yield AnalysisProgress(done, len(inputs))
                    continue
                if item is None:
                    break
                done += 1
                yield AnalysisProgress(done, len(inputs), item)
        finally:
            # Reached on normal exit and when the caller closes the generator: stop the child.
            stop.set()
            thread.join()
        if "error" in box:
            raise box["error"]
        results: list[ToolResult] = box.get("results", [])
        was_cancelled = stopped_at is not None or (cancelled is not None and cancelled())
        if was_cancelled:
            # Inputs the plugin never reached come back as "was cancelled" errors: not findings.
            results = [r for r in results if r.error is None or r.findings]
        outcome = self._outcome(spec, target, results, cancelled=was_cancelled, started=started)
        return self._record(outcome, dataset_path)

    def run_all(
        self,
        spec: PluginSpec,
        inputs: Sequence[ToolInputs],
        *,
        target: str,
        options: Mapping[str, str] | None = None,
        dataset_path: str | None = None,
    ) -> AnalysisOutcome:
        """Run :meth:`run` to its end on this thread (for the CLI and scripts)."""
        generator = self.run(
            spec, inputs, target=target, options=options, dataset_path=dataset_path
        )
        while True:
            try:
                next(generator)
            except StopIteration as stop:
                outcome: AnalysisOutcome = stop.value
                return outcome

    # --- results ------------------------------------------------------------------------------

    def _outcome(
        self,
        spec: PluginSpec,
        target: str,
        results: list[ToolResult],
        *,
        cancelled: bool,
        started: float,
    ) -> AnalysisOutcome:
        rows = finding_rows(results)
        errors = tuple(r.error for r in results if r.error is not None)
        status = "cancelled" if cancelled else ("error" if errors else "ok")
        parse = code_lint.summarize_parse(results) if spec.name == "code_analyzer" else None
        return AnalysisOutcome(
            plugin=spec.name,
            target=target,
            status=status,
            results=tuple(results),
            findings=tuple(rows),
            parse=parse,
            duration_s=round(time.perf_counter() - started, 3),
            errors=errors,
        )

    def _record(self, outcome: AnalysisOutcome, dataset_path: str | None) -> AnalysisOutcome:
        if self._experiments is None:
            return outcome
        version = outcome.results[0].plugin_version if outcome.results else ""
        stored = self._experiments.record_plugin_result(
            plugin=outcome.plugin,
            plugin_version=version,
            target=outcome.target,
            status=outcome.status,
            findings=[row.to_dict() for row in outcome.findings],
            error=outcome.errors[0] if outcome.errors else None,
            dataset_id=self._dataset_id(dataset_path),
        )
        logger.info(
            "recorded %s on %s: %s (result %d)",
            outcome.plugin,
            outcome.target,
            outcome.status,
            stored.id,
        )
        return replace(outcome, record_id=stored.id)

    def _dataset_id(self, dataset_path: str | None) -> int | None:
        if dataset_path is None or self._experiments is None:
            return None
        wanted = _resolved(dataset_path)
        for record in self._experiments.list_datasets():
            if _resolved(record.source) == wanted:
                return record.id
        return None


class PluginPreferences:
    """Which plugins are switched off and each plugin's options, kept in the settings file.

    Args:
        store: The settings file.
    """

    def __init__(self, store: SettingsStore) -> None:
        self._store = store

    def current(self) -> PluginSettings:
        """The plugin section of the settings."""
        return self._store.load().plugins

    def set_enabled(self, name: str, enabled: bool) -> PluginSettings:
        """Switch a plugin on or off and save it.

        Raises:
            ConfigError: The settings file cannot be written.
        """
        plugins = self.current()
        disabled = [n for n in plugins.disabled if n != name]
        if not enabled:
            disabled.append(name)
        updated = plugins.model_copy(update={"disabled": tuple(sorted(disabled))})
        return self._store.update(plugins=updated).plugins

    def options(self, name: str) -> dict[str, str]:
        """A plugin's saved options."""
        return dict(self.current().options.get(name, {}))

    def set_options(self, name: str, options: Mapping[str, str]) -> PluginSettings:
        """Save a plugin's options; empty values are removed.

        Raises:
            ConfigError: The settings file cannot be written.
        """
        plugins = self.current()
        merged = {**plugins.options.get(name, {}), **options}
        cleaned = {key: value.strip() for key, value in merged.items() if value.strip()}
        all_options = {**plugins.options, name: cleaned}
        if not cleaned:
            all_options.pop(name)
        updated = plugins.model_copy(update={"options": all_options})
        return self._store.update(plugins=updated).plugins


def finding_rows(results: Sequence[ToolResult]) -> list[FindingRow]:
    """Flatten results into rows: every finding, and a ``plugin-error`` row per failed input."""
    rows: list[FindingRow] = []
    for result in results:
        for finding in result.findings:
            rows.append(
                FindingRow(
                    severity=finding.severity,
                    path=finding.path or result.path,
                    row=result.row,
                    line=finding.line,
                    column=finding.column,
                    rule=finding.rule,
                    message=finding.message,
                    plugin=result.plugin,
                )
            )
        if result.error is not None:
            rows.append(
                FindingRow(
                    severity="error",
                    path=result.path,
                    row=result.row,
                    line=None,
                    column=None,
                    rule="plugin-error",
                    message=result.error,
                    plugin=result.plugin,
                )
            )
    return rows


def export_findings(rows: Sequence[FindingRow], path: Path, fmt: ExportFormat) -> None:
    """Write finding rows to ``path`` as JSON (a list of objects) or CSV, atomically.

    Args:
        rows: The rows, in the order to write them.
        path: The file to write.
        fmt: ``json`` or ``csv``.

    Raises:
        ConfigError: The file cannot be written.
    """
    if fmt == "json":
        text = json.dumps([row.to_dict() for row in rows], indent=2, ensure_ascii=False) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=FINDING_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.to_dict().items()})
        text = buffer.getvalue()
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    logger.info("exported %d findings to %s", len(rows), path)


def _resolved(path: str) -> str:
    try:
        return str(Path(path).expanduser().resolve())
    except (OSError, RuntimeError):
        return path

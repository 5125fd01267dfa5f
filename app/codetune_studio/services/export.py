"""Export use case shared by the window and ``codetune-studio export``: resolve, write, verify, push.

``MODEL`` is a run id (its newest model version, else its adapter folder), ``v:ID`` (a model
version) or a folder. The model card is filled from the record: base model, dataset fingerprint,
recipe, and the run's last logged metrics (eval results included).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from codetune_studio.core.errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from collections.abc import Callable

    from codetune_studio.core.cancel import CancelToken
    from codetune_studio.core.models import ModelVersion, Run
    from codetune_studio.engine.export import (
        ExportDtype,
        ExportFormat,
        ExportResult,
        GgufType,
        ModelCard,
    )
    from codetune_studio.engine.export_verify import Verdict
    from codetune_studio.secrets import SecretStore
    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.services.hub import HubPushResult

__all__ = ["ExportOptions", "ExportOutcome", "ExportService", "ResolvedModel"]

logger = logging.getLogger(__name__)

_ADAPTER_DIR = "adapter"


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """What ``MODEL`` names: a folder to export and what the card says about it."""

    source: Path
    card: ModelCard


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """The choices of one export (the CLI's flags, the dialog's fields)."""

    out: Path
    format: ExportFormat = "adapter"
    dtype: ExportDtype = "auto"
    gguf_type: GgufType = "f16"
    ollama: bool = False
    push: str | None = None
    private: bool = False
    verify: bool = True


@dataclass(frozen=True, slots=True)
class ExportOutcome:
    """What an export did: the files, the verification verdict, the push."""

    result: ExportResult
    verdict: Verdict | None
    push: HubPushResult | None


class ExportService:
    """Exports runs and model versions.

    Args:
        experiments: The experiment record (``None``: folders only, no card details).
        secrets: Where the Hugging Face token is, for a push.
        offline: The studio runs offline (a push is refused with a clear message).
    """

    def __init__(
        self,
        experiments: ExperimentService | None,
        secrets: SecretStore | None = None,
        *,
        offline: bool = False,
    ) -> None:
        self._experiments = experiments
        self._secrets = secrets
        self._offline = offline

    def resolve(self, model: str) -> ResolvedModel:
        """Find the folder and card details ``model`` names.

        Raises:
            ConfigError: Nothing by that name, or the run left nothing to export.
        """
        from codetune_studio.engine.export import ModelCard

        if model.startswith("v:"):
            return self._from_version(self._version(model[2:]))
        if model.isdigit():
            return self._from_run(int(model))
        folder = Path(model).expanduser()
        if folder.is_dir():
            return ResolvedModel(folder.resolve(), ModelCard(title=folder.resolve().name))
        raise ConfigError(f"{model}: not a run id, v:VERSION or an existing folder")

    def run(
        self,
        model: str,
        options: ExportOptions,
        *,
        progress: Callable[[str, float], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> ExportOutcome:
        """Export, then verify in fresh processes, then push if asked (only a passing export).

        Raises:
            ConfigError: Bad request.
            ExportError: Writing, verifying or pushing failed.
        """
        from codetune_studio.engine.export import ExportRequest, export_model
        from codetune_studio.engine.export_verify import verify_export

        report = progress or (lambda _message, _fraction: None)
        if options.ollama and options.format != "gguf":
            raise ConfigError("--ollama needs --format gguf (Ollama runs GGUF files)")
        resolved = self.resolve(model)
        request = ExportRequest(
            source=resolved.source,
            out=options.out,
            format=options.format,
            dtype=options.dtype,
            gguf_type=options.gguf_type,
            ollama=options.ollama,
            card=resolved.card,
        )
        result = export_model(request, progress=lambda m, f: report(m, f * 0.5), cancel=cancel)
        verdict = None
        if options.verify:
            verdict = verify_export(
                result.folder, progress=lambda m, f: report(m, 0.5 + f * 0.4), cancel=cancel
            )
        push = None
        if options.push and (verdict is None or verdict.ok):
            push = self.push(
                result.folder,
                options.push,
                private=options.private,
                progress=lambda m, f: report(m, 0.9 + f * 0.1),
            )
        report("done", 1.0)
        return ExportOutcome(result, verdict, push)

    def push(
        self,
        folder: Path,
        repo_id: str,
        *,
        private: bool = False,
        progress: Callable[[str, float], None] | None = None,
    ) -> HubPushResult:
        """Upload an export folder to the Hub (see :func:`services.hub.push_folder`)."""
        from codetune_studio.secrets import MemorySecretStore
        from codetune_studio.services.hub import push_folder

        secrets = self._secrets if self._secrets is not None else MemorySecretStore()
        return push_folder(
            folder, repo_id, secrets, private=private, progress=progress, offline=self._offline
        )

    # --- resolving ----------------------------------------------------------------------------

    def _record(self) -> ExperimentService:
        if self._experiments is None:
            raise ConfigError("no database: give the model as a folder")
        return self._experiments

    def _version(self, value: str) -> ModelVersion:
        if not value.isdigit():
            raise ConfigError(f"v:{value}: a model version is v: and its number, e.g. v:3")
        for version in self._record().list_model_versions():
            if version.id == int(value):
                return version
        raise ConfigError(f"v:{value}: there is no model version {value}")

    def _from_version(self, version: ModelVersion) -> ResolvedModel:
        from codetune_studio.engine.export import ModelCard

        run = self._run(version.run_id) if version.run_id is not None else None
        card = ModelCard(
            title=version.name,
            base_model=version.base_model,
            dataset_fingerprint=version.dataset_fingerprint,
            recipe=run.recipe if run else None,
            metrics=self._last_metrics(run.id) if run else {},
            run_id=version.run_id,
            version_id=version.id,
        )
        return ResolvedModel(Path(version.path), card)

    def _from_run(self, run_id: int) -> ResolvedModel:
        versions = self._record().list_model_versions(run_id=run_id)
        if versions:
            return self._from_version(versions[0])
        run = self._run(run_id)
        folder = Path(run.output_dir or "") / _ADAPTER_DIR
        if not run.output_dir or not folder.is_dir():
            raise ConfigError(
                f"run {run_id} ({run.status.value}) has no adapter to export; only a finished "
                "run leaves one"
            )
        from codetune_studio.engine.export import ModelCard

        card = ModelCard(
            title=f"{run.name} (run {run.id})",
            base_model=str(run.recipe.get("model", "")) or None,
            recipe=run.recipe,
            metrics=self._last_metrics(run.id),
            run_id=run.id,
        )
        return ResolvedModel(folder, card)

    def _run(self, run_id: int) -> Run:
        try:
            return self._record().get_run(run_id)
        except NotFoundError:
            raise ConfigError(f"there is no run {run_id}") from None

    def _last_metrics(self, run_id: int) -> dict[str, float]:
        record = self._record()
        metrics: dict[str, float] = {}
        for name in record.metric_names(run_id):
            curve = record.metric_curve(run_id, name)
            if curve:
                metrics[name] = curve[-1].value
        return metrics

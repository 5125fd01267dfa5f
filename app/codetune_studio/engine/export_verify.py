"""Verify an export in fresh processes: never assume that what was written loads and agrees.

Two children per check, both running :mod:`codetune_studio.engine.export_probe` (plain
``transformers``/``peft``/``gguf``, no studio code):

1. the *reference*: the source (adapter on its base, or the full model) loaded in float32 as the
   studio holds it; it greedily continues :data:`PROMPTS` and saves tokens and logits (for GGUF:
   the merged weights);
2. the *artifact*: the export loaded the way a user would load it, compared with the reference.

Tolerances (largest absolute logit difference from the float32 reference, per export precision):
see :data:`LOGIT_TOLERANCE`. The merge itself moves float32 logits by about 1e-6; half precision
rounds every weight, hence the wider bounds. GGUF tensors are compared with the merged float32
weights relative to each tensor's largest value (``export_probe.GGUF_TOLERANCE``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from codetune_studio.core.child_cmd import python_module_command
from codetune_studio.core.child_env import child_environment
from codetune_studio.core.child_proc import stop_process_group
from codetune_studio.core.errors import ExportError
from codetune_studio.engine.export import gguf_file_name, read_manifest

if TYPE_CHECKING:
    from collections.abc import Callable

    from codetune_studio.core.cancel import CancelToken

__all__ = ["LOGIT_TOLERANCE", "PROMPTS", "CheckResult", "Verdict", "verify_export"]

logger = logging.getLogger(__name__)

PROBE_MODULE: Final = "codetune_studio.engine.export_probe"
#: Fixed prompts: plain code, a code comment and a chat turn (through the chat template).
PROMPTS: Final = (
    {"kind": "text", "text": "def fibonacci(n):\n"},
    {"kind": "text", "text": "# Read a JSON file and return its keys\nimport json\n"},
    {"kind": "chat", "text": "Write a function that reverses a string."},
)
NEW_TOKENS: Final = 8
#: Largest allowed absolute logit difference from the float32 reference, by export precision.
LOGIT_TOLERANCE: Final[dict[str, float]] = {"fp32": 1e-3, "fp16": 5e-2, "bf16": 2.5e-1}
#: Seconds one probe child may run (loading a 7B model on a slow disk fits).
DEFAULT_DEADLINE_S: Final = 900.0
_GRACE_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One named check and what it found."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of verifying one export.

    Attributes:
        ok: Whether every check passed.
        checks: The checks, in the order they ran.
        max_abs_logit_diff: The largest logit difference found (HF formats).
        tolerance: The tolerance it was held to.
        seconds: How long verification took.
    """

    ok: bool
    checks: tuple[CheckResult, ...]
    max_abs_logit_diff: float | None = None
    tolerance: float | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: PASS or FAIL and, for a failure, what failed."""
        if self.ok:
            return f"PASS ({len(self.checks)} checks)"
        failed = [f"{check.name}: {check.detail}" for check in self.checks if not check.ok]
        return "FAIL: " + "; ".join(failed)


def verify_export(
    folder: Path,
    *,
    progress: Callable[[str, float], None] | None = None,
    cancel: CancelToken | None = None,
    deadline_s: float = DEFAULT_DEADLINE_S,
    reference_cache: Path | None = None,
) -> Verdict:
    """Check an export folder against its source, in fresh processes.

    Args:
        folder: The export (it holds ``export.json``).
        progress: Called with a message and the fraction done.
        cancel: Stops the children when set.
        deadline_s: Seconds each child may run.
        reference_cache: A folder where the reference (which depends only on the source) is
            kept and reused by later checks of exports of the same source.

    Returns:
        The verdict; a failed check is a verdict, not an exception.

    Raises:
        ExportError: ``folder`` is not an export, its source is gone, or a child could not run
            (crashed, timed out, cancelled).
    """
    started = time.perf_counter()
    report = progress or (lambda _message, _fraction: None)
    folder = Path(folder).expanduser().resolve()
    manifest = read_manifest(folder)
    if manifest is None:
        raise NotAnExportError(f"{folder} is not an export made by the studio (no export.json)")
    source = Path(manifest["source"]["path"])
    if not source.is_dir():
        raise ExportError(
            f"the export's source {source} is gone, so there is nothing to compare it with"
        )
    with tempfile.TemporaryDirectory(prefix="codetune-verify-") as scratch:
        work = _Work(Path(scratch), reference_cache, str(source))
        if manifest["format"] == "gguf":
            verdict = _verify_gguf(folder, manifest, work, report, cancel, deadline_s)
        else:
            verdict = _verify_hf(folder, manifest, work, report, cancel, deadline_s)
    report("verification done", 1.0)
    return Verdict(
        verdict.ok,
        verdict.checks,
        verdict.max_abs_logit_diff,
        verdict.tolerance,
        time.perf_counter() - started,
        verdict.extra,
    )


@dataclass(frozen=True, slots=True)
class _Work:
    """Scratch space of one verification, and where references are cached."""

    scratch: Path
    cache: Path | None
    source: str

    def reference(self, name: str) -> tuple[Path, bool]:
        """Where the reference ``name`` goes, and whether it is already there."""
        if self.cache is None:
            return self.scratch / name, False
        key = hashlib.sha256(self.source.encode()).hexdigest()[:16]
        path = self.cache / f"{key}-{name}"
        self.cache.mkdir(parents=True, exist_ok=True)
        return path, path.is_file()


class NotAnExportError(ExportError):
    """The folder holds no ``export.json``: ``verify`` exits 2 for it."""

    exit_code = 2


def _verify_hf(
    folder: Path,
    manifest: dict[str, Any],
    work: _Work,
    report: Callable[[str, float], None],
    cancel: CancelToken | None,
    deadline_s: float,
) -> Verdict:
    prompts = work.scratch / "prompts.json"
    prompts.write_text(json.dumps(list(PROMPTS)), encoding="utf-8")
    reference, cached = work.reference("reference.safetensors")
    if not cached:
        report("computing the reference from the source", 0.1)
        _run_probe(
            "reference",
            ["--source", manifest["source"]["path"], "--prompts", str(prompts)],
            ["--new-tokens", str(NEW_TOKENS), "--out", str(reference)],
            work=work.scratch,
            cancel=cancel,
            deadline_s=deadline_s,
        )
    tolerance = LOGIT_TOLERANCE.get(manifest["dtype"], LOGIT_TOLERANCE["fp32"])
    report("loading the export with transformers/peft in a fresh process", 0.5)
    result = _run_probe(
        "artifact",
        ["--export", str(folder), "--reference", str(reference)],
        ["--tolerance", str(tolerance)],
        work=work.scratch,
        cancel=cancel,
        deadline_s=deadline_s,
    )
    checks = [CheckResult(**check) for check in result["checks"]]
    studio = result.get("studio_modules", [])
    checks.append(
        CheckResult(
            "plain libraries",
            not studio,
            f"studio modules on the load path: {', '.join(studio)}"
            if studio
            else "loaded without any studio code",
        )
    )
    return Verdict(
        all(check.ok for check in checks),
        tuple(checks),
        result.get("max_abs_logit_diff"),
        tolerance,
    )


def _verify_gguf(
    folder: Path,
    manifest: dict[str, Any],
    work: _Work,
    report: Callable[[str, float], None],
    cancel: CancelToken | None,
    deadline_s: float,
) -> Verdict:
    from codetune_studio.engine.gguf_export import gguf_architecture

    source = manifest["source"]
    weights, cached = work.reference("merged.safetensors")
    if not cached:
        report("merging the source for reference weights", 0.1)
        _run_probe(
            "weights",
            ["--source", source["path"], "--out", str(weights)],
            [],
            work=work.scratch,
            cancel=cancel,
            deadline_s=deadline_s,
        )
    config_dir = Path(source["model_dir"])
    config = json.loads((config_dir / "config.json").read_text(encoding="utf-8"))
    _arch, reorder = gguf_architecture(config.get("model_type", ""))
    tokenizer_dir = (
        source["path"]
        if (Path(source["path"]) / "tokenizer_config.json").is_file()
        else str(config_dir)
    )
    flags = ["--permute"] if reorder else []
    if config.get("tie_word_embeddings"):
        flags.append("--tied")
    gguf_path = folder / gguf_file_name(manifest["gguf_type"])
    report("reading the GGUF back in a fresh process", 0.5)
    result = _run_probe(
        "gguf",
        ["--gguf", str(gguf_path), "--weights", str(weights)],
        ["--source-tokenizer", tokenizer_dir, "--source-config", str(config_dir), *flags],
        work=work.scratch,
        cancel=cancel,
        deadline_s=deadline_s,
    )
    checks = [CheckResult(**check) for check in result["checks"]]
    checks.extend(_file_checks(folder, manifest, skip=gguf_path.name))
    if manifest.get("ollama"):
        checks.append(_modelfile_check(folder, Path(tokenizer_dir)))
    return Verdict(all(check.ok for check in checks), tuple(checks))


def _file_checks(folder: Path, manifest: dict[str, Any], *, skip: str) -> list[CheckResult]:
    """Sizes of the other files (the GGUF itself is read tensor by tensor)."""
    problems = []
    for name, info in manifest["files"].items():
        path = folder / name
        if name == skip:
            continue
        if not path.is_file():
            problems.append(f"missing file {name}")
        elif path.stat().st_size != info["size"]:
            problems.append(f"{name} is truncated or changed")
    return [CheckResult("files", not problems, "; ".join(problems) or "other files as written")]


def _modelfile_check(folder: Path, tokenizer_dir: Path) -> CheckResult:
    from transformers import AutoTokenizer

    from codetune_studio.engine.modelfile import (
        MODELFILE,
        SAMPLE_CHAT,
        parse_modelfile,
        render_go_template,
    )

    path = folder / MODELFILE
    if not path.is_file():
        return CheckResult("modelfile", False, "missing file Modelfile")
    template, stops = parse_modelfile(path.read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    messages = [dict(message) for message in SAMPLE_CHAT]
    same = render_go_template(template, messages) == tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    stops_ok = tokenizer.eos_token in stops
    detail = (
        f"TEMPLATE renders the chat template's text; stop {stops}"
        if same and stops_ok
        else "Modelfile TEMPLATE or stop tokens differ from the chat template"
    )
    return CheckResult("modelfile", same and stops_ok, detail)


def _run_probe(
    mode: str,
    args: list[str],
    more: list[str],
    *,
    work: Path,
    cancel: CancelToken | None,
    deadline_s: float,
) -> dict[str, Any]:
    """Run one probe child to its end; return its JSON report."""
    report_path = work / f"{mode}.report.json"
    log_path = work / f"{mode}.log"
    argv = python_module_command(
        PROBE_MODULE, mode, *args, *more, "--report", str(report_path), isolated=True
    )
    # The child must not reach the network: everything it loads is local.
    env = child_environment({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=os.name == "posix",  # a process group to stop as a whole
        )
        outcome = _wait(proc, time.monotonic() + deadline_s, cancel)
    if outcome == "cancelled":
        raise ExportError("verification cancelled")
    if outcome == "timeout":
        raise ExportError(f"verification ({mode}) did not finish within {deadline_s:g} s")
    if proc.returncode != 0 or not report_path.is_file():
        raise ExportError(
            f"verification ({mode}) stopped with exit status {proc.returncode}: "
            f"{_last_line(log_path)}"
        )
    result: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
    return result


def _wait(proc: subprocess.Popen[bytes], deadline: float, cancel: CancelToken | None) -> str:
    while True:
        try:
            proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            if cancel is not None and cancel.cancelled:
                _stop(proc)
                return "cancelled"
            if time.monotonic() > deadline:
                _stop(proc)
                return "timeout"
        else:
            return "done"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process_group(proc, _GRACE_S)


def _last_line(log_path: Path) -> str:
    lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"

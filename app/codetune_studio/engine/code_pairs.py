"""Training pairs from a Python project: docstring to body, fill-in-the-middle, or completion.

The project's ``.gitignore`` files are honoured (with ``pathspec``, which speaks git's pattern
rules). Files are split into train and eval as a whole, so no function's file is on both sides;
pairs are deduplicated; a function holding a likely secret is left out. Every file or function
left out is listed with its reason.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from codetune_studio.core.errors import ConfigError, DatasetError
from codetune_studio.engine.data_checks import find_secrets, normalize

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "FIM_MIDDLE",
    "FIM_PREFIX",
    "FIM_SUFFIX",
    "PAIR_KINDS",
    "CodePairs",
    "build_code_pairs",
    "write_code_pairs",
]

PairKind = Literal["docstring", "fim", "completion"]
PAIR_KINDS: Final = ("docstring", "fim", "completion")
#: Fill-in-the-middle sentinels, as StarCoder and Qwen2.5-Coder spell them.
FIM_PREFIX: Final = "<|fim_prefix|>"
FIM_SUFFIX: Final = "<|fim_suffix|>"
FIM_MIDDLE: Final = "<|fim_middle|>"
_MAX_FILE_BYTES: Final = 1_000_000
_SKIP_DIRS: Final = frozenset(
    {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv", ".tox", "build",
     "dist", "site-packages", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
)  # fmt: skip


@dataclass
class CodePairs:
    """The pairs made from a project, and what was left out.

    Attributes:
        train: Rows for training (``prompt``/``completion``, or ``text`` for completion pairs).
        eval: Rows from the files held out for evaluation.
        skipped: ``(file or file:line, reason)`` for every file or function left out.
        files: Python files read.
        eval_files: The held-out files (relative paths).
    """

    train: list[dict[str, Any]] = field(default_factory=list)
    eval: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0
    eval_files: list[str] = field(default_factory=list)


def build_code_pairs(
    folder: Path, *, kind: str = "docstring", eval_share: float = 0.1
) -> CodePairs:
    """Make training pairs from every function of a Python project.

    Args:
        folder: The project's root folder.
        kind: ``docstring`` (signature and docstring to body), ``fim`` (fill in a span of a
            function's body) or ``completion`` (whole functions, trained on entirely).
        eval_share: Share of the files held out for evaluation (whole files).

    Returns:
        The pairs, split, and every skip with its reason.

    Raises:
        ConfigError: If ``kind`` or ``eval_share`` is invalid.
        DatasetError: If the folder has no Python file, or no pair could be made.
    """
    if kind not in PAIR_KINDS:
        raise ConfigError(f"--kind: got {kind!r}, expected one of {', '.join(PAIR_KINDS)}")
    if not 0.0 <= eval_share < 1.0:
        raise ConfigError(f"--eval-share: got {eval_share}, must be in [0, 1)")
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder; expected a Python project's root folder")
    result = CodePairs()
    files = sorted(_python_files(folder, result.skipped))
    if not files:
        raise DatasetError(f"{folder}: found no Python files (after .gitignore)")
    result.files = len(files)
    held = _held_out(files, eval_share)
    result.eval_files = sorted(held)
    seen: dict[str, str] = {}
    for relative in files:
        target = result.eval if relative in held else result.train
        for row in _file_pairs(folder, relative, kind, result.skipped):
            key = normalize(json.dumps([v for k, v in row.items() if k != "source"]))
            if key in seen:
                result.skipped.append((row["source"], f"duplicate of {seen[key]}"))
                continue
            seen[key] = row["source"]
            target.append(row)
    if not result.train and not result.eval:
        raise DatasetError(
            f"{folder}: no {kind} pair could be made from {len(files)} Python files "
            f"({len(result.skipped)} skipped; the first: {_first_skip(result)})"
        )
    return result


def write_code_pairs(pairs: CodePairs, out: Path) -> tuple[Path, Path | None]:
    """Write the train rows to ``out`` and the eval rows beside it (``NAME.eval.jsonl``).

    Returns:
        The train file, and the eval file (``None`` when nothing was held out).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out, pairs.train)
    if not pairs.eval:
        return out, None
    eval_path = out.with_name(out.name.removesuffix(".jsonl") + ".eval.jsonl")
    _write_jsonl(eval_path, pairs.eval)
    return out, eval_path


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _first_skip(pairs: CodePairs) -> str:
    return f"{pairs.skipped[0][0]}: {pairs.skipped[0][1]}" if pairs.skipped else "none"


# --- files ------------------------------------------------------------------------------------


def _python_files(folder: Path, skipped: list[tuple[str, str]]) -> Iterator[str]:
    import pathspec  # git's ignore rules, negations and directory patterns included

    specs: list[tuple[str, Any]] = []  # (folder relative to the root, its .gitignore)
    for root, dirs, names in os.walk(folder):
        here = Path(root).relative_to(folder).as_posix()
        prefix = "" if here == "." else here + "/"
        if ".gitignore" in names:
            lines = (Path(root) / ".gitignore").read_text("utf-8", "replace").splitlines()
            specs.append((prefix, pathspec.GitIgnoreSpec.from_lines(lines)))
        kept_dirs = []
        for name in sorted(dirs):
            if name in _SKIP_DIRS or name.startswith("."):
                continue
            if _ignored(prefix + name + "/", specs):
                skipped.append((prefix + name + "/", "ignored by .gitignore"))
                continue
            kept_dirs.append(name)
        dirs[:] = kept_dirs
        for name in sorted(names):
            if not name.endswith(".py"):
                continue
            if _ignored(prefix + name, specs):
                skipped.append((prefix + name, "ignored by .gitignore"))
                continue
            yield prefix + name


def _ignored(relative: str, specs: list[tuple[str, Any]]) -> bool:
    ignored = False
    for base, spec in specs:  # outer .gitignore files first; inner ones may override
        if relative.startswith(base):
            inner = relative[len(base) :]
            result = spec.check_file(inner)
            if result.include is not None:
                ignored = bool(result.include)
    return ignored


def _held_out(files: list[str], share: float) -> set[str]:
    if share <= 0 or len(files) < 2:
        return set()
    count = min(max(round(len(files) * share), 1), len(files) - 1)
    # Ordered by a hash of the path: the same project splits the same way every time.
    ranked = sorted(files, key=lambda f: hashlib.sha256(f.encode("utf-8")).hexdigest())
    return set(ranked[:count])


def _read_python(folder: Path, relative: str, skipped: list[tuple[str, str]]) -> ast.Module | None:
    raw = (folder / relative).read_bytes()
    reason = None
    if len(raw) > _MAX_FILE_BYTES:
        reason = f"larger than {_MAX_FILE_BYTES // 1000} kB (likely generated)"
    elif b"\x00" in raw:
        reason = "binary file (contains NUL bytes)"
    if reason is None:
        try:
            return ast.parse(raw.decode("utf-8-sig"), filename=relative)
        except UnicodeDecodeError:
            reason = "not UTF-8 text"
        except SyntaxError as exc:
            reason = f"does not parse: {exc.msg} (line {exc.lineno})"
    skipped.append((relative, reason))
    return None


# --- pairs ------------------------------------------------------------------------------------


def _file_pairs(
    folder: Path, relative: str, kind: str, skipped: list[tuple[str, str]]
) -> Iterator[dict[str, Any]]:
    tree = _read_python(folder, relative, skipped)
    if tree is None:
        return
    lines = (folder / relative).read_text("utf-8-sig").splitlines(keepends=True)
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not functions:
        skipped.append((relative, "no functions"))
    for node in sorted(functions, key=lambda n: n.lineno):
        where = f"{relative}:{node.lineno}"
        source = "".join(lines[_first_line(node) - 1 : node.end_lineno])
        secrets = find_secrets(where, source)
        if secrets:
            skipped.append((where, f"{node.name}: likely secret ({secrets[0].kind})"))
            continue
        row, reason = _pair(node, lines, kind, where)
        if row is None:
            skipped.append((where, f"{node.name}: {reason}"))
            continue
        yield {**row, "source": where}


def _first_line(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def _pair(
    node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str], kind: str, where: str
) -> tuple[dict[str, str] | None, str]:
    start = _first_line(node)
    end = node.end_lineno or node.lineno
    body_start = node.body[0].lineno  # the first statement: the docstring when there is one
    has_doc = ast.get_docstring(node) is not None
    if kind == "completion":
        return {"text": "".join(lines[start - 1 : end])}, ""
    if kind == "docstring":
        if not has_doc:
            return None, "no docstring"
        after_doc = node.body[0].end_lineno or body_start
        body = "".join(lines[after_doc:end])
        if len(node.body) == 1 or not body.strip():
            return None, "no body after the docstring"
        return {"prompt": "".join(lines[start - 1 : after_doc]), "completion": body}, ""
    # fim: hide a span of the body's lines, chosen from a hash so the file gives the same pairs.
    first = (node.body[0].end_lineno or body_start) + 1 if has_doc else body_start
    span = list(range(first, end + 1))
    if len(span) < 3:
        return None, "body too short for fill-in-the-middle (under 3 lines)"
    seed = int(hashlib.sha256(where.encode("utf-8")).hexdigest(), 16)
    size = 1 + seed % max(1, len(span) // 2)
    lo = span[(seed >> 8) % (len(span) - size + 1)]
    prefix = "".join(lines[start - 1 : lo - 1])
    middle = "".join(lines[lo - 1 : lo - 1 + size])
    suffix = "".join(lines[lo - 1 + size : end])
    if not middle.strip():
        return None, "the chosen middle is blank"
    prompt = f"{FIM_PREFIX}{prefix}{FIM_SUFFIX}{suffix}{FIM_MIDDLE}"
    return {"prompt": prompt, "completion": middle}, ""

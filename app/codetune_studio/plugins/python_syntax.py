"""Whether Python code parses: the one rule the analyzer, the dataset lint and the trainer share.

It lives here, below the built-in plugins, so the trainer's ``dataset.drop_unparseable`` (in
``engine/``) and :mod:`~codetune_studio.plugins.code_lint` can use it without importing a
built-in plugin; :mod:`~codetune_studio.plugins.builtin.code_analyzer` starts with it too.
"""

from __future__ import annotations

import ast
import warnings

from codetune_studio.plugins.api import Finding

__all__ = ["parse_python", "syntax_error"]


def syntax_error(code: str) -> Finding | None:
    """Parse ``code`` and return its ``syntax-error`` finding, or ``None`` when it parses.

    A leading byte-order mark is ignored, as Python itself ignores it in a source file.
    """
    tree = parse_python(code.removeprefix("\ufeff"))
    return tree if isinstance(tree, Finding) else None


def parse_python(code: str) -> ast.Module | Finding:
    """Parse ``code`` into a module, or describe why it does not parse as a ``syntax-error``.

    Returns:
        The module, or an error finding with the 1-based line and column when Python gives them.
    """
    try:
        with warnings.catch_warnings():
            # Invalid escape sequences and the like warn while compiling; they are not our
            # findings and must not leak into the caller's warning filters.
            warnings.simplefilter("ignore")
            return ast.parse(code)
    except SyntaxError as exc:
        return Finding(
            severity="error",
            rule="syntax-error",
            message=f"{type(exc).__name__}: {exc.msg}",
            line=exc.lineno if exc.lineno and exc.lineno > 0 else None,
            column=exc.offset if exc.offset and exc.offset > 0 else None,
        )
    except (ValueError, RecursionError, MemoryError) as exc:
        # Null bytes (ValueError on 3.11) or code nested too deeply for the parser.
        return Finding(severity="error", rule="syntax-error", message=f"cannot parse: {exc}")

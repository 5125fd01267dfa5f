"""The local Python analyzer: ``ast`` only, no network, no third-party code.

What it reports (rule names in brackets):

- Syntax errors with line and column [``syntax-error``, error].
- Cyclomatic complexity per function over ``max_complexity`` (default 10) [``complexity``].
- Functions longer than ``max_function_lines`` physical lines (default 50), counted from the
  ``def`` line to the last line of the body [``long-function``].
- Blocks nested deeper than ``max_nesting`` (default 4) inside a function or at module level
  [``deep-nesting``]. ``if``/``for``/``while``/``with``/``try``/``match`` each open a level; an
  ``elif`` stays on its ``if``'s level; a nested ``def`` starts again from zero.
- Missing docstrings on the module and on public classes, functions and methods (names without
  a leading underscore; overloads and property setters are exempt) [``missing-docstring``, info].
- Unused imports: an imported name never read anywhere in the module, ``__all__`` and string
  annotations included. ``import x as x`` counts as a re-export, ``__future__`` imports are
  exempt, and a file called ``__init__.py`` is not checked, since re-exports are its job
  [``unused-import``].
- Unused local names: a name a function assigns (``=``, annotated ``=``, ``:=``, ``with ... as``,
  ``except ... as``) but never reads, nested functions included. Tuple unpacking, loop variables,
  names starting with ``_``, ``global``/``nonlocal`` names and functions that call ``locals()``
  are exempt, as in pyflakes [``unused-variable``].
- Duplicate blocks: ``duplicate_min_statements`` (default 4) consecutive statements spanning at
  least ``duplicate_min_lines`` (default 6) lines whose shape repeats earlier in the file.
  Statements are compared after normalisation: identifiers (variables, arguments, function
  names) are replaced by a placeholder, while attribute names, constants and structure must
  match, so a copy with renamed variables still counts [``duplicate-block``].

Cyclomatic complexity follows radon's ``ComplexityVisitor`` (the numbers ``radon cc`` prints):
a function starts at 1 and gains +1 per ``if``, ``elif`` and conditional expression; +1 per
``for``/``async for``/``while`` loop and +1 more when it has an ``else``; +1 per ``except``
handler and +1 for a ``try``'s ``else``; +1 per ``assert``; +1 per comprehension ``for`` clause
and +1 per ``if`` in it; ``len(values) - 1`` per ``and``/``or`` chain; and one per ``match``
case except a bare ``case _`` or capture. ``with`` adds nothing. Nested functions and classes are
measured on their own and add nothing to the enclosing function; lambdas are part of it. As in
radon, conditions inside an ``assert`` add nothing beyond the assert's +1.

Lines and columns are 1-based.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, TypeAlias

from codetune_studio.plugins.api import (
    BaseTool,
    Finding,
    PluginError,
    PluginSpec,
    ToolContext,
    ToolInputs,
    ToolResult,
)
from codetune_studio.plugins.python_syntax import parse_python, syntax_error

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = [
    "AnalyzerOptions",
    "CodeAnalyzer",
    "FunctionReport",
    "SourceReport",
    "analyze_source",
    "cyclomatic_complexity",
    "plugin_spec",
    "syntax_error",
]

_FunctionNode: TypeAlias = ast.FunctionDef | ast.AsyncFunctionDef
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_SCOPES_AND_LAMBDAS = (*_SCOPES, ast.Lambda)
_BLOCKS = (
    ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try, ast.TryStar,
    ast.Match,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AnalyzerOptions:
    """Thresholds; each can be set in the plugin's settings under the same name.

    Attributes:
        max_complexity: Report functions whose cyclomatic complexity is above this.
        max_function_lines: Report functions longer than this many lines.
        max_nesting: Report blocks nested deeper than this.
        duplicate_min_statements: Smallest run of statements compared for duplication.
        duplicate_min_lines: Smallest duplicate, in lines, worth reporting.
    """

    max_complexity: int = 10
    max_function_lines: int = 50
    max_nesting: int = 4
    duplicate_min_statements: int = 4
    duplicate_min_lines: int = 6

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> AnalyzerOptions:
        """Read thresholds from string settings, ignoring unrelated keys.

        Raises:
            PluginError: A threshold is not a positive whole number.
        """
        values: dict[str, int] = {}
        for option in fields(cls):
            raw = settings.get(option.name)
            if raw is None:
                continue
            try:
                values[option.name] = int(raw)
            except ValueError:
                raise PluginError(
                    f"code_analyzer: {option.name} must be a whole number, not {raw!r}"
                ) from None
            if values[option.name] < 1:
                raise PluginError(f"code_analyzer: {option.name} must be at least 1")
        return cls(**values)


@dataclass(frozen=True, slots=True)
class FunctionReport:
    """Numbers about one function or method.

    Attributes:
        name: Dotted name inside the module (``Parser.parse``, ``outer.inner``).
        line: Line of the ``def``.
        end_line: Last line of the body.
        is_async: Whether it is ``async def``.
        complexity: Cyclomatic complexity (radon's rules).
        length: Physical lines from ``def`` to the end of the body.
        nesting: Deepest block nesting inside it.
    """

    name: str
    line: int
    end_line: int
    is_async: bool
    complexity: int
    length: int
    nesting: int


@dataclass(slots=True)
class SourceReport:
    """Everything the analyzer learnt about one source text.

    Attributes:
        parsed: Whether the code parsed.
        lines: Physical lines in the source.
        findings: What was reported, in line order.
        functions: One report per function and method, nested ones included.
        classes: Class statements, nested ones included.
        imports: ``import`` and ``from ... import`` statements.
        imported_names: Names those statements bind.
    """

    parsed: bool
    lines: int
    findings: list[Finding] = field(default_factory=list)
    functions: list[FunctionReport] = field(default_factory=list)
    classes: int = 0
    imports: int = 0
    imported_names: int = 0

    @property
    def metrics(self) -> dict[str, Any]:
        """The report's numbers as JSON-ready values."""
        complexities = [f.complexity for f in self.functions]
        return {
            "parsed": self.parsed,
            "lines": self.lines,
            "functions": len(self.functions),
            "async_functions": sum(f.is_async for f in self.functions),
            "classes": self.classes,
            "imports": self.imports,
            "imported_names": self.imported_names,
            "max_complexity": max(complexities, default=0),
            "mean_complexity": round(sum(complexities) / len(complexities), 2)
            if complexities
            else 0.0,
            "function_details": [
                {
                    "name": f.name,
                    "line": f.line,
                    "complexity": f.complexity,
                    "length": f.length,
                    "nesting": f.nesting,
                }
                for f in self.functions
            ],
        }


class CodeAnalyzer(BaseTool):
    """Static checks and metrics for Python code, computed locally with ``ast``."""

    name = "code_analyzer"
    version = "1.0.0"
    description = (
        "Python syntax, complexity, long functions, deep nesting, docstrings, unused imports "
        "and names, duplicate blocks (local, no network)"
    )
    needs_network = False
    secrets = ()
    languages = ("python",)

    def validate_inputs(self, inputs: ToolInputs) -> None:
        """Accept any Python input, empty code included (it is valid Python)."""
        if inputs.language.lower() not in self.languages:
            raise PluginError(
                f"code_analyzer analyses Python, not {inputs.language} ({inputs.path})"
            )

    def run(self, inputs: ToolInputs, context: ToolContext) -> ToolResult:
        """Analyse one input; see the module docstring for the rules."""
        options = AnalyzerOptions.from_settings(context.settings)
        is_package_init = (
            inputs.path.replace("\\", "/").endswith("/__init__.py") or inputs.path == "__init__.py"
        )
        report = analyze_source(inputs.code, options, check_unused_imports=not is_package_init)
        return self.result(report.findings, report.metrics, inputs=inputs)


#: What the ``codetune_studio.plugins`` entry point ``code_analyzer`` resolves to.
plugin_spec = PluginSpec.from_tool(CodeAnalyzer)


def analyze_source(
    code: str,
    options: AnalyzerOptions | None = None,
    *,
    check_unused_imports: bool = True,
) -> SourceReport:
    """Analyse Python source text.

    Args:
        code: The source.
        options: Thresholds; the defaults when ``None``.
        check_unused_imports: Whether to report unused imports (off for ``__init__.py``).

    Returns:
        The findings and metrics. Code that does not parse yields one ``syntax-error`` finding
        and ``parsed=False``.
    """
    options = options or AnalyzerOptions()
    code = code.removeprefix("\ufeff")  # a byte-order mark is legal at the start of a file
    lines = code.count("\n") + (1 if code and not code.endswith("\n") else 0)
    tree = parse_python(code)
    if isinstance(tree, Finding):
        return SourceReport(parsed=False, lines=lines, findings=[tree])
    report = SourceReport(parsed=True, lines=lines)
    try:
        nodes = _descendants(tree)
        _collect_structure(tree, report, options)
        report.findings.extend(_docstring_findings(tree))
        if check_unused_imports:
            report.findings.extend(_unused_import_findings(tree, nodes))
        report.findings.extend(_unused_variable_findings(nodes))
        report.findings.extend(_duplicate_findings(tree, options))
    except RecursionError:
        # Machine-generated expressions thousands of terms deep: report what we have.
        report.findings.append(
            Finding(
                severity="info",
                rule="analysis-limit",
                message="code nested too deeply to analyse fully",
            )
        )
    report.findings.sort(key=lambda f: (f.line or 0, f.column or 0, f.rule))
    return report


def cyclomatic_complexity(function: _FunctionNode) -> int:
    """Cyclomatic complexity of one function, by radon's rules (see the module docstring)."""
    return 1 + sum(_complexity_of(statement) for statement in function.body)


# --- functions, classes, imports, complexity, length, nesting ---------------------------------


def _collect_structure(tree: ast.Module, report: SourceReport, options: AnalyzerOptions) -> None:
    for node, qualname in _walk_named(tree, ""):
        if isinstance(node, ast.ClassDef):
            report.classes += 1
        elif isinstance(node, ast.Import | ast.ImportFrom):
            report.imports += 1
            report.imported_names += len(node.names)
        elif isinstance(node, _FUNCTIONS):
            function = _function_report(node, qualname)
            report.functions.append(function)
            report.findings.extend(_function_findings(node, function, options))
    depth, line = _max_nesting(tree.body, 0)
    if depth > options.max_nesting and line is not None:
        report.findings.append(_nesting_finding("module-level code", depth, line, options))


def _walk_named(node: ast.AST, prefix: str) -> Iterator[tuple[ast.stmt, str]]:
    """Every statement below ``node``, with the dotted name of functions and classes.

    Only statement lists are entered: functions, classes and imports are statements, and
    skipping expressions makes this several times cheaper than a full walk.
    """
    for child in _child_statements(node):
        if isinstance(child, _SCOPES):
            name = f"{prefix}.{child.name}" if prefix else child.name
            yield child, name
            yield from _walk_named(child, name)
        else:
            yield child, prefix
            yield from _walk_named(child, prefix)


def _child_statements(node: ast.AST) -> Iterator[ast.stmt]:
    for owner in (node, *getattr(node, "handlers", ()), *getattr(node, "cases", ())):
        for name in ("body", "orelse", "finalbody"):
            value = getattr(owner, name, None)
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.stmt):
                        yield item


def _function_report(node: _FunctionNode, qualname: str) -> FunctionReport:
    end_line = node.end_lineno or node.lineno
    return FunctionReport(
        name=qualname,
        line=node.lineno,
        end_line=end_line,
        is_async=isinstance(node, ast.AsyncFunctionDef),
        complexity=cyclomatic_complexity(node),
        length=end_line - node.lineno + 1,
        nesting=_max_nesting(node.body, 0)[0],
    )


def _function_findings(
    node: _FunctionNode, function: FunctionReport, options: AnalyzerOptions
) -> Iterator[Finding]:
    column = node.col_offset + 1
    if function.complexity > options.max_complexity:
        yield Finding(
            severity="warning",
            rule="complexity",
            message=f"{function.name} has cyclomatic complexity {function.complexity} "
            f"(limit {options.max_complexity}); split it into smaller functions",
            line=node.lineno,
            column=column,
        )
    if function.length > options.max_function_lines:
        yield Finding(
            severity="warning",
            rule="long-function",
            message=f"{function.name} is {function.length} lines long (limit {options.max_function_lines})",
            line=node.lineno,
            column=column,
            end_line=function.end_line,
        )
    depth, line = _max_nesting(node.body, 0)
    if depth > options.max_nesting and line is not None:
        yield _nesting_finding(function.name, depth, line, options)


def _nesting_finding(where: str, depth: int, line: int, options: AnalyzerOptions) -> Finding:
    return Finding(
        severity="warning",
        rule="deep-nesting",
        message=f"{where} nests blocks {depth} deep (limit {options.max_nesting}); "
        "return early or extract a function",
        line=line,
    )


def _complexity_of(node: ast.AST) -> int:
    """Decision points in ``node`` and below, stopping at nested functions and classes."""
    if isinstance(node, _SCOPES):
        return 0
    if isinstance(node, ast.Assert):
        return 1
    total = _own_complexity(node)
    for child in ast.iter_child_nodes(node):
        total += _complexity_of(child)
    return total


def _own_complexity(node: ast.AST) -> int:
    if isinstance(node, ast.If | ast.IfExp):
        return 1
    if isinstance(node, ast.For | ast.AsyncFor | ast.While):
        return 1 + bool(node.orelse)
    if isinstance(node, ast.Try | ast.TryStar):
        return len(node.handlers) + bool(node.orelse)
    if isinstance(node, ast.BoolOp):
        return len(node.values) - 1
    if isinstance(node, ast.comprehension):
        return 1 + len(node.ifs)
    if isinstance(node, ast.Match):
        catch_all = any(
            isinstance(case.pattern, ast.MatchAs) and case.pattern.pattern is None
            for case in node.cases
        )
        return max(0, len(node.cases) - catch_all)
    return 0


def _max_nesting(statements: list[ast.stmt], depth: int) -> tuple[int, int | None]:
    """Deepest block level under ``statements`` and the line of the first block at it."""
    best, best_line = depth, None
    for statement in statements:
        if isinstance(statement, _SCOPES) or not isinstance(statement, _BLOCKS):
            continue
        level = depth + 1
        if level > best:
            best, best_line = level, statement.lineno
        for body, body_depth in _child_blocks(statement, level):
            inner, inner_line = _max_nesting(body, body_depth)
            if inner > best:
                best, best_line = inner, inner_line
    return best, best_line


def _child_blocks(statement: ast.stmt, level: int) -> Iterator[tuple[list[ast.stmt], int]]:
    if isinstance(statement, ast.Match):
        for case in statement.cases:
            yield case.body, level
        return
    if isinstance(statement, ast.Try | ast.TryStar):
        for handler in statement.handlers:
            yield handler.body, level
    body: list[ast.stmt] = getattr(statement, "body", [])
    yield body, level
    orelse: list[ast.stmt] = getattr(statement, "orelse", [])
    is_elif = (
        isinstance(statement, ast.If)
        and len(orelse) == 1
        and isinstance(orelse[0], ast.If)
        and orelse[0].col_offset == statement.col_offset
    )
    # An ``elif`` is parsed as an ``if`` inside ``else``; it sits on its ``if``'s level.
    yield orelse, level - 1 if is_elif else level
    yield getattr(statement, "finalbody", []), level


# --- docstrings --------------------------------------------------------------------------------


def _docstring_findings(tree: ast.Module) -> Iterator[Finding]:
    if tree.body and ast.get_docstring(tree, clean=False) is None:
        yield Finding(
            severity="info",
            rule="missing-docstring",
            message="module has no docstring",
            line=1,
            column=1,
        )
    yield from _scope_docstring_findings(tree.body, "")


def _scope_docstring_findings(body: list[ast.stmt], prefix: str) -> Iterator[Finding]:
    """Public classes and functions at module level and inside public classes."""
    for node in body:
        if not isinstance(node, _SCOPES) or node.name.startswith("_"):
            continue
        qualname = f"{prefix}.{node.name}" if prefix else node.name
        if ast.get_docstring(node, clean=False) is None and not _docstring_exempt(node):
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            yield Finding(
                severity="info",
                rule="missing-docstring",
                message=f"public {kind} {qualname} has no docstring",
                line=node.lineno,
                column=node.col_offset + 1,
            )
        if isinstance(node, ast.ClassDef):
            yield from _scope_docstring_findings(node.body, qualname)


def _docstring_exempt(node: ast.AST) -> bool:
    if not isinstance(node, _FUNCTIONS):
        return False
    for decorator in node.decorator_list:
        name = _dotted(decorator)
        if name.rsplit(".", 1)[-1] in {"overload", "setter", "deleter"}:
            return True
    return False


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


# --- unused imports ----------------------------------------------------------------------------


def _unused_import_findings(tree: ast.Module, nodes: list[ast.AST]) -> Iterator[Finding]:
    used = _loaded_names(nodes) | _dunder_all(tree)
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        for alias in node.names:
            if alias.name == "*" or (
                alias.asname is not None and alias.asname == alias.name.rsplit(".", 1)[-1]
            ):
                continue  # star imports cannot be checked; "import x as x" re-exports x
            bound = alias.asname or alias.name.split(".", 1)[0]
            if bound not in used:
                shown = alias.name if alias.asname is None else f"{alias.name} as {alias.asname}"
                yield Finding(
                    severity="warning",
                    rule="unused-import",
                    message=f"'{shown}' is imported but never used",
                    line=node.lineno,
                    column=node.col_offset + 1,
                )


def _loaded_names(nodes: list[ast.AST]) -> set[str]:
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg | ast.FunctionDef | ast.AsyncFunctionDef | ast.AnnAssign):
            names |= _string_annotation_names(node)
    return names


def _string_annotation_names(node: ast.AST) -> set[str]:
    """Names inside quoted annotations such as ``x: "Sequence[int]"``."""
    annotations: list[ast.expr | None] = []
    if isinstance(node, ast.arg | ast.AnnAssign):
        annotations.append(node.annotation)
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        annotations.append(node.returns)
    names: set[str] = set()
    for annotation in annotations:
        if annotation is None:
            continue
        for constant in ast.walk(annotation):
            if isinstance(constant, ast.Constant) and isinstance(constant.value, str):
                try:
                    parsed = ast.parse(constant.value, mode="eval")
                except SyntaxError:
                    continue
                names |= {n.id for n in ast.walk(parsed) if isinstance(n, ast.Name)}
    return names


def _dunder_all(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        if not any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            continue
        value = getattr(node, "value", None)
        if isinstance(value, ast.List | ast.Tuple):
            names |= {
                e.value
                for e in value.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            }
    return names


# --- unused local names ------------------------------------------------------------------------


def _unused_variable_findings(nodes: list[ast.AST]) -> Iterator[Finding]:
    for function in nodes:
        if isinstance(function, _FUNCTIONS):
            yield from _unused_in_function(function)


def _unused_in_function(function: _FunctionNode) -> Iterator[Finding]:
    bindings: dict[str, ast.expr | ast.excepthandler] = {}
    exempt: set[str] = set()
    for node in _walk_own_scope(function):
        if isinstance(node, ast.Global | ast.Nonlocal):
            exempt.update(node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "locals"
        ):
            return
        for name, where in _simple_bindings(node):
            bindings.setdefault(name, where)
    if not bindings:
        return
    # Reads anywhere below the function count, closures included.
    loaded = {
        node.id
        for node in _descendants(function)
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store)
    }
    for name, where in bindings.items():
        if name in loaded or name in exempt or name.startswith("_"):
            continue
        yield Finding(
            severity="warning",
            rule="unused-variable",
            message=f"local name '{name}' is assigned but never used",
            line=where.lineno,
            column=where.col_offset + 1,
        )


def _walk_own_scope(function: _FunctionNode) -> list[ast.AST]:
    """Nodes of the function's body, not descending into nested functions, classes, lambdas."""
    return _descendants(function, stop=_SCOPES_AND_LAMBDAS, roots=function.body)


def _descendants(
    node: ast.AST,
    *,
    stop: tuple[type[ast.AST], ...] = (),
    roots: list[ast.stmt] | None = None,
) -> list[ast.AST]:
    """Every node under ``node`` (itself included), in no particular order.

    Several times faster than :func:`ast.walk`, whose generators dominate the run time on big
    files. Nodes of a ``stop`` type are listed but not entered.
    """
    found: list[ast.AST] = []
    stack: list[ast.AST] = list(roots) if roots is not None else [node]
    push, append = stack.append, found.append
    while stack:
        current = stack.pop()
        append(current)
        if stop and isinstance(current, stop):
            continue
        for name in current._fields:
            value = getattr(current, name, None)
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        push(item)
            elif isinstance(value, ast.AST):
                push(value)
    return found


def _simple_bindings(node: ast.AST) -> Iterator[tuple[str, ast.expr | ast.excepthandler]]:
    if isinstance(node, ast.Assign):
        for target in node.targets:
            if isinstance(target, ast.Name):
                yield target.id, target
    elif (
        isinstance(node, ast.AnnAssign | ast.NamedExpr)
        and node.value is not None
        and isinstance(node.target, ast.Name)
    ):
        yield node.target.id, node.target
    elif isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name):
        yield node.optional_vars.id, node.optional_vars
    elif isinstance(node, ast.ExceptHandler) and node.name:
        yield node.name, node


# --- duplicate blocks --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Window:
    body: int
    index: int
    first_line: int
    last_line: int


def _duplicate_findings(tree: ast.Module, options: AnalyzerOptions) -> Iterator[Finding]:
    size = options.duplicate_min_statements
    bodies = _statement_lists(tree)
    shapes = _ShapeCache()
    hashes = [[shapes.of(statement) for statement in body] for body in bodies]
    seen: dict[tuple[int, ...], _Window] = {}
    reported: list[tuple[int, int]] = []
    for body_index, body in enumerate(bodies):
        index = 0
        while index + size <= len(body):
            window = _window(body, body_index, index, size)
            key = tuple(hashes[body_index][index : index + size])
            original = seen.setdefault(key, window)
            if (
                original is window
                or window.last_line - window.first_line + 1 < options.duplicate_min_lines
                or original.last_line >= window.first_line  # overlapping: a repeated statement
                or any(a <= window.first_line and window.last_line <= b for a, b in reported)
            ):
                index += 1
                continue
            length = _extend(hashes, original, body_index, index, size)
            copy = _window(body, body_index, index, length)
            source = _window(bodies[original.body], original.body, original.index, length)
            reported.append((copy.first_line, copy.last_line))
            yield Finding(
                severity="warning",
                rule="duplicate-block",
                message=f"lines {copy.first_line}-{copy.last_line} duplicate lines "
                f"{source.first_line}-{source.last_line} ({length} statements)",
                line=copy.first_line,
                column=body[index].col_offset + 1,
                end_line=copy.last_line,
            )
            index += length


def _window(body: list[ast.stmt], body_index: int, index: int, size: int) -> _Window:
    last = body[index + size - 1]
    return _Window(body_index, index, body[index].lineno, last.end_lineno or last.lineno)


def _extend(hashes: list[list[int]], original: _Window, body: int, index: int, size: int) -> int:
    """Grow a matched window while the statements after both copies keep matching."""
    length = size
    mine, theirs = hashes[body], hashes[original.body]
    while (
        index + length < len(mine)
        and original.index + length < len(theirs)
        and mine[index + length] == theirs[original.index + length]
        and not (original.body == body and original.index + length >= index)
    ):
        length += 1
    return length


def _statement_lists(tree: ast.Module) -> list[list[ast.stmt]]:
    """Every statement list in the module, outer ones first.

    Outer lists come first so that a duplicate is reported once, at its outermost level.
    """
    bodies: list[list[ast.stmt]] = [tree.body]
    level: list[ast.AST] = list(tree.body)
    while level:
        following: list[ast.AST] = []
        for node in level:
            for owner in (node, *getattr(node, "handlers", ()), *getattr(node, "cases", ())):
                for name in ("body", "orelse", "finalbody"):
                    value = getattr(owner, name, None)
                    if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                        bodies.append(value)
                        following.extend(value)
        level = following
    return bodies


class _ShapeCache:
    """Hashes of statements' normalised shapes, computed once per statement."""

    _RENAMED = frozenset({"id", "arg", "name", "asname"})

    def __init__(self) -> None:
        self._memo: dict[int, int] = {}

    def of(self, statement: ast.stmt) -> int:
        key = id(statement)
        cached = self._memo.get(key)
        if cached is None:
            cached = hash(self._shape(statement))
            self._memo[key] = cached
        return cached

    def _shape(self, node: ast.AST) -> tuple[object, ...]:
        parts: list[object] = [type(node).__name__]
        for name, value in ast.iter_fields(node):
            if name in self._RENAMED and isinstance(value, str):
                parts.append("_")
            elif isinstance(value, ast.stmt):
                parts.append(self.of(value))
            elif isinstance(value, ast.AST):
                parts.append(self._shape(value))
            elif isinstance(value, list):
                parts.append(tuple(self._item(item) for item in value))
            else:
                parts.append(
                    value if isinstance(value, str | int | float | bool | None) else repr(value)
                )
        return tuple(parts)

    def _item(self, item: object) -> object:
        if isinstance(item, ast.stmt):
            return self.of(item)
        if isinstance(item, ast.AST):
            return self._shape(item)
        return item

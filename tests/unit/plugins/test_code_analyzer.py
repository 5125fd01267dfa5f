"""The local analyzer against a hand-counted fixture (tests/fixtures/analyzer/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codetune_studio.plugins.api import PluginError, ToolContext, ToolInputs
from codetune_studio.plugins.builtin.code_analyzer import (
    AnalyzerOptions,
    CodeAnalyzer,
    FunctionReport,
    analyze_source,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "analyzer"
SAMPLE = (FIXTURES / "sample_module.txt").read_text(encoding="utf-8")


def _function(name: str) -> FunctionReport:
    report = analyze_source(SAMPLE)
    return next(f for f in report.functions if f.name == name)


def test_counts_match_the_hand_count() -> None:
    metrics = analyze_source(SAMPLE).metrics

    assert metrics["parsed"] is True
    assert metrics["lines"] == 93
    # simple, branchy, fetch, Shape.area, Shape._private, Shape._private.inner, deep, copy_one, copy_two
    assert metrics["functions"] == 9
    assert metrics["async_functions"] == 1
    assert metrics["classes"] == 1
    assert metrics["imports"] == 5
    assert metrics["imported_names"] == 6  # os, sys, json, List, Optional, OrderedDict


def test_complexity_follows_radon_rules() -> None:
    # branchy: 1 + if + and + elif + or + for + for-else + while + 2 excepts + try-else
    #          + comprehension + its if + conditional expression + assert (its `and` not counted)
    assert _function("branchy").complexity == 15
    assert _function("simple").complexity == 1
    assert _function("fetch").complexity == 2  # async for
    assert _function("deep").complexity == 5  # if, for, while, except
    assert _function("copy_one").complexity == 2
    assert _function("Shape._private").complexity == 1  # the nested def adds nothing
    assert _function("Shape._private.inner").complexity == 1


def test_lengths_and_nesting() -> None:
    branchy = _function("branchy")
    assert (branchy.line, branchy.end_line, branchy.length, branchy.nesting) == (15, 41, 27, 1)
    assert _function("deep").nesting == 5
    assert _function("fetch").is_async is True


def test_findings_match_the_hand_count() -> None:
    findings = analyze_source(SAMPLE).findings

    assert [(f.line, f.column, f.severity, f.rule) for f in findings] == [
        (4, 1, "warning", "unused-import"),  # sys
        (6, 1, "warning", "unused-import"),  # List (Optional is used in a quoted annotation)
        (15, 1, "warning", "complexity"),  # branchy, 15 > 10
        (47, 5, "warning", "unused-variable"),  # unused_local (_ignored is exempt)
        (53, 1, "info", "missing-docstring"),  # class Shape
        (54, 5, "info", "missing-docstring"),  # Shape.area (_private is exempt)
        (69, None, "warning", "deep-nesting"),  # the try, fifth level
        (88, 5, "warning", "duplicate-block"),  # copy_two's body repeats copy_one's
    ]
    messages = [f.message for f in findings]
    assert messages[0] == "'sys' is imported but never used"
    assert messages[2].startswith("branchy has cyclomatic complexity 15 (limit 10)")
    assert messages[3] == "local name 'unused_local' is assigned but never used"
    assert messages[6].startswith("deep nests blocks 5 deep (limit 4)")
    assert messages[7] == "lines 88-93 duplicate lines 78-83 (4 statements)"


def test_thresholds_come_from_settings() -> None:
    result = CodeAnalyzer().run(
        ToolInputs(code=SAMPLE, path="sample.py"),
        ToolContext(
            settings={"max_complexity": "15", "max_function_lines": "20", "max_nesting": "5"}
        ),
    )

    rules = [(f.line, f.rule) for f in result.findings]
    assert (15, "complexity") not in rules
    assert (15, "long-function") in rules  # 27 lines > 20
    assert not any(rule == "deep-nesting" for _, rule in rules)
    assert all(f.path == "sample.py" for f in result.findings)


def test_bad_threshold_is_a_clear_error() -> None:
    with pytest.raises(PluginError, match="max_complexity must be a whole number, not 'ten'"):
        AnalyzerOptions.from_settings({"max_complexity": "ten"})


def test_syntax_error_has_line_and_column() -> None:
    report = analyze_source((FIXTURES / "broken_module.txt").read_text(encoding="utf-8"))

    assert report.parsed is False
    (finding,) = report.findings
    assert (finding.severity, finding.rule, finding.line, finding.column) == (
        "error",
        "syntax-error",
        4,
        12,
    )
    assert finding.message == "SyntaxError: invalid syntax"


def test_package_init_is_not_checked_for_unused_imports() -> None:
    result = CodeAnalyzer().run(
        ToolInputs(code='"""Pkg."""\nimport os\n', path="pkg/__init__.py"), ToolContext()
    )

    assert result.findings == ()


def test_elif_chain_does_not_deepen_nesting() -> None:
    code = "def f(x):\n    if x == 1:\n        pass\n    elif x == 2:\n        pass\n    elif x == 3:\n        pass\n    else:\n        if x:\n            pass\n"

    (function,) = analyze_source(code).functions
    assert function.nesting == 2  # the nested `if` under `else` is level 2; each elif stays at 1
    assert function.complexity == 5


def test_match_statement_counts_cases_but_not_the_wildcard() -> None:
    code = "def f(x):\n    match x:\n        case 1:\n            pass\n        case [a, b]:\n            pass\n        case _:\n            pass\n"

    (function,) = analyze_source(code).functions
    assert function.complexity == 3


def test_result_is_json_serialisable_for_storage() -> None:
    result = CodeAnalyzer().run(ToolInputs(code=SAMPLE, path="sample.py", row=3), ToolContext())

    dumped = result.model_dump(mode="json")
    assert type(result).model_validate(dumped) == result
    assert dumped["row"] == 3
    assert dumped["metrics"]["functions"] == 9


def test_byte_order_mark_and_empty_code_are_fine() -> None:
    assert analyze_source("\ufeffx = 1\n").parsed is True
    assert analyze_source("").findings == []

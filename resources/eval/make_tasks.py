"""Generate the held-out eval tasks, ``python-tasks.jsonl``, from the table below.

Run from anywhere: ``python resources/eval/make_tasks.py``. The tasks come from the same families
as the training pairs in ``../datasets/make_samples.py`` (one-line functions over numbers,
strings and lists, asked as "Write a Python function name(args) that ..."), with other names and
values, so a model tuned on the samples can pass some of them, and none is a training pair
(``tests/unit/test_eval_tasks.py`` checks both). Each line carries HumanEval's fields plus a
``canonical_solution``; every solution is run against its tests before the file is written.

Each task also carries an ``answer_prefix``, its signature (``def triple(x):``), which the answer
is made to start with, as bigcode's instruct-HumanEval puts the signature at the start of the
response. The starter model is too small to have learnt to copy a name from its prompt (that
takes thousands of pre-training steps on the same patterns), so without it every answer fails on
a misspelt name and the quickstart's table can only read 0% against 0%; with it, the table
measures what tuning changes: whether the model writes the right body.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (signature, what it does, body expression, test asserts)
TASKS: list[tuple[str, str, str, list[str]]] = [
    ("triple(x)", "returns three times x", "3 * x", ["triple(4) == 12", "triple(-2) == -6"]),
    ("halve(x)", "returns half of x as a float", "x / 2", ["halve(9) == 4.5", "halve(0) == 0"]),
    ("add_three(a, b, c)", "returns the sum of a, b and c", "a + b + c",
     ["add_three(1, 2, 3) == 6", "add_three(-1, 0, 5) == 4"]),
    ("multiply_three(a, b, c)", "returns the product of a, b and c", "a * b * c",
     ["multiply_three(2, 3, 4) == 24", "multiply_three(5, 0, 9) == 0"]),
    ("is_zero(x)", "returns True if x equals zero", "x == 0",
     ["is_zero(0)", "not is_zero(3)", "not is_zero(-1)"]),
    ("is_multiple_of_five(n)", "returns True if n is a multiple of five", "n % 5 == 0",
     ["is_multiple_of_five(25)", "not is_multiple_of_five(12)"]),
    ("inches_to_cm(inches)", "converts inches to centimetres", "inches * 2.54",
     ["round(inches_to_cm(10), 1) == 25.4", "inches_to_cm(0) == 0"]),
    ("minutes_to_seconds(minutes)", "converts minutes to seconds", "minutes * 60",
     ["minutes_to_seconds(3) == 180", "minutes_to_seconds(0) == 0"]),
    ("largest_of_three(a, b, c)", "returns the largest of three numbers", "max(a, b, c)",
     ["largest_of_three(4, 11, 7) == 11", "largest_of_three(-3, -8, -5) == -3"]),
    ("abs_value(x)", "returns the absolute value of x", "abs(x)",
     ["abs_value(-7) == 7", "abs_value(4) == 4"]),
    ("to_upper(s)", "returns s in upper case", "s.upper()",
     ["to_upper('code') == 'CODE'", "to_upper('') == ''"]),
    ("to_lower(s)", "returns s in lower case", "s.lower()",
     ["to_lower('PyThOn') == 'python'"]),
    ("count_spaces(s)", "counts the spaces in s", "s.count(' ')",
     ["count_spaces('a b  c') == 3", "count_spaces('abc') == 0"]),
    ("first_word(s)", "returns the first word of s", "s.split()[0]",
     ["first_word('green apple pie') == 'green'"]),
    ("last_word(s)", "returns the last word of s", "s.split()[-1]",
     ["last_word('green apple pie') == 'pie'"]),
    ("ends_with_period(s)", "returns True if s ends with a full stop", "s.endswith('.')",
     ["ends_with_period('Done.')", "not ends_with_period('Done')"]),
    ("repeat_string(s, n)", "returns s repeated n times", "s * n",
     ["repeat_string('ab', 3) == 'ababab'", "repeat_string('x', 0) == ''"]),
    ("string_length(s)", "returns the number of characters in s", "len(s)",
     ["string_length('kiwi') == 4", "string_length('') == 0"]),
    ("list_length(items)", "returns the number of items in a list", "len(items)",
     ["list_length([7, 8, 9]) == 3", "list_length([]) == 0"]),
    ("max_minus_min(numbers)", "returns the largest number minus the smallest number",
     "max(numbers) - min(numbers)", ["max_minus_min([4, 10, 1]) == 9"]),
    ("negatives(numbers)", "keeps only the negative numbers", "[n for n in numbers if n < 0]",
     ["negatives([3, -1, 0, -6]) == [-1, -6]", "negatives([]) == []"]),
    ("doubles(numbers)", "doubles every number in a list", "[2 * n for n in numbers]",
     ["doubles([1, 5, -2]) == [2, 10, -4]"]),
    ("reverse_list(items)", "returns the items of a list in reverse order", "items[::-1]",
     ["reverse_list([1, 2, 3]) == [3, 2, 1]", "reverse_list([]) == []"]),
    ("last_item(items)", "returns the last item of a list", "items[-1]",
     ["last_item([4, 5, 6]) == 6", "last_item(['z']) == 'z'"]),
    ("sum_of_squares(numbers)", "returns the sum of the squares of a list of numbers",
     "sum(n * n for n in numbers)", ["sum_of_squares([1, 2, 3]) == 14", "sum_of_squares([]) == 0"]),
    ("count_evens(numbers)", "counts the even numbers in a list",
     "sum(1 for n in numbers if n % 2 == 0)", ["count_evens([2, 3, 4, 7, 10]) == 3"]),
    ("keys_list(mapping)", "returns the keys of a dict as a list", "list(mapping)",
     ["keys_list({'a': 1, 'b': 2}) == ['a', 'b']", "keys_list({}) == []"]),
    ("total_length(words)", "returns the total number of characters in a list of words",
     "sum(len(w) for w in words)", ["total_length(['ab', 'cde']) == 5"]),
]  # fmt: skip


def build() -> list[dict[str, str]]:
    """Every task, with its reference solution checked against its tests."""
    rows = []
    for signature, doing, body, checks in TASKS:
        name = signature.split("(")[0]
        solution = f"def {signature}:\n    return {body}\n"
        tests = "".join(f"assert {check}\n" for check in checks)
        namespace: dict[str, object] = {}
        exec(solution + "\n" + tests, namespace)  # noqa: S102 - our own table
        rows.append(
            {
                "task_id": f"codetune/{name}",
                "prompt": f"Write a Python function {signature} that {doing}.",
                "entry_point": name,
                "answer_prefix": f"def {signature}:",
                "tests": tests,
                "canonical_solution": solution,
            }
        )
    return rows


def main() -> int:
    """Write the task file and say how many tasks it holds."""
    rows = build()
    target = HERE / "python-tasks.jsonl"
    with target.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    sys.stdout.write(f"wrote {len(rows)} tasks to {target.name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

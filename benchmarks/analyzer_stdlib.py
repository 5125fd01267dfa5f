"""Run the local code analyzer over the Python standard library's own source.

Prints files analysed, files per second, lines per second and the parse failures (which are
expected: the stdlib ships a few deliberately broken test files). Usage::

    python benchmarks/analyzer_stdlib.py [--limit N] [--show-failures]
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
import time
import tokenize
from collections import Counter
from pathlib import Path

from codetune_studio.plugins.builtin.code_analyzer import analyze_source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="analyse only the first N files")
    parser.add_argument(
        "--show-failures", action="store_true", help="list the files that fail to parse"
    )
    args = parser.parse_args(argv)

    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)
    if args.limit:
        files = files[: args.limit]

    failures: list[tuple[Path, str]] = []
    rules: Counter[str] = Counter()
    lines = 0
    unreadable = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    for path in files:
        try:
            # tokenize.open honours coding declarations and byte-order marks, as Python does.
            with tokenize.open(path) as handle:
                code = handle.read()
        except (SyntaxError, UnicodeDecodeError, OSError):
            unreadable += 1
            continue
        report = analyze_source(code, check_unused_imports=path.name != "__init__.py")
        lines += report.lines
        rules.update(f.rule for f in report.findings)
        if not report.parsed:
            failures.append((path, report.findings[0].message))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started

    analysed = len(files) - unreadable
    print(f"Python {sys.version.split()[0]} stdlib at {root}")
    print(f"files analysed:   {analysed} ({unreadable} undecodable, skipped)")
    print(f"lines:            {lines}")
    # CPU time as well: on a shared machine the wall time mostly measures the neighbours.
    print(f"time:             {elapsed:.1f} s wall, {cpu:.1f} s CPU")
    print(f"files per second: {analysed / elapsed:.0f} wall, {analysed / cpu:.0f} per CPU second")
    print(f"lines per second: {lines / elapsed:.0f} wall, {lines / cpu:.0f} per CPU second")
    print(f"parse failures:   {len(failures)}")
    print(
        "findings by rule: " + ", ".join(f"{rule} {count}" for rule, count in rules.most_common())
    )
    if args.show_failures:
        for path, message in failures:
            print(f"  {path.relative_to(root)}: {message}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

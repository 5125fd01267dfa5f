"""``make reliability``: run every reliability scenario and print a report.

Usage: ``python -m tests.reliability.report [--trials N] [pytest args...]``. Each scenario
(a test function; its parametrized trials counted together) is listed with its trials, its
failures and what the trials recorded (where a worker was killed, conflicts reported).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest

#: Where the scenarios live: the kill/outage/concurrency suite, the plugin torture tests and
#: the window started against an unreachable database.
PATHS = [
    "tests/reliability",
    "tests/integration/plugins/test_plugin_hostility.py",
    "tests/qt/test_app_start.py",
]


@dataclass
class _Scenario:
    trials: int = 0
    failures: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


class _Collector:
    def __init__(self) -> None:
        self.scenarios: dict[str, _Scenario] = defaultdict(_Scenario)

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when != "call" and not (report.when == "setup" and report.failed):
            return
        name = report.nodeid.split("::")[-1].split("[")[0]
        where = report.nodeid.split("::")[0].rsplit("/", 1)[-1]
        scenario = self.scenarios[f"{where}::{name}"]
        scenario.trials += 1
        scenario.seconds += report.duration
        if report.failed:
            scenario.failures += 1
            scenario.notes.append(str(report.longrepr).strip().splitlines()[-1][:120])
        elif report.skipped:
            scenario.trials -= 1
            scenario.notes.append("skipped")
        for key, value in report.user_properties:
            scenario.notes.append(f"{key}: {value}")


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and print the report; exit 1 if any trial failed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20, help="kill/resume trials (default 20)")
    args, rest = parser.parse_known_args(argv)
    os.environ["CODETUNE_RELIABILITY_TRIALS"] = str(args.trials)
    collector = _Collector()
    started = time.monotonic()
    code = pytest.main(
        ["-q", "-m", "reliability", "-p", "no:cacheprovider", *PATHS, *rest],
        plugins=[collector],
    )
    total = time.monotonic() - started
    width = max((len(n) for n in collector.scenarios), default=10)
    lines = [
        "",
        "Reliability report",
        "=" * 18,
        f"{'scenario':<{width}}  trials  failures  seconds",
    ]
    for name, scenario in sorted(collector.scenarios.items()):
        lines.append(
            f"{name:<{width}}  {scenario.trials:>6}  {scenario.failures:>8}  {scenario.seconds:>7.1f}"
        )
        for note in scenario.notes:
            lines.append(f"{'':<{width}}    - {note}")
    trials = sum(s.trials for s in collector.scenarios.values())
    failures = sum(s.failures for s in collector.scenarios.values())
    lines.append(f"\n{trials} trials, {failures} failures, {total:.0f} s (pytest exit {int(code)})")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if code == 0 and failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

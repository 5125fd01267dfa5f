"""The quickstart's before/after table, reproduced: build the starter, tune it, evaluate both.

Runs the same three CLI commands the quickstart page shows, in a fresh data folder, and times
each one (wall clock and the CPU time of the child processes, since the machine may be shared):

1. the starter model build: ``dataset inspect --model starter`` builds it on first use (as the
   first ``train`` would), so its time is counted apart from the training's,
2. ``train resources/recipes/quickstart.yaml``,
3. ``eval v:ID --tasks resources/eval/python-tasks.jsonl --compare-base`` (greedy, or
   ``--samples N --temperature T``: pass@1 is then the unbiased estimate over N answers a task,
   and pass@N whether any of them passed).

Usage::

    python benchmarks/quickstart_table.py [--data-dir DIR] [--max-new-tokens 128]
        [--samples 10 --temperature 0.8] [--set training.max_steps=300 ...]

Prints the eval table, then one JSON line with the figures (pass@1 and pass@k, parse rate, EOS
share, mean tokens for tuned and base; seconds and CPU seconds per stage).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "resources" / "recipes" / "quickstart.yaml"
TASKS = ROOT / "resources" / "eval" / "python-tasks.jsonl"
SAMPLES = ROOT / "resources" / "datasets" / "python-instructions.jsonl"


def timed(command: list[str]) -> tuple[str, float, float]:
    """Run a CLI command; its output, wall seconds and CPU seconds (user + system, children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}")
    return done.stdout, round(wall, 1), round(cpu, 1)


def figures(evaluation: dict[str, Any]) -> dict[str, float]:
    return {
        "pass_at_1": round(evaluation["pass_at_1"], 4),
        **{f"pass_at_{k}": round(v, 4) for k, v in evaluation["pass_at_k"].items() if k != "1"},
        "parse_rate": round(evaluation["parse_rate"], 4),
        "eos_rate": round(evaluation["eos_rate"], 4),
        "mean_tokens": round(evaluation["mean_tokens"], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, help="default: a new temporary folder")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--samples", type=int, default=1, help="answers per task (default 1)")
    parser.add_argument(
        "--temperature", type=float, help="eval's default: 0 (greedy) for one sample"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe overrides passed to train")  # fmt: skip
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="codetune-quickstart-"))
    cli = [sys.executable, "-m", "codetune_studio", "--data-dir", str(data_dir)]
    stages: dict[str, dict[str, float]] = {}

    _, wall, cpu = timed([*cli, "dataset", "inspect", str(SAMPLES), "--model", "starter"])
    stages["starter build (first use)"] = {"seconds": wall, "cpu_seconds": cpu}

    overrides = [part for item in args.set for part in ("--set", item)]
    out, wall, cpu = timed([*cli, "train", str(RECIPE), *overrides])
    stages["train"] = {"seconds": wall, "cpu_seconds": cpu}
    match = re.search(r"Model version: (\d+)", out)
    if match is None:
        raise SystemExit(f"no model version in the train output:\n{out}")

    report = data_dir / "quickstart-eval.json"
    table, wall, cpu = timed(
        [*cli, "eval", f"v:{match.group(1)}", "--tasks", str(TASKS), "--compare-base",
         "--max-new-tokens", str(args.max_new_tokens), "--samples", str(args.samples),
         *(["--temperature", str(args.temperature)] if args.temperature is not None else []),
         "--out", str(report)]
    )  # fmt: skip
    stages["eval (tuned + base)"] = {"seconds": wall, "cpu_seconds": cpu}
    results = json.loads(report.read_text(encoding="utf-8"))["results"]
    sys.stdout.write(table + "\n")
    summary = {
        "tuned": figures(results[0]),
        "base": figures(results[1]),
        "stages": stages,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

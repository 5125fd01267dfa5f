"""Generation and eval throughput: the studio against plain library calls, from one run.

Generation: the same model, prompt and greedy settings through the studio (the generation child,
answering alternately with streaming, as the Playground does, and without, as eval does) and
through a plain ``model.generate`` in this process. Like for like, or the run stops: the same
prompt text (the child's ``GenerationStarted`` is checked), the same torch thread count (the
child's ``ModelLoaded.threads``), the same tokens and answer (greedy), the same decoding
settings. The studio's figure is ``GenerationFinished.tokens_per_s``, the one the Playground
shows: the child's ``generate`` call alone, so model loading is left out of both sides, and each
side's first answer (a warm-up) is dropped.

On a shared machine the rate drifts by a factor of two within a minute, so measuring one side
and then the other compares the load, not the code. The benchmark runs rounds instead: each
round ``--repeat`` plain answers (on a model loaded once), a fresh child (a warm-up, then
``--repeat`` answers with streaming and ``--repeat`` without, alternating), and ``--repeat`` plain
answers again, so the plain figure straddles the child's; a round's ratio is its medians' ratio,
and the report gives the median ratio over ``--rounds`` rounds with its quartiles and extremes,
and the load average at start and end.

Side by side: a child streaming ``4 * --repeat`` answers while this process answers with plain
``model.generate`` at the same time, so both meet the very same load; the ratio of their median
rates says whether the child computes any slower, steadier than sequential rounds. (It found the
child started in a session of its own, a separate Linux scheduler autogroup, at 0.15-0.74x.)

Streamer: the streaming path's own cost per token (incremental decoding, stop-string holding and
the child's coalescing of text into events), with no model, as microseconds a token and as a
share of a token's time at the plain rate; a steadier figure than the ratio on a busy machine.

Eval: the bundled held-out tasks' reference solutions, run with their tests in the sandbox (one
child process per sample) and with ``exec`` in this process, as samples per second.

Usage::

    python benchmarks/generation_throughput.py [--base DIR --adapter DIR] [--tokens 128]
        [--repeat 3] [--rounds 8] [--no-eval]

Without ``--base`` a starter-sized random model (4 layers, hidden 256) is built in a temporary
folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Write a Python function `triple` that returns three times x."


def _quartiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if len(ordered) < 2:  # quantiles need two points
        return {"min": round(ordered[0], 3), "max": round(ordered[0], 3)}
    low, _, high = statistics.quantiles(ordered, n=4, method="inclusive")
    return {
        "min": round(ordered[0], 3),
        "q1": round(low, 3),
        "q3": round(high, 3),
        "max": round(ordered[-1], 3),
    }


class _Plain:
    """The plain side: the same model loaded in this process, answered by ``model.generate``.

    It renders the prompt with the studio's own template (so both sides see the same token ids;
    the child's ``GenerationStarted`` is checked against it) and passes the decoding settings
    the studio passes: greedy, the sampling knobs unset (leaving them at the model's defaults
    makes transformers build unused warpers).
    """

    def __init__(self, base: str, adapter: Path | None, tokens: int) -> None:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from codetune_studio.core.generation import ChatMessage
        from codetune_studio.engine.generation import render_prompt
        from codetune_studio.engine.threads import configure_torch_threads

        self._torch = torch
        self.threads = configure_torch_threads()  # as the child does, from the same variables
        self.tokenizer = AutoTokenizer.from_pretrained(base)
        model: Any = AutoModelForCausalLM.from_pretrained(base, dtype="auto")
        if adapter is not None:
            model = PeftModel.from_pretrained(model, str(adapter))
        self.model = model.eval()
        self.prompt_text = render_prompt(
            self.tokenizer, (ChatMessage(role="user", content=PROMPT),)
        )
        self.ids = self.tokenizer(self.prompt_text, add_special_tokens=False, return_tensors="pt")
        self.max_new_tokens = tokens
        self.text = ""
        self.tokens = 0
        self.answer()  # warm-up, left out of every figure

    def answer(self) -> float:
        """One answer; returns its tokens per second."""
        start = time.perf_counter()
        with self._torch.inference_mode():
            out = self.model.generate(
                **self.ids,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                repetition_penalty=1.0,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        seconds = time.perf_counter() - start
        new = out[0, self.ids["input_ids"].shape[1] :]
        self.tokens = int(new.shape[0])
        self.text = str(self.tokenizer.decode(new, skip_special_tokens=True))
        return self.tokens / seconds


def _child_round(base: str, adapter: Path | None, tokens: int, answers: int) -> dict[str, Any]:
    """One generation child: a warm-up answer, then ``answers`` streamed and ``answers`` not,
    alternating; the rates are the ``GenerationFinished.tokens_per_s`` the Playground shows."""
    from codetune_studio.core.generation import (
        ChatMessage,
        GenerationFinished,
        GenerationParams,
        GenerationRequest,
        GenerationStarted,
        ModelLoaded,
    )
    from codetune_studio.services.generation import GenerationProcess, ResolvedModel

    params = GenerationParams(max_new_tokens=tokens, temperature=0.0)
    requests = [
        GenerationRequest(
            id=str(i),
            messages=(ChatMessage(role="user", content=PROMPT),),
            params=params,
            stream=i % 2 == 1,
        )
        for i in range(1 + 2 * answers)
    ]
    with GenerationProcess(ResolvedModel(base, adapter, "bench"), requests, device="cpu") as child:
        events = list(child.events())
    loaded = next(e for e in events if isinstance(e, ModelLoaded))
    started = next(e for e in events if isinstance(e, GenerationStarted))
    finished = [e for e in events if isinstance(e, GenerationFinished)][1:]  # less the warm-up
    return {
        "threads": loaded.threads,
        "prompt_text": started.prompt_text,
        "tokens": {e.tokens for e in finished},
        "texts": {e.text for e in finished},
        "streaming": [e.tokens_per_s for e in finished if int(e.request) % 2 == 1],
        "not_streaming": [e.tokens_per_s for e in finished if int(e.request) % 2 == 0],
    }


def _check_like_with_like(child: dict[str, Any], plain: _Plain) -> None:
    """Stop the run unless both sides had the same prompt, threads, tokens and answer."""
    if child["prompt_text"] != plain.prompt_text:
        raise SystemExit("the child rendered another prompt than the plain side")
    if child["threads"] != plain.threads:
        raise SystemExit(f"threads differ: child {child['threads']}, plain {plain.threads}")
    if child["tokens"] != {plain.tokens} or child["texts"] != {plain.text}:
        raise SystemExit("the two sides generated different answers")


def interleaved_generation(
    base: str, adapter: Path | None, tokens: int, rounds: int, answers: int
) -> dict[str, Any]:
    """The studio against plain ``model.generate`` in rounds: ``answers`` plain answers, a
    child, ``answers`` plain answers again, so the plain figure straddles the child's time and
    drifting load falls on both; each round's ratio is its medians' ratio, and the report gives
    the median ratio over rounds with its spread."""
    plain = _Plain(base, adapter, tokens)
    streaming: list[float] = []
    not_streaming: list[float] = []
    plain_rates: list[float] = []
    rows = []
    load_before = os.getloadavg()[0]
    for _ in range(rounds):
        own = [plain.answer() for _ in range(answers)]
        child = _child_round(base, adapter, tokens, answers)
        own += [plain.answer() for _ in range(answers)]
        _check_like_with_like(child, plain)
        streaming.extend(child["streaming"])
        not_streaming.extend(child["not_streaming"])
        plain_rates.extend(own)
        base_rate = statistics.median(own)
        rows.append(
            (
                statistics.median(child["streaming"]) / base_rate,
                statistics.median(child["not_streaming"]) / base_rate,
            )
        )
    ratios_streaming = [row[0] for row in rows]
    ratios_not = [row[1] for row in rows]
    return {
        "tokens_per_answer": plain.tokens,
        "threads_each_side": plain.threads,
        "rounds": rounds,
        "answers_per_round": {"studio_each_mode": answers, "plain": 2 * answers},
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "plain_tokens_per_s": round(statistics.median(plain_rates), 1),
        "studio_streaming_tokens_per_s": round(statistics.median(streaming), 1),
        "studio_not_streaming_tokens_per_s": round(statistics.median(not_streaming), 1),
        "ratio_streaming": round(statistics.median(ratios_streaming), 3),
        "ratio_streaming_spread": _quartiles(ratios_streaming),
        "ratio_not_streaming": round(statistics.median(ratios_not), 3),
        "ratio_not_streaming_spread": _quartiles(ratios_not),
        "ratios_streaming_by_round": [round(r, 3) for r in ratios_streaming],
    }


def side_by_side_generation(
    base: str, adapter: Path | None, tokens: int, answers: int
) -> dict[str, Any]:
    """The child (streaming) and plain ``model.generate`` at the same time, so both meet exactly
    the same load (each other's included, symmetrically): the ratio of their median rates is
    the child's efficiency against this process's, steadier than any sequential figure."""
    from codetune_studio.core.generation import (
        ChatMessage,
        GenerationFinished,
        GenerationParams,
        GenerationRequest,
    )
    from codetune_studio.services.generation import GenerationProcess, ResolvedModel

    plain = _Plain(base, adapter, tokens)
    params = GenerationParams(max_new_tokens=tokens, temperature=0.0)
    requests = [
        GenerationRequest(
            id=str(i), messages=(ChatMessage(role="user", content=PROMPT),), params=params
        )
        for i in range(1 + answers)
    ]
    finished: list[GenerationFinished] = []
    own: list[float] = []
    load_before = os.getloadavg()[0]
    with GenerationProcess(ResolvedModel(base, adapter, "bench"), requests, device="cpu") as child:
        while not finished and not child.ended:  # loading and the warm-up answer
            finished += [e for e in child.poll(timeout_s=0.1) if isinstance(e, GenerationFinished)]
        while not child.ended:
            rate = plain.answer()
            finished += [e for e in child.poll() if isinstance(e, GenerationFinished)]
            if len(finished) <= answers:  # the child was still answering all along
                own.append(rate)
        child.finish()
    measured = finished[1:]
    if not own or len(measured) != answers:
        raise SystemExit("the child ended before the plain side could answer")
    if {e.text for e in measured} != {plain.text} or {e.tokens for e in measured} != {plain.tokens}:
        raise SystemExit("the two sides generated different answers")
    studio = statistics.median(e.tokens_per_s for e in measured)
    return {
        "answers": {"studio": len(measured), "plain": len(own)},
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "plain_tokens_per_s": round(statistics.median(own), 1),
        "studio_streaming_tokens_per_s": round(studio, 1),
        "ratio_streaming": round(studio / statistics.median(own), 3),
    }


def streamer_cost(base: str, repeat: int) -> dict[str, Any]:
    """The streaming path's own cost per token, without a model: decoding, stop-string holding
    and the child's coalescing, fed the bundled tasks' reference solutions token by token."""
    import torch
    from transformers import AutoTokenizer

    from codetune_studio.engine.generation import _Stream
    from codetune_studio.worker.generate import _Coalescer

    tokenizer = AutoTokenizer.from_pretrained(base)
    task_file = ROOT / "resources" / "eval" / "python-tasks.jsonl"
    code = "\n\n".join(
        json.loads(line)["canonical_solution"]
        for line in task_file.read_text(encoding="utf-8").splitlines()
        if line
    )
    tokens = [torch.tensor([t]) for t in tokenizer(code, add_special_tokens=False)["input_ids"]]
    costs = []
    for _ in range(max(repeat, 5)):
        sink = _Coalescer(lambda _text: None)
        stream = _Stream(tokenizer, 0, (), sink.add)
        start = time.perf_counter()
        for token in tokens:
            stream.put(token)
        stream.end()
        sink.flush()
        costs.append((time.perf_counter() - start) / len(tokens))
    return {"tokens": len(tokens), "us_per_token": round(min(costs) * 1e6, 2)}


def eval_rates() -> dict[str, Any]:
    from codetune_studio.services.evaluation import build_program, load_tasks
    from codetune_studio.services.sandbox import Sandbox

    task_file = ROOT / "resources" / "eval" / "python-tasks.jsonl"
    raw = [json.loads(line) for line in task_file.read_text(encoding="utf-8").splitlines() if line]
    programs = [
        build_program(task, row["canonical_solution"])[1]
        for task, row in zip(load_tasks(task_file), raw, strict=True)
    ]
    sandbox = Sandbox()
    start = time.perf_counter()
    passed = sum(sandbox.run(program).passed for program in programs)
    sandboxed = time.perf_counter() - start
    start = time.perf_counter()
    for program in programs:
        exec(program, {})
    in_process = time.perf_counter() - start
    return {
        "samples": len(programs),
        "passed_in_sandbox": passed,
        "isolation": sandbox.isolation,
        "sandbox_samples_per_s": round(len(programs) / sandboxed, 2),
        "in_process_samples_per_s": round(len(programs) / in_process, 1),
    }


def main() -> int:
    """Run every measurement and print one JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--base", help="base model folder (default: a random starter-sized one)")
    parser.add_argument("--adapter", type=Path, help="adapter folder on --base")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per answer")
    parser.add_argument(
        "--repeat", type=int, default=3, help="answers per side (and per mode) in each round"
    )
    parser.add_argument(
        "--rounds", type=int, default=8, help="rounds: plain answers, a child, plain answers again"
    )
    parser.add_argument("--no-eval", action="store_true", help="measure generation only")
    args = parser.parse_args()
    from codetune_studio.engine.threads import prefer_passive_waiting

    prefer_passive_waiting()  # as the generation child does, before torch is imported
    with tempfile.TemporaryDirectory() as folder:
        base = args.base
        if base is None:
            from codetune_studio.engine.starter import build_tiny_model_and_tokenizer

            base = str(build_tiny_model_and_tokenizer(Path(folder) / "model", hidden=256, layers=4))
        generation = interleaved_generation(
            base, args.adapter, args.tokens, args.rounds, args.repeat
        )
        side_by_side = side_by_side_generation(base, args.adapter, args.tokens, 4 * args.repeat)
        streamer = streamer_cost(base, args.repeat)
    share = streamer["us_per_token"] * 1e-6 * generation["plain_tokens_per_s"]
    report = {
        "model": base,
        "adapter": str(args.adapter) if args.adapter else None,
        "generation": generation,
        "generation_side_by_side": side_by_side,
        # The streaming path's own share of a token's time at the plain rate.
        "streamer": {**streamer, "share_of_token_time": round(share, 4)},
        "eval": None if args.no_eval else eval_rates(),
    }
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

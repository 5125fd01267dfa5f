"""Generation and eval throughput: the studio against plain library calls, from one run.

Generation: the same model, prompt and greedy settings through the studio (the generation child,
streaming text events as the Playground does, and without streaming as eval does) and through a
plain ``model.generate`` in this process. Greedy decoding yields the same tokens both ways, so
tokens per second compare like for like (the plain call gets the same decoding settings); model loading is left out of both (the child reports
the time of its ``generate`` call, this process times its own), after one warm-up answer each.

Streaming in one child: one generation child answering alternately with and without streaming,
so both meet the same load; the median ratio of each pair's rates (the steadiest end-to-end
figure on a shared machine).

Streamer: the streaming path's own cost per token (incremental decoding, stop-string holding and
the child's coalescing of text into events), with no model, as microseconds a token and as a
share of a token's time at the plain rate; a steadier figure than the ratio on a busy machine.

Eval: the bundled held-out tasks' reference solutions, run with their tests in the sandbox (one
child process per sample) and with ``exec`` in this process, as samples per second.

Usage::

    python benchmarks/generation_throughput.py [--base DIR --adapter DIR] [--tokens 128]
        [--repeat 3] [--no-eval]

Without ``--base`` a starter-sized random model (4 layers, hidden 256) is built in a temporary
folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Write a Python function `triple` that returns three times x."


def studio_rates(
    base: str, adapter: Path | None, tokens: int, repeat: int, *, stream: bool
) -> dict[str, Any]:
    from codetune_studio.core.generation import (
        ChatMessage,
        GenerationFinished,
        GenerationParams,
        GenerationRequest,
    )
    from codetune_studio.services.generation import GenerationProcess, ResolvedModel

    params = GenerationParams(max_new_tokens=tokens, temperature=0.0)
    requests = [
        GenerationRequest(
            id=str(i),
            messages=(ChatMessage(role="user", content=PROMPT),),
            params=params,
            stream=stream,
        )
        for i in range(repeat + 1)
    ]
    start = time.perf_counter()
    with GenerationProcess(ResolvedModel(base, adapter, "bench"), requests, device="cpu") as child:
        finished = [e for e in child.events() if isinstance(e, GenerationFinished)]
    wall = time.perf_counter() - start
    measured = finished[1:]  # the first answer warms up
    return {
        "tokens": measured[0].tokens,
        "tokens_per_s": statistics.median(e.tokens_per_s for e in measured),
        "wall_s_with_start_and_load": round(wall, 2),
    }


def streaming_in_one_child(
    base: str, adapter: Path | None, tokens: int, repeat: int
) -> dict[str, Any]:
    """Streaming against not streaming in one child, answers alternating, so both meet the
    same load from the rest of the machine: the median of each pair's rate ratio."""
    from codetune_studio.core.generation import (
        ChatMessage,
        GenerationFinished,
        GenerationParams,
        GenerationRequest,
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
        for i in range(2 * (repeat + 1))
    ]
    with GenerationProcess(ResolvedModel(base, adapter, "bench"), requests, device="cpu") as child:
        rates = [e.tokens_per_s for e in child.events() if isinstance(e, GenerationFinished)]
    pairs = list(zip(rates[2::2], rates[3::2], strict=True))  # the first pair warms up
    return {
        "pairs": len(pairs),
        "streaming_over_not": round(statistics.median(s / n for n, s in pairs), 3),
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


def plain_rate(base: str, adapter: Path | None, tokens: int, repeat: int) -> dict[str, Any]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codetune_studio.engine.threads import configure_torch_threads

    configure_torch_threads()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model: Any = AutoModelForCausalLM.from_pretrained(base, dtype="auto")
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    rates = []
    generated = 0
    for index in range(repeat + 1):
        start = time.perf_counter()
        with torch.inference_mode():
            # The decoding settings the studio passes: greedy, with the sampling knobs unset
            # (leaving them at the model's defaults makes transformers build unused warpers).
            out = model.generate(
                **ids,
                max_new_tokens=tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                repetition_penalty=1.0,
                pad_token_id=tokenizer.pad_token_id,
            )
        seconds = time.perf_counter() - start
        generated = out.shape[1] - ids["input_ids"].shape[1]
        if index:
            rates.append(generated / seconds)
    return {"tokens": generated, "tokens_per_s": statistics.median(rates)}


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
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-eval", action="store_true", help="measure generation only")
    args = parser.parse_args()
    from codetune_studio.engine.threads import prefer_passive_waiting

    prefer_passive_waiting()  # as the generation child does, before torch is imported
    with tempfile.TemporaryDirectory() as folder:
        base = args.base
        if base is None:
            from codetune_studio.engine.starter import build_tiny_model_and_tokenizer

            base = str(build_tiny_model_and_tokenizer(Path(folder) / "model", hidden=256, layers=4))
        # Interleaved, so load from other processes on the machine falls on both sides.
        first = plain_rate(base, args.adapter, args.tokens, args.repeat)
        streamed = studio_rates(base, args.adapter, args.tokens, args.repeat, stream=True)
        batch = studio_rates(base, args.adapter, args.tokens, args.repeat, stream=False)
        second = plain_rate(base, args.adapter, args.tokens, args.repeat)
        plain = {
            "tokens": first["tokens"],
            "tokens_per_s": (first["tokens_per_s"] + second["tokens_per_s"]) / 2,
            "runs": [round(first["tokens_per_s"], 2), round(second["tokens_per_s"], 2)],
        }
        streamer = streamer_cost(base, args.repeat)
        paired = streaming_in_one_child(base, args.adapter, args.tokens, args.repeat)
    share = streamer["us_per_token"] * 1e-6 * plain["tokens_per_s"]
    report = {
        "model": base,
        "adapter": str(args.adapter) if args.adapter else None,
        "plain_generate": plain,
        "studio_streaming": streamed,
        "studio_no_streaming": batch,
        "ratio_streaming": round(streamed["tokens_per_s"] / plain["tokens_per_s"], 3),
        "ratio_no_streaming": round(batch["tokens_per_s"] / plain["tokens_per_s"], 3),
        "streaming_in_one_child": paired,
        # The streaming path's own share of a token's time at the plain rate.
        "streamer": {**streamer, "share_of_token_time": round(share, 4)},
        "eval": None if args.no_eval else eval_rates(),
    }
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Can a model copy? Loss on a random token sequence the first time and when it repeats.

A model that can copy from its context (an "induction head") predicts the second half of
``s + s`` far better than the first; one that cannot pays the same both times. Every held-out
task needs it (the name asked for must reappear after ``def``), so this is the first thing to
measure on a new starter model.

Usage::

    python benchmarks/starter_copying.py MODEL_DIR [--rows 8] [--length 50]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a model folder (e.g. <data dir>/models/starter-v2)")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--length", type=int, default=50)
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.model)
    model.eval()  # type: ignore[no-untyped-call]
    vocab = int(model.config.vocab_size)
    generator = torch.Generator().manual_seed(0)
    # Ids above the special and single-byte tokens: ordinary, merged tokens.
    half = torch.randint(300, vocab, (args.rows, args.length), generator=generator)
    ids = torch.cat([half, half], dim=1)
    with torch.no_grad():
        logits = model(ids).logits[:, :-1]
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none"
    ).view(args.rows, -1)
    first = float(nll[:, : args.length - 1].mean())
    second = float(nll[:, args.length :].mean())
    sys.stdout.write(
        json.dumps({"first_nats": round(first, 2), "repeat_nats": round(second, 2)}) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

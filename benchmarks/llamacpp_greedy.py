"""Compare a GGUF export's greedy tokens in llama.cpp with the source model's (optional check).

Needs the ``llamacpp`` extra (``pip install -e ".[llamacpp]"``: llama-cpp-python builds llama.cpp
from source, several minutes), so it is a make target (``make verify-llamacpp EXPORT=DIR``), not a
CI step. The reference comes from the same probe ``codetune-studio verify`` uses: the source
loaded with transformers/peft in float32, greedy, on the same fixed prompts (the plain-text ones;
llama.cpp tokenizes them itself, which checks the GGUF tokenizer too).

Exit status: 0 every prompt's greedy tokens match, 1 some differ, 2 not a GGUF export.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from codetune_studio.core.child_cmd import python_module_command
from codetune_studio.core.child_env import child_environment
from codetune_studio.engine.export import gguf_file_name, read_manifest
from codetune_studio.engine.export_verify import NEW_TOKENS, PROMPTS


def _reference(source: str, prompts: list[dict[str, str]], work: Path) -> list[list[int]]:
    from safetensors import safe_open

    prompts_file = work / "prompts.json"
    prompts_file.write_text(json.dumps(prompts), encoding="utf-8")
    out = work / "reference.safetensors"
    argv = python_module_command(
        "codetune_studio.engine.export_probe",
        "reference",
        "--source",
        source,
        "--prompts",
        str(prompts_file),
        "--new-tokens",
        str(NEW_TOKENS),
        "--out",
        str(out),
        "--report",
        str(work / "report.json"),
    )
    subprocess.run(argv, check=True, env=child_environment({"HF_HUB_OFFLINE": "1"}), timeout=900)
    with safe_open(str(out), "np") as ref:
        return [ref.get_tensor(f"ids.{i}").tolist() for i in range(len(prompts))]


def main(argv: list[str]) -> int:
    """Run the comparison on the export folder ``argv[0]``."""
    from llama_cpp import Llama  # type: ignore[import-not-found,unused-ignore]  # optional extra

    folder = Path(argv[0])
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("format") != "gguf":
        sys.stderr.write(f"{folder} is not a GGUF export\n")
        return 2
    prompts = [dict(p) for p in PROMPTS if p["kind"] == "text"]
    with tempfile.TemporaryDirectory() as scratch:
        expected = _reference(manifest["source"]["path"], prompts, Path(scratch))
    model_path = str(folder / gguf_file_name(manifest["gguf_type"]))
    llm = Llama(model_path=model_path, n_ctx=256, verbose=False, logits_all=False)
    failures = 0
    for prompt, reference in zip(prompts, expected, strict=True):
        tokens = llm.tokenize(prompt["text"].encode(), add_bos=False, special=True)
        generated: list[int] = []
        for token in llm.generate(tokens, top_k=1, temp=0.0, reset=True):
            generated.append(token)
            if len(generated) >= len(reference) - len(tokens) or token == llm.token_eos():
                break
        same = tokens + generated == reference[: len(tokens) + len(generated)]
        failures += not same
        sys.stdout.write(
            f"{'match' if same else 'DIFFER'}: {prompt['text']!r}: llama.cpp {tokens + generated}"
            f" vs reference {reference}\n"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The recipe reference, generated from the recipe schema so that it cannot drift from it.

Every key of :class:`~codetune_studio.core.recipe.TrainingRecipe` gets an entry: its type, default
and limits come from the schema, its text from the field's ``description`` and, where there is
more to say, from :data:`NOTES`. A key with neither has no entry, and the documentation test
fails. ``python -m codetune_studio.core.recipe_docs resources/docs/recipe-reference.md`` rewrites
the page the manual shows (the test checks the file is current).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from codetune_studio.core.recipe import TrainingRecipe

__all__ = ["NOTES", "RecipeField", "heading_anchor", "recipe_fields", "recipe_reference_markdown"]

#: What to know about a key beyond its one-line description: when to change it and why.
NOTES: Final[dict[str, str]] = {
    "method": "`lora` trains small adapter matrices and is the default; `dora` adds a learnt "
    "magnitude (a little better, a little slower); `qlora` loads the base model in 4 bits (an "
    "NVIDIA GPU with bitsandbytes); `full` trains every weight (small models only); "
    "`prompt_tuning` trains only virtual prompt tokens.",
    "dataset.path": "See [Dataset formats](dataset-formats.md) for what each format looks like.",
    "dataset.skip_invalid_rows": "Without it, a dataset with even one malformed row is refused; "
    "`codetune-studio dataset inspect PATH` lists them all.",
    "training.learning_rate": "Peak learning rate. 1e-4 to 3e-4 suits LoRA; full fine-tuning "
    "wants 1e-5 to 5e-5. A loss that goes NaN often means it is too high.",
    "training.per_device_train_batch_size": "Examples per step on each device. Lower it first "
    "when memory runs out, and raise `gradient_accumulation_steps` to keep the effective batch.",
    "training.gradient_accumulation_steps": "Steps whose gradients add up before one optimizer "
    "step: the effective batch is this times the batch size times the number of devices.",
    "training.max_seq_length": "Examples longer than this are cut; a cut answer loses its EOS, "
    "so the model never learns to stop there. The token inspector shows where the cut falls.",
    "training.packing": "Packs several short examples into one row of `max_seq_length` tokens, "
    "so less compute goes to padding; attention does not cross example boundaries.",
    "training.train_on_completions_only": "Computes the loss only on the assistant turns (or "
    "the completion): the model learns to answer, not to repeat prompts.",
    "training.warmup_ratio": "Share of the steps over which the learning rate rises from 0.",
    "training.lr_scheduler_type": "How the learning rate falls after warm-up.",
    "training.weight_decay": "AdamW weight decay.",
    "training.seed": "Seeds the data order, the train/validation split and the adapter's "
    "initialisation: the same recipe and data give the same run.",
    "training.precision": "`auto` uses bf16 where the hardware supports it, else fp16 on "
    "GPUs and fp32 on CPUs.",
    "training.gradient_checkpointing": "Recomputes activations in the backward pass: much "
    "less memory for about a third more time.",
    "training.logging_steps": "Log the loss every N optimizer steps.",
    "lora.lora_dropout": "Dropout on the LoRA input; 0 for small datasets trained briefly.",
    "evaluation.tasks": "With an `evaluation` section the model being trained answers these "
    "tasks at every `training.eval_steps` and at the end (on the main process), each answer "
    "runs with its tests in the sandbox, and `eval_pass@1` becomes a curve in the monitor "
    "beside the eval loss, a row of `runs compare` and a metric of the compare dialog; the run "
    "log says how long each evaluation took. A failure there (no sandbox, a vanished task file) "
    "is one warning and training continues. The file is checked when the recipe is read: a "
    "missing file or a malformed line is an error naming `file:line`. "
    "`resources/eval/python-tasks.jsonl` is a small held-out set; HumanEval's layout loads as "
    "it is. Without the section (`evaluation: null`, the default) nothing is evaluated.",
    "evaluation.samples": "Above 1, `eval_pass@N` is recorded too (the unbiased estimator); "
    "with `temperature: 0` every sample is the same, so raise the temperature with it.",
    "evaluation.max_new_tokens": "Each answer costs up to this many tokens of generation on the "
    "training device at every eval step: keep the task set small and this short.",
    "evaluation.max_tasks": "A quick look at a big task file during training; run "
    "`codetune-studio eval` on the finished model for the full score.",
}

_MODELS: Final = {
    "dataset": "DatasetSpec",
    "training": "TrainingSpec",
    "lora": "LoraSpec",
    "evaluation": "EvaluationSpec",
}


@dataclass(frozen=True)
class RecipeField:
    """One key of the recipe, as the reference documents it."""

    key: str
    type: str
    default: str
    limits: str
    description: str
    note: str

    @property
    def documented(self) -> bool:
        """Whether the key has any explanation at all."""
        return bool(self.description.strip() or self.note.strip())


def recipe_fields() -> list[RecipeField]:
    """Every recipe key, top-level keys first, then each section's, in schema order."""
    schema = TrainingRecipe.model_json_schema()
    defs = schema.get("$defs", {})
    fields: list[RecipeField] = []
    for name, prop in schema["properties"].items():
        if name in _MODELS:
            section = defs[_MODELS[name]]
            for inner, inner_prop in section["properties"].items():
                required = inner in section.get("required", [])
                fields.append(_field(f"{name}.{inner}", inner_prop, required))
        else:
            fields.append(_field(name, prop, name in schema.get("required", [])))
    return fields


def _field(key: str, prop: dict[str, Any], required: bool) -> RecipeField:
    return RecipeField(
        key=key,
        type=_type(prop),
        default=_default(prop) if "default" in prop else ("required" if required else "empty"),
        limits=_limits(prop),
        description=str(prop.get("description", "")),
        note=NOTES.get(key, ""),
    )


def _type(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return "one of " + ", ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    if "anyOf" in prop:
        kinds = [_type(p) for p in prop["anyOf"]]
        return " or ".join(dict.fromkeys(kinds))
    kind = str(prop.get("type", "value"))
    if kind == "array":
        return f"list of {_type(prop.get('items', {}))}"
    if kind == "object":
        return "mapping"
    return {"integer": "integer", "number": "number", "boolean": "true/false", "string": "text",
            "null": "null"}.get(kind, kind)  # fmt: skip


def _default(prop: dict[str, Any]) -> str:
    return f"`{json.dumps(prop['default'])}`"


def _limits(prop: dict[str, Any]) -> str:
    parts = []
    for option in [prop, *prop.get("anyOf", [])]:
        for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                          ("exclusiveMaximum", "<"), ("minLength", "length >=")):  # fmt: skip
            if key in option:
                parts.append(f"{sign} {option[key]}")
    return ", ".join(parts)


def heading_anchor(text: str) -> str:
    """The anchor a heading gets (GitHub's rule): lower case, punctuation dropped, - for spaces."""
    lowered = text.strip().lower()
    return re.sub(r"[^\w\- ]", "", lowered).replace(" ", "-")


def recipe_reference_markdown() -> str:
    """The recipe reference page, as Markdown."""
    lines = [
        "# Recipe reference",
        "",
        "<!-- Generated from core/recipe.py by codetune_studio.core.recipe_docs: do not edit. -->",
        "",
        "A recipe is a YAML or JSON file; these are all its keys. In the window, press F1 in a "
        "parameter field to open its entry here. See the [quickstart](quickstart.md) for a "
        "whole recipe.",
        "",
    ]
    section = None
    fields = recipe_fields()
    # Top-level keys first, then each section's.
    for field in sorted(fields, key=lambda f: "." in f.key):
        head = field.key.split(".", 1)[0] if "." in field.key else "Top-level keys"
        if head != section:
            section = head
            lines += [f"## {head}", ""]
        lines += [f"### {field.key}", ""]
        facts = [f"Type: {field.type}", f"default: {field.default}"]
        if field.limits:
            facts.append(f"limits: {field.limits}")
        lines += ["; ".join(facts) + ".", ""]
        # "<data dir>" would read as an HTML tag and swallow the rest of the page.
        description = field.description.replace("<", "&lt;").replace(">", "&gt;")
        text = " ".join(part for part in (description, field.note) if part)
        lines += [text, ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the reference to the file named on the command line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m codetune_studio.core.recipe_docs OUT.md\n")
        return 2
    Path(args[0]).write_text(recipe_reference_markdown(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

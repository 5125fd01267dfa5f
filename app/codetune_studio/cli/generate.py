"""``codetune-studio generate MODEL --prompt TEXT``: stream a model's answer to stdout.

MODEL is a run id (its newest model version), ``v:ID`` (a model version) or a folder (an adapter
folder, whose base model it names, or a full model folder). The prompt is sent as a user turn
through the model's chat template (``--raw`` feeds it as plain text). The model loads and
generates in a child process; Ctrl+C stops the answer where it is.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from codetune_studio.cli.context import CliContext, echo_notice
from codetune_studio.core.generation import (
    ChatMessage,
    GenerationFinished,
    GenerationParams,
    GenerationRequest,
    TokensGenerated,
)

if TYPE_CHECKING:
    import argparse

    from codetune_studio.cli.types import Subparsers
    from codetune_studio.services.generation import ResolvedModel

__all__ = ["add_model_arguments", "register", "resolve_cli_model"]


def register(subparsers: Subparsers) -> None:
    """Add the ``generate`` command."""
    parser = subparsers.add_parser(
        "generate",
        help="generate text with a trained model (or its base), streamed to stdout",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    add_model_arguments(parser)
    parser.add_argument("--prompt", required=True, help="what to ask")
    parser.add_argument("--system", help="a system message before the prompt")
    parser.add_argument("--raw", action="store_true", help="no chat template: continue the text")
    parser.add_argument("--base", action="store_true", help="answer with the adapter switched off")
    parser.add_argument("--max-new-tokens", type=int, default=256, metavar="N")
    parser.add_argument("--temperature", type=float, default=0.0, metavar="T", help="0: greedy")
    parser.add_argument("--top-p", type=float, default=1.0, metavar="P")
    parser.add_argument("--top-k", type=int, default=0, metavar="K", help="0: off")
    parser.add_argument("--repetition-penalty", type=float, default=1.0, metavar="R")
    parser.add_argument("--seed", type=int, metavar="S")
    parser.add_argument(
        "--stop", action="append", default=[], metavar="STR", help="stop string (repeatable)"
    )
    parser.set_defaults(handler=_run)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """MODEL and the options that say how to load it (shared with ``eval``)."""
    parser.add_argument("model", metavar="MODEL", help="run id, v:ID (model version) or folder")
    parser.add_argument(
        "--base-model", metavar="PATH", help="base model for an adapter folder (default: its own)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda", "mps"), help="default: the best")


def resolve_cli_model(args: argparse.Namespace, context: CliContext) -> ResolvedModel:
    """Resolve MODEL, opening the database only for run ids and model versions."""
    from codetune_studio.services.experiments import ExperimentService
    from codetune_studio.services.generation import resolve_model

    value: str = args.model
    experiments = None
    if value.startswith("v:") or value.isdigit():
        experiments = ExperimentService(context.open_database().database)
    return resolve_model(
        value,
        experiments=experiments,
        data_dir=context.paths.data_dir,
        offline=context.offline,
        base_model=args.base_model,
    )


def _run(args: argparse.Namespace, context: CliContext) -> int:
    from pydantic import ValidationError

    from codetune_studio.core.errors import ConfigError
    from codetune_studio.services.generation import GenerationProcess

    model = resolve_cli_model(args, context)
    try:
        params = GenerationParams(
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            repetition_penalty=args.repetition_penalty,
            seed=args.seed,
            stop=tuple(args.stop),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None
    messages = [ChatMessage(role="system", content=args.system)] if args.system else []
    messages.append(ChatMessage(role="user", content=args.prompt))
    request = GenerationRequest(
        id="cli",
        messages=() if args.raw else tuple(messages),
        prompt=args.prompt if args.raw else "",
        params=params,
        variants=("base",) if args.base else ("tuned",),
    )
    if args.base and model.adapter is None:
        echo_notice(f"{model.label} has no adapter: --base answers with the same model")
    finished: GenerationFinished | None = None
    with GenerationProcess(model, [request], device=args.device) as process:
        try:
            for event in process.events():
                if isinstance(event, TokensGenerated):
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                elif isinstance(event, GenerationFinished):
                    finished = event
        except KeyboardInterrupt:
            process.stop()
            for event in process.events():
                if isinstance(event, GenerationFinished):
                    finished = event
    sys.stdout.write("\n")
    if finished is not None:
        echo_notice(
            f"{finished.tokens} tokens in {finished.seconds:.2f} s "
            f"({finished.tokens_per_s:.1f} tokens/s), stopped: {finished.stop_reason}"
        )
    return 0

"""Generation in a child process: streaming, Stop, deadlines, and a base side that is the base."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import pytest

from codetune_studio.core.generation import (
    ChatMessage,
    GenerationFinished,
    GenerationParams,
    GenerationRequest,
    GenerationStarted,
    ModelLoaded,
    TokensGenerated,
    decode_generation_event,
    encode_generation_event,
)
from codetune_studio.services.generation import (
    GenerationError,
    GenerationProcess,
    ResolvedModel,
    resolve_model,
)
from tests import engine_fixtures

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

tiny_model_dir = engine_fixtures.tiny_model_dir

PROMPT = (ChatMessage(role="user", content="Write a Python function `add` that adds."),)


def save_lora_adapter(base: Path, folder: Path) -> Path:
    """A LoRA adapter on ``base`` whose weights are random and non-zero (it changes outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    torch.manual_seed(1)
    config = LoraConfig(
        r=8, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_" in name:
                parameter.normal_(0.0, 0.5)
    peft_model.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_lora_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter") / "adapter")


def greedy(max_new_tokens: int = 24, **extra: Any) -> GenerationParams:
    return GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0, **extra)


def run_child(model: ResolvedModel, requests: list[GenerationRequest]) -> list[Any]:
    with GenerationProcess(model, requests, device="cpu") as process:
        return list(process.events())


def test_base_variant_equals_the_base_model_loaded_alone(
    tiny_model_dir: Path, adapter_dir: Path
) -> None:
    request = GenerationRequest(
        id="r", messages=PROMPT, params=greedy(), variants=("tuned", "base")
    )
    with_adapter = run_child(ResolvedModel(str(tiny_model_dir), adapter_dir, "tuned"), [request])
    alone = run_child(
        ResolvedModel(str(tiny_model_dir), None, "base alone"),
        [request.model_copy(update={"variants": ("tuned",)})],
    )

    answers = {e.variant: e.text for e in with_adapter if isinstance(e, GenerationFinished)}
    (base_alone,) = [e.text for e in alone if isinstance(e, GenerationFinished)]
    assert answers["base"] == base_alone
    # The adapter really changes the answer, so the equality above is not vacuous.
    assert answers["tuned"] != answers["base"]


def test_tokens_stream_before_the_answer_finishes_and_add_up_to_it(tiny_model_dir: Path) -> None:
    request = GenerationRequest(id="r", messages=PROMPT, params=greedy(200))
    events = run_child(ResolvedModel(str(tiny_model_dir), None, "m"), [request])

    assert isinstance(events[0], ModelLoaded)
    started = next(e for e in events if isinstance(e, GenerationStarted))
    assert started.prompt_text.startswith("<|im_start|>user\nWrite a Python function")
    assert started.prompt_text.endswith("<|im_start|>assistant\n")
    chunks = [e for e in events if isinstance(e, TokensGenerated)]
    finished = events[-1]
    assert isinstance(finished, GenerationFinished)
    assert len(chunks) > 1
    assert "".join(c.text for c in chunks) == finished.text
    assert finished.stop_reason in {"eos", "length"}
    if finished.stop_reason == "length":
        assert finished.tokens == 200
    assert finished.tokens_per_s > 0


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        # torch caps OMP_NUM_THREADS at the core count, so only fewer threads than cores show.
        ("OMP_NUM_THREADS", "1", 1),
        # torch.set_num_threads is not capped: 3 differs from the default on all but 3 cores.
        ("CODETUNE_TORCH_THREADS", "3", 3),
    ],
)
def test_the_child_computes_with_the_thread_count_its_parent_set(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: int
) -> None:
    if variable == "OMP_NUM_THREADS" and (os.cpu_count() or 1) < 2:
        pytest.skip("on one core, one thread is also the default")
    monkeypatch.setenv(variable, value)
    request = GenerationRequest(id="r", messages=PROMPT, params=greedy(4))
    events = run_child(ResolvedModel(str(tiny_model_dir), None, "m"), [request])

    loaded = events[0]
    assert isinstance(loaded, ModelLoaded)
    assert loaded.threads == expected


@pytest.mark.skipif(sys.platform == "win32", reason="sessions and process groups are POSIX")
def test_the_child_leads_its_own_process_group_inside_the_studios_session(
    tiny_model_dir: Path,
) -> None:
    # Its own group, so a kill reaches all of it; the studio's session, because on Linux a new
    # session is a new scheduler autogroup, where the child's threads lost most of their CPU to
    # a busy studio process (see benchmarks/generation_throughput.py, side by side).
    request = GenerationRequest(id="r", messages=PROMPT, params=greedy(4))
    with GenerationProcess(
        ResolvedModel(str(tiny_model_dir), None, "m"), [request], device="cpu"
    ) as process:
        pid = process.pid
        assert pid is not None
        group, session = os.getpgid(pid), os.getsid(pid)
        list(process.events())

    assert group == pid
    assert group != os.getpgid(0)
    assert session == os.getsid(0)


def test_a_loaded_event_from_a_child_that_does_not_report_threads_still_reads() -> None:
    line = '{"base_model": "b", "adapter": null, "device": "cpu", "seconds": 1.0, "kind": "loaded"}'
    event = decode_generation_event(line)
    assert event == ModelLoaded("b", None, "cpu", 1.0)
    assert event.threads is None
    reported = ModelLoaded("b", None, "cpu", 1.0, threads=2)
    assert decode_generation_event(encode_generation_event(reported)) == reported


def test_stop_ends_a_long_answer_mid_generation(tiny_model_dir: Path) -> None:
    request = GenerationRequest(id="r", prompt="def", params=greedy(100_00))
    received: list[Any] = []
    with GenerationProcess(
        ResolvedModel(str(tiny_model_dir), None, "m"), [request], device="cpu"
    ) as process:
        for event in process.events():
            received.append(event)
            if sum(isinstance(e, TokensGenerated) for e in received) == 3:
                process.stop()
        exit_code = process.exit_code

    finished = received[-1]
    assert isinstance(finished, GenerationFinished)
    assert finished.stop_reason == "cancelled"
    assert 3 <= finished.tokens < 10_000
    assert exit_code == 130


def test_a_child_past_its_deadline_is_killed_with_a_readable_reason(tiny_model_dir: Path) -> None:
    request = GenerationRequest(id="r", prompt="def", params=greedy(10_000))
    with (
        GenerationProcess(
            ResolvedModel(str(tiny_model_dir), None, "m"), [request], deadline_s=0.5
        ) as process,
        pytest.raises(GenerationError, match="ran past its deadline"),
    ):
        list(process.events())


def test_a_bad_model_folder_is_reported_not_crashed(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    request = GenerationRequest(id="r", prompt="x")
    with (
        GenerationProcess(ResolvedModel(str(tmp_path), None, "m"), [request]) as process,
        pytest.raises(GenerationError, match="Could not load the model"),
    ):
        list(process.events())


def test_stop_strings_cut_the_answer(tiny_model_dir: Path) -> None:
    plain = GenerationRequest(id="a", prompt="def", params=greedy(30))
    events = run_child(ResolvedModel(str(tiny_model_dir), None, "m"), [plain])
    text = next(e for e in events if isinstance(e, GenerationFinished)).text
    assert len(text) > 4
    stop = text[2:4]
    cut = GenerationRequest(id="b", prompt="def", params=greedy(30, stop=(stop,)))
    events = run_child(ResolvedModel(str(tiny_model_dir), None, "m"), [cut])
    finished = next(e for e in events if isinstance(e, GenerationFinished))
    assert finished.stop_reason == "stop_string"
    assert finished.text == text[: text.find(stop)]
    streamed = "".join(e.text for e in events if isinstance(e, TokensGenerated))
    assert stop not in streamed


def test_an_answer_prefix_is_continued_not_repeated(tiny_model_dir: Path) -> None:
    # An eval task's signature goes after the rendered prompt as the start of the answer: the
    # model must see it (the prompt's end) and the text must not repeat it.
    model = ResolvedModel(str(tiny_model_dir), None, "m")
    prefixed = GenerationRequest(id="p", messages=PROMPT, answer_prefix="def add(a, b):",
                                 params=greedy(12))  # fmt: skip
    events = run_child(model, [prefixed])
    started = next(e for e in events if isinstance(e, GenerationStarted))
    assert started.prompt_text.endswith("<|im_start|>assistant\ndef add(a, b):")
    answer = next(e for e in events if isinstance(e, GenerationFinished)).text

    # The same text fed whole gives the same continuation: the prefix is really in the prompt.
    whole = GenerationRequest(id="w", prompt=started.prompt_text, params=greedy(12))
    alone = next(e for e in run_child(model, [whole]) if isinstance(e, GenerationFinished))
    assert answer == alone.text


def test_resolve_model_reads_the_base_from_an_adapter_folder(
    tiny_model_dir: Path, adapter_dir: Path, tmp_path: Path
) -> None:
    resolved = resolve_model(str(adapter_dir), experiments=None, data_dir=tmp_path)
    assert resolved.adapter == adapter_dir
    assert resolved.base_model == str(tiny_model_dir.resolve())
    plain = resolve_model(str(tiny_model_dir), experiments=None, data_dir=tmp_path)
    assert plain.adapter is None


def test_resolve_model_explains_an_unknown_value(tmp_path: Path) -> None:
    from codetune_studio.core.errors import ConfigError

    with pytest.raises(ConfigError, match="not a run id, a model version"):
        resolve_model(str(tmp_path / "nothing"), experiments=None, data_dir=tmp_path)

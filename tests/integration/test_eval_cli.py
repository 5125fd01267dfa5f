"""``codetune-studio eval``: scores, the side-by-side table, the regression gate, stored results."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from codetune_studio.cli import main
from codetune_studio.core.generation import GenerationFinished, ModelLoaded
from tests import engine_fixtures

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from codetune_studio.core.generation import GenerationRequest
    from codetune_studio.services.generation import ResolvedModel

pytestmark = pytest.mark.integration

tiny_model_dir = engine_fixtures.tiny_model_dir

RIGHT = {"f": "def f():\n    return 1\n", "g": "```python\ndef g(s):\n    return s * 2\n```"}
WRONG = {"f": "def f():\n    return 2\n", "g": "def g(s):\n    return s\n"}


def write_tasks(path: Path) -> Path:
    tasks = [
        {"task_id": "one", "prompt": "Write f.", "tests": "assert f() == 1\n", "entry_point": "f"},
        {
            "task_id": "two",
            "prompt": "Write g.",
            "tests": "def check(candidate):\n    assert candidate('ab') == 'abab'\n",
            "entry_point": "g",
        },
    ]
    path.write_text("\n".join(json.dumps(t) for t in tasks) + "\n", encoding="utf-8")
    return path


def fake_model(root: Path) -> Path:
    """An adapter folder naming a base folder: enough for MODEL to resolve."""
    base = root / "base"
    base.mkdir()
    (base / "config.json").write_text("{}", encoding="utf-8")
    # Weights the model-folder check accepts (the generation itself is faked).
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    (base / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(4))
    adapter = root / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(base)}), encoding="utf-8"
    )
    return adapter


class FakeGeneration:
    """Stands in for the generation child: answers come from a table per variant."""

    answers: ClassVar[dict[str, dict[str, str]]] = {}

    def __init__(self, model: ResolvedModel, requests: Sequence[GenerationRequest], **_: Any):
        self._requests = list(requests)

    def __enter__(self) -> FakeGeneration:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def events(self) -> Iterator[Any]:
        yield ModelLoaded("base", "adapter", "cpu", 0.1)
        for request in self._requests:
            entry = "f" if request.messages[0].content == "Write f." else "g"
            for sample in range(request.samples):
                for variant in request.variants:
                    text = self.answers[variant][entry]
                    yield GenerationFinished(request.id, variant, sample, text, 7, 0.1, "eos")


@pytest.fixture
def fake_generation(monkeypatch: pytest.MonkeyPatch) -> type[FakeGeneration]:
    monkeypatch.setattr("codetune_studio.services.evaluation.GenerationProcess", FakeGeneration)
    return FakeGeneration


def run_eval(tmp_path: Path, *extra: str) -> int:
    return main(
        [
            "--data-dir",
            str(tmp_path / "data"),
            "eval",
            str(tmp_path / "adapter"),
            "--tasks",
            str(tmp_path / "tasks.jsonl"),
            "--no-analyzer",
            *extra,
        ]
    )


@pytest.fixture
def setup(tmp_path: Path) -> Path:
    fake_model(tmp_path)
    write_tasks(tmp_path / "tasks.jsonl")
    return tmp_path


def test_regression_gate_exits_1_when_the_tuned_model_is_worse(
    setup: Path, fake_generation: type[FakeGeneration], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_generation.answers = {"tuned": WRONG, "base": RIGHT}
    status = run_eval(setup, "--compare-base", "--fail-if-regress")
    out, err = capsys.readouterr()
    assert status == 1
    assert "regression: tuned pass@1 0.000 is below base 1.000" in err
    header, _, pass1 = out.splitlines()[:3]
    assert header.split()[-1] == "difference"
    assert pass1.split()[0] == "pass@1"
    assert pass1.split()[-3:] == ["0.0%", "100.0%", "-100.0%"]


def test_regression_gate_exits_0_when_the_tuned_model_is_better(
    setup: Path, fake_generation: type[FakeGeneration], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_generation.answers = {"tuned": RIGHT, "base": WRONG}
    assert run_eval(setup, "--compare-base", "--fail-if-regress", "--format", "json") == 0
    payload = json.loads(capsys.readouterr().out)
    tuned, base = payload["results"]
    assert (tuned["variant"], tuned["pass_at_1"]) == ("tuned", 1.0)
    assert (base["variant"], base["pass_at_1"]) == ("base", 0.0)
    assert payload["pass_at_1_delta"] == 1.0


def test_a_drop_within_the_tolerance_passes_the_gate(
    setup: Path, fake_generation: type[FakeGeneration]
) -> None:
    fake_generation.answers = {"tuned": {**RIGHT, "g": WRONG["g"]}, "base": RIGHT}
    assert run_eval(setup, "--compare-base", "--fail-if-regress", "--tolerance", "0.6") == 0
    assert run_eval(setup, "--compare-base", "--fail-if-regress", "--tolerance", "0.4") == 1


def test_pass_at_k_over_several_samples_and_per_task_passes(
    setup: Path, fake_generation: type[FakeGeneration], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_generation.answers = {"tuned": {**RIGHT, "g": WRONG["g"]}}
    assert (
        run_eval(setup, "--samples", "3", "--format", "json", "--out", str(setup / "o.json")) == 0
    )
    (result,) = json.loads((setup / "o.json").read_text(encoding="utf-8"))["results"]
    assert result["pass_at_k"] == {"1": 0.5, "3": 0.5}
    assert result["parse_rate"] == 1.0
    assert result["eos_rate"] == 1.0
    assert [[s["passed"] for s in t["samples"]] for t in result["tasks"]] == [
        [True, True, True],
        [False, False, False],
    ]
    assert "AssertionError" in result["tasks"][1]["samples"][0]["output"]
    assert capsys.readouterr().out.strip().startswith("{")


def test_results_are_stored_and_listed(
    setup: Path, fake_generation: type[FakeGeneration], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_generation.answers = {"tuned": RIGHT, "base": WRONG}
    assert run_eval(setup, "--compare-base") == 0
    capsys.readouterr()
    assert main(["--data-dir", str(setup / "data"), "eval", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:3] == ["id", "when", "model"]
    rows = [line.split() for line in listing[1:]]
    assert [(r[0], r[-1]) for r in rows] == [("2", "0.0%"), ("1", "100.0%")]
    assert main(["--data-dir", str(setup / "data"), "eval", "show", "1", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["variant"] == "tuned"
    assert [t["task_id"] for t in shown["tasks"]] == ["one", "two"]
    assert shown["tasks"][0]["samples"][0]["completion"] == RIGHT["f"]


def test_fail_if_regress_without_compare_base_is_a_usage_error(
    setup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_eval(setup, "--fail-if-regress") == 2
    assert "--fail-if-regress needs --compare-base" in capsys.readouterr().err


def test_the_local_analyzer_reports_findings_per_sample(
    setup: Path, fake_generation: type[FakeGeneration], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_generation.answers = {"tuned": {"f": "def f(:\n", "g": RIGHT["g"]}}
    status = main(
        ["--data-dir", str(setup / "data"), "eval", str(setup / "adapter"), "--tasks",
         str(setup / "tasks.jsonl"), "--format", "json"]
    )  # fmt: skip
    assert status == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    first = result["tasks"][0]["samples"][0]
    assert not first["parsed"]
    assert "syntax-error" in {f["rule"] for f in first["findings"]}
    assert result["parse_rate"] == 0.5
    assert result["findings_per_sample"] > 0


def test_eval_end_to_end_with_a_real_model_and_its_base(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.integration.test_generation import save_lora_adapter

    adapter = save_lora_adapter(tiny_model_dir, tmp_path / "adapter")
    write_tasks(tmp_path / "tasks.jsonl")
    status = main(
        ["--data-dir", str(tmp_path / "data"), "eval", str(adapter), "--tasks",
         str(tmp_path / "tasks.jsonl"), "--compare-base", "--no-analyzer", "--max-new-tokens",
         "8", "--device", "cpu", "--format", "json"]
    )  # fmt: skip
    assert status == 0
    tuned, base = json.loads(capsys.readouterr().out)["results"]
    assert (tuned["variant"], base["variant"]) == ("tuned", "base")
    for result in (tuned, base):
        assert [len(t["samples"]) for t in result["tasks"]] == [1, 1]
        assert result["mean_tokens"] > 0
        assert result["isolation"] in {"namespaces", "user-namespaces", "process-group"}
    # A random adapter answers differently from its base.
    assert (
        tuned["tasks"][0]["samples"][0]["completion"]
        != base["tasks"][0]["samples"][0]["completion"]
    )

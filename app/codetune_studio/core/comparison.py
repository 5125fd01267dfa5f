"""Comparing runs: results per run, recipe differences by full field name, curves on one axis.

Pure data and rules, no database: :mod:`codetune_studio.services.history` fills these from the
stored runs and metrics, and the window, the CLI and the tests all read the same objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from codetune_studio.core.errors import ConfigError
from codetune_studio.core.models import Run

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "AXES",
    "METRIC_NAMES",
    "RESULT_FIELDS",
    "Axis",
    "Comparison",
    "Curve",
    "LineageStep",
    "ResultField",
    "RunEvalResults",
    "RunResults",
    "RunSummary",
    "best_run",
    "check_metric",
    "flatten_recipe",
    "higher_is_better",
    "metric_field",
    "recipe_differences",
    "x_values",
]

#: What a comparison's curves can be plotted against.
Axis = Literal["step", "tokens", "epoch"]
AXES: tuple[Axis, ...] = ("step", "tokens", "epoch")

#: Metrics where larger is better; every other metric is minimised when picking the best run.
_MAXIMISED = frozenset(
    {"tokens_per_second", "accuracy", "pass_at_1", "pass_at_k", "eval_pass@1", "final_pass_at_1"}
)

#: The names ``--metric`` takes besides the :class:`RunResults` fields themselves.
_ALIASES = {
    "eval_loss": "best_eval_loss",
    "loss": "final_loss",
    "train_loss": "final_loss",
    "pass@1": "pass_at_1",
    "pass@k": "pass_at_k",
    "eval_pass@1": "final_pass_at_1",
}


class RunResults(BaseModel):
    """A run's results, as the runs list and the comparison table show them.

    Attributes:
        steps: The last optimizer step with a logged metric.
        final_loss: The training loss at that step.
        best_eval_loss: The lowest evaluation loss.
        perplexity: The perplexity at the best evaluation.
        tokens_per_second: Mean training throughput.
        tokens_seen: Training tokens processed (estimated between logged steps).
        wall_time_s: From start to end (or to now, for a run still going).
        peak_memory_mb: The highest memory use logged.
        pass_at_1: pass@1 of the newest code evaluation of the run's model (``eval`` with a
            tuned model version of this run); ``None`` when it was never evaluated.
        pass_at_k: pass@k of that evaluation at ``k = eval_k``, the largest k it reports.
        eval_k: The ``k`` of ``pass_at_k`` (the samples per task).
        base_pass_at_1: The base model's pass@1 on the same tasks, when it was compared.
        eval_tasks: The task file (or code folder) of that evaluation.
        eval_id: The stored evaluation's id (``codetune-studio eval show ID``).
        final_pass_at_1: pass@1 on the recipe's evaluation tasks at the last evaluation (the
            saved adapter's), for runs that measure it during training.
    """

    model_config = ConfigDict(frozen=True)

    steps: int | None = None
    final_loss: float | None = None
    best_eval_loss: float | None = None
    perplexity: float | None = None
    tokens_per_second: float | None = None
    tokens_seen: float | None = None
    wall_time_s: float | None = None
    peak_memory_mb: float | None = None
    pass_at_1: float | None = None
    pass_at_k: float | None = None
    eval_k: int | None = None
    base_pass_at_1: float | None = None
    eval_tasks: str | None = None
    eval_id: int | None = None
    final_pass_at_1: float | None = None

    def metric(self, name: str) -> float | None:
        """A result by the metric name users pass to ``--metric`` (``eval_loss``, ``pass@1``...)."""
        value = getattr(self, _ALIASES.get(name, name), None)
        return float(value) if isinstance(value, int | float) else None

    def with_eval(self, evaluation: RunEvalResults | None) -> RunResults:
        """These results with the code-evaluation fields of ``evaluation`` (cleared by ``None``).

        Returns ``self`` when nothing changes: the runs list does this for every run on every
        refresh, and most runs have no evaluation.
        """
        fields = {
            name: getattr(evaluation, name) if evaluation is not None else None
            for name in _EVAL_FIELDS
        }
        if all(getattr(self, name) == value for name, value in fields.items()):
            return self
        return self.model_copy(update=fields)


class RunEvalResults(BaseModel):
    """The code-evaluation part of :class:`RunResults`: the newest evaluation of a run's model.

    Attributes:
        pass_at_1: Its pass@1.
        pass_at_k: Its pass@k at ``eval_k``.
        eval_k: The largest ``k`` it reports.
        base_pass_at_1: The base's pass@1 when the base was evaluated alongside.
        eval_tasks: The task file or code folder.
        eval_id: The stored evaluation's id.
    """

    model_config = ConfigDict(frozen=True)

    pass_at_1: float
    pass_at_k: float | None = None
    eval_k: int | None = None
    base_pass_at_1: float | None = None
    eval_tasks: str | None = None
    eval_id: int | None = None


_EVAL_FIELDS = tuple(RunEvalResults.model_fields)

#: Every name that picks the best run: the aliases, then the numeric results by field name.
METRIC_NAMES: tuple[str, ...] = (
    *_ALIASES,
    "best_eval_loss",
    "final_loss",
    "perplexity",
    "tokens_per_second",
    "tokens_seen",
    "wall_time_s",
    "peak_memory_mb",
    "steps",
    "pass_at_1",
    "pass_at_k",
    "final_pass_at_1",
)


@dataclass(frozen=True, slots=True)
class ResultField:
    """One column of a results table: a :class:`RunResults` field and how to name it.

    Attributes:
        key: The :class:`RunResults` field.
        label: A short header.
        description: What it measures, for a header's tooltip.
    """

    key: str
    label: str
    description: str


#: The results a comparison shows, in order: losses first, then code evaluation, then cost.
RESULT_FIELDS: tuple[ResultField, ...] = (
    ResultField("final_loss", "Final loss", "Training loss at the last logged step."),
    ResultField("best_eval_loss", "Best eval loss", "The lowest evaluation loss of the run."),
    ResultField(
        "perplexity", "Perplexity", "exp(evaluation loss) at the best evaluation; lower is better."
    ),
    ResultField(
        "final_pass_at_1",
        "Training pass@1",
        "pass@1 on the recipe's evaluation tasks at the last evaluation during training.",
    ),
    ResultField(
        "pass_at_1",
        "Code eval pass@1",
        "pass@1 of the newest code evaluation of the run's model (codetune-studio eval).",
    ),
    ResultField(
        "pass_at_k",
        "Code eval pass@k",
        "pass@k of that evaluation, at the largest k it reports (k samples per task).",
    ),
    ResultField(
        "base_pass_at_1",
        "Base pass@1",
        "The base model's pass@1 on the same tasks, when it was evaluated alongside.",
    ),
    ResultField("tokens_per_second", "Tokens/s", "Mean training throughput in tokens per second."),
    ResultField("tokens_seen", "Tokens seen", "Training tokens processed."),
    ResultField("wall_time_s", "Wall time", "From start to end (or to now, for a run going on)."),
    ResultField("peak_memory_mb", "Peak memory", "The highest accelerator memory use logged."),
    ResultField("steps", "Steps", "The last optimizer step with a logged metric."),
    ResultField("eval_tasks", "Eval tasks", "The task file of the newest code evaluation."),
)


class RunSummary(BaseModel):
    """One row of the runs list: the run and its results.

    Attributes:
        run: The stored run.
        results: Its results so far.
    """

    model_config = ConfigDict(frozen=True)

    run: Run
    results: RunResults

    @property
    def model(self) -> str:
        """The base model the recipe names."""
        return str(self.run.recipe.get("model", ""))

    @property
    def dataset(self) -> str:
        """The dataset path or id the recipe names."""
        dataset = self.run.recipe.get("dataset")
        return str(dataset.get("path", "")) if isinstance(dataset, dict) else ""

    @property
    def method(self) -> str:
        """The fine-tuning method (``lora``, ``full``...)."""
        return str(self.run.recipe.get("method", ""))


@dataclass(frozen=True, slots=True)
class Curve:
    """One metric of one run, with every x axis a comparison may plot it against.

    Attributes:
        run_id: The run.
        name: The metric name.
        steps: Optimizer steps, ascending.
        values: The metric's values at those steps (NaN where not finite).
        tokens: Training tokens seen at those steps.
        epochs: Fractional epoch at those steps.
    """

    run_id: int
    name: str
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    tokens: list[float] = field(default_factory=list)
    epochs: list[float] = field(default_factory=list)


class LineageStep(BaseModel):
    """One link of a run's ancestry.

    Attributes:
        run_id: The run.
        name: Its name.
        status: Its status.
        relation: How it relates to the previous step: ``""`` for the first, then
            ``"resumed from"`` or ``"cloned from"``.
    """

    model_config = ConfigDict(frozen=True)

    run_id: int
    name: str
    status: str
    relation: str = ""


class Comparison(BaseModel):
    """Two or more runs side by side.

    Attributes:
        runs: The runs, in the order asked for.
        differences: Recipe fields that differ, by full dotted name, each with every run's
            value (``None`` where a run's recipe lacks the field).
        results: Each run's results.
        metric: The metric the best run is chosen by.
        best_run_id: The best run by that metric, if any run has it.
    """

    model_config = ConfigDict(frozen=True)

    runs: list[Run]
    differences: dict[str, dict[int, Any]]
    results: dict[int, RunResults]
    metric: str = "eval_loss"
    best_run_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The shape ``runs compare --format json`` prints.

        Returns:
            ``{"differences": {field: {run id: value}}, "results": {run id: metrics},
            "metric": ..., "best_run_id": ...}`` with run ids as strings (JSON keys).
        """
        return {
            "differences": {
                name: {str(run_id): value for run_id, value in values.items()}
                for name, values in self.differences.items()
            },
            "results": {
                str(run_id): results.model_dump(mode="json")
                for run_id, results in self.results.items()
            },
            "metric": self.metric,
            "best_run_id": self.best_run_id,
        }


def flatten_recipe(recipe: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested recipe into ``{"training.learning_rate": 0.0002, ...}``.

    Lists stay whole values (``lora.target_modules``), so they compare as one field.

    Args:
        recipe: The recipe as JSON-compatible data.
        prefix: Prepended to every key (used by the recursion).

    Returns:
        One entry per leaf field, keyed by its full dotted name.
    """
    flat: dict[str, Any] = {}
    for key, value in recipe.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_recipe(value, prefix=name + "."))
        else:
            flat[name] = value
    return flat


def recipe_differences(
    recipes: Mapping[int, Mapping[str, Any]], *, ignore: Iterable[str] = ("name",)
) -> dict[str, dict[int, Any]]:
    """The recipe fields whose values are not the same in every run.

    Args:
        recipes: Run id to its recipe.
        ignore: Fields that differ by nature and say nothing about training (the label).

    Returns:
        Full field name to ``{run id: value}``, sorted by name.
    """
    flat = {run_id: flatten_recipe(recipe) for run_id, recipe in recipes.items()}
    names = sorted({name for fields in flat.values() for name in fields} - set(ignore))
    differences: dict[str, dict[int, Any]] = {}
    for name in names:
        values = {run_id: fields.get(name) for run_id, fields in flat.items()}
        if len({_canonical(value) for value in values.values()}) > 1:
            differences[name] = values
    return differences


def _canonical(value: Any) -> str:
    return repr(value)


def check_metric(metric: str) -> str:
    """``metric`` when it can pick a best run.

    Raises:
        ConfigError: It is none of :data:`METRIC_NAMES` (a typo would otherwise mark no run).
    """
    if metric not in METRIC_NAMES:
        raise ConfigError(
            f"Unknown metric {metric!r} for picking the best run; use one of: "
            + ", ".join(METRIC_NAMES)
        )
    return metric


def metric_field(metric: str) -> str:
    """The :class:`RunResults` field a metric name reads (``eval_loss`` -> ``best_eval_loss``)."""
    return _ALIASES.get(metric, metric)


def higher_is_better(metric: str) -> bool:
    """Whether the best run has the largest value of ``metric`` (else the smallest)."""
    return metric_field(metric) in _MAXIMISED


def best_run(results: Mapping[int, RunResults], metric: str) -> int | None:
    """The run with the best value of ``metric`` (lowest, except throughput-like metrics).

    Args:
        results: Run id to results.
        metric: ``eval_loss`` (the best evaluation loss), ``loss`` (final training loss),
            ``pass@1`` (the newest code evaluation's pass@1, higher is better),
            ``eval_pass@1`` (the last pass@1 measured during training, higher is better), or any
            numeric :class:`RunResults` field name (:data:`METRIC_NAMES`).

    Returns:
        The best run's id, or ``None`` when no run has a finite value.
    """
    scored = [
        (value, run_id)
        for run_id, result in results.items()
        if (value := result.metric(metric)) is not None and math.isfinite(value)
    ]
    if not scored:
        return None
    if higher_is_better(metric):
        return max(scored)[1]
    return min(scored)[1]


def x_values(curve: Curve, axis: Axis) -> Sequence[float]:
    """The x coordinates of ``curve`` on ``axis``.

    Args:
        curve: The curve.
        axis: ``step``, ``tokens`` or ``epoch``.

    Returns:
        One x per point.
    """
    if axis == "tokens":
        return curve.tokens
    if axis == "epoch":
        return curve.epochs
    return [float(step) for step in curve.steps]

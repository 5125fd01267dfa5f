"""Sweeps: one recipe, many variants over a grid (or a seeded random sample of it), queued as a group.

Every variant is validated before anything is queued, so a typo in one field name queues nothing.
"""

from __future__ import annotations

import itertools
import logging
import random
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codetune_studio.core.errors import ConfigError
from codetune_studio.core.recipe import apply_overrides

if TYPE_CHECKING:
    from collections.abc import Sequence

    from codetune_studio.core.models import Run
    from codetune_studio.core.recipe import TrainingRecipe
    from codetune_studio.services.queue import QueueService

__all__ = ["Sweep", "SweepVariant", "expand_sweep", "new_sweep_id", "parse_grid", "queue_sweep"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepVariant:
    """One point of a sweep.

    Attributes:
        overrides: ``key=value`` items applied to the base recipe.
        recipe: The validated recipe.
        label: A short name such as ``learning_rate=0.0001 r=8``.
    """

    overrides: tuple[str, ...]
    recipe: TrainingRecipe
    label: str


@dataclass(frozen=True, slots=True)
class Sweep:
    """A queued sweep.

    Attributes:
        sweep_id: The group id every run of the sweep carries.
        runs: The queued runs, in queue order.
    """

    sweep_id: str
    runs: list[Run]


def new_sweep_id() -> str:
    """A sortable, unique sweep id such as ``sweep-20261201-113055-3f2a``."""
    return "sweep-" + time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """Parse ``--grid training.learning_rate=1e-4,3e-4`` items.

    Args:
        items: ``field=v1,v2,...`` strings; a field given twice keeps both value lists.

    Returns:
        Field name to its values as written (validated later, with the recipe).

    Raises:
        ConfigError: If an item is not ``field=values`` or has no value.
    """
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        values = [value.strip() for value in raw.split(",") if value.strip()]
        if not sep or not key.strip() or not values:
            raise ConfigError(
                f"--grid {item!r}: expected field=value1,value2, e.g. "
                "training.learning_rate=1e-4,3e-4"
            )
        grid.setdefault(key.strip(), []).extend(values)
    return grid


def expand_sweep(
    recipe: TrainingRecipe,
    grid: dict[str, list[str]],
    *,
    sample: int | None = None,
    seed: int = 0,
) -> list[SweepVariant]:
    """Every combination of the grid (or ``sample`` of them, drawn with ``seed``), validated.

    Args:
        recipe: The base recipe.
        grid: Field name to values.
        sample: Draw this many distinct combinations at random instead of taking all.
        seed: The random draw's seed, so a sweep can be repeated exactly.

    Returns:
        The variants in grid order (a sample keeps grid order too).

    Raises:
        ConfigError: If the grid is empty, ``sample`` is not positive, or a variant is invalid.
    """
    if not grid:
        raise ConfigError("A sweep needs at least one --grid field=values")
    names = list(grid)
    combos = list(itertools.product(*(grid[name] for name in names)))
    if sample is not None:
        if sample < 1:
            raise ConfigError(f"--random {sample}: must be at least 1")
        draw = random.Random(seed)  # noqa: S311 - a repeatable sample, not a secret
        picked = sorted(draw.sample(range(len(combos)), min(sample, len(combos))))
        combos = [combos[index] for index in picked]
    variants = []
    for combo in combos:
        overrides = tuple(f"{name}={value}" for name, value in zip(names, combo, strict=True))
        label = " ".join(
            f"{name.rsplit('.', 1)[-1]}={value}" for name, value in zip(names, combo, strict=True)
        )
        variants.append(SweepVariant(overrides, apply_overrides(recipe, overrides), label))
    return variants


def queue_sweep(
    queue: QueueService,
    recipe: TrainingRecipe,
    variants: Sequence[SweepVariant],
    *,
    name: str | None = None,
) -> Sweep:
    """Queue every variant as one sweep group.

    Args:
        queue: The queue.
        recipe: The base recipe (its name names the runs).
        variants: From :func:`expand_sweep`.
        name: The runs' base name; the recipe's name by default.

    Returns:
        The sweep id and its queued runs.
    """
    sweep_id = new_sweep_id()
    base = name or recipe.name or "sweep"
    runs = [
        queue.add(variant.recipe, name=f"{base} [{variant.label}]", sweep_id=sweep_id)
        for variant in variants
    ]
    logger.info("Queued sweep %s with %d runs", sweep_id, len(runs))
    return Sweep(sweep_id, runs)

"""Type aliases shared by the command modules."""

from __future__ import annotations

import argparse
import math
from typing import TypeAlias

__all__ = ["Subparsers", "positive_seconds"]

#: What ``ArgumentParser.add_subparsers`` returns.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def positive_seconds(text: str) -> float:
    """An argparse type for a duration: a finite number of seconds above zero.

    Raises:
        argparse.ArgumentTypeError: ``-1``, ``0``, ``nan``, ``inf`` or not a number.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number of seconds above 0")
    return value

"""``@safe_slot()``: a slot that logs its exception and shows a notice instead of losing it.

An exception raised in a PySide6 slot never reaches the code that emitted the signal; it goes to
``sys.excepthook`` at best. Slots that call into other layers are therefore wrapped: the user
sees what went wrong as a non-modal notice (BEC's ``SafeSlot`` idea). An unexpected exception
(a bug) goes to the log with its traceback at ERROR; a :class:`CodetuneError` (a refusal whose
message names the fix) is logged at INFO, since the notice already reports it.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from codetune_studio.core.errors import CodetuneError
from codetune_studio.ui import notify

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["safe_slot"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def safe_slot() -> Callable[[Callable[P, R]], Callable[P, R | None]]:
    """Guard a slot: an exception is logged with its traceback and shown as an error notice.

    The wrapped function also accepts extra trailing arguments and drops them, because a signal
    such as ``clicked(bool)`` passes more arguments than a slot often wants.

    Returns:
        The decorator.
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R | None]:
        limit = _positional_limit(func)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
            call_args = args if limit is None else args[:limit]
            try:
                return func(*call_args, **kwargs)  # type: ignore[arg-type]
            except CodetuneError as exc:
                # A refusal that names its fix (bad parameters, a run already training): the
                # notice is the report; a traceback at ERROR would read as a bug.
                logger.info("%s refused: %s", func.__qualname__, exc)
                notify.error(exc)
                return None
            except Exception as exc:
                logger.exception("error in %s", func.__qualname__)
                notify.error(exc)
                return None

        return wrapper

    return decorate


def _positional_limit(func: Callable[..., Any]) -> int | None:
    """How many positional arguments ``func`` takes, or ``None`` if it takes ``*args``."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return None
    count = 0
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            count += 1
    return count

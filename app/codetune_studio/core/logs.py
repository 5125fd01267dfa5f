"""The one logging setup the CLI, the window and the worker share."""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import sys
from typing import TYPE_CHECKING, TextIO

from codetune_studio.core.errors import ConfigError
from codetune_studio.core.redact import known_secret_values, scrub

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["LOG_FORMAT", "ScrubbingFormatter", "configure_logging", "parse_level"]

LOG_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"
_CONSOLE_FORMAT = "%(levelname)s %(name)s: %(message)s"
_MAX_LOG_BYTES = 5 * 1024 * 1024
_LOG_BACKUPS = 3
_LEVEL_COLOURS = {
    logging.DEBUG: "\x1b[2m",
    logging.INFO: "\x1b[36m",
    logging.WARNING: "\x1b[33m",
    logging.ERROR: "\x1b[31m",
    logging.CRITICAL: "\x1b[1;31m",
}
_RESET = "\x1b[0m"
# Marks the handlers this module installed, so a second call replaces them instead of doubling.
_OWNED = "_codetune_handler"


class ScrubbingFormatter(logging.Formatter):
    """Masks secrets in what it formats, tracebacks included.

    An error's text may quote a database URL with its password, or a key (a driver or an HTTP
    client error); log files are attached to bug reports. Masked: the values of this process's
    secret-looking environment variables, and anything that looks like a credential.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record``, then mask the secrets in the result."""
        return scrub(super().format(record), known_secret_values())


class _ConsoleFormatter(ScrubbingFormatter):
    """One line per record: tracebacks go to the log file, and to the console only at DEBUG."""

    tracebacks = False

    def format(self, record: logging.LogRecord) -> str:
        if self.tracebacks or not (record.exc_info or record.exc_text or record.stack_info):
            return super().format(record)
        bare = logging.makeLogRecord(record.__dict__)
        bare.exc_info = bare.exc_text = bare.stack_info = None
        return super().format(bare)


class _ColourFormatter(_ConsoleFormatter):
    """Colours the level name, for terminals only."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        colour = _LEVEL_COLOURS.get(record.levelno, "")
        return f"{colour}{text}{_RESET}" if colour else text


def parse_level(level: str | int) -> int:
    """Turn ``"debug"``, ``"WARNING"`` or ``10`` into a logging level.

    Raises:
        ValueError: The name is not a logging level; the message lists the valid ones.
    """
    if isinstance(level, int):
        return level
    try:
        return logging.getLevelNamesMapping()[level.strip().upper()]
    except KeyError:
        raise ValueError(
            f"unknown log level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        ) from None


def _wants_colour(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def configure_logging(
    level: str | int = "WARNING",
    *,
    log_file: Path | None = None,
    console: TextIO | None = sys.stderr,
    file_level: str | int = "DEBUG",
) -> None:
    """Install the console and rotating-file handlers on the root logger.

    Args:
        level: The console's level.
        log_file: A size-capped rotating log file, or ``None`` for no file.
        console: The console stream, or ``None`` for no console output.
        file_level: The file's level; the file keeps more detail than the console by default.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OWNED, False)]:
        root.removeHandler(handler)
        handler.close()
    console_level = parse_level(level)
    levels = [console_level]
    if console is not None:
        stream_handler = logging.StreamHandler(console)
        formatter_cls = _ColourFormatter if _wants_colour(console) else _ConsoleFormatter
        formatter = formatter_cls(_CONSOLE_FORMAT)
        formatter.tracebacks = console_level <= logging.DEBUG
        stream_handler.setFormatter(formatter)
        stream_handler.setLevel(console_level)
        _own(stream_handler)
        root.addHandler(stream_handler)
    if log_file is not None:
        try:
            log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            file_handler: logging.Handler = _PrivateRotatingFileHandler(
                log_file, maxBytes=_MAX_LOG_BYTES, backupCount=_LOG_BACKUPS, encoding="utf-8"
            )
        except OSError as exc:
            raise ConfigError(
                f"Cannot write the log file {log_file}: {exc.strerror or exc}; fix the "
                "folder's permissions or choose another file with --log-file"
            ) from None
        file_handler.setFormatter(ScrubbingFormatter(LOG_FORMAT))
        file_handler.setLevel(min(parse_level(file_level), console_level))
        _own(file_handler)
        root.addHandler(file_handler)
        levels.append(file_handler.level)
    root.setLevel(min(levels))
    # Third-party libraries are chatty at DEBUG; keep them to warnings unless asked.
    for noisy in ("urllib3", "httpx", "httpcore", "filelock", "fsspec", "asyncio"):
        logging.getLogger(noisy).setLevel(max(console_level, logging.WARNING))


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log readable by its owner only: a debug log may name hosts, users, paths."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return io.TextIOWrapper(
            io.BufferedWriter(io.FileIO(fd, "a")), encoding=self.encoding, errors=self.errors
        )


def _own(handler: logging.Handler) -> None:
    setattr(handler, _OWNED, True)

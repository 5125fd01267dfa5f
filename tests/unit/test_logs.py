from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

import pytest

from codetune_studio.core.logs import configure_logging, parse_level

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(autouse=True)
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    configure_logging(console=None)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.expect_logs("loud problem", level="WARNING")
def test_console_respects_its_level_while_the_file_keeps_detail(tmp_path: Path) -> None:
    console = io.StringIO()
    log_file = tmp_path / "logs" / "studio.log"
    configure_logging("WARNING", log_file=log_file, console=console)
    logger = logging.getLogger("codetune_studio.test")
    logger.info("quiet detail")
    logger.warning("loud problem")
    assert "loud problem" in console.getvalue()
    assert "quiet detail" not in console.getvalue()
    assert "\x1b[" not in console.getvalue()  # not a terminal: no colour codes
    text = log_file.read_text()
    assert "quiet detail" in text
    assert "loud problem" in text


def test_calling_twice_does_not_duplicate_lines() -> None:
    console = io.StringIO()
    configure_logging("INFO", console=console)
    configure_logging("INFO", console=console)
    logging.getLogger("codetune_studio.test").info("once")
    assert console.getvalue().count("once") == 1


def test_file_rotates_instead_of_growing_without_bound(tmp_path: Path) -> None:
    log_file = tmp_path / "studio.log"
    configure_logging("INFO", log_file=log_file, console=None)
    handler = next(
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.handlers.RotatingFileHandler)
    )
    assert 0 < handler.maxBytes <= 10 * 1024 * 1024
    assert handler.backupCount >= 1


@pytest.mark.parametrize(
    ("name", "level"), [("debug", 10), ("WARNING", 30), (" error ", 40), (20, 20)]
)
def test_parse_level_accepts_names_in_any_case(name: str | int, level: int) -> None:
    assert parse_level(name) == level


def test_parse_level_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="DEBUG, INFO, WARNING"):
        parse_level("loud")

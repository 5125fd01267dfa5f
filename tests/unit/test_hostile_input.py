"""Hostile or odd input ends in one line naming the problem (exit 2), never a traceback or hang."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from codetune_studio.cli import main
from codetune_studio.core.errors import CodetuneError, ConfigError, DatasetError
from codetune_studio.core.recipe import load_recipe

if TYPE_CHECKING:
    from pathlib import Path

ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
dataset: {path: data.jsonl}
"""


def _recipe(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="alias bomb"):
        load_recipe(_recipe(tmp_path, ALIAS_BOMB))


def test_a_recursive_yaml_alias_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="refers to itself"):
        load_recipe(_recipe(tmp_path, "dataset: &x {path: a, more: *x}\n"))


def test_ordinary_aliases_still_work(tmp_path: Path) -> None:
    text = "base: &lr 0.001\ndataset: {path: d.jsonl}\ntraining: {learning_rate: *lr}\n"
    with pytest.raises(ConfigError, match="base"):  # unknown key, but parsed fine
        load_recipe(_recipe(tmp_path, text))


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1e999"])
def test_non_finite_recipe_numbers_are_refused(tmp_path: Path, value: str) -> None:
    text = f"dataset: {{path: d.jsonl}}\ntraining: {{learning_rate: {value}}}\n"
    with pytest.raises(ConfigError, match=r"training\.learning_rate.*finite"):
        load_recipe(_recipe(tmp_path, text))


def test_a_huge_integer_in_a_recipe_is_one_line(tmp_path: Path) -> None:
    text = f"dataset: {{path: d.jsonl}}\ntraining: {{max_steps: {'9' * 6000}}}\n"
    with pytest.raises(ConfigError):
        load_recipe(_recipe(tmp_path, text))
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_recipe(_recipe(tmp_path, '{"training": {"max_steps": ' + "9" * 6000 + "}}", "r.json"))


def test_deeply_nested_json_recipe_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_recipe(_recipe(tmp_path, "[" * 100_000 + "]" * 100_000, "r.json"))


def test_an_oversized_recipe_is_refused_before_parsing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="too large for a recipe"):
        load_recipe(_recipe(tmp_path, "# " + "x" * 2_000_000 + "\n"))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("deep.jsonl", '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n"),
        ("huge.jsonl", '{"text": "a", "n": ' + "7" * 10_000 + "}\n"),
        ("deep.json", "[" * 100_000 + "]" * 100_000),
        ("huge.json", '[{"text": "a", "n": ' + "7" * 10_000 + "}]"),
    ],
)
def test_hostile_datasets_end_in_a_dataset_error(tmp_path: Path, name: str, content: str) -> None:
    from codetune_studio.engine.sources import read_source

    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=str(path)):
        read_source(str(path), offline=True)


def test_an_unparsable_port_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--database", "postgresql://u:secretpw@db.example:notaport/x", "db", "status"])
    err = capsys.readouterr().err
    assert status == 2
    assert "port must be a number" in err
    assert "secretpw" not in err
    assert "Traceback" not in err


def test_an_unwritable_log_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    status = main(["--log-file", str(blocker / "studio.log"), "paths"])
    err = capsys.readouterr().err
    assert status == 2
    assert "Cannot write the log file" in err
    assert "Traceback" not in err


def test_an_unwritable_settings_file_is_one_line(tmp_path: Path) -> None:
    from codetune_studio.settings import SettingsStore

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="Cannot save the settings file"):
        SettingsStore(blocker / "settings.json").update(offline=True)


def test_analyze_refuses_a_huge_source_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "generated.py"
    big.write_text("x = 1\n" * 2_000_000)  # 12 MB
    status = main(["analyze", str(big)])
    err = capsys.readouterr().err
    assert status == 2
    assert "the analyzer reads source files of at most 1 MB" in err


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "soon"])
def test_bad_timeouts_are_refused(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["analyze", "x.py", "--timeout", value])
    assert exc.value.code == 2
    assert "--timeout" in capsys.readouterr().err


def test_plugin_runner_refuses_a_bad_timeout() -> None:
    from codetune_studio.plugins.api import PluginSpec, ToolInputs
    from codetune_studio.plugins.isolation import run_isolated

    spec = PluginSpec(name="x", version="1", api_version="1.0", factory="a:b")
    with pytest.raises(ValueError, match="finite number of seconds"):
        run_isolated(spec, [ToolInputs(code="x")], timeout_s=float("nan"))


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`| head`) is gone before anything is written
    env = {**os.environ, "CODETUNE_DATA_DIR": str(tmp_path)}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "codetune_studio", "paths", "--json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=env,
            check=False,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 1
    assert result.stderr == b""


@pytest.mark.expect_logs(r"unexpected error")
def test_an_unexpected_error_is_one_console_line_and_a_logged_traceback(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from codetune_studio.cli import paths as paths_cmd

    def broken(_args: object, _context: object) -> int:
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(paths_cmd, "_paths", broken, raising=False)
    monkeypatch.setattr(paths_cmd, "register", _register_with(broken))
    log = tmp_path / "studio.log"
    with caplog.at_level(logging.ERROR):
        status = main(["--log-file", str(log), "paths"])
    err = capsys.readouterr().err
    assert status == 1
    assert "Unexpected error: RuntimeError: something nobody expected" in err
    assert "Traceback" not in err
    text = log.read_text()
    assert "ERROR" in text
    assert "Traceback" in text
    assert [r.levelno for r in caplog.records if r.getMessage() == "unexpected error"] == [
        logging.ERROR
    ]
    caplog.clear()


def _register_with(handler: object) -> object:
    def register(subparsers: object) -> None:
        parser = subparsers.add_parser("paths")  # type: ignore[attr-defined]
        parser.set_defaults(handler=handler)

    return register


def test_bad_input_errors_exit_2() -> None:
    assert ConfigError("x").exit_code == DatasetError("x").exit_code == 2
    assert issubclass(ConfigError, CodetuneError)

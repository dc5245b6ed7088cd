"""``hux`` imports only the module of the command it runs, and parses every command line as before.

``hux.cli.COMMANDS`` maps each command to the module that registers it. These
tests hold the table complete (every registered command, no stale line), prove
that the parser built for one command reads any command line exactly as the
parser of every module does, and that ``hux health`` leaves the heavy parts of
the project unimported (docs/benchmarks.md, "`hux health`").
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hux import cli
from hux.monitoring.settings import Ports
from tests.conftest import free_port


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return list(actions[0].choices)


def test_the_table_names_every_command_once_in_help_order() -> None:
    assert _commands(cli.build_parser()) == list(cli.COMMANDS), (
        "a module registers a command hux.cli.COMMANDS does not name (or the table names one nobody registers): "
        "add one line per command to COMMANDS, in the order of the help")


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_the_parser_of_one_command_knows_it(command: str) -> None:
    assert command in _commands(cli.build_parser(command))


def _same(value: Any) -> Any:
    """A value made comparable across two parsers: a handler built per ``register`` call (a closure, a partial)
    by what it wraps, a parser by its name."""
    if isinstance(value, functools.partial):
        return ("partial", _same(value.func), value.args, tuple(sorted((k, _same(v)) for k, v in value.keywords.items())))
    if isinstance(value, argparse.ArgumentParser):
        return ("parser", value.prog)
    if callable(value) and getattr(value, "__closure__", None):
        return (value.__qualname__, tuple(_same(cell.cell_contents) for cell in value.__closure__))
    return value


def _outcome(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[Any, ...]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            namespace = parser.parse_args(argv)
        except SystemExit as exc:
            return ("exit", exc.code, out.getvalue(), err.getvalue())
    return ("parsed", {key: _same(value) for key, value in vars(namespace).items()})


WORDS = st.sampled_from([
    *cli.COMMANDS, "--config", "--config=x.toml", "--conf", "--c", "--co=y.toml", "x.toml", "--json", "--native",
    "--docker", "--version", "--ver", "-h", "--help", "--he", "--bogus", "-", "--", "run", "check-config", "serve",
    "daily", "prometheus", "grafana", "list", "--port", "8010", "--timeout", "5", "--quiet", "-q", "bot",
])


@given(st.lists(WORDS, max_size=6))
@example(["--config", "health", "up"])
@example(["--conf=x.toml", "health", "--json"])
@example(["--help", "health"])
@example(["-h"])
@example(["health", "--config", "x.toml", "--docker"])
@example(["--c", "x.toml", "backups", "list", "--json"])
@example([])
def test_one_commands_parser_reads_a_command_line_as_the_whole_parser_does(argv: list[str]) -> None:
    full = _outcome(cli.build_parser(), argv)
    assert _outcome(cli.build_parser(cli.command_of(argv)), argv) == full


@pytest.mark.parametrize("argv, command", [
    (["health", "--json"], "health"),
    (["--config", "x.toml", "health"], "health"),
    (["--config=x.toml", "up"], "up"),
    (["--conf", "health", "up"], "up"),
    (["--help", "health"], None),
    (["-h"], None),
    (["--bogus", "health"], None),
    ([], None),
])
def test_command_of(argv: list[str], command: str | None) -> None:
    assert cli.command_of(argv) == command


#: what `hux health` has no use for: other commands' modules and the libraries only they need
NOT_FOR_HEALTH = (
    "hux.stack.commands", "hux.stack.supervisor", "hux.stack.cli", "hux.monitoring.render", "hux.monitoring.cli",
    "hux.monitoring.checks", "hux.ops.cli", "hux.ops.grafana_backup", "hux.ops.prometheus_backup",
    "hux.ops.maintenance", "hux.bot.app", "hux.bot.cli", "hux.bot.metrics", "hux.doubles.cli", "sqlalchemy",
    "aiohttp", "grafana_foundation_sdk", "prometheus_client",
)


def test_hux_health_imports_only_what_it_runs(tmp_path: Path) -> None:
    config = tmp_path / "hux.toml"
    config.write_text("[stack.ports]\n" + "".join(f"{n} = {free_port()}\n" for n in Ports.model_fields))
    boards = tmp_path / "data" / "run" / "grafana" / "dashboards"   # rendered, as `hux up` leaves them
    boards.mkdir(parents=True)
    (boards / "a.json").write_text(json.dumps({"uid": "a", "title": "A", "panels": []}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUX")}
    env.update(HUX_HOME=str(tmp_path), HUX_CONFIG=str(config), HUX_ENV_FILE=str(tmp_path / ".env"))
    code = ("import json, sys\nfrom hux.cli import main\ncode = main(['health', '--json'])\n"
            "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    report = json.loads(result.stdout)   # nothing runs there: every component fails, quickly
    assert report["status"] == "fail", report
    loaded = set(json.loads(result.stderr.strip().splitlines()[-1]))
    assert "hux.stack.health.run" in loaded
    unwanted = sorted(name for name in loaded if name.split(".")[0] in {"sqlalchemy", "aiohttp", "grafana_foundation_sdk", "prometheus_client"}
                      or name in NOT_FOR_HEALTH or any(name.startswith(m + ".") for m in NOT_FOR_HEALTH))
    assert not unwanted, f"`hux health` imported {unwanted}"

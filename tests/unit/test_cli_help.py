"""Every `autodm` command explains itself: `--help` works and says more than its name."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def command_paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    # Typer 0.27 vendors click: a group is whatever has sub-commands.
    paths: list[tuple[str, ...]] = []
    for name, command in getattr(group, "commands", {}).items():
        path = (*prefix, name)
        paths.append(path)
        paths.extend(command_paths(command, path))
    return paths


ROOT_GROUP = typer.main.get_command(app)
PATHS = command_paths(ROOT_GROUP)


def test_the_operator_commands_are_there() -> None:
    assert {("status",), ("topics", "provision"), ("db", "migrate")} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_every_command_has_a_help_that_explains_it(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"], prog_name="autodm")
    assert result.exit_code == 0, result.output
    assert "Usage: autodm " + " ".join(path) in " ".join(result.output.split())
    command: Any = ROOT_GROUP
    for name in path:
        command = command.commands[name]
    text = command.help or command.short_help or ""
    assert len(text.split()) >= 4, f"`autodm {' '.join(path)}` needs a --help that explains it"


def test_status_rejects_an_id_that_is_not_a_uuid() -> None:
    result = runner.invoke(app, ["status", "not-a-lead"])
    assert result.exit_code == 2
    assert "not-a-lead" in result.output

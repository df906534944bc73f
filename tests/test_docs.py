"""Every command is documented: a --help text of its own, and a line in the README."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from edge_agent.cli import cli as agent_cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def commands(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        found.append((path, command))
        if isinstance(command, click.Group):
            found.extend(commands(command, path))
    return found


def all_commands() -> list[tuple[str, click.Command]]:
    found = commands(agent_cli, "trapcount")
    try:
        from trainer.cli import main as train_cli
    except ImportError:  # the train extra is not installed
        return found
    return found + commands(train_cli, "trapcount-train")


@pytest.mark.parametrize(("path", "command"), all_commands(), ids=lambda v: str(v))
def test_every_command_has_help_and_is_in_the_readme(path: str, command: click.Command) -> None:
    assert (command.help or "").strip(), f"{path} has no docstring"
    assert path in README, f"README does not mention `{path}`"


def test_readme_has_exactly_the_two_setup_commands() -> None:
    setup = README.split("## Set-up: two commands", 1)[1].split("##", 1)[0]
    block = setup.split("```sh", 1)[1].split("```", 1)[0]
    lines = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert lines == ["make demo", "make test"]

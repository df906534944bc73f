"""The ``trapcount`` group and what every command shares: one-line errors (a bad config,
a model that does not match its manifest, a database that cannot be opened become one
``Error:`` line and a non-zero exit status, never a traceback: 2 for a bad config or usage,
1 for the rest), the config with command-line overrides, times given on the command line.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from edge_agent import __version__
from edge_agent.capture.frames import SourceError
from edge_agent.config import ConfigError, Settings, load_config, settings_from_dict
from edge_agent.manifest import ModelContractError
from edge_agent.store.errors import StoreError

F = TypeVar("F", bound=Callable[..., Any])

CONFIG_HELP = "Trap config (TOML); relative paths in it are relative to the file."


class ConfigProblem(click.ClickException):
    """A config or argument that cannot be used: exit status 2, like a usage error."""

    exit_code = 2


def one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def library_errors(func: F) -> F:
    """Turn the library's expected errors into one-line CLI errors."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            raise ConfigProblem(one_line(exc)) from None
        except (ModelContractError, StoreError, SourceError) as exc:
            raise click.ClickException(one_line(exc)) from None
        except OSError as exc:
            raise click.ClickException(one_line(exc)) from None

    return wrapper  # type: ignore[return-value]


def load_settings(config: Path | None, **overrides: dict[str, Any]) -> Settings:
    """The config file (or defaults) with command-line overrides, validated together."""
    settings = load_config(config)
    if not any(overrides.values()):
        return settings
    data = settings.model_dump()
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return settings_from_dict(data, base_dir=settings.base_dir)


def parse_time(value: str | None, zone: str, option: str) -> datetime | None:
    """ISO 8601; a time without an offset is the trap's local time."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigProblem(f"{option}: not an ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(zone))
    return parsed


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="trapcount")
def cli() -> None:
    """trapcount: count wildlife at a camera trap, on the trap.

    Frames -> motion gate -> int8 classifier -> tracker -> events with MaxN per label
    -> SQLite. `run` is the service, `process` runs the same pipeline over a recording,
    `report` reads the counts back, `export` writes Camtrap DP or CSV, `sync` pushes to a
    central PostgreSQL, `doctor` checks a trap.
    """

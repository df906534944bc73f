"""The example config is complete and valid; config errors are one line naming the key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from edge_agent.config import ConfigError, Settings, load_config
from tests.helpers.media import REPO, run_trapcount, write_config

EXAMPLE = REPO / "deploy" / "trap.example.toml"


def sections() -> dict[str, type]:
    return {
        name: field.annotation
        for name, field in Settings.model_fields.items()
        if name != "base_dir"
    }


def keys_by_section(text: str) -> dict[str, set[str]]:
    """Keys written in the file per [section], including commented-out ``# key = value``."""
    found: dict[str, set[str]] = {}
    section = None
    for line in text.splitlines():
        header = re.match(r"^\[(\w+)\]\s*$", line)
        if header:
            section = header.group(1)
            found.setdefault(section, set())
            continue
        if section is not None and (key := _key_of(line)):
            found[section].add(key)
    return found


def _key_of(line: str) -> str | None:
    """The key of ``key = value`` or of a commented-out ``# key = value`` (a valid TOML
    assignment once uncommented, so prose such as "# false = off" is not a key)."""
    candidate = line[2:] if line.startswith("# ") else line
    if not re.match(r"^[a-z_][a-z0-9_]*\s*=", candidate):
        return None
    try:
        (key,) = tomllib.loads(candidate)
    except (tomllib.TOMLDecodeError, ValueError):
        return None
    return key


def test_example_config_loads():
    settings = load_config(EXAMPLE)
    assert settings.base_dir == EXAMPLE.parent


def test_example_config_mentions_every_key_of_every_section():
    written = keys_by_section(EXAMPLE.read_text(encoding="utf-8"))
    assert set(written) == set(sections()), "one [section] per Settings section"
    for name, model in sections().items():
        missing = set(model.model_fields) - written[name]
        assert not missing, f"deploy/trap.example.toml lacks [{name}] {sorted(missing)}"
        unknown = written[name] - set(model.model_fields)
        assert not unknown, f"deploy/trap.example.toml has unknown [{name}] {sorted(unknown)}"


def test_example_config_shows_the_true_defaults():
    """The values written (uncommented) are the defaults, so the file documents them."""
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    defaults = Settings()
    for section, values in data.items():
        for key, value in values.items():
            assert getattr(getattr(defaults, section), key) == value, f"{section}.{key}"


def test_every_key_has_a_comment_in_the_example():
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if _key_of(line):
            assert lines[i - 1].startswith("# ") and not _key_of(lines[i - 1]), (
                f"no comment above line {i + 1}: {line}"
            )


@pytest.mark.parametrize(
    ("sections_", "expected"),
    [
        ({"motion": {"treshold": 10}}, "unknown key 'motion.treshold'"),
        ({"trapp": {"id": "x"}}, "unknown key 'trapp'"),
        ({"events": {"event_gap_s": -1}}, "events.event_gap_s: Input should be greater than 0"),
        ({"trap": {"latitude": 91}}, "trap.latitude: Input should be less than or equal to 90"),
        ({"trap": {"timezone": "Mars/Olympus"}}, "trap.timezone: unknown time zone"),
        ({"capture": {"active_hours": "25"}}, "capture.active_hours: not a cron field"),
        ({"service": {"heartbeat_s": 1}}, "service.heartbeat_s: Input should be greater"),
        (
            {"motion": {"min_area": 0.3, "max_area": 0.2}},
            "motion: max_area (0.2) must be at least min_area (0.3)",
        ),
        ({"motion": {"min_area": 0.9}}, "motion: max_area (0.8) must be at least min_area (0.9)"),
        (
            {"source": {"reconnect_initial_s": 120, "reconnect_max_s": 30}},
            "source: reconnect_max_s (30) must be at least reconnect_initial_s (120)",
        ),
        (
            {"sync": {"backoff_initial_s": 600, "backoff_max_s": 60}},
            "sync: backoff_max_s (60) must be at least backoff_initial_s (600)",
        ),
        ({"source": {"fps": 0.001}}, "source.fps: Input should be greater than or equal to 0.1"),
        (
            {"trap": {"deployment_start": "2024-05-30T09:15:00"}},
            "trap.deployment_start: 2024-05-30T09:15:00 has no UTC offset",
        ),
        (
            {"trap": {"deployment_end": "end of June"}},
            "trap.deployment_end: not an ISO 8601 date or time: 'end of June'",
        ),
        (
            {"trap": {"deployment_start": "2024-06-01", "deployment_end": "2024-05-31"}},
            "trap: deployment_end (2024-05-31) must be after deployment_start (2024-06-01)",
        ),
    ],
)
def test_config_errors_are_one_line_naming_the_key(tmp_path, sections_, expected):
    path = write_config(tmp_path / "trap.toml", sections_)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_invalid_toml_is_one_line(tmp_path):
    path = tmp_path / "trap.toml"
    path.write_text("[trap\nid = 1\n")
    with pytest.raises(ConfigError, match="invalid TOML") as info:
        load_config(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("command", ["run", "doctor"])
def test_cli_config_errors_exit_2_with_one_line(tmp_path, command):
    path = write_config(tmp_path / "trap.toml", {"motion": {"treshold": 10}})
    result = run_trapcount(command, "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"Error: {path}: unknown key 'motion.treshold'"
    assert "Traceback" not in result.stderr


def test_cli_missing_config_exits_2(tmp_path):
    result = run_trapcount("run", "--config", "nope.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "Error: config file not found: nope.toml"


def test_cli_out_of_range_override_names_the_key(tmp_path):
    result = run_trapcount("process", str(tmp_path), "--event-gap", "-3", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("Error: events.event_gap_s: ")
    assert not Path(tmp_path / "trapcount.sqlite").exists()


def test_deployment_dates_take_toml_dates_times_and_strings(tmp_path):
    """trap.deployment_start/end: a TOML date or offset date-time, or the same as a string;
    a date starts at the trap's local midnight and ends at the end of its local day."""
    path = tmp_path / "trap.toml"
    path.write_text(
        '[trap]\ntimezone = "Europe/Berlin"\n'
        "deployment_start = 2024-05-30T09:15:00+02:00\ndeployment_end = 2024-06-10\n",
        encoding="utf-8",
    )
    trap = load_config(path).trap
    assert (trap.deployment_start, trap.deployment_end) == (
        "2024-05-30T09:15:00+02:00",
        "2024-06-10",
    )
    start, end = trap.deployment_period()
    assert start.isoformat() == "2024-05-30T09:15:00+02:00"
    assert end.isoformat() == "2024-06-10T23:59:59+02:00"
    as_text = write_config(
        tmp_path / "text.toml", {"trap": {"deployment_start": "2024-05-30", "deployment_end": ""}}
    )
    trap = load_config(as_text).trap
    assert trap.deployment_period()[0].isoformat() == "2024-05-30T00:00:00+00:00"  # UTC trap
    assert trap.deployment_end is None  # "" = unset

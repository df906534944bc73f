"""`trapcount export camtrap-dp`: a Camtrap DP 1.0.2 package from two traps' real
databases that Frictionless validates offline against the official schemas and profile,
vendored in edge_agent/schemas/camtrap-dp-1.0.2; when ../shared/camtrap-dp-1.0.2 is there,
the vendored files are checked to be the official ones and are used as well."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

import edge_agent
from edge_agent.cli import cli
from edge_agent.config import CAMTRAP_FEATURE_TYPES, Settings, settings_from_dict
from edge_agent.office.camtrap import (
    PROFILE_URL,
    SCHEMA_DIR,
    SCHEMA_URLS,
    TABLES,
    ExportError,
    camtrap_time,
    columns,
    export_camtrap_dp,
    table_schema,
    validate_package,
)
from edge_agent.office.report_data import open_stores
from edge_agent.office.taxa import DEFAULT_TAXA, TaxonMap
from edge_agent.office.windows import Window, parse_bound
from tests.helpers.media import REPO, write_config
from tests.helpers.trap_databases import (
    MEADOW,
    TRUTH,
    Planned,
    build_trap_db,
    build_two_traps,
    utc,
)

pytest.importorskip("frictionless", reason="the Camtrap DP tests need frictionless (dev extra)")

OFFICIAL = REPO.parent / "shared" / "camtrap-dp-1.0.2"
needs_official = pytest.mark.skipif(
    not (OFFICIAL / "camtrap-dp-profile.json").exists(),
    reason=f"official Camtrap DP 1.0.2 files not found at {OFFICIAL} (a fresh clone without "
    "../shared): validated against the vendored copies only",
)
VENDORED_FILES = [
    "LICENSE",
    "camtrap-dp-profile.json",
    *(f"{table}-table-schema.json" for table in TABLES),
]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Validation must never fetch the profile or schemas named by URL in the package."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:]!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def traps(tmp_path_factory):
    return build_two_traps(tmp_path_factory.mktemp("traps"))


@pytest.fixture(scope="module")
def package(traps, tmp_path_factory):
    out = tmp_path_factory.mktemp("package") / "camtrap"
    with open_stores([str(p) for p in traps]) as stores:
        result = export_camtrap_dp(stores, out, created=utc("2024-07-01T12:00:00"))
    return out, result


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


# -- validity -----------------------------------------------------------------------------


def test_the_package_validates_offline_against_the_vendored_official_schemas(package):
    out, result = package
    assert sorted(p.name for p in out.iterdir()) == [
        "datapackage.json",
        "deployments.csv",
        "media.csv",
        "observations.csv",
    ]
    assert (result.deployments, result.observations, result.media) == (2, 10, 0)
    assert validate_package(out) == []


@needs_official
def test_the_package_validates_against_the_official_schemas_and_profile(package):
    out, _ = package
    assert validate_package(out, OFFICIAL) == []


@needs_official
def test_the_vendored_files_are_the_official_ones_unchanged():
    for name in VENDORED_FILES:
        assert (SCHEMA_DIR / name).read_bytes() == (OFFICIAL / name).read_bytes(), name


def test_the_vendored_files_are_package_data_with_their_origin():
    """The schemas the export uses are the vendored files; the README says where they come
    from; the config's featureType vocabulary is the deployments schema's."""
    for name in VENDORED_FILES:
        assert (SCHEMA_DIR / name).is_file(), name
    readme = (SCHEMA_DIR / "README.md").read_text("utf-8")
    assert "https://github.com/tdwg/camtrap-dp" in readme and "MIT" in readme
    assert "MIT License" in (SCHEMA_DIR / "LICENSE").read_text("utf-8")
    for table in TABLES:
        vendored = json.loads((SCHEMA_DIR / f"{table}-table-schema.json").read_text("utf-8"))
        assert table_schema(table) == vendored
        assert columns(table) == [field["name"] for field in vendored["fields"]]
    (feature_type,) = [
        f for f in table_schema("deployments")["fields"] if f["name"] == "featureType"
    ]
    assert tuple(feature_type["constraints"]["enum"]) == CAMTRAP_FEATURE_TYPES
    assert "trailGame" in CAMTRAP_FEATURE_TYPES


def test_the_package_validates_from_the_vendored_schemas_without_shared(package, tmp_path):
    """The validator run from a copy of the edge_agent package with no ../shared anywhere
    near it (as in a fresh clone or an installed wheel) and no network: it needs nothing
    but the package and its data."""
    repo = tmp_path / "repo"
    shutil.copytree(
        Path(edge_agent.__file__).parent,
        repo / "edge_agent",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    assert not (repo.parent / "shared").exists()
    out, _ = package
    script = (
        "import socket, sys\n"
        "def refuse(*args, **kwargs):\n"
        "    raise AssertionError('network access attempted')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import edge_agent.office.camtrap as camtrap\n"
        f"assert camtrap.__file__.startswith({str(repo)!r}), camtrap.__file__\n"
        "print(camtrap.validate_package(sys.argv[1]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(out)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@needs_official
def test_the_official_example_package_validates_with_the_same_code(tmp_path):
    """The validator itself against a package known to be good."""
    example = OFFICIAL / "example"
    assert validate_package(example, OFFICIAL) == []
    assert validate_package(example) == []


def test_a_broken_package_is_caught(package, tmp_path):
    out, _ = package
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in out.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    rows = read_csv(broken / "observations.csv")
    rows[0]["deploymentID"] = "nowhere"  # a foreign key to no deployment
    rows[1]["count"] = "0"  # below the minimum
    rows[2]["eventStart"] = "2024-06-01 23:30"  # not the standard's datetime format
    with (broken / "observations.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, columns("observations"), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    descriptor = json.loads((broken / "datapackage.json").read_text("utf-8"))
    del descriptor["taxonomic"]
    (broken / "datapackage.json").write_text(json.dumps(descriptor), "utf-8")
    problems = "\n".join(validate_package(broken))
    assert "observations:" in problems
    assert "nowhere" in problems  # the foreign key
    assert "count" in problems and "2024-06-01 23:30" in problems
    assert "'taxonomic' is a required property" in problems


# -- content ------------------------------------------------------------------------------


def test_observations_are_events_with_maxn_counts_and_taxa(package):
    out, _ = package
    rows = read_csv(out / "observations.csv")
    assert list(rows[0]) == columns("observations")
    assert {r["observationLevel"] for r in rows} == {"event"}
    assert {r["mediaID"] for r in rows} == {""}
    assert {r["classificationMethod"] for r in rows} == {"machine"}
    # count is MaxN: per deployment and label the sums are the truth.
    for trap in ("meadow", "canyon"):
        sums: Counter[str] = Counter()
        for r in rows:
            if r["deploymentID"] == trap:
                label = r["observationTags"].split(" | ")[0].removeprefix("label:")
                sums[label] += int(r["count"])
        assert dict(sums) == TRUTH[trap]
    by_label = {r["observationTags"].split(" | ")[0][6:]: r for r in rows}
    assert by_label["deer"]["scientificName"] == "Cervidae"
    assert by_label["fox"]["scientificName"] == "Vulpes vulpes"
    assert by_label["boar"]["scientificName"] == "Sus scrofa"
    assert (by_label["person"]["observationType"], by_label["person"]["scientificName"]) == (
        "human",
        "",
    )
    assert by_label["automobile"]["observationType"] == "vehicle"
    assert by_label["unknown"]["observationType"] == "unknown"
    assert {r["observationType"] for r in rows if r["scientificName"]} == {"animal"}


def test_observation_times_carry_the_traps_offset_and_model_version(package):
    out, _ = package
    rows = {r["observationID"]: r for r in read_csv(out / "observations.csv")}
    first = rows["meadow-e1-deer"]
    assert first["eventID"] == "meadow-e1"
    assert first["eventStart"] == "2024-06-01T23:30:00+02:00"
    assert first["eventEnd"] == "2024-06-01T23:30:43+02:00"  # 42.5 s, rounded up
    assert first["classifiedBy"] == "trapcount seed model a1a1a1a1a1a1"
    assert first["classificationProbability"] == "0.8100"
    assert first["classificationTimestamp"] == "2024-06-01T23:32:00+02:00"
    canyon = rows["canyon-e2-unknown"]
    assert canyon["eventStart"] == "2024-06-02T00:30:00-06:00"
    assert canyon["classifiedBy"] == "trapcount resnet8 model b2b2b2b2b2b2"
    assert canyon["classificationProbability"] == "0.5500"
    for row in rows.values():
        start = datetime.strptime(row["eventStart"], "%Y-%m-%dT%H:%M:%S%z")
        end = datetime.strptime(row["eventEnd"], "%Y-%m-%dT%H:%M:%S%z")
        assert start <= end


def test_deployments_come_from_the_database_with_their_zones(package):
    out, _ = package
    rows = {r["deploymentID"]: r for r in read_csv(out / "deployments.csv")}
    assert set(rows) == {"meadow", "canyon"}
    meadow = rows["meadow"]
    assert (meadow["latitude"], meadow["longitude"]) == ("52.5163", "13.3777")
    assert meadow["locationName"] == "Meadow by the brook"
    assert meadow["cameraModel"] == "Reolink RLC-510A"
    assert meadow["deploymentStart"] == "2024-06-01T17:30:00+02:00"
    # Still out: ends at its last heartbeat (4 h after the last event, every 2 h).
    assert meadow["deploymentEnd"] == "2024-06-08T09:30:00+02:00"
    assert rows["canyon"]["deploymentStart"].endswith("-06:00")
    assert rows["canyon"]["locationName"] == "canyon"  # no name given: the trap id
    observations = read_csv(out / "observations.csv")
    for obs in observations:
        dep = rows[obs["deploymentID"]]
        assert dep["deploymentStart"] <= obs["eventStart"] <= dep["deploymentEnd"]


def test_the_descriptor(package):
    out, _ = package
    descriptor = json.loads((out / "datapackage.json").read_text("utf-8"))
    assert descriptor["profile"] == PROFILE_URL
    assert [r["schema"] for r in descriptor["resources"]] == [SCHEMA_URLS[t] for t in TABLES]
    assert descriptor["created"] == "2024-07-01T12:00:00Z"
    assert descriptor["project"]["observationLevel"] == ["event"]
    assert descriptor["temporal"] == {"start": "2024-06-01", "end": "2024-06-08"}
    assert descriptor["spatial"]["type"] == "Polygon"
    assert descriptor["spatial"]["coordinates"][0][0] == [-104.9903, 39.7392]
    assert descriptor["contributors"][0]["role"] == "contact"
    assert "placeholder" in descriptor["contributors"][0]["title"]
    assert {lic["scope"] for lic in descriptor["licenses"]} == {"data", "media"}
    names = {t["scientificName"]: t for t in descriptor["taxonomic"]}
    assert set(names) == {"Cervidae", "Vulpes vulpes", "Sus scrofa"}
    assert names["Cervidae"]["taxonRank"] == "family"
    assert names["Vulpes vulpes"]["vernacularNames"] == {"eng": "red fox"}


def test_media_csv_is_its_header_without_a_media_table(package):
    out, _ = package
    assert (out / "media.csv").read_text("utf-8") == ",".join(columns("media")) + "\n"


# -- config -------------------------------------------------------------------------------


def test_the_config_overrides_taxa_and_describes_the_deployment(traps, tmp_path):
    settings = settings_from_dict(
        {
            "trap": {"id": "meadow"},
            "export": {
                "contributor": "Jane Ecologist",
                "contributor_email": "jane@example.org",
                "data_license": "CC0-1.0",
                "feature_type": "trailGame",
                "camera_height_m": 0.8,
                "bait_use": False,
                "coordinate_uncertainty_m": 15,
                "taxa": {"deer": "Capreolus capreolus", "unknown": "blank"},
            },
        }
    )
    out = tmp_path / "pkg"
    with open_stores([str(p) for p in traps]) as stores:
        export_camtrap_dp(stores, out, settings)
    assert validate_package(out) == []
    deployments = {r["deploymentID"]: r for r in read_csv(out / "deployments.csv")}
    assert deployments["meadow"]["featureType"] == "trailGame"
    assert deployments["meadow"]["cameraHeight"] == "0.8"
    assert deployments["meadow"]["baitUse"] == "false"
    assert deployments["meadow"]["coordinateUncertainty"] == "15"
    assert deployments["canyon"]["featureType"] == ""  # another trap: not described
    observations = read_csv(out / "observations.csv")
    deer = [r for r in observations if r["observationTags"].startswith("label:deer ")]
    assert {r["scientificName"] for r in deer} == {"Capreolus capreolus"}
    blank = [r for r in observations if r["observationTags"].startswith("label:unknown ")]
    assert [(r["observationType"], r["count"]) for r in blank] == [("blank", "")]
    descriptor = json.loads((out / "datapackage.json").read_text("utf-8"))
    assert descriptor["contributors"] == [
        {"title": "Jane Ecologist", "role": "contact", "email": "jane@example.org"}
    ]
    roe = next(t for t in descriptor["taxonomic"] if t["scientificName"] == "Capreolus capreolus")
    assert roe["taxonRank"] == "species"


def test_the_default_taxa_cover_the_shipped_models_labels():
    cifar = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship"]
    taxa = TaxonMap()
    assert not taxa.unmapped([*cifar, "truck", "person", "unknown"])
    assert taxa["bird"].scientific_name == "Aves" and taxa["bird"].rank == "class"
    assert taxa["cat"].scientific_name == "Felis catus"
    assert taxa["dog"].scientific_name == "Canis familiaris"
    assert taxa["frog"].scientific_name == "Anura" and taxa["frog"].rank == "order"
    assert taxa["horse"].scientific_name == "Equus caballus"
    assert {taxa[v].observation_type for v in ("airplane", "automobile", "ship", "truck")} == {
        "vehicle"
    }
    assert taxa["person"].observation_type == "human"
    assert taxa["okapi"].observation_type == "unknown"  # never guessed
    assert all(t.observation_type for t in DEFAULT_TAXA.values())


def test_a_deployment_without_coordinates_is_refused_unless_the_config_has_them(tmp_path):
    trap = MEADOW.model_copy(update={"latitude": None, "longitude": None})
    db = build_trap_db(
        tmp_path / "nocoords.sqlite", trap, [Planned("2024-06-01T10:00:00", {"fox": 1})]
    )
    with open_stores([str(db)]) as stores, pytest.raises(ExportError) as info:
        export_camtrap_dp(stores, tmp_path / "out")
    assert "deployment meadow has no latitude/longitude" in str(info.value)
    assert "\n" not in str(info.value)
    config = write_config(
        tmp_path / "trap.toml", {"trap": {"id": "meadow", "latitude": 47.1, "longitude": 8.2}}
    )
    result = CliRunner().invoke(
        cli,
        ["export", "camtrap-dp", "--db", str(db), "--out", str(tmp_path / "out"),
         "--config", str(config)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    deployment = read_csv(tmp_path / "out" / "deployments.csv")[0]
    assert (deployment["latitude"], deployment["longitude"]) == ("47.1", "8.2")
    refused = CliRunner().invoke(
        cli, ["export", "camtrap-dp", "--db", str(db), "--out", str(tmp_path / "o2")]
    )
    assert refused.exit_code == 1
    assert refused.stderr.startswith("Error: deployment meadow has no latitude/longitude")
    assert len(refused.stderr.strip().splitlines()) == 1


# -- media --------------------------------------------------------------------------------


def test_kept_crops_are_not_camera_media_and_nothing_is_listed_without_files(tmp_path):
    """The media table as the media keeper fills it (rows written by hand): crops are cut by
    trapcount and never listed; frames only when they are put into the package (--media,
    tests/edge/test_camtrap_media.py), so media.csv names no file the package lacks."""
    db = build_trap_db(
        tmp_path / "media.sqlite", MEADOW, [Planned("2024-06-01T10:00:00", {"fox": 1})]
    )
    with sqlite3.connect(db) as connection:
        connection.executemany(
            "INSERT INTO media (deployment_id, event_id, time, kind, path, sha256, bytes, label,"
            " confidence, disagreed, reviewed_label, privacy_status, created)"
            " VALUES (1, 1, ?, ?, ?, '', 0, ?, 0.5, 0, ?, ?, '2024-06-02 00:00:00')",
            [
                ("2024-06-01 10:00:01", "crop", "/var/lib/trapcount/media/fox-1.jpg", "fox",
                 None, "clear"),
                ("2024-06-01 10:00:02", "crop", "media/crop-2.png", "fox", "person", "clear"),
                ("2024-06-01 10:00:03", "frame", "media/frame-3.jpg", "person", None, "blurred"),
                ("2024-06-01 10:00:04", "frame", "media/frame-4.jpg", "fox", None, "clear"),
            ],
        )  # fmt: skip
    connection.close()
    out = tmp_path / "pkg"
    with open_stores([str(db)]) as stores:
        result = export_camtrap_dp(stores, out)
    assert (result.media, result.crops) == (0, 2)
    assert result.media_left_out == {"a person": 1, "no media folder given": 1}
    assert validate_package(out) == []
    assert out.stat().st_mode & 0o777 == 0o700  # exports are not world-readable
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o600}
    assert (out / "media.csv").read_text("utf-8") == ",".join(columns("media")) + "\n"


# -- CLI ----------------------------------------------------------------------------------


def test_the_cli_exports_validates_and_notes_unmapped_labels(tmp_path):
    db = build_trap_db(
        tmp_path / "t.sqlite",
        MEADOW,
        [Planned("2024-06-01T10:00:00", {"okapi": 1}), Planned("2024-06-03T10:00:00", {"fox": 2})],
    )
    out = tmp_path / "pkg"
    result = CliRunner().invoke(
        cli,
        ["export", "camtrap-dp", "--db", str(db), "--out", str(out), "--validate",
         "--since", "2024-06-01", "--until", "2024-06-02"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"wrote {out}: 1 deployment(s), 1 observation(s), 0 media\n"
        "valid Camtrap DP 1.0.2 (checked offline)\n"
    )
    assert "label(s) okapi are not in the taxon map" in result.stderr
    (observation,) = read_csv(out / "observations.csv")
    assert observation["observationType"] == "unknown"
    assert "okapi" in observation["observationComments"]


def test_nothing_to_export_is_one_line(traps, tmp_path):
    with open_stores([str(traps[0])]) as stores, pytest.raises(ExportError, match="nothing"):
        window = Window(parse_bound("2001-01-01"), parse_bound("2001-01-02", end=True))
        export_camtrap_dp(stores, tmp_path / "empty", Settings(), window=window)


def test_camtrap_times_are_whole_seconds_with_the_offset():
    value = utc("2024-01-15T12:00:00.250000")
    assert camtrap_time(value, "America/Denver") == "2024-01-15T05:00:00-07:00"
    assert camtrap_time(value, "America/Denver", round_up=True) == "2024-01-15T05:00:01-07:00"
    assert camtrap_time(None, "UTC") == ""


@pytest.mark.parametrize("label", ['=HYPERLINK("http://evil.example","x")', "Red Fox", "a/b"])
def test_an_observation_label_that_breaks_the_label_rules_is_refused(tmp_path, label):
    """Camtrap DP is a data standard: its tables are not defused like the spreadsheet CSV,
    so a label from a tampered or foreign database stops the export, naming the label."""
    db = build_trap_db(
        tmp_path / "foreign.sqlite",
        MEADOW,
        [Planned("2024-06-01T10:00:00", {"fox": 1}), Planned("2024-06-02T10:00:00", {label: 2})],
    )
    out = tmp_path / "pkg"
    result = CliRunner().invoke(cli, ["export", "camtrap-dp", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: event meadow-e2 has the label {label!r}, which breaks")
    assert not out.exists()

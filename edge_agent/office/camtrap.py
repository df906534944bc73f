"""Camtrap DP 1.0.2 export: the counts as a Camera Trap Data Package.

One package holds ``datapackage.json`` and three CSV tables:

- ``deployments.csv``: one row per deployment (trap x location x camera) that was out in
  the exported period, with its coordinates (required by the standard: the export
  refuses a deployment without them), start, end, camera model and the config's
  ``[export]`` setup details. An open deployment (the trap is still out) ends at its
  latest event or heartbeat.
- ``observations.csv``: one row per event and label at ``observationLevel=event``, with
  ``count`` = the event's MaxN, ``observationType`` and ``scientificName`` from the label
  -> taxon map (``edge_agent.office.taxa``), ``classificationMethod=machine``, the classifier's
  mean confidence as ``classificationProbability`` and the model version as
  ``classifiedBy``. ``mediaID`` is empty: an event-level observation names no single file.
- ``media.csv``: the kept frames and crops when the database has a ``media`` table
  (revision 0004, ``edge_agent.service.media``; ``filePublic=false`` unless a file is explicitly
  clear of people), else just its header. The package files are created 0600 in a 0700
  folder.

Times are ISO 8601 in the deployment's zone with the offset, to the second, as the
standard's ``%Y-%m-%dT%H:%M:%S%z`` format requires: an event's start is rounded down and
its end up, so the written interval always holds the event.

The package names the official profile and table schemas by URL. The official files of the
release are vendored, unchanged, as package data in ``edge_agent/schemas/camtrap-dp-1.0.2``
(MIT; see the README there): the tables' columns come from them, and
:func:`validate_package` checks a package offline against them, the tables with Frictionless
and ``datapackage.json`` with the profile.
"""

from __future__ import annotations

import copy
import csv
import functools
import json
import mimetypes
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import MetaData, Table, select

from edge_agent import __version__
from edge_agent.config import Settings
from edge_agent.labels import RULE, is_valid_label, shown
from edge_agent.office.report_data import Deployment, ReportData, Row, load
from edge_agent.office.taxa import TaxonMap
from edge_agent.office.windows import Window, zone_of
from edge_agent.store.database import Store
from edge_agent.store.queries import has_table

VERSION = "1.0.2"
BASE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
PROFILE_URL = f"{BASE_URL}/camtrap-dp-profile.json"
TABLES = ("deployments", "media", "observations")
SCHEMA_URLS = {name: f"{BASE_URL}/{name}-table-schema.json" for name in TABLES}
# The official files the URLs name, vendored unchanged (edge_agent/schemas/camtrap-dp-1.0.2).
SCHEMA_DIR = files("edge_agent") / "schemas" / f"camtrap-dp-{VERSION}"
PROFILE_FILE = "camtrap-dp-profile.json"
HUMAN_LABELS = frozenset({"person", "people", "human"})


class ExportError(ValueError):
    """The data cannot make a valid package; the message is one line and says why."""


@dataclass
class ExportResult:
    out: Path
    deployments: int
    media: int
    observations: int
    unmapped_labels: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


# -- the official schemas -----------------------------------------------------------------


def _schema_file(table: str) -> str:
    if table not in TABLES:
        raise KeyError(f"no Camtrap DP table {table!r}; have {', '.join(TABLES)}")
    return f"{table}-table-schema.json"


@functools.cache
def _vendored(name: str) -> dict[str, Any]:
    """A vendored official file, read and parsed once."""
    return json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


def _official(name: str, schema_dir: Path | None = None) -> dict[str, Any]:
    """An official file: a copy of the vendored one, or the one in ``schema_dir``."""
    if schema_dir is None:
        return copy.deepcopy(_vendored(name))
    return json.loads((Path(schema_dir) / name).read_text(encoding="utf-8"))


def table_schema(table: str, schema_dir: Path | None = None) -> dict[str, Any]:
    """The official Frictionless Table Schema of Camtrap DP table ``table``."""
    return _official(_schema_file(table), schema_dir)


def profile(schema_dir: Path | None = None) -> dict[str, Any]:
    """The official Camtrap DP profile, the JSON Schema of ``datapackage.json``."""
    return _official(PROFILE_FILE, schema_dir)


def columns(table: str) -> list[str]:
    """The column names of table ``table``, in the standard's order."""
    return [column["name"] for column in _vendored(_schema_file(table))["fields"]]


# -- values -------------------------------------------------------------------------------


def camtrap_time(value: datetime | None, zone: str, *, round_up: bool = False) -> str:
    """``value`` in ``zone`` as ``YYYY-MM-DDTHH:MM:SS+HH:MM`` (whole seconds)."""
    if value is None:
        return ""
    if round_up and value.microsecond:
        value = value + timedelta(seconds=1)
    local = value.astimezone(zone_of(zone)).replace(microsecond=0)
    return local.isoformat(timespec="seconds")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-") or "trapcount"


# -- tables -------------------------------------------------------------------------------


def _last_activity(data: ReportData, dep: Deployment) -> datetime:
    """When an open deployment was last heard from: its latest event end or heartbeat."""
    times = [dep.start]
    times += [row.end for row in data.rows if row.deployment.key == dep.key]
    times += [
        beat["time"] for beat in data.heartbeats.get(dep.trap_id, []) if beat["time"] >= dep.start
    ]
    return max(times)


def _overlaps(dep: Deployment, window: Window, end: datetime) -> bool:
    if window.since is not None and end < window.since.at(dep.timezone):
        return False
    return not (window.until is not None and dep.start >= window.until.at(dep.timezone))


def deployment_records(data: ReportData, settings: Settings) -> list[dict[str, str]]:
    """deployments.csv: the deployments out during the data's window."""
    trap = settings.trap
    extra = settings.export
    records = []
    for dep in sorted(data.deployments, key=lambda d: (d.start, d.key)):
        end = dep.end or _last_activity(data, dep)
        if not _overlaps(dep, data.window, end):
            continue
        ours = dep.trap_id == trap.id  # the config describes this trap
        latitude, longitude = dep.latitude, dep.longitude
        if ours and latitude is None and longitude is None:
            latitude, longitude = trap.latitude, trap.longitude  # an older deployment record
        if latitude is None or longitude is None:
            raise ExportError(
                f"deployment {dep.key} has no latitude/longitude, which Camtrap DP requires: "
                f"set trap.latitude and trap.longitude for trap {dep.trap_id!r} in its config "
                "and pass it with --config"
            )
        record = {
            "deploymentID": dep.key,
            "locationName": dep.location_name or dep.trap_id,
            "latitude": f"{latitude:.6f}".rstrip("0").rstrip("."),
            "longitude": f"{longitude:.6f}".rstrip("0").rstrip("."),
            "deploymentStart": camtrap_time(dep.start, dep.timezone),
            "deploymentEnd": camtrap_time(end, dep.timezone, round_up=True),
            "cameraID": dep.trap_id,
            "cameraModel": dep.camera_model,
            "deploymentTags": f"timezone:{dep.timezone}",
        }
        if ours:
            record |= {
                "coordinateUncertainty": _text(extra.coordinate_uncertainty_m),
                "setupBy": extra.setup_by,
                "cameraHeight": _text(extra.camera_height_m),
                "cameraTilt": _text(extra.camera_tilt_deg),
                "cameraHeading": _text(extra.camera_heading_deg),
                "baitUse": _text(extra.bait_use),
                "featureType": extra.feature_type,
                "habitat": extra.habitat,
            }
        records.append(record)
    return records


def classified_by(row: Row, models: dict[str, dict[str, Any]]) -> str:
    """The model that classified an event, as ``trapcount <arch> model <version>``."""
    if not row.model_sha256:
        return "trapcount (model not recorded)"
    model = models.get(row.model_sha256, {})
    arch = model.get("arch")
    name = f"{arch} model" if arch and arch != "unknown" else "model"
    return f"trapcount {name} {row.model_sha256[:12]}"


def observation_records(
    data: ReportData, taxa: TaxonMap, deployments: set[str]
) -> list[dict[str, str]]:
    """observations.csv: one row per event and label, at observationLevel=event."""
    models = {m["sha256"]: m for m in data.models}
    records = []
    for row in data.rows:
        dep = row.deployment
        if dep.key not in deployments:
            continue
        event_id = f"{dep.key}-e{row.event_id}"
        if not is_valid_label(row.label):
            # A data standard's tables must carry the model's labels, not whatever a tampered
            # or foreign database holds; refused before anything is written.
            raise ExportError(
                f"event {event_id} has the label {shown(row.label)}, which breaks the label "
                f"rules ({RULE}): a tampered or foreign database?"
            )
        taxon = taxa[row.label]
        comments = []
        if not taxa.knows(row.label):
            comments.append(f"classifier label {row.label!r} is not in the taxon map")
        if row.suppressed:
            # Counted, but the privacy guard saw something like a person: no image kept.
            comments.append(
                f"privacy: no media kept of {row.suppressed} of {row.tracks} track(s) "
                "(person-like features)"
            )
        comment = "; ".join(comments)
        records.append(
            {
                "observationID": f"{event_id}-{_slug(row.label)}",
                "deploymentID": dep.key,
                "mediaID": "",
                "eventID": event_id,
                "eventStart": camtrap_time(row.start, dep.timezone),
                "eventEnd": camtrap_time(row.end, dep.timezone, round_up=True),
                "observationLevel": "event",
                "observationType": taxon.observation_type,
                "scientificName": taxon.scientific_name if taxon.is_animal else "",
                "count": str(row.max_n) if taxon.observation_type != "blank" else "",
                "classificationMethod": "machine",
                "classifiedBy": classified_by(row, models),
                "classificationTimestamp": camtrap_time(row.written_at, dep.timezone),
                "classificationProbability": f"{min(max(row.mean_confidence, 0.0), 1.0):.4f}",
                "observationTags": (
                    f"label:{row.label} | tracks:{row.tracks} | frames:{row.frames}"
                    + (f" | privacy_suppressed:{row.suppressed}" if row.suppressed else "")
                ),
                "observationComments": comment,
            }
        )
    return records


def _media_column(table: Table, *names: str) -> Any:
    for name in names:
        if name in table.c:
            return table.c[name]
    return None


def media_records(
    store: Store, data: ReportData, deployments: dict[tuple[str, int], Deployment]
) -> list[dict[str, str]]:
    """media.csv rows for the kept frames and crops of a database with a ``media`` table.

    A file is public only when its privacy status says it is clear of people and its
    label is not a person; anything else (no status, blurred, a person) is private.
    Absolute paths on the trap become ``media/<file name>`` inside the package.
    """
    if not has_table(store, "media"):
        return []
    table = Table("media", MetaData(), autoload_with=store.engine)
    when = _media_column(table, "time", "timestamp", "captured_at", "created_at")
    path = _media_column(table, "path", "file_path")
    if when is None or path is None or "deployment_id" not in table.c:
        return []
    label = _media_column(table, "reviewed_label", "label")
    privacy = _media_column(table, "privacy_status", "privacy")
    records = []
    with store.read() as session:
        for media in session.execute(select(table).order_by(when)).mappings():
            dep = deployments.get((store.where, media["deployment_id"]))
            if dep is None:
                continue
            stamp = media[when.name]
            if isinstance(stamp, str):
                stamp = datetime.fromisoformat(stamp)
            stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp
            if not data.window.contains(stamp, dep.timezone):
                continue
            if media[path.name] is None:
                continue  # a record of a track whose images were withheld: no file, no media
            stored = PurePosixPath(str(media[path.name]))
            relative = (
                PurePosixPath("media", stored.name)
                if stored.is_absolute() or ".." in stored.parts
                else PurePosixPath(*[p for p in stored.parts if p != "."])
            )
            labels = {str(media[label.name]).lower()} if label is not None else set()
            if "label" in table.c:
                labels.add(str(media["label"]).lower())
            clear = privacy is not None and str(media[privacy.name]).lower() == "clear"
            mediatype = mimetypes.guess_type(stored.name)[0] or "image/jpeg"
            key = media["id"] if "id" in table.c else len(records) + 1
            records.append(
                {
                    "mediaID": f"{dep.key}-m{key}",
                    "deploymentID": dep.key,
                    "captureMethod": "activityDetection",
                    "timestamp": camtrap_time(stamp, dep.timezone),
                    "filePath": str(relative),
                    "filePublic": _text(clear and not (labels & HUMAN_LABELS)),
                    "fileName": stored.name,
                    "fileMediatype": mediatype,
                }
            )
    return records


# -- datapackage.json ---------------------------------------------------------------------


def _spatial(deployments: list[dict[str, str]]) -> dict[str, Any]:
    """GeoJSON: the point, or the bounding box of several (their points when in a line)."""
    points = sorted({(float(d["longitude"]), float(d["latitude"])) for d in deployments})
    if len(points) == 1:
        return {"type": "Point", "coordinates": list(points[0])}
    lons = [p[0] for p in points]
    lats = [p[1] for p in points]
    west, east, south, north = min(lons), max(lons), min(lats), max(lats)
    if west == east or south == north:
        return {"type": "MultiPoint", "coordinates": [list(p) for p in points]}
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def _taxonomic(
    observations: list[dict[str, str]], taxa: TaxonMap, data: ReportData
) -> list[dict[str, Any]]:
    by_name: dict[str, dict[str, Any]] = {}
    for row in data.rows:
        taxon = taxa[row.label]
        if not taxon.is_animal or taxon.scientific_name in by_name:
            continue
        entry: dict[str, Any] = {"scientificName": taxon.scientific_name}
        if taxon.rank:
            entry["taxonRank"] = taxon.rank
        entry.update(taxon.higher)
        if taxon.vernacular:
            entry["vernacularNames"] = {"eng": taxon.vernacular}
        by_name[taxon.scientific_name] = entry
    used = {o["scientificName"] for o in observations if o["scientificName"]}
    return [by_name[name] for name in sorted(used)]


def descriptor(
    settings: Settings,
    deployments: list[dict[str, str]],
    observations: list[dict[str, str]],
    taxonomic: list[dict[str, Any]],
    created: datetime,
) -> dict[str, Any]:
    extra = settings.export
    traps = sorted({d["cameraID"] for d in deployments})
    contributor: dict[str, Any] = {
        "title": extra.contributor
        or f"Operator of trap {', '.join(traps)} (placeholder: set export.contributor)",
        "role": "contact",
    }
    if extra.contributor_email:
        contributor["email"] = extra.contributor_email
    starts = [datetime.fromisoformat(d["deploymentStart"]).date() for d in deployments]
    ends = [datetime.fromisoformat(d["deploymentEnd"]).date() for d in deployments]
    return {
        "resources": [
            {
                "name": name,
                "path": f"{name}.csv",
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": SCHEMA_URLS[name],
            }
            for name in TABLES
        ],
        "profile": PROFILE_URL,
        "name": _slug(f"trapcount-{'-'.join(traps)}"),
        "id": str(uuid.uuid4()),
        "created": created.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "title": f"{extra.project_title}: {', '.join(traps)}",
        "contributors": [contributor],
        "description": (
            "Camera trap counts made on the trap by trapcount: a motion gate, an int8 image "
            "classifier and a tracker turn frames into events, and each event's count per "
            "label is MaxN, the most individuals of that label visible in one frame. "
            "Observations are machine classifications at the event level."
        ),
        "version": "1.0",
        "keywords": ["camera traps", "MaxN", "machine classification", "trapcount"],
        "sources": [{"title": "trapcount", "version": __version__}],
        "licenses": [
            {"name": extra.data_license, "scope": "data"},
            {"name": extra.media_license, "scope": "media"},
        ],
        "project": {
            "title": extra.project_title,
            "samplingDesign": extra.sampling_design,
            "captureMethod": ["activityDetection"],
            "individualAnimals": False,
            "observationLevel": ["event"],
        },
        "spatial": _spatial(deployments),
        "temporal": {"start": min(starts).isoformat(), "end": max(ends).isoformat()},
        "taxonomic": taxonomic,
    }


# -- writing ------------------------------------------------------------------------------


def _private(path: str, flags: int) -> int:
    """``open`` opener: new files 0600 (exports are not world-readable)."""
    return os.open(path, flags, 0o600)


def _write_csv(path: Path, table: str, records: list[dict[str, str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="", opener=_private) as handle:
        writer = csv.DictWriter(handle, columns(table), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)


def export_camtrap_dp(
    stores: Store | Sequence[Store],
    out: Path,
    settings: Settings | None = None,
    *,
    window: Window | None = None,
    labels: Sequence[str] = (),
    created: datetime | None = None,
) -> ExportResult:
    """Write the package for the events in ``window`` into the folder ``out``."""
    stores = [stores] if isinstance(stores, Store) else list(stores)
    settings = settings or Settings()
    data = load(stores, window or Window(), labels)
    taxa = TaxonMap(settings.export.taxa)

    deployments = deployment_records(data, settings)
    if not deployments:
        raise ExportError(
            "no deployment in the database(s) for the given period: nothing to export"
        )
    keys = {d["deploymentID"] for d in deployments}
    observations = observation_records(data, taxa, keys)
    by_source = {(d.source, d.id): d for d in data.deployments if d.key in keys}
    media = [record for store in stores for record in media_records(store, data, by_source)]

    out = Path(out)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = []
    for table, records in (
        ("deployments", deployments),
        ("media", media),
        ("observations", observations),
    ):
        path = out / f"{table}.csv"
        _write_csv(path, table, records)
        files.append(path)
    package = descriptor(
        settings,
        deployments,
        observations,
        _taxonomic(observations, taxa, data),
        created or datetime.now(UTC),
    )
    package_path = out / "datapackage.json"
    with open(package_path, "w", encoding="utf-8", opener=_private) as handle:
        handle.write(json.dumps(package, indent=2, ensure_ascii=False) + "\n")
    files.insert(0, package_path)
    return ExportResult(
        out=out,
        deployments=len(deployments),
        media=len(media),
        observations=len(observations),
        unmapped_labels=taxa.unmapped({row.label for row in data.rows}),
        files=files,
    )


# -- validation ---------------------------------------------------------------------------

# Stand-ins for the two remote schemas the official profile refers to, so that it can be
# checked offline: the parts of the Data Package and GeoJSON schemas a package can get wrong.
_DATA_PACKAGE_STANDIN = {
    "type": "object",
    "required": ["resources"],
    "properties": {
        "name": {"type": "string", "pattern": "^([-a-z0-9._/])+$"},
        "created": {"type": "string", "format": "date-time"},
        "resources": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "object", "required": ["name"]},
        },
        "contributors": {
            "type": "array",
            "items": {"type": "object", "required": ["title"]},
        },
        "licenses": {
            "type": "array",
            "items": {"type": "object", "anyOf": [{"required": ["name"]}, {"required": ["path"]}]},
        },
    },
}
_GEOJSON_STANDIN = {
    "type": "object",
    "required": ["type", "coordinates"],
    "properties": {
        "type": {"enum": ["Point", "MultiPoint", "LineString", "Polygon", "MultiPolygon"]},
        "coordinates": {"type": "array"},
    },
}
_REMOTE_STANDINS = {
    "https://specs.frictionlessdata.io/schemas/data-package.json": _DATA_PACKAGE_STANDIN,
    "http://json.schemastore.org/geojson.json": _GEOJSON_STANDIN,
}


def check_descriptor(
    package: dict[str, Any], profile_schema: dict[str, Any] | None = None
) -> list[str]:
    """Problems of ``datapackage.json``: against the official profile (the vendored one
    unless ``profile_schema`` is given), its remote references replaced by local
    stand-ins; then what the profile leaves open: the package names the 1.0.2 profile and
    has the three tables."""
    if profile_schema is None:
        profile_schema = _vendored(PROFILE_FILE)
    problems = _check_against_profile(package, profile_schema)
    if package.get("profile") != PROFILE_URL:
        problems.append(f"datapackage.json profile is not {PROFILE_URL}")
    names = [r.get("name") for r in package.get("resources", [])]
    problems += [f"datapackage.json has no {t!r} resource" for t in TABLES if t not in names]
    return problems


def _check_against_profile(package: dict[str, Any], profile_schema: dict[str, Any]) -> list[str]:
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    registry = Registry().with_resources(
        (url, Resource.from_contents(schema, default_specification=DRAFT4))
        for url, schema in _REMOTE_STANDINS.items()
    )
    validator_class = jsonschema.validators.validator_for(profile_schema)
    validator = validator_class(
        profile_schema, registry=registry, format_checker=validator_class.FORMAT_CHECKER
    )
    return [
        f"datapackage.json {'/'.join(str(p) for p in error.absolute_path) or '(root)'}: "
        f"{error.message}"
        for error in validator.iter_errors(package)
    ]


def validate_package(out: Path, schema_dir: Path | None = None) -> list[str]:
    """Every problem of the package in ``out`` (empty when valid), without the network.

    Against the official Camtrap DP 1.0.2 files: the vendored copies, or those in
    ``schema_dir`` when given. The three tables are validated with Frictionless (types,
    formats, constraints, primary and foreign keys) against the ``*-table-schema.json``
    files, and ``datapackage.json`` against ``camtrap-dp-profile.json``. Needs the
    ``frictionless`` package (and ``jsonschema``, which it brings).
    """
    from frictionless import Package, Resource, Schema

    out = Path(out)
    package = json.loads((out / "datapackage.json").read_text(encoding="utf-8"))
    problems = check_descriptor(package, profile(schema_dir))

    # Build the package from local parts only: nothing in it is a URL to fetch.
    paths = {r.get("name"): r.get("path") for r in package.get("resources", [])}
    resources = [
        Resource(
            name=table,
            path=paths.get(table) or f"{table}.csv",
            schema=Schema.from_descriptor(table_schema(table, schema_dir)),
            profile="tabular-data-resource",
        )
        for table in TABLES
    ]
    report = Package(resources=resources, basepath=str(out)).validate()
    for task in report.tasks:
        problems += [f"{task.name}: {error.message}" for error in task.errors]
    problems += [f"package: {error.message}" for error in report.errors]
    return problems

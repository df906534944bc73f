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
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

from edge_agent import __version__
from edge_agent.config import Settings
from edge_agent.labels import RULE, is_valid_label, shown
from edge_agent.office.camtrap_media import (
    MediaOptions,
    PackagedMedia,
    place_media,
    plan_media,
)
from edge_agent.office.report_data import Deployment, ReportData, Row, load
from edge_agent.office.taxa import TaxonMap
from edge_agent.office.windows import Window, camtrap_time
from edge_agent.store.database import Store

VERSION = "1.0.2"
BASE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
PROFILE_URL = f"{BASE_URL}/camtrap-dp-profile.json"
TABLES = ("deployments", "media", "observations")
SCHEMA_URLS = {name: f"{BASE_URL}/{name}-table-schema.json" for name in TABLES}
# The official files the URLs name, vendored unchanged (edge_agent/schemas/camtrap-dp-1.0.2).
SCHEMA_DIR = files("edge_agent") / "schemas" / f"camtrap-dp-{VERSION}"
PROFILE_FILE = "camtrap-dp-profile.json"


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
    media_observations: int = 0  # of the observations, those at observationLevel=media
    media_placed: dict[str, int] = field(default_factory=dict)  # copied / hard / symbolic link
    media_left_out: dict[str, int] = field(default_factory=dict)  # kept frames, by reason
    crops: int = 0  # kept crops: not camera media, never listed
    dates_from_activity: list[str] = field(default_factory=list)  # deployments, flagged


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


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-") or "trapcount"


# -- tables -------------------------------------------------------------------------------


def _activity(
    data: ReportData, dep: Deployment, media_times: Sequence[datetime]
) -> tuple[datetime, datetime]:
    """The span of a deployment's recorded activity: from the agent's start at the place,
    or its first event or kept frame when earlier (footage processed later: ``process``
    opens the deployment when it runs), to its last event, heartbeat or kept frame (else
    the record's end, else its start)."""
    events = [row for row in data.rows if row.deployment.key == dep.key]
    beats = [beat["time"] for beat in data.heartbeats.get(dep.trap_id, [])]
    if dep.end is not None:
        beats = [t for t in beats if dep.start <= t <= dep.end]
    else:
        beats = [t for t in beats if t >= dep.start]
    first = min([dep.start, *(row.start for row in events), *beats[:1], *media_times])
    ends = [row.end for row in events] + beats[-1:] + list(media_times)
    return first, max(ends) if ends else (dep.end or dep.start)


# deploymentComments of a deployment whose dates are (partly) its recorded activity.
ACTIVITY_NOTE = (
    "{which} from the trap's recorded activity (agent start, first/last event or "
    "heartbeat), not when the camera was set up and collected: set {keys} in the trap's config"
)


def _period(
    data: ReportData,
    dep: Deployment,
    settings: Settings,
    configured: bool,
    media_times: Sequence[datetime],
) -> tuple[datetime, datetime, str]:
    """deploymentStart, deploymentEnd and deploymentComments: the config's
    ``trap.deployment_start``/``_end`` for the deployment they describe (``configured``),
    else the recorded activity, flagged. An event or kept frame outside the configured
    dates is an error naming the key."""
    first, last = _activity(data, dep, media_times)
    start, end = settings.trap.deployment_period() if configured else (None, None)
    events = [row for row in data.rows if row.deployment.key == dep.key]
    seen = [row.start for row in events] + list(media_times)
    if start is not None and seen and min(seen) < start:
        raise ExportError(
            f"trap.deployment_start ({settings.trap.deployment_start}) is after deployment "
            f"{dep.key}'s first record ({camtrap_time(min(seen), dep.timezone)}): correct it "
            "in the config, or leave it unset"
        )
    seen = [row.end for row in events] + list(media_times)
    if end is not None and seen and max(seen) > end:
        raise ExportError(
            f"trap.deployment_end ({settings.trap.deployment_end}) is before deployment "
            f"{dep.key}'s last record ({camtrap_time(max(seen), dep.timezone, round_up=True)}): "
            "correct it in the config, or leave it unset"
        )
    missing = [key for key, value in (("start", start), ("end", end)) if value is None]
    comment = ""
    if missing:
        which = " and ".join(f"deployment{key.title()}" for key in missing)
        keys = " and ".join(f"trap.deployment_{key}" for key in missing)
        comment = ACTIVITY_NOTE.format(which=which, keys=keys)
        if not configured:
            comment += f" (trap.id = {dep.trap_id!r}; they describe its latest deployment)"
    return start or first, end or last, comment


def _overlaps(dep: Deployment, window: Window, end: datetime) -> bool:
    if window.since is not None and end < window.since.at(dep.timezone):
        return False
    return not (window.until is not None and dep.start >= window.until.at(dep.timezone))


def deployment_records(
    data: ReportData,
    settings: Settings,
    media_times: dict[str, list[datetime]] | None = None,
) -> list[dict[str, str]]:
    """deployments.csv: the deployments out during the data's window. ``media_times``:
    the packaged frames' times per deployment, which its dates must hold too."""
    trap = settings.trap
    extra = settings.export
    media_times = media_times or {}
    mine = [dep for dep in data.deployments if dep.trap_id == trap.id]
    latest = max(mine, key=lambda d: (d.start, d.key)).key if mine else None
    records = []
    for dep in sorted(data.deployments, key=lambda d: (d.start, d.key)):
        times = media_times.get(dep.key, [])
        if not _overlaps(dep, data.window, _activity(data, dep, times)[1]):
            continue
        start, end, comment = _period(data, dep, settings, dep.key == latest, times)
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
            "deploymentStart": camtrap_time(start, dep.timezone),
            "deploymentEnd": camtrap_time(end, dep.timezone, round_up=True),
            "cameraID": dep.trap_id,
            "cameraModel": dep.camera_model,
            "deploymentTags": f"timezone:{dep.timezone}",
            "deploymentComments": comment,
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
    """observations.csv: one row per event and label, at observationLevel=event. An event
    a reviewer reviewed carries the reviewer's label and count (classificationMethod human,
    classifiedBy the reviewer, classificationTimestamp the review, no probability); the
    machine's labels, MaxN, probability and model are kept in its tags and comments."""
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
        human = row.counted_by == "reviewer"
        comments = []
        if not taxa.knows(row.label):
            who = "reviewer" if human else "classifier"
            comments.append(f"{who} label {row.label!r} is not in the taxon map")
        tags = [f"label:{row.label}"]
        if human:
            said = ", ".join(f"{label} (MaxN {n})" for label, n in row.machine) or "nothing"
            probability = f", mean probability {row.mean_confidence:.4f}" if row.tracks else ""
            comments.append(
                f"reviewed by {row.reviewed_by or 'a reviewer'}; the machine said {said}"
                f"{probability} ({classified_by(row, models)})"
            )
            if not row.reviewed_counted and taxon.observation_type != "blank":
                comments.append("count: the machine's MaxN, kept by the review rules")
            tags += [
                "machine_label:" + (",".join(label for label, _ in row.machine) or "none"),
                "machine_count:" + (",".join(str(n) for _, n in row.machine) or "0"),
            ]
            if row.tracks:
                tags.append(f"machine_probability:{min(max(row.mean_confidence, 0.0), 1.0):.4f}")
            tags.append(f"count_by:{'reviewer' if row.reviewed_counted else 'rules'}")
        tags += [f"tracks:{row.tracks}", f"frames:{row.frames}"]
        if row.suppressed:
            # Counted, but the privacy guard saw something like a person: no image kept.
            comments.append(
                f"privacy: no media kept of {row.suppressed} of {row.tracks} track(s) "
                "(person-like features)"
            )
            tags.append(f"privacy_suppressed:{row.suppressed}")
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
                "classificationMethod": "human" if human else "machine",
                "classifiedBy": (row.reviewed_by or "reviewer")
                if human
                else classified_by(row, models),
                "classificationTimestamp": camtrap_time(
                    row.reviewed_at if human else row.written_at, dep.timezone
                ),
                "classificationProbability": ""
                if human
                else f"{min(max(row.mean_confidence, 0.0), 1.0):.4f}",
                "observationTags": " | ".join(tags),
                "observationComments": "; ".join(comments),
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
    observations: list[dict[str, str]], taxa: TaxonMap, labels: set[str]
) -> list[dict[str, Any]]:
    by_name: dict[str, dict[str, Any]] = {}
    for label in sorted(labels):
        taxon = taxa[label]
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
            "Observations are machine classifications at the event level"
            + (
                ", and per box on the kept camera frames in media/ (observationLevel media)."
                if any(o["observationLevel"] == "media" for o in observations)
                else "."
            )
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
            "observationLevel": sorted({o["observationLevel"] for o in observations} or {"event"}),
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


def _event_info(
    data: ReportData, keys: set[str], models: dict[str, dict[str, Any]]
) -> dict[tuple[str, datetime], dict[str, str]]:
    """The exported events by (deployment name, start): what a media-level observation of
    one of their frames repeats of them."""
    info = {}
    for row in data.rows:
        dep = row.deployment
        if dep.key in keys:
            info[(dep.key, row.start)] = {
                "eventID": f"{dep.key}-e{row.event_id}",
                "classifiedBy": classified_by(row, models),
                "classificationTimestamp": camtrap_time(row.written_at, dep.timezone),
            }
    return info


def omit_human_probabilities(observations: list[dict[str, str]]) -> None:
    """Camtrap DP: "omit [...] a probability for human classifications". A reviewer's
    classification has none; nor has a ``human`` observation: the machine's person label
    comes from the privacy guard's face checks (the share of checks that found a face),
    not from a classifier's probability, and often reads 1.0."""
    for record in observations:
        if record["classificationMethod"] == "human" or record["observationType"] == "human":
            record["classificationProbability"] = ""


def export_camtrap_dp(
    stores: Store | Sequence[Store],
    out: Path,
    settings: Settings | None = None,
    *,
    window: Window | None = None,
    labels: Sequence[str] = (),
    created: datetime | None = None,
    media: MediaOptions | None = None,
) -> ExportResult:
    """Write the package for the events in ``window`` into the folder ``out``; with
    ``media`` (a media folder), the kept camera frames go into ``out/media``
    (``edge_agent.office.camtrap_media``). Everything is checked before anything is
    written."""
    stores = [stores] if isinstance(stores, Store) else list(stores)
    settings = settings or Settings()
    media = media or MediaOptions()
    data = load(stores, window or Window(), labels)
    taxa = TaxonMap(settings.export.taxa)

    deployments = deployment_records(data, settings)
    if not deployments:
        raise ExportError(
            "no deployment in the database(s) for the given period: nothing to export"
        )
    keys = {d["deploymentID"] for d in deployments}
    observations = observation_records(data, taxa, keys)
    models = {m["sha256"]: m for m in data.models}
    by_source = {(d.source, d.id): d for d in data.deployments if d.key in keys}
    packaged: PackagedMedia = plan_media(
        stores, data, by_source, media, taxa, _event_info(data, keys, models)
    )
    # Again, now that the packaged frames' times are known: the dates must hold them too.
    deployments = [
        d for d in deployment_records(data, settings, packaged.times) if d["deploymentID"] in keys
    ]
    observations += packaged.observations
    omit_human_probabilities(observations)

    out = Path(out)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    place_media(packaged, out, media.link)
    files = []
    for table, records in (
        ("deployments", deployments),
        ("media", packaged.records),
        ("observations", observations),
    ):
        path = out / f"{table}.csv"
        _write_csv(path, table, records)
        files.append(path)
    used = {row.label for row in data.rows} | packaged.labels
    package = descriptor(
        settings,
        deployments,
        observations,
        _taxonomic(observations, taxa, used),
        created or datetime.now(UTC),
    )
    package_path = out / "datapackage.json"
    with open(package_path, "w", encoding="utf-8", opener=_private) as handle:
        handle.write(json.dumps(package, indent=2, ensure_ascii=False) + "\n")
    files.insert(0, package_path)
    return ExportResult(
        out=out,
        deployments=len(deployments),
        media=len(packaged.records),
        observations=len(observations),
        unmapped_labels=taxa.unmapped(used),
        files=files,
        media_observations=len(packaged.observations),
        media_placed=dict(packaged.placed),
        media_left_out=dict(packaged.left_out),
        crops=packaged.crops,
        dates_from_activity=[d["deploymentID"] for d in deployments if d["deploymentComments"]],
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

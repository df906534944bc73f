"""The Camtrap DP 1.0.2 table schemas, written from the standard's field list.

A package names its table schemas by URL (``SCHEMA_URLS``), but validating against a URL
needs the network, and a trap or a CI runner has none. These are the same tables, field
by field, as Frictionless Table Schema descriptors: names and order, types, datetime
formats, required/unique/min/max/enum/pattern constraints, primary and foreign keys, and
missing values. ``tests/edge/test_camtrap.py`` compares them with the official files
when ``../shared/camtrap-dp-1.0.2`` is there.

Camtrap DP is by the Camtrap DP Development Team (TDWG), MIT license:
https://camtrap-dp.tdwg.org
"""

from __future__ import annotations

from typing import Any

VERSION = "1.0.2"
BASE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
PROFILE_URL = f"{BASE_URL}/camtrap-dp-profile.json"
TABLES = ("deployments", "media", "observations")
SCHEMA_URLS = {name: f"{BASE_URL}/{name}-table-schema.json" for name in TABLES}

DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
MISSING_VALUES = ["", "NA", "NaN", "nan"]
FILE_PATH_PATTERN = r"^(?=^[^./~])(^((?!\.{2}).)*$).*$"

FEATURE_TYPES = [
    "roadPaved",
    "roadDirt",
    "trailHiking",
    "trailGame",
    "roadUnderpass",
    "roadOverpass",
    "roadBridge",
    "culvert",
    "burrow",
    "nestSite",
    "carcass",
    "waterSource",
    "fruitingTree",
]


def _field(
    name: str,
    type_: str,
    description: str,
    *,
    required: bool = False,
    unique: bool = False,
    **constraints: Any,
) -> dict[str, Any]:
    field: dict[str, Any] = {"name": name, "description": description, "type": type_}
    if type_ == "datetime":
        field["format"] = DATETIME_FORMAT
    rules: dict[str, Any] = {"required": required}
    if unique:
        rules["unique"] = True
    rules.update(constraints)
    field["constraints"] = rules
    return field


_DEPLOYMENTS = [
    _field("deploymentID", "string", "Unique identifier of the deployment.", required=True,
           unique=True),
    _field("locationID", "string", "Identifier of the deployment location."),
    _field("locationName", "string", "Name given to the deployment location."),
    _field("latitude", "number", "Latitude of the location, WGS84 decimal degrees.",
           required=True, minimum=-90, maximum=90),
    _field("longitude", "number", "Longitude of the location, WGS84 decimal degrees.",
           required=True, minimum=-180, maximum=180),
    _field("coordinateUncertainty", "integer", "Uncertainty of the coordinates in metres.",
           minimum=1),
    _field("deploymentStart", "datetime", "When the deployment started, with its offset.",
           required=True),
    _field("deploymentEnd", "datetime", "When the deployment ended, with its offset.",
           required=True),
    _field("setupBy", "string", "Who set up the deployment."),
    _field("cameraID", "string", "Identifier of the camera."),
    _field("cameraModel", "string", "Manufacturer and model of the camera."),
    _field("cameraDelay", "integer", "Predefined seconds between two activity detections.",
           minimum=0),
    _field("cameraHeight", "number", "Height of the camera above the ground in metres.",
           minimum=0),
    _field("cameraDepth", "number", "Depth of the camera below the water surface in metres.",
           minimum=0),
    _field("cameraTilt", "integer", "Tilt of the camera in degrees (0 horizontal, -90 down).",
           minimum=-90, maximum=90),
    _field("cameraHeading", "integer", "Direction the camera faces, degrees from north.",
           minimum=0, maximum=360),
    _field("detectionDistance", "number", "Largest distance the camera detects, metres.",
           minimum=0),
    _field("timestampIssues", "boolean", "Whether the media timestamps may be wrong."),
    _field("baitUse", "boolean", "Whether bait was used."),
    _field("featureType", "string", "Feature the camera points at.", enum=FEATURE_TYPES),
    _field("habitat", "string", "Short description of the habitat."),
    _field("deploymentGroups", "string", "Groups the deployment belongs to, `|`-separated."),
    _field("deploymentTags", "string", "Tags of the deployment, `key:value | key:value`."),
    _field("deploymentComments", "string", "Comments about the deployment."),
]  # fmt: skip

_MEDIA = [
    _field("mediaID", "string", "Unique identifier of the media file.", required=True,
           unique=True),
    _field("deploymentID", "string", "The deployment the file was recorded in.",
           required=True),
    _field("captureMethod", "string", "How the file was captured.",
           enum=["activityDetection", "timeLapse"]),
    _field("timestamp", "datetime", "When the file was recorded, with its offset.",
           required=True),
    _field("filePath", "string", "URL or relative path of the file.", required=True,
           pattern=FILE_PATH_PATTERN),
    _field("filePublic", "boolean", "Whether the file may be shown publicly.", required=True),
    _field("fileName", "string", "Name of the file."),
    _field("fileMediatype", "string", "IANA media type of the file.", required=True,
           pattern="^(image|video|audio)/.*$"),
    _field("exifData", "any", "EXIF data of the file, as JSON."),
    _field("favorite", "boolean", "Whether the file is a favourite."),
    _field("mediaComments", "string", "Comments about the file."),
]  # fmt: skip

_OBSERVATIONS = [
    _field("observationID", "string", "Unique identifier of the observation.", required=True,
           unique=True),
    _field("deploymentID", "string", "The deployment the observation belongs to.",
           required=True),
    _field("mediaID", "string", "The media file classified (media-level observations)."),
    _field("eventID", "string", "Identifier of the event the observation belongs to."),
    _field("eventStart", "datetime", "Start of the event, with its offset.", required=True),
    _field("eventEnd", "datetime", "End of the event, with its offset.", required=True),
    _field("observationLevel", "string", "Whether the observation is of a file or an event.",
           required=True, enum=["media", "event"]),
    _field("observationType", "string", "Type of the observation.", required=True,
           enum=["animal", "human", "vehicle", "blank", "unknown", "unclassified"]),
    _field("cameraSetupType", "string", "Type of camera setup action.",
           enum=["setup", "calibration"]),
    _field("scientificName", "string", "Scientific name of the observed animal's taxon."),
    _field("count", "integer", "Number of individuals observed.", minimum=1),
    _field("lifeStage", "string", "Age class of the individuals.",
           enum=["adult", "subadult", "juvenile"]),
    _field("sex", "string", "Sex of the individuals.", enum=["female", "male"]),
    _field("behavior", "string", "Behaviour of the individuals."),
    _field("individualID", "string", "Identifier of a recognised individual."),
    _field("individualPositionRadius", "number", "Distance of the individual, metres.",
           minimum=0),
    _field("individualPositionAngle", "number", "Angle of the individual, degrees.",
           minimum=-90, maximum=90),
    _field("individualSpeed", "number", "Speed of the individual, metres per second.",
           minimum=0),
    _field("bboxX", "number", "Left edge of the bounding box, fraction of the width.",
           minimum=0, maximum=1),
    _field("bboxY", "number", "Top edge of the bounding box, fraction of the height.",
           minimum=0, maximum=1),
    _field("bboxWidth", "number", "Width of the bounding box, fraction of the width.",
           minimum=1e-15, maximum=1),
    _field("bboxHeight", "number", "Height of the bounding box, fraction of the height.",
           minimum=1e-15, maximum=1),
    _field("classificationMethod", "string", "Whether a human or a machine classified it.",
           enum=["human", "machine"]),
    _field("classifiedBy", "string", "The person or the model (and version) that did."),
    _field("classificationTimestamp", "datetime", "When it was classified, with its offset."),
    _field("classificationProbability", "number", "The classifier's confidence, 0-1.",
           minimum=0, maximum=1),
    _field("observationTags", "string", "Tags of the observation, `key:value | key:value`."),
    _field("observationComments", "string", "Comments about the observation."),
]  # fmt: skip

_FIELDS = {"deployments": _DEPLOYMENTS, "media": _MEDIA, "observations": _OBSERVATIONS}
_TITLES = {
    "deployments": "Camera trap placements: where, when, and how each camera was set up.",
    "media": "Media files recorded during the deployments.",
    "observations": "Observations of the media or of events, with their taxon and count.",
}
_PRIMARY_KEYS = {"deployments": "deploymentID", "media": "mediaID", "observations": "observationID"}
_FOREIGN_KEYS: dict[str, list[tuple[str, str]]] = {
    "deployments": [],
    "media": [("deploymentID", "deployments")],
    "observations": [("deploymentID", "deployments"), ("mediaID", "media")],
}


def table_schema(name: str) -> dict[str, Any]:
    """The Frictionless Table Schema descriptor of Camtrap DP table ``name``."""
    if name not in _FIELDS:
        raise KeyError(f"no Camtrap DP table {name!r}; have {', '.join(TABLES)}")
    schema: dict[str, Any] = {
        "name": name,
        "title": name.capitalize(),
        "description": _TITLES[name],
        "fields": [dict(field, constraints=dict(field["constraints"])) for field in _FIELDS[name]],
        "missingValues": list(MISSING_VALUES),
        "primaryKey": _PRIMARY_KEYS[name],
    }
    foreign = [
        {"fields": column, "reference": {"resource": table, "fields": column}}
        for column, table in _FOREIGN_KEYS[name]
    ]
    if foreign:
        schema["foreignKeys"] = foreign
    return schema


def columns(name: str) -> list[str]:
    """The column names of table ``name``, in the standard's order."""
    return [field["name"] for field in _FIELDS[name]]

"""TOML configuration -> validated settings.

Every key has a type, bounds and a description (the descriptions double as documentation:
``deploy/trap.example.toml`` mirrors them). Unknown keys are rejected, so a typo in a trap's
config fails loudly at start instead of silently running on a default.
"""

from __future__ import annotations

import json
import tomllib
from datetime import date, datetime, time
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)


class ConfigError(ValueError):
    """A config file that cannot be used; the message is one line and names the key."""


# Slower than this is a broken header, not a camera (source.fps, a video's stated rate).
MIN_FPS = 0.1
# A video read at this rate or slower is a sequence of photos, not footage: located in bursts
# (motion.stills_max_fps's default) and decoded lean (capture.video.LEAN_MAX_FPS).
TIME_LAPSE_MAX_FPS = 2.0


def _check_order(section: BaseModel, lower: str, upper: str) -> None:
    """A ValueError naming both keys when ``section.upper`` is below ``section.lower``
    (checked on the section's final values, defaults included)."""
    low, high = getattr(section, lower), getattr(section, upper)
    if high < low:
        raise ValueError(f"{upper} ({high:g}) must be at least {lower} ({low:g})")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TrapSettings(_Section):
    id: str = Field("trap-01", min_length=1, max_length=64, description="Trap (deployment) id.")
    location_name: str = Field("", description="Human-readable location name.")
    latitude: float | None = Field(None, ge=-90, le=90, description="WGS84 latitude.")
    longitude: float | None = Field(None, ge=-180, le=180, description="WGS84 longitude.")
    camera_model: str = Field("", description="Camera make and model, for exports.")
    timezone: str = Field("UTC", description="IANA time zone of the trap, for local-day reports.")
    deployment_start: str | None = Field(
        None,
        description="When the camera was set up here: an ISO 8601 time with its offset, or a "
        "date (the trap's local midnight); for Camtrap DP deploymentStart.",
    )
    deployment_end: str | None = Field(
        None,
        description="When the camera was collected: an ISO 8601 time with its offset, or a "
        "date (the end of that local day); unset while the trap is out.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("deployment_start", "deployment_end", mode="before")
    @classmethod
    def _deployment_time(cls, value: Any) -> str | None:
        return None if value is None or value == "" else _iso_time_or_date(value)

    @model_validator(mode="after")
    def _end_after_start(self) -> TrapSettings:
        start, end = self.deployment_period()
        if start is not None and end is not None and end <= start:
            raise ValueError(
                f"deployment_end ({self.deployment_end}) must be after deployment_start "
                f"({self.deployment_start})"
            )
        return self

    def deployment_period(self) -> tuple[datetime | None, datetime | None]:
        """``deployment_start`` and ``deployment_end`` as aware times: a date starts at the
        trap's local midnight and ends at the last second of that local day."""
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(self.timezone)

        def at(value: str | None, end: bool) -> datetime | None:
            if value is None:
                return None
            if len(value) == len("YYYY-MM-DD"):
                day = date.fromisoformat(value)
                clock = time(23, 59, 59) if end else time(0, 0)
                return datetime.combine(day, clock, tzinfo=zone)
            return datetime.fromisoformat(value)

        return at(self.deployment_start, False), at(self.deployment_end, True)


def _iso_time_or_date(value: Any) -> str:
    """A TOML date or offset date-time, or a string holding one, as ISO 8601 text; a time
    without an offset is refused (which zone did the writer mean?)."""
    if isinstance(value, datetime):
        parsed: date | datetime = value
    elif isinstance(value, date):
        return value.isoformat()
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"not an ISO 8601 date or time: {value!r} (e.g. 2024-05-30 or "
                "2024-05-30T09:15:00+02:00)"
            ) from None
        if not isinstance(parsed, datetime):
            return parsed.isoformat()
    else:
        raise ValueError(f"not a date or time: {value!r}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(
            f"{parsed.isoformat()} has no UTC offset: add one (e.g. +02:00 or Z) or give a date"
        )
    return parsed.isoformat()


class SourceSettings(_Section):
    kind: Literal["auto", "video", "folder", "usb", "rtsp", "picamera2"] = Field(
        "auto", description="Frame source; auto guesses from uri."
    )
    uri: str = Field("0", description="USB index, RTSP/HTTP URL, video file or image folder.")
    width: int | None = Field(None, ge=16, le=8192, description="Requested capture width.")
    height: int | None = Field(None, ge=16, le=8192, description="Requested capture height.")
    fps: float | None = Field(
        None,
        ge=MIN_FPS,
        le=240,
        description="Capture frame rate to request; for a video file, the rate its media "
        "times are computed with, instead of the rate its header states.",
    )
    reconnect_initial_s: float = Field(1.0, gt=0, le=600, description="First reconnect delay.")
    reconnect_max_s: float = Field(
        60.0, gt=0, le=3600, description="Longest reconnect delay (at least reconnect_initial_s)."
    )
    decode_max_side: int = Field(
        1600,
        ge=320,
        le=16384,
        description="Photos are decoded reduced to at most this many pixels on their long side "
        "(a JPEG by libjpeg's 1/2, 1/4, 1/8 scaling, never at full size); motion runs at "
        "motion.downscale_width and crops at the model's input size.",
    )
    max_megapixels: float = Field(
        40.0,
        ge=1,
        le=1000,
        description="A photo that would need more than this many megapixels decoded at once "
        "(a huge PNG or TIFF cannot be decoded reduced) is skipped with a warning.",
    )

    @model_validator(mode="after")
    def _max_delay_at_least_initial(self) -> SourceSettings:
        _check_order(self, "reconnect_initial_s", "reconnect_max_s")
        return self


class CaptureSettings(_Section):
    mode: Literal["continuous", "interval"] = Field(
        "continuous", description="Process every frame, or one burst every interval_s."
    )
    interval_s: float = Field(10.0, gt=0, le=86400, description="Seconds between bursts.")
    burst_frames: int = Field(5, ge=1, le=1000, description="Frames per burst in interval mode.")
    max_fps: float = Field(0.0, ge=0, le=240, description="Cap on processed fps; 0 = no cap.")
    active_hours: str = Field("*", description="Cron hour field for capture, e.g. '18-23,0-6'")
    active_days_of_week: str = Field("*", description="Cron day-of-week field, e.g. 'mon-fri'.")

    @field_validator("active_hours", "active_days_of_week")
    @classmethod
    def _cron_field(cls, value: str, info: Any) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            if info.field_name == "active_hours":
                CronTrigger(hour=value)
            else:
                CronTrigger(day_of_week=value)
        except ValueError as exc:
            raise ValueError(f"not a cron field: {exc}") from None
        return value


class MotionSettings(_Section):
    localiser: Literal["auto", "motion", "bursts", "megadetector"] = Field(
        "auto",
        description="How candidate animals are found: 'motion' (the motion gate on every frame: "
        "video, live cameras), 'bursts' (photos grouped into bursts, each its own background), "
        "'megadetector' (an image folder's boxes from the motion.detections file) or 'auto' "
        "(megadetector when motion.detections is set, else bursts for an image folder and "
        "for a video file at or below motion.stills_max_fps, motion otherwise).",
    )
    stills_max_fps: float = Field(
        TIME_LAPSE_MAX_FPS,
        ge=0,
        le=240,
        description="localiser 'auto': a video file read at this frame rate or slower (a "
        "time-lapse video, or a clip sampled at 1 fps) is located like photos, in bursts: "
        "its frames are too far apart for the motion gate's background model and its "
        "frame-to-frame rules; 0 = never.",
    )
    detections: str = Field(
        "",
        description="MegaDetector batch output (JSON, format 1.3 or later) for the image folder "
        "being processed, relative to this file: its animal, person and vehicle boxes are "
        "counted instead of motion; '' = none (trapcount process --detections sets it).",
    )
    detection_threshold: float = Field(
        0.2,
        ge=0,
        le=1,
        description="MegaDetector boxes below this confidence are ignored (0.2 is "
        "MegaDetector's recommendation for recall; raise it if leaves and rocks get counted).",
    )
    background_bank: str = Field(
        "",
        description="Still photos: file (relative to this file) that keeps each camera's empty "
        "views between runs, to find animals that stand still through a burst; '' = kept "
        "for the run only.",
    )
    method: Literal["mog2", "diff", "whole_frame"] = Field(
        "mog2", description="Background subtraction (mog2), frame differencing, or whole frame."
    )
    downscale_width: int = Field(320, ge=64, le=1920, description="Width motion runs at.")
    min_area: float = Field(0.002, gt=0, lt=1, description="Smallest blob, fraction of frame.")
    max_area: float = Field(
        0.8, gt=0, le=1, description="Largest blob, fraction of frame (at least min_area)."
    )
    threshold: float = Field(16.0, gt=0, le=255, description="MOG2 varThreshold / diff level.")
    quiet_burst_threshold: float = Field(
        10.0,
        gt=0,
        le=255,
        description="Still photos: the lowest difference level against a burst's own median. "
        "A burst's level follows its noise (what differs between its photos in most of the "
        "view), from this in a quiet burst up to threshold in a noisy one; set it to "
        "threshold for one level everywhere.",
    )
    history: int = Field(300, ge=2, le=10000, description="Background model history, frames.")
    warmup_frames: int = Field(5, ge=0, le=1000, description="Frames before boxes are reported.")
    dilate_iterations: int = Field(2, ge=0, le=20, description="Morphological dilation passes.")
    merge_distance: float = Field(
        0.02,
        ge=0,
        le=0.5,
        description="Blobs closer than this (fraction of frame width) are one animal's fragments "
        "and merge into one box; animals farther apart stay separate.",
    )
    hold_max_s: float = Field(
        300.0,
        ge=0,
        le=86400,
        description="The background under a counted animal is not learned for up to this long, "
        "so an animal resting in view stays visible instead of fading into the background; "
        "0 = always learn.",
    )
    whole_frame_always: bool = Field(
        False,
        description="whole_frame method: report every frame, moving or not (PIR-triggered photos); "
        "false = only frames with motion.",
    )
    mask: str = Field("", description="Mask image (black = ignore), relative to this file.")
    ignore_regions: list[list[float]] = Field(
        default_factory=list,
        description="Rectangles [x, y, w, h] as fractions of the frame where motion is ignored.",
    )

    @model_validator(mode="after")
    def _max_area_at_least_min(self) -> MotionSettings:
        _check_order(self, "min_area", "max_area")
        return self

    @field_validator("ignore_regions")
    @classmethod
    def _regions(cls, value: list[list[float]]) -> list[list[float]]:
        for region in value:
            if len(region) != 4 or not all(0 <= v <= 1 for v in region):
                raise ValueError("each region is [x, y, w, h] with values in [0, 1]")
        return value


# The default ``classifier.not_at_site``: CIFAR-10 labels no trap on the ground sees.
CIFAR_NOT_AT_SITE = ("airplane", "ship")


class ClassifierSettings(_Section):
    model_dir: str = Field(
        "",
        description="Folder with model.tflite + model.json, relative to this file; "
        "'' = the shipped model (models/default, or $TRAPCOUNT_MODEL).",
    )
    confidence_threshold: float = Field(
        0.5, ge=0, le=1, description="Below this a crop is labelled 'unknown'."
    )
    num_threads: int = Field(1, ge=1, le=16, description="Interpreter threads.")
    max_batch: int = Field(16, ge=1, le=256, description="Crops per interpreter call.")
    not_at_site: list[str] = Field(
        list(CIFAR_NOT_AT_SITE),
        description="Model labels this site cannot see: a crop whose best label is one of "
        "them is 'unknown' (a misread animal). [] = every label; add 'automobile' and "
        "'truck' where no road is in view. A name the model lacks is ignored (with a warning"
        " unless the default names it).",
    )


class TrackingSettings(_Section):
    iou_threshold: float = Field(0.2, ge=0, le=1, description="IoU to link a box to a track.")
    max_distance: float = Field(
        0.15, gt=0, le=1, description="Centroid fallback link distance, fraction of frame width."
    )
    max_missed_s: float = Field(1.5, gt=0, le=600, description="A track ends unseen this long.")
    min_track_frames: int = Field(4, ge=1, le=10000, description="Shorter tracks are not counted.")
    min_track_s: float = Field(0.5, ge=0, le=3600, description="Shorter tracks are not counted.")
    min_displacement: float = Field(
        1.0,
        ge=0,
        le=20,
        description="A counted track must travel: two of its like-shaped boxes this many of "
        "its box sizes apart. Swaying vegetation and background ghosts stay in place; 0 = off "
        "(always off in the whole_frame motion method).",
    )
    classify_every: int = Field(
        4, ge=1, le=1000, description="Classify a live track's crop every this many frames."
    )
    max_votes: int = Field(
        30, ge=1, le=100000, description="Stop classifying a track after this many crops."
    )
    stills_gap_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Image folders: photos less than this apart are one burst (tracked "
        "together, the burst's median image is their background).",
    )


class EventSettings(_Section):
    event_gap_s: float = Field(
        60.0, gt=0, le=86400, description="An event ends after this long with no live track."
    )


class StorageSettings(_Section):
    db_path: str = Field("trapcount.sqlite", description="SQLite file, relative to this file.")
    rollup_minutes: int = Field(15, ge=1, le=1440, description="Count interval length.")
    min_free_mb: int = Field(
        200, ge=0, le=10_000_000, description="Doctor fails and heartbeats warn below this."
    )


class PrivacySettings(_Section):
    mode: Literal["drop", "blur", "off"] = Field(
        "drop",
        description="Images with a person or face: 'drop' (never written), 'blur' (written "
        "with faces and people blurred) or 'off' (no checks: a warning at start).",
    )
    min_face_px: int = Field(
        20, ge=8, le=512, description="Smallest face the Haar cascade looks for, in pixels."
    )
    max_checks_per_track: int = Field(
        3, ge=1, le=100, description="Person checks per track (each on a larger box than the last)."
    )


class MediaSettings(_Section):
    media_dir: str = Field(
        "",
        description="Folder for kept crops and frames (for retraining), relative to this file; "
        "'' = keep none.",
    )
    keep_frames: bool = Field(False, description="Keep the full frame as well as the crop.")
    quota_per_label_per_day: int = Field(
        50, ge=0, le=100_000, description="Crops kept per label and UTC day (hardest first)."
    )
    crop_px: int = Field(224, ge=32, le=2048, description="Longest side of a kept crop, in pixels.")
    retention_days: float = Field(
        90.0, ge=0, le=36500, description="Kept media older than this is deleted; 0 = never."
    )
    min_free_mb: float = Field(
        500.0,
        ge=0,
        le=10_000_000,
        description="Media writes stop (oldest media deleted first) below this free space.",
    )
    retention_check_s: float = Field(
        3600.0, ge=10, le=86400, description="Seconds between retention runs of the service."
    )


class ServiceSettings(_Section):
    heartbeat_s: float = Field(60.0, ge=5, le=3600, description="Seconds between heartbeats.")
    model_check_s: float = Field(30.0, ge=1, le=86400, description="Model-file check period.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Least severe log level written to stderr (the journal)."
    )
    shutdown_timeout_s: float = Field(
        5.0, ge=0.5, le=120, description="On SIGTERM, longest wait for capture to stop."
    )
    replay_speed: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="run on a video file or image folder: play at this multiple of real "
        "time (1 = as recorded); 0 = as fast as possible.",
    )


# The Camtrap DP 1.0.2 featureType vocabulary, read from the official deployments table schema
# vendored as package data (edge_agent/schemas/camtrap-dp-1.0.2, what the export validates with).
_CAMTRAP_SCHEMAS = files("edge_agent") / "schemas" / "camtrap-dp-1.0.2"
CAMTRAP_FEATURE_TYPES = tuple(
    next(
        field["constraints"]["enum"]
        for field in json.loads(
            (_CAMTRAP_SCHEMAS / "deployments-table-schema.json").read_text(encoding="utf-8")
        )["fields"]
        if field["name"] == "featureType"
    )
)


class ExportSettings(_Section):
    """Metadata for `trapcount export camtrap-dp` that the database does not hold."""

    project_title: str = Field(
        "trapcount camera trap counts",
        min_length=1,
        max_length=200,
        description="Camtrap DP project title.",
    )
    contributor: str = Field(
        "",
        max_length=200,
        description="Person or organisation to contact about the data; empty = a placeholder "
        "naming the trap, to be replaced before publishing.",
    )
    contributor_email: str = Field("", max_length=200, description="The contributor's e-mail.")
    data_license: str = Field(
        "CC-BY-4.0", min_length=1, max_length=100, description="License of the data (SPDX id)."
    )
    media_license: str = Field(
        "CC-BY-4.0", min_length=1, max_length=100, description="License of the media (SPDX id)."
    )
    sampling_design: Literal[
        "simpleRandom",
        "systematicRandom",
        "clusteredRandom",
        "experimental",
        "targeted",
        "opportunistic",
    ] = Field("opportunistic", description="Camtrap DP project.samplingDesign.")
    setup_by: str = Field("", max_length=200, description="Who set the camera up (setupBy).")
    feature_type: Literal["", *CAMTRAP_FEATURE_TYPES] = Field(  # type: ignore[valid-type]
        "", description="Camtrap DP featureType the camera points at; empty = none."
    )
    habitat: str = Field("", max_length=500, description="Short habitat description.")
    coordinate_uncertainty_m: int | None = Field(
        None, ge=1, le=100_000, description="Uncertainty of latitude/longitude in metres."
    )
    camera_height_m: float | None = Field(
        None, ge=0, le=100, description="Camera height above the ground in metres."
    )
    camera_tilt_deg: int | None = Field(
        None, ge=-90, le=90, description="Camera tilt in degrees; 0 = horizontal, -90 = down."
    )
    camera_heading_deg: int | None = Field(
        None, ge=0, le=360, description="Compass direction the camera faces, degrees from north."
    )
    bait_use: bool | None = Field(None, description="Whether bait was used at the camera.")
    taxa: dict[str, str] = Field(
        default_factory=dict,
        description="Classifier label -> scientific name (e.g. fox = 'Vulpes vulpes'), or one "
        "of 'human', 'vehicle', 'blank', 'unknown' for a label that is not an animal; "
        "overrides the built-in map.",
    )

    @field_validator("taxa")
    @classmethod
    def _taxa(cls, value: dict[str, str]) -> dict[str, str]:
        for label, name in value.items():
            if not label.strip() or not name.strip():
                raise ValueError("labels and scientific names must not be empty")
            if len(name) > 200:
                raise ValueError(f"scientific name of {label!r} is longer than 200 characters")
        return {label.strip(): name.strip() for label, name in value.items()}


class SyncSettings(_Section):
    url: str = Field(
        "",
        description="Central database to push counts to (trapcount sync), without its password, "
        "e.g. postgresql+psycopg://trap@fleet.example.org/trapcount?sslmode=require; "
        "empty = no sync unless the url_env variable is set.",
    )
    url_env: str = Field(
        "TRAPCOUNT_SYNC_URL",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable that, when set, gives the URL instead of url "
        "(it may carry the password; under systemd it comes from /etc/trapcount/sync.env).",
    )
    password_file: str = Field(
        "", description="File whose first line is the password, relative to this file; '' = none."
    )
    interval_s: float = Field(
        300.0, ge=10, le=86400, description="Seconds between syncs while the service runs."
    )
    batch_size: int = Field(
        500, ge=1, le=100_000, description="Changed rows pushed per central transaction."
    )
    backoff_initial_s: float = Field(
        60.0, ge=1, le=86400, description="First retry delay after a failed sync."
    )
    backoff_max_s: float = Field(
        3600.0, ge=1, le=86400, description="Longest retry delay (it doubles per failure)."
    )
    timeout_s: float = Field(
        30.0, ge=1, le=600, description="Connect and statement timeout of the central database."
    )

    @field_validator("url")
    @classmethod
    def _a_url(cls, value: str) -> str:
        if value and "://" not in value:
            raise ValueError("not a database URL (postgresql+psycopg://user@host/db)")
        return value

    @model_validator(mode="after")
    def _max_at_least_initial(self) -> SyncSettings:
        _check_order(self, "backoff_initial_s", "backoff_max_s")
        return self


class Settings(_Section):
    trap: TrapSettings = Field(default_factory=TrapSettings)
    source: SourceSettings = Field(default_factory=SourceSettings)
    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    motion: MotionSettings = Field(default_factory=MotionSettings)
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)

    # Folder the config file lives in; relative paths in it are resolved against it.
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    def resolve(self, value: str | Path) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"]) or "config"
    if error["type"] == "extra_forbidden":
        return f"unknown key {key!r}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{key}: {message}"


def settings_from_dict(data: dict[str, Any], base_dir: Path | None = None) -> Settings:
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc)) from None
    if base_dir is not None:
        settings.base_dir = base_dir
    return settings


def load_config(path: Path | str | None) -> Settings:
    """Load a TOML file; ``None`` gives the defaults relative to the working directory."""
    if path is None:
        return Settings()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    try:
        return settings_from_dict(data, base_dir=path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None

"""Choosing the localiser (``candidates.Localiser``) from the config, so that the pipeline
never does: ``motion.localiser`` names it, ``auto`` takes MegaDetector's boxes when
``motion.detections`` names a file, else the burst localiser for an image folder and for a
video file read at ``motion.stills_max_fps`` or slower, and the motion gate for everything
else.

A video of one frame a second or slower (a time-lapse camera's, or a clip sampled at 1 fps
as video classifiers such as zamba sample theirs) is a sequence of photos, not footage: the
motion gate's background model learns per frame and its rules judge frame-to-frame change,
which at seconds apart is the animal's walk, not sensor noise, and a track missed in one
frame ends (``tracking.max_missed_s``). On field-dev's real 1-fps clips the motion gate saw
the baboons at a waterhole but counted none (each milled about in its own footprint: no
travel, never still a second later) and the burst localiser counted them
(docs/benchmarks.md, "The field set through the shipped model")."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from edge_agent.capture.factory import source_kind, source_path
from edge_agent.capture.folder import photo_reader
from edge_agent.capture.frames import SourceError
from edge_agent.capture.video import VideoFrameReader, video_rate
from edge_agent.config import ConfigError, Settings
from edge_agent.vision.bank import BackgroundBank
from edge_agent.vision.bursts import BurstLocaliser
from edge_agent.vision.candidates import Localiser
from edge_agent.vision.megadetector import Detections, MegaDetectorLocaliser, detections_for
from edge_agent.vision.motion import MotionLocaliser


def localiser_for(settings: Settings) -> Localiser:
    """The localiser ``motion.localiser`` names (``auto``: see the module docstring)."""
    kind = settings.motion.localiser
    # Read from a video's header only where it decides something: auto, and bursts.
    rate = video_read_rate(settings) if kind in ("auto", "bursts") else None
    if kind == "auto":
        if settings.motion.detections:
            kind = "megadetector"
        else:
            still = is_still_source(settings) or is_time_lapse(settings, rate)
            kind = "bursts" if still else "motion"
    if kind == "megadetector":
        return MegaDetectorLocaliser(
            megadetector_boxes(settings), settings.motion.detection_threshold
        )
    mask = motion_mask(settings)
    if kind == "bursts":
        bank_file = settings.motion.background_bank
        bank = BackgroundBank(settings.resolve(bank_file) if bank_file else None)
        frames = time_lapse_frames(settings, rate)
        return BurstLocaliser(
            settings.motion,
            settings.tracking.stills_gap_s,
            mask=mask,
            bank=bank,
            read_again=frames or photos_of(settings),
            by_frame_number=frames is not None,
        )
    return MotionLocaliser(settings.motion, mask=mask)


def photos_of(settings: Settings) -> Callable[[str], np.ndarray | None] | None:
    """Reads a photo of the image folder ``settings.source`` names again, decoded as the
    folder source decodes it (``capture.folder.photo_reader``); None for other sources."""
    if not is_still_source(settings):
        return None
    source = settings.source
    folder = source_path(source, settings.base_dir)
    return photo_reader(folder, source.decode_max_side, source.max_megapixels)


def is_still_source(settings: Settings) -> bool:
    """Whether ``settings.source`` is an image folder (still photos)."""
    return source_kind_or_none(settings) == "folder"


def video_read_rate(settings: Settings) -> float | None:
    """The rate a video file source is read at (``capture.video.video_rate``:
    ``source.fps``, else its header's rate); None for other sources."""
    if source_kind_or_none(settings) != "video":
        return None
    return video_rate(source_path(settings.source, settings.base_dir), settings.source.fps)


def is_time_lapse(settings: Settings, rate: float | None) -> bool:
    """Whether a video read at ``rate`` (``video_read_rate``; None: no video) is read at
    ``motion.stills_max_fps`` or slower."""
    limit = settings.motion.stills_max_fps
    return rate is not None and limit > 0 and rate <= limit


def time_lapse_frames(settings: Settings, rate: float | None) -> VideoFrameReader | None:
    """For a video (read at ``rate``) located in bursts, its frames read again by number,
    so that a burst holds none of them decoded; None for other sources, and where
    ``capture.max_fps`` may skip frames of the file (the numbers the localiser counts would
    not be the file's: the frames would stay decoded instead)."""
    max_fps = settings.capture.max_fps
    if rate is None or 0 < max_fps < rate:
        return None
    return VideoFrameReader(source_path(settings.source, settings.base_dir))


def source_kind_or_none(settings: Settings) -> str | None:
    """``capture.factory.source_kind``, or None for a source that is none of them."""
    try:
        return source_kind(settings.source, settings.base_dir)
    except SourceError:
        return None


def megadetector_boxes(settings: Settings) -> Detections:
    """The ``motion.detections`` file, read and matched with the image folder being
    processed (``megadetector.detections_for``); a ConfigError (one line) when there is no
    such file, the source is no image folder, or the file cannot be used."""
    if not settings.motion.detections:
        raise ConfigError(
            "motion.localiser = megadetector needs motion.detections, a MegaDetector file "
            "(trapcount process FOLDER --detections md.json)"
        )
    if not is_still_source(settings):
        raise ConfigError(
            f"motion.detections: MegaDetector boxes are read for an image folder, and "
            f"{settings.source.uri!r} is not one"
        )
    folder = settings.resolve(settings.source.uri)
    return detections_for(settings.resolve(settings.motion.detections), folder)


def motion_mask(settings: Settings) -> np.ndarray | None:
    """The ``motion.mask`` image (grey), or None without one; a ConfigError naming the key
    when the file is missing or not an image."""
    if not settings.motion.mask:
        return None
    path = settings.resolve(settings.motion.mask)
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.is_file() else None
    if mask is None:
        problem = "not found" if not path.exists() else "not a readable image"
        raise ConfigError(f"motion.mask: {path} is {problem}")
    return mask

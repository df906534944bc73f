"""The wiring that ``trapcount process`` and ``trapcount run`` share: the deployment, the
model registered, the privacy guard, the media keeper, the event sink, and the pipeline
built from them. Both commands call :func:`wire`; neither builds these parts itself."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.config import Settings
from edge_agent.counting.events import ClosedEvent
from edge_agent.counting.pipeline import Pipeline
from edge_agent.service.media import MediaKeeper
from edge_agent.service.sink import EventSink
from edge_agent.store.database import Store
from edge_agent.vision.classifier import Classifier
from edge_agent.vision.localiser import megadetector_boxes, motion_mask
from edge_agent.vision.privacy import PrivacyGuard

log = logging.getLogger("trapcount.service")


def check_files(settings: Settings) -> None:
    """The files the config names besides the model (``motion.mask``, and the MegaDetector
    file ``motion.detections`` matched with the folder), before anything is opened or
    created: a ConfigError naming the key or the file when one is missing or unusable."""

    motion_mask(settings)
    if settings.motion.detections or settings.motion.localiser == "megadetector":
        megadetector_boxes(settings)


def privacy_guard(settings: Settings) -> PrivacyGuard | None:
    """The person/face checks of ``privacy.mode``; None (with a warning) when it is off."""
    from edge_agent.vision.privacy import PrivacyGuard

    if settings.privacy.mode == "off":
        log.warning("privacy.mode = off: people are not detected, images are not checked")
        return None
    return PrivacyGuard(settings.privacy)


def media_keeper(
    settings: Settings,
    store: Store,
    deployment_id: int,
    guard: PrivacyGuard | None,
    media_dir: Path | None = None,
) -> MediaKeeper | None:
    """The media keeper for ``media_dir`` (else ``media.media_dir``); None when neither."""
    from edge_agent.service.media import MediaKeeper

    if media_dir is None and settings.media.media_dir:
        media_dir = settings.resolve(settings.media.media_dir)
    if media_dir is None:
        return None
    return MediaKeeper(settings.media, Path(media_dir), store, deployment_id, guard)


def keeper_callback(keeper: MediaKeeper | None) -> Callable[[ClosedEvent, int], None] | None:
    if keeper is None:
        return None

    def keep(event: ClosedEvent, event_id: int) -> None:
        keeper.keep(event_id, event.tracks)

    return keep


@dataclass
class Wiring:
    """One trap's counting parts, wired: what both ``process`` and ``run`` use."""

    settings: Settings
    store: Store
    deployment_id: int
    privacy: PrivacyGuard | None
    keeper: MediaKeeper | None
    sink: EventSink

    def pipeline(self, classifier: Classifier | None) -> Pipeline:
        """A new pipeline over these parts (one per file, or per capture session)."""
        return Pipeline(self.settings, classifier, privacy=self.privacy, media=self.keeper)


def wire(
    settings: Settings,
    store: Store,
    classifier: Classifier,
    *,
    media_dir: Path | None = None,
    retry_note: str | None = None,
    remember_ids: bool = True,
) -> Wiring:
    """The trap's deployment (opened or continued), the model registered, the guard, the
    keeper (``media_dir``, else ``media.media_dir``) and a sink that hands written events
    to the keeper. ``retry_note``: what a failed write promises, ``remember_ids``: whether
    the sink keeps the written events' ids (``EventSink``)."""
    deployment_id = store.ensure_deployment(settings.trap)
    store.register_model(classifier.manifest)
    guard = privacy_guard(settings)
    keeper = media_keeper(settings, store, deployment_id, guard, media_dir)
    options = {} if retry_note is None else {"retry_note": retry_note}
    sink = EventSink(
        store, deployment_id, keeper_callback(keeper), remember_ids=remember_ids, **options
    )
    return Wiring(settings, store, deployment_id, guard, keeper, sink)

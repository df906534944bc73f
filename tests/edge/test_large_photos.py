"""Large photos, decoded reduced (``source.decode_max_side``), count as the same photos taken
small: a 12-megapixel burst, one stored rotated with an EXIF orientation, a 48-megapixel
one; and a burst whose photos are read back from their files (``bursts.KEEP_BYTES``) is
located exactly as one held in memory. The photos are real JPEGs, written here: the same
rendered scene at each size (rendered small, scaled up), so that only the size differs."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from edge_agent.capture.factory import open_source
from edge_agent.capture.folder import ImageFolderSource
from edge_agent.config import Settings
from edge_agent.counting.pipeline import Pipeline
from edge_agent.demo import scenes
from edge_agent.vision import bursts
from edge_agent.vision.geometry import centre

START = datetime(2024, 6, 1, 6, 0, tzinfo=UTC)
TIMES = [0.0, 1.0, 2.0, 3.0, 4.0]  # a five-photo burst, a second apart
EXIF_IFD, ORIENTATION, DATETIME_ORIGINAL, SUBSEC_ORIGINAL = 0x8769, 0x0112, 0x9003, 0x9291


@pytest.fixture(scope="module")
def renders() -> list[np.ndarray]:
    """Two deer and a fox crossing, five photos at 800x600."""
    walks = scenes.crossing("deer", -0.5, 6.0, k=2, y=0.62, width=0.16, seed=1)
    walks += scenes.crossing("fox", -0.5, 6.0, direction=-1, y=0.8, width=0.1, seed=4)
    scene = scenes.Scene(width=800, height=600, duration_s=5, walks=walks, seed=5)
    return [frame for _, frame in scene.frames(TIMES)]


def write_burst(
    folder: Path, renders: list[np.ndarray], size: tuple[int, int], *, rotated: bool = False
) -> Path:
    """The renders scaled to ``size`` (width, height) as JPEGs with EXIF times; ``rotated``:
    stored turned a quarter left with EXIF orientation 6 (turn right to view), as a camera
    held on its side writes them."""
    folder.mkdir(parents=True)
    for i, (t, render) in enumerate(zip(TIMES, renders, strict=True)):
        image = cv2.resize(render, size, interpolation=cv2.INTER_LINEAR)
        if rotated:
            image = cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
        exif = Image.Exif()
        if rotated:
            exif[ORIENTATION] = 6
        taken = START + timedelta(seconds=t)
        exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = taken.strftime("%Y:%m:%d %H:%M:%S")
        exif.get_ifd(EXIF_IFD)[SUBSEC_ORIGINAL] = "00"
        out = io.BytesIO()
        Image.fromarray(image[:, :, ::-1]).save(out, "JPEG", quality=90, exif=exif.tobytes())
        (folder / f"IMG_{i + 1:04d}.JPG").write_bytes(out.getvalue())
        del image
    return folder


def locate(folder: Path, **source: object) -> tuple[list[int], Pipeline, list[tuple]]:
    """MaxN per event in motion-only mode, the pipeline, and every located photo's
    (time, file, shape, boxes)."""
    settings = Settings.model_validate({"source": {"uri": str(folder), **source}})
    pipeline = Pipeline(settings, None)
    seen: list[tuple] = []
    step = pipeline._step

    def spy(located):  # a test's look at what the pipeline steps through
        seen.append((located.timestamp, located.file, located.frame.shape, located.boxes))
        return step(located)

    pipeline._step = spy  # type: ignore[method-assign]
    with open_source(settings.source) as frames:
        events = list(pipeline.run(frames))
    return [sum(e.counts.values()) for e in events], pipeline, seen


def same_boxes(seen: list[tuple], small: list[tuple], factor: float, px: int = 24) -> bool:
    """Whether every photo has as many boxes as its small twin, their centres within
    ``px`` (3% of 800 px) once scaled by ``factor``: the same animals where the small burst
    has them (the edges of a box differ by the resampling: 320 px motion from 800 or from
    1600 px photos)."""
    for (t, _, _, boxes), (t_small, _, _, boxes_small) in zip(seen, small, strict=True):
        if t != t_small or len(boxes) != len(boxes_small):
            return False
        for box, other in zip(sorted(boxes), sorted(boxes_small), strict=True):
            (x, y), (u, v) = centre(box), centre(other)
            if max(abs(x * factor - u), abs(y * factor - v)) > px:
                return False
    return True


@pytest.fixture(scope="module")
def small(renders: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory):
    folder = write_burst(tmp_path_factory.mktemp("small") / "card", renders, (800, 600))
    return locate(folder)


@pytest.fixture(scope="module")
def twelve_mp(renders: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_burst(tmp_path_factory.mktemp("12mp") / "card", renders, (4000, 3000))


def test_the_small_burst_counts_its_animals(small) -> None:
    counts, pipeline, seen = small
    assert counts == [3]  # two deer and a fox in view together
    assert [shape for _, _, shape, _ in seen] == [(600, 800, 3)] * 5
    assert pipeline.unprocessed == []


def test_a_12_mp_burst_counts_like_the_same_burst_small(small, twelve_mp: Path) -> None:
    counts, pipeline, seen = locate(twelve_mp)
    assert counts == small[0]
    # Decoded at 1/2 by libjpeg, then scaled to the 1600 px decode size; the boxes are
    # where the small burst has them.
    assert [shape for _, _, shape, _ in seen] == [(1200, 1600, 3)] * 5
    assert same_boxes(seen, small[2], 0.5)
    # Five 1600x1200 photos exceed what a burst keeps decoded: the rest were read back.
    assert pipeline.localiser.read_back == 5 - bursts.KEEP_BYTES // (1600 * 1200 * 3)
    assert pipeline.unprocessed == []


def test_an_exif_rotated_burst_counts_like_the_upright_one(
    small, renders: list[np.ndarray], tmp_path: Path
) -> None:
    folder = write_burst(tmp_path / "card", renders, (4000, 3000), rotated=True)
    with ImageFolderSource(folder) as source:
        first = next(iter(source))
    assert first.timestamp == START  # the EXIF time is read beside the orientation
    assert first.image.shape == (1200, 1600, 3)  # turned upright, then reduced
    upright = cv2.resize(renders[0], (1600, 1200), interpolation=cv2.INTER_AREA)
    assert np.abs(first.image.astype(int) - upright).mean() < 6  # JPEG noise only
    counts, pipeline, seen = locate(folder)
    assert counts == small[0]
    assert same_boxes(seen, small[2], 0.5)
    assert pipeline.localiser.read_back > 0 and pipeline.unprocessed == []


def test_a_48_mp_burst_counts_like_the_same_burst_small(
    small, renders: list[np.ndarray], tmp_path: Path
) -> None:
    """8000x6000 is above ``source.max_megapixels`` (40) at full size; a JPEG is decoded at
    1/4 (2000x1500) and never whole."""
    counts, _pipeline, seen = locate(write_burst(tmp_path / "card", renders, (8000, 6000)))
    assert counts == small[0]
    assert same_boxes(seen, small[2], 0.5)


def test_a_burst_read_back_is_located_as_one_held_in_memory(
    twelve_mp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bursts, "KEEP_BYTES", 1 << 40)
    held = locate(twelve_mp)
    monkeypatch.setattr(bursts, "KEEP_BYTES", 0)
    read_back = locate(twelve_mp)
    assert held[1].localiser.read_back == 0 and read_back[1].localiser.read_back == 5
    assert read_back[0] == held[0] and read_back[2] == held[2]


def test_a_source_decoding_otherwise_keeps_the_burst_in_memory(
    twelve_mp: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A photo read back with the localiser's settings must be the photo the source gave:
    when it is not (here the source decodes at 1000 px, the config says 1600), the burst
    keeps its photos decoded, and counts as before."""
    monkeypatch.setattr(bursts, "KEEP_BYTES", 0)
    settings = Settings.model_validate({"source": {"uri": str(twelve_mp)}})
    pipeline = Pipeline(settings, None)
    with (
        caplog.at_level(logging.WARNING),
        ImageFolderSource(twelve_mp, decode_max_side=1000) as source,
    ):
        events = list(pipeline.run(source))
    assert [sum(e.counts.values()) for e in events] == [3]
    assert pipeline.localiser.read_back == 0 and pipeline.localiser.read_again is None
    assert any("does not read back" in r.getMessage() for r in caplog.records)


def test_a_photo_rewritten_before_it_is_read_back_is_unprocessed(
    renders: list[np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Never counted from other pixels than those the burst was located with."""
    monkeypatch.setattr(bursts, "KEEP_BYTES", 0)
    folder = write_burst(tmp_path / "card", renders, (1600, 1200))
    settings = Settings.model_validate({"source": {"uri": str(folder)}})
    pipeline = Pipeline(settings, None)
    with ImageFolderSource(folder) as source:
        for frame in source:
            pipeline.process(frame.timestamp, frame.image, source.current_file)
    # The burst is complete but not yet located (no later photo): one of its files changes.
    third = folder / "IMG_0003.JPG"
    third.write_bytes((folder / "IMG_0001.JPG").read_bytes())
    with caplog.at_level(logging.WARNING):
        pipeline.close()
    assert [reason for _, reason in pipeline.unprocessed] == [bursts.READ_AGAIN_FAILED]
    assert any("IMG_0003.JPG changed" in r.getMessage() for r in caplog.records)

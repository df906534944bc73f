"""Frame sources on real files: videos, image folders with EXIF, a stream that drops out."""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent import scenes
from edge_agent.config import SourceSettings
from edge_agent.sources import (
    Backoff,
    ImageFolderSource,
    LiveCaptureSource,
    SourceError,
    VideoFileSource,
    jpeg_is_complete,
    open_source,
    parse_exif_datetime,
    source_kind,
)

START = datetime(2024, 6, 1, 4, 0, tzinfo=UTC)


def small_scene(seconds: float = 2.0, fps: float = 10.0) -> scenes.Scene:
    return scenes.Scene(
        duration_s=seconds, fps=fps, walks=scenes.crossing("fox", 0.0, seconds), seed=3
    )


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "clip.avi"
    scenes.write_video(small_scene(), path, start_time=START)
    return path


# -- video files ---------------------------------------------------------------------------


def test_video_uses_media_time_from_the_start_argument(clip: Path) -> None:
    start = datetime(2024, 7, 1, 22, 30, tzinfo=UTC)
    with VideoFileSource(clip, start_time=start) as source:
        frames = list(source)
    assert len(frames) == 20
    stamps = [ts for ts, _ in frames]
    assert all(ts.tzinfo is not None and ts.utcoffset() == timedelta(0) for ts in stamps)
    assert stamps[0] == start
    assert stamps[10] - stamps[0] == timedelta(seconds=1)
    assert stamps[-1] == start + timedelta(seconds=1.9)
    assert frames[0][1].shape == (240, 320, 3) and frames[0][1].dtype == np.uint8


def test_video_start_defaults_to_mtime_minus_duration(clip: Path) -> None:
    # write_video set the mtime to START + duration: the end of the recording.
    with VideoFileSource(clip) as source:
        assert source.duration_s == pytest.approx(2.0)
        assert source.start_time == START
        first = next(iter(source))
    assert first.timestamp == START


def test_start_time_in_another_zone_is_converted_to_utc(clip: Path) -> None:
    berlin = datetime(2024, 7, 1, 6, 0, tzinfo=timedelta_zone(2))
    with VideoFileSource(clip, start_time=berlin) as source:
        assert next(iter(source)).timestamp == datetime(2024, 7, 1, 4, 0, tzinfo=UTC)


def timedelta_zone(hours: int):
    from datetime import timezone

    return timezone(timedelta(hours=hours))


def test_naive_start_time_is_refused(clip: Path) -> None:
    with pytest.raises(ValueError, match="time zone"):
        VideoFileSource(clip, start_time=datetime(2024, 1, 1))


def test_truncated_video_stops_cleanly_with_a_warning(
    clip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 6 // 10])
    with caplog.at_level(logging.INFO, logger="edge_agent.sources"), VideoFileSource(cut) as source:
        frames = list(source)
    assert 0 < len(frames) < 20
    assert any(
        r.levelno == logging.WARNING
        and "truncated" in r.getMessage()
        and "cut.avi" in r.getMessage()
        for r in caplog.records
    )


def test_complete_video_ends_without_a_warning(
    clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="edge_agent.sources"),
        VideoFileSource(clip) as source,
    ):
        assert len(list(source)) == 20
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_video_whose_header_is_lost_is_a_one_line_error(clip: Path, tmp_path: Path) -> None:
    # An .mp4 keeps its index at the end: cut short, it cannot be opened at all.
    mp4 = tmp_path / "clip.mp4"
    scenes.write_video(small_scene(1.0), mp4)
    data = mp4.read_bytes()
    mp4.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="cannot decode video") as info:
        VideoFileSource(mp4)
    assert "\n" not in str(info.value)
    with pytest.raises(SourceError, match="not found"):
        VideoFileSource(tmp_path / "missing.mp4")


def test_close_is_safe_twice_and_ends_iteration(clip: Path) -> None:
    source = VideoFileSource(clip)
    iterator = iter(source)
    next(iterator)
    source.close()
    source.close()
    assert list(iterator) == []
    with pytest.raises(SourceError, match="closed"):
        iter(source)


def test_stop_event_ends_a_video_early(clip: Path) -> None:
    stop = threading.Event()
    with VideoFileSource(clip, stop_event=stop) as source:
        seen = 0
        for _ in source:
            seen += 1
            if seen == 5:
                stop.set()
    assert seen == 5


# -- choosing a source ---------------------------------------------------------------------


def test_source_kind_is_guessed_from_the_uri(clip: Path, tmp_path: Path) -> None:
    def kind(uri: str) -> str:
        return source_kind(SourceSettings(uri=uri))

    assert kind("0") == "usb"
    assert kind("2") == "usb"
    assert kind("rtsp://user:pw@192.168.1.20:554/stream1") == "rtsp"
    assert kind("http://cam.local/video.mjpg") == "rtsp"
    assert kind("picamera2") == "picamera2"
    assert kind(str(tmp_path)) == "folder"
    assert kind(str(clip)) == "video"
    assert source_kind(SourceSettings(kind="video", uri="whatever")) == "video"
    with pytest.raises(SourceError, match="not a camera index, a URL, a folder or a file"):
        kind(str(tmp_path / "nowhere.mp4"))


def test_open_source_resolves_relative_paths_against_base_dir(clip: Path) -> None:
    settings = SourceSettings(uri=clip.name)
    with open_source(settings, base_dir=clip.parent, start_time=START) as source:
        assert isinstance(source, VideoFileSource)
        assert next(iter(source)).timestamp == START


def test_picamera2_missing_is_a_clear_one_line_error() -> None:
    try:
        import picamera2  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover
        pytest.skip("picamera2 is installed here")
    with pytest.raises(SourceError, match="picamera2 is not installed") as info:
        open_source(SourceSettings(kind="picamera2"))
    assert "\n" not in str(info.value)


# -- live sources: reconnect ---------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_a_camera_that_fails_and_comes_back_is_reconnected(
    clip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream read through FFmpeg from a file: at its end reads fail, then the "camera"
    is unplugged (the file is gone) so reopening fails too, then it comes back."""
    camera = tmp_path / "camera.avi"
    unplugged = tmp_path / "unplugged.avi"
    camera.write_bytes(clip.read_bytes())
    settings = SourceSettings(
        kind="rtsp", uri=str(camera), reconnect_initial_s=0.05, reconnect_max_s=0.2
    )
    stop = threading.Event()
    plug_back = threading.Timer(0.6, os.rename, (unplugged, camera))
    frames = []
    with caplog.at_level(logging.INFO, logger="edge_agent.sources"):
        with open_source(settings, stop_event=stop) as source:
            assert isinstance(source, LiveCaptureSource)
            for timestamp, image in source:
                frames.append((timestamp, image))
                if len(frames) == 3:
                    os.rename(camera, unplugged)  # reads go on from the open file until EOF
                    plug_back.start()
                if len(frames) == 30:
                    stop.set()
        plug_back.join()
    assert len(frames) == 30  # 20 before the failure, 10 after reconnecting
    assert source.reconnects >= 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("read failed; reconnecting in 0.05 s" in m for m in messages), messages
    assert any("camera did not open" in m for m in messages), messages
    assert any(m.endswith("reconnected") for m in messages), messages
    stamps = [ts for ts, _ in frames]
    assert all(ts.tzinfo is not None for ts in stamps)
    assert stamps == sorted(stamps)  # wall clock for live sources


def test_stop_event_interrupts_the_backoff_wait(tmp_path: Path) -> None:
    settings = SourceSettings(
        kind="rtsp", uri=str(tmp_path / "no-camera.avi"), reconnect_initial_s=30, reconnect_max_s=60
    )
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = datetime.now(UTC)
    with open_source(settings, stop_event=stop) as source:
        assert list(source) == []
    assert (datetime.now(UTC) - started).total_seconds() < 5


def test_capture_factory_feeds_any_camera_and_close_from_another_thread(clip: Path) -> None:
    """``capture_factory`` plugs in any OpenCV-like camera (here OpenCV on a file)."""
    opened = []

    def factory():
        capture = cv2.VideoCapture(str(clip))
        opened.append(capture)
        return capture

    source = open_source(
        SourceSettings(kind="usb", uri="0", reconnect_initial_s=0.01), capture_factory=factory
    )
    count = 0
    for _ in source:
        count += 1
        if count == 25:  # past the first "camera session": it reconnected once
            threading.Thread(target=source.close).start()
            source.close()
    source.close()
    assert count == 25
    assert len(opened) == 2


# -- image folders -------------------------------------------------------------------------


def write_jpeg(path: Path, image: np.ndarray, taken: datetime | None, **exif: object) -> None:
    if taken is None:
        _ok, data = cv2.imencode(".jpg", image)
        path.write_bytes(data.tobytes())
    else:
        path.write_bytes(scenes.jpeg_with_exif(image, scenes.exif_app1(taken, **exif)))


def grey(value: int) -> np.ndarray:
    return np.full((24, 32, 3), value, np.uint8)


def test_exif_datetime_in_the_trap_zone_becomes_utc() -> None:
    app1 = scenes.exif_app1(datetime(2024, 7, 1, 6, 15, 30))
    data = scenes.jpeg_with_exif(grey(50), app1)
    assert parse_exif_datetime(data, "Europe/Berlin") == datetime(2024, 7, 1, 4, 15, 30, tzinfo=UTC)
    assert parse_exif_datetime(data, "UTC") == datetime(2024, 7, 1, 6, 15, 30, tzinfo=UTC)


def test_exif_subseconds_offset_and_big_endian() -> None:
    taken = datetime(2024, 1, 5, 23, 59, 59)
    app1 = scenes.exif_app1(taken, subsec="25", offset="-05:00", big_endian=True)
    data = scenes.jpeg_with_exif(grey(80), app1)
    # OffsetTimeOriginal wins over the configured zone.
    assert parse_exif_datetime(data, "Europe/Berlin") == datetime(
        2024, 1, 6, 4, 59, 59, 250000, tzinfo=UTC
    )


def test_no_or_broken_exif_gives_none() -> None:
    _ok, plain = cv2.imencode(".jpg", grey(10))
    assert parse_exif_datetime(plain.tobytes()) is None
    assert parse_exif_datetime(b"not a jpeg") is None
    broken = scenes.exif_app1(datetime(2024, 1, 1))[:30]
    assert parse_exif_datetime(b"\xff\xd8" + broken + b"\xff\xd9") is None


def test_jpeg_completeness_check() -> None:
    data = scenes.jpeg_with_exif(grey(90), scenes.exif_app1(datetime(2024, 1, 1)))
    assert jpeg_is_complete(data)
    assert not jpeg_is_complete(data[: len(data) - 40])
    assert not jpeg_is_complete(b"\xff\xd8\xff\xe0garbage")


def test_folder_is_ordered_by_exif_not_by_name_or_mtime(tmp_path: Path) -> None:
    base = datetime(2024, 6, 1, 22, 0, 0)
    # Names in the reverse order of capture; mtimes shuffled.
    for i, value in enumerate([30, 20, 10]):
        path = tmp_path / f"IMG_{i:04d}.JPG"
        write_jpeg(path, grey(value), base + timedelta(seconds=2 - i), subsec="50")
        os.utime(path, (1_000_000 + i * 7 % 3, 1_000_000 + i * 7 % 3))
    with ImageFolderSource(tmp_path, timezone="Europe/Berlin") as source:
        frames = list(source)
        origins = [o for _, _, o in source.items]
    assert [int(f.image[0, 0, 0]) for f in frames] == [10, 20, 30]
    assert frames[0].timestamp == datetime(2024, 6, 1, 20, 0, 0, 500000, tzinfo=UTC)
    assert origins == ["exif"] * 3


def test_folder_falls_back_to_mtime_and_searches_subfolders(tmp_path: Path) -> None:
    (tmp_path / "DCIM" / "100MEDIA").mkdir(parents=True)
    late = tmp_path / "DCIM" / "100MEDIA" / "a.png"
    early = tmp_path / "b.jpg"
    cv2.imwrite(str(late), grey(200))
    write_jpeg(early, grey(100), None)
    os.utime(late, (2_000_000, 2_000_000))
    os.utime(early, (1_000_000, 1_000_000))
    (tmp_path / "notes.txt").write_text("not an image")
    with ImageFolderSource(tmp_path) as source:
        frames = list(source)
    assert [f.timestamp for f in frames] == [
        datetime.fromtimestamp(1_000_000, UTC),
        datetime.fromtimestamp(2_000_000, UTC),
    ]


def test_corrupt_and_truncated_jpegs_are_skipped_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = datetime(2024, 6, 1, 12, 0, 0)
    write_jpeg(tmp_path / "1.jpg", grey(10), base)
    (tmp_path / "2.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg at all")
    good = scenes.jpeg_with_exif(grey(30), scenes.exif_app1(base + timedelta(seconds=2)))
    (tmp_path / "3.jpg").write_bytes(good[: len(good) - 60])  # cut short on the card
    write_jpeg(tmp_path / "4.jpg", grey(40), base + timedelta(seconds=3))
    with (
        caplog.at_level(logging.WARNING, logger="edge_agent.sources"),
        ImageFolderSource(tmp_path) as source,
    ):
        frames = list(source)
    assert [int(f.image[0, 0, 0]) for f in frames] == [10, 40]
    assert source.skipped == 2
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "2.jpg" in messages and "3.jpg" in messages
    assert "truncated" in messages


def test_missing_folder_and_bad_zone(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        ImageFolderSource(tmp_path / "nope")
    with pytest.raises(Exception, match="Nowhere"):
        ImageFolderSource(tmp_path, timezone="Nowhere/Land")

"""Frame sources on real files: videos, image folders with EXIF, a stream that drops out."""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.backoff import Backoff
from edge_agent.capture.exif import parse_exif_datetime
from edge_agent.capture.factory import open_source, source_kind
from edge_agent.capture.folder import ImageFolderSource, jpeg_is_complete
from edge_agent.capture.frames import SourceError
from edge_agent.capture.live import LiveCaptureSource
from edge_agent.capture.video import VideoFileSource
from edge_agent.config import SourceSettings
from edge_agent.demo import scenes, writers
from tests.helpers.media import write_huge_png

START = datetime(2024, 6, 1, 4, 0, tzinfo=UTC)


def small_scene(seconds: float = 2.0, fps: float = 10.0) -> scenes.Scene:
    return scenes.Scene(
        duration_s=seconds, fps=fps, walks=scenes.crossing("fox", 0.0, seconds), seed=3
    )


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "clip.avi"
    writers.write_video(small_scene(), path, start_time=START)
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
    with (
        caplog.at_level(logging.INFO, logger="edge_agent.capture"),
        VideoFileSource(cut) as source,
    ):
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
        caplog.at_level(logging.INFO, logger="edge_agent.capture"),
        VideoFileSource(clip) as source,
    ):
        assert len(list(source)) == 20
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_video_whose_header_is_lost_is_a_one_line_error(clip: Path, tmp_path: Path) -> None:
    # An .mp4 keeps its index at the end: cut short, it cannot be opened at all.
    mp4 = tmp_path / "clip.mp4"
    writers.write_video(small_scene(1.0), mp4)
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


def decoders() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "trapcount-decode"]


def test_frames_decoded_ahead_are_those_read_one_at_a_time(clip: Path) -> None:
    """The decoding thread changes when frames are decoded, never which, in what order or
    at what time; it is gone once the file ended."""
    with VideoFileSource(clip, start_time=START, prefetch=0) as source:
        plain = list(source)
    with VideoFileSource(clip, start_time=START) as source:
        assert source.prefetch == 1
        ahead = list(source)
        assert source.frames_read == len(ahead)
    assert [f.timestamp for f in ahead] == [f.timestamp for f in plain]
    assert all(np.array_equal(a.image, p.image) for a, p in zip(ahead, plain, strict=True))
    assert len(plain) == 20 and not decoders()


def test_the_decoding_thread_stops_when_the_video_is_left_early(clip: Path) -> None:
    source = VideoFileSource(clip)
    iterator = iter(source)
    next(iterator)
    assert len(decoders()) == 1
    source.close()  # while the thread has a frame ready: it is stopped, then the file closed
    assert not decoders() and list(iterator) == []
    with VideoFileSource(clip) as source:
        for index, _frame in enumerate(source):
            if index == 2:
                break  # the consumer leaves: the generator's end stops the thread
    assert not decoders()


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
    with caplog.at_level(logging.INFO, logger="edge_agent.capture"):
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
        path.write_bytes(writers.jpeg_with_exif(image, writers.exif_app1(taken, **exif)))


def grey(value: int) -> np.ndarray:
    return np.full((24, 32, 3), value, np.uint8)


def test_exif_datetime_in_the_trap_zone_becomes_utc() -> None:
    app1 = writers.exif_app1(datetime(2024, 7, 1, 6, 15, 30))
    data = writers.jpeg_with_exif(grey(50), app1)
    assert parse_exif_datetime(data, "Europe/Berlin") == datetime(2024, 7, 1, 4, 15, 30, tzinfo=UTC)
    assert parse_exif_datetime(data, "UTC") == datetime(2024, 7, 1, 6, 15, 30, tzinfo=UTC)


def test_exif_subseconds_offset_and_big_endian() -> None:
    taken = datetime(2024, 1, 5, 23, 59, 59)
    app1 = writers.exif_app1(taken, subsec="25", offset="-05:00", big_endian=True)
    data = writers.jpeg_with_exif(grey(80), app1)
    # OffsetTimeOriginal wins over the configured zone.
    assert parse_exif_datetime(data, "Europe/Berlin") == datetime(
        2024, 1, 6, 4, 59, 59, 250000, tzinfo=UTC
    )


def test_no_or_broken_exif_gives_none() -> None:
    _ok, plain = cv2.imencode(".jpg", grey(10))
    assert parse_exif_datetime(plain.tobytes()) is None
    assert parse_exif_datetime(b"not a jpeg") is None
    broken = writers.exif_app1(datetime(2024, 1, 1))[:30]
    assert parse_exif_datetime(b"\xff\xd8" + broken + b"\xff\xd9") is None


def test_jpeg_completeness_check() -> None:
    data = writers.jpeg_with_exif(grey(90), writers.exif_app1(datetime(2024, 1, 1)))
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
    good = writers.jpeg_with_exif(grey(30), writers.exif_app1(base + timedelta(seconds=2)))
    (tmp_path / "3.jpg").write_bytes(good[: len(good) - 60])  # cut short on the card
    write_jpeg(tmp_path / "4.jpg", grey(40), base + timedelta(seconds=3))
    with (
        caplog.at_level(logging.WARNING, logger="edge_agent.capture"),
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


def test_a_huge_photo_is_skipped_with_one_warning_and_the_others_are_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = datetime(2024, 6, 1, 12, 0, 0)
    write_jpeg(tmp_path / "1.jpg", grey(10), base)
    write_huge_png(tmp_path / "2-huge.png", 20000, 20000)
    os.utime(tmp_path / "2-huge.png", (1_000_000, 1_000_000))  # first by time
    write_jpeg(tmp_path / "3.jpg", grey(30), base + timedelta(seconds=2))
    with (
        caplog.at_level(logging.WARNING, logger="edge_agent.capture"),
        ImageFolderSource(tmp_path) as source,
    ):
        frames = list(source)
    assert [int(f.image[0, 0, 0]) for f in frames] == [10, 30]
    assert source.skipped == 1
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "2-huge.png" in warning and "20000x20000" in warning and "max_megapixels" in warning


def test_a_large_jpeg_is_decoded_reduced_to_the_decode_size(tmp_path: Path) -> None:
    big = np.zeros((4000, 6000, 3), np.uint8)
    big[1000:3000, 2000:4000] = 200  # a bright square in the middle
    write_jpeg(tmp_path / "big.jpg", big, datetime(2024, 6, 1, 12, 0, 0))
    with ImageFolderSource(tmp_path, decode_max_side=1600) as source:
        (frame,) = list(source)
    assert frame.image.shape == (1067, 1600, 3)
    # The same picture, smaller: the square is where it was, at the same relative size.
    ys, xs = np.nonzero(frame.image[:, :, 0] > 100)
    assert abs(ys.min() - 1067 / 4) <= 2 and abs(xs.max() - 1600 * 2 / 3) <= 2


def test_a_photo_the_decoder_cannot_allocate_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """OpenCV's own pixel limit stands in for running out of memory on the trap."""
    write_jpeg(tmp_path / "1.jpg", grey(10), datetime(2024, 6, 1, 12, 0, 0))
    cv2.imwrite(str(tmp_path / "2.png"), np.full((1200, 1200, 3), 50, np.uint8))
    os.utime(tmp_path / "2.png", (1_000_000, 1_000_000))
    env = {"OPENCV_IO_MAX_IMAGE_PIXELS": "1000000"}
    script = (
        "import sys; from edge_agent.capture.folder import ImageFolderSource\n"
        "with ImageFolderSource(sys.argv[1]) as s:\n"
        "    print([int(f.image[0, 0, 0]) for f in s], s.skipped)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[10]", "1"]
    assert "2.png" in result.stderr and "does not decode" in result.stderr


def _avi_stating_fps(path: Path, scale: int, rate: int) -> Path:
    """An MJPG AVI whose stream header states ``rate / scale`` fps (a broken header)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for value in range(0, 200, 40):
        writer.write(np.full((48, 64, 3), value, np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    header = data.index(b"strh") + 8
    assert data[header : header + 4] == b"vids"
    data[header + 20 : header + 28] = struct.pack("<II", scale, rate)
    path.write_bytes(bytes(data))
    return path


def test_a_video_stating_an_implausible_frame_rate_is_read_at_10_fps_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _avi_stating_fps(tmp_path / "broken.avi", scale=1000, rate=1)  # 0.001 fps
    with caplog.at_level(logging.WARNING, logger="edge_agent.capture"):
        with VideoFileSource(path, start_time=START) as source:
            frames = list(source)
        assert source.fps == 10.0
    assert [f.timestamp - START for f in frames] == [timedelta(seconds=i / 10) for i in range(5)]
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "states 0.001 fps" in warning and "source.fps" in warning
    # A rate the user sets wins over the header.
    with VideoFileSource(path, start_time=START, fps=2.0) as source:
        assert list(source)[-1].timestamp - START == timedelta(seconds=2)

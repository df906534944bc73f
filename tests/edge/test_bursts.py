"""Camera-trap photo bursts on photos the tests make: still animals, empty bursts, IR twins,
lone photos with no reference, bursts that mix cameras."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.capture.factory import open_source
from edge_agent.config import Settings
from edge_agent.counting.pipeline import Pipeline
from edge_agent.demo import scenes
from edge_agent.demo.writers import exif_app1, jpeg_with_exif
from edge_agent.vision.bursts import (
    CORROBORATING_PHOTOS,
    _corroborated,
    burst_noise,
    revealed_ground,
)
from edge_agent.vision.candidates import NO_REFERENCE, Candidate
from tests.helpers.media import query, run_trapcount, tiny_model_dir

START = datetime(2024, 6, 1, 21, 0, tzinfo=UTC)


def write_photos(folder: Path, shots: list[tuple[float, np.ndarray]], prefix: str = "IMG_") -> Path:
    """JPEGs with EXIF DateTimeOriginal (UTC clock, sub-seconds), as a trap writes a burst."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (t, frame) in enumerate(shots):
        taken = START + timedelta(seconds=t)
        subsec = f"{taken.microsecond // 10000:02d}"
        data = jpeg_with_exif(frame, exif_app1(taken.replace(tzinfo=None), subsec=subsec))
        (folder / f"{prefix}{len(list(folder.iterdir())) + i:04d}.JPG").write_bytes(data)
    return folder


def still_animal(label: str = "deer", at: tuple[float, float] = (0.45, 0.62)) -> scenes.Walk:
    """An animal standing at ``at`` from before the first photo to after the last."""
    x, y = at
    return scenes.Walk(label, ((0.0, x, y), (10_000.0, x, y)), width=0.18)


def shots(scene: scenes.Scene, times: list[float]) -> list[tuple[float, np.ndarray]]:
    return list(scene.frames(times))


def grey(frame: np.ndarray) -> np.ndarray:
    """The frame as an IR camera records it: R = G = B."""
    return cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def with_sky(frame: np.ndarray) -> np.ndarray:
    """Another camera's view: the generator's grass with a bright sky over its top part
    (two generated grass views alone are more alike than two real cameras ever are)."""
    out = frame.copy()
    top = out.shape[0] * 2 // 5
    out[:top] = np.clip(out[:top].astype(np.int16) + 120, 0, 255).astype(np.uint8)
    return out


def counts_of(folder: Path, **motion: float) -> tuple[list[int], Pipeline]:
    """MaxN per event, in motion-only mode, of the image folder; ``motion``: settings of
    the ``[motion]`` section other than the defaults."""
    settings = Settings.model_validate({"source": {"uri": str(folder)}, "motion": motion})
    pipeline = Pipeline(settings, None)
    with open_source(settings.source) as source:
        events = list(pipeline.run(source))
    return [sum(e.counts.values()) for e in events], pipeline


BURST = [0.0, 1.0, 2.0, 3.0, 4.0]  # a 5-photo burst, a second apart


def test_an_animal_still_in_every_photo_of_a_burst_counts_one(tmp_path):
    """A PIR false trigger an hour earlier left an empty view of the camera; the next burst
    has a deer standing in the same place in every photo: the burst's own median holds
    the deer, the empty view does not."""
    empty = scenes.Scene(duration_s=1, walks=[], seed=3)
    deer = scenes.Scene(duration_s=1, walks=[still_animal()], seed=3)
    photos = [(t, f) for t, f in shots(empty, BURST)]
    photos += [(3600 + t, f) for t, f in shots(deer, BURST)]
    counts, pipeline = counts_of(write_photos(tmp_path / "card", photos))
    assert counts == [1]
    assert pipeline.unprocessed == []


def test_an_animal_that_lands_then_stands_counts_one_without_an_empty_view(tmp_path):
    """The heron case: present in the first photo, it moves between the first and second,
    then stands still in the other eight; no empty view of the camera exists. The burst's
    median holds the heron where it stands; the first two photos show it moving."""
    x, y = 0.45, 0.55
    landing = scenes.Walk("fox", ((0.0, 0.2, 0.3), (1.0, x, y), (10_000.0, x, y)), width=0.16)
    scene = scenes.Scene(duration_s=1, walks=[landing], seed=4)
    photos = shots(scene, [float(t) for t in range(10)])
    counts, _ = counts_of(write_photos(tmp_path / "card", photos))
    assert counts == [1]


def test_an_empty_burst_counts_nothing_and_its_photos_become_empty_views(tmp_path):
    scene = scenes.Scene(duration_s=1, walks=[], seed=5)
    counts, pipeline = counts_of(write_photos(tmp_path / "card", shots(scene, BURST)))
    assert counts == []
    assert len(pipeline.localiser.bank.views) == len(BURST)


def test_an_ir_burst_counts_like_its_colour_twin(tmp_path):
    walks = scenes.crossing("deer", 0.0, 5.0, k=2, seed=1)
    scene = scenes.Scene(duration_s=6, walks=walks, seed=6)
    colour = shots(scene, [0.5 + t for t in BURST])
    colour_counts, _ = counts_of(write_photos(tmp_path / "day", colour))
    ir_counts, _ = counts_of(write_photos(tmp_path / "night", [(t, grey(f)) for t, f in colour]))
    assert colour_counts == ir_counts == [2]


def test_a_lone_photo_of_an_unseen_camera_is_unprocessed_not_empty(tmp_path):
    deer = scenes.Scene(duration_s=1, walks=[still_animal()], seed=7)
    counts, pipeline = counts_of(write_photos(tmp_path / "card", shots(deer, [0.0])))
    assert counts == []
    assert [reason for _, reason in pipeline.unprocessed] == [NO_REFERENCE]


def test_a_lone_photo_is_compared_with_an_earlier_empty_view_of_its_camera(tmp_path):
    empty = scenes.Scene(duration_s=1, walks=[], seed=8)
    deer = scenes.Scene(duration_s=1, walks=[still_animal()], seed=8)
    photos = [*shots(empty, [0.0]), (3600.0, shots(deer, [0.0])[0][1])]
    counts, pipeline = counts_of(write_photos(tmp_path / "card", photos))
    assert counts == [1]
    assert [reason for _, reason in pipeline.unprocessed] == [NO_REFERENCE]  # the first one


def test_a_burst_mixing_two_cameras_is_split_not_crashed_on(tmp_path):
    """Two traps' cards copied into one folder: their photos interleave in time, and a
    third camera's smaller photo lands in the middle. Another view is not a background:
    each photo whose view differs from the one before starts a new burst, so each camera's
    first photo has nothing to be compared with (one folder should hold one camera)."""
    one = scenes.Scene(duration_s=6, walks=scenes.crossing("deer", 0.0, 5.0, seed=1), seed=9)
    two = scenes.Scene(duration_s=6, walks=scenes.crossing("boar", 0.0, 5.0, seed=2), seed=10)
    times = [0.5 + t for t in BURST]
    mixed = []
    for (t, a), (_, b) in zip(shots(one, times), shots(two, times), strict=True):
        mixed += [(t, a), (t + 0.3, with_sky(b))]
    mixed.append((2.7, cv2.resize(shots(one, [0.5])[0][1], (160, 120))))
    _counts, pipeline = counts_of(
        write_photos(tmp_path / "card", sorted(mixed, key=lambda shot: shot[0]))
    )
    assert pipeline.frames == len(mixed)
    assert len(pipeline.unprocessed) == 3  # the first photo of each of the three views


def test_a_photo_without_exif_time_falls_back_to_its_file_time_with_a_warning(tmp_path, caplog):
    scene = scenes.Scene(duration_s=1, walks=[], seed=11)
    folder = tmp_path / "card"
    folder.mkdir()
    _t, frame = shots(scene, [0.0])[0]
    cv2.imwrite(str(folder / "no-exif.jpg"), frame)
    os.utime(folder / "no-exif.jpg", (1_000_000, 1_000_000))
    settings = Settings.model_validate({"source": {"uri": str(folder)}})
    with (
        caplog.at_level(logging.WARNING, logger="edge_agent.capture"),
        open_source(settings.source) as src,
    ):
        (stamped,) = list(src)
    assert stamped.timestamp == datetime.fromtimestamp(1_000_000, UTC)
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "no EXIF time" in warning and "no-exif.jpg" in warning


@pytest.fixture(scope="module")
def model(request):
    return tiny_model_dir(request.config)


def test_process_says_how_many_photos_had_no_reference_and_the_report_too(tmp_path, model):
    deer = scenes.Scene(duration_s=1, walks=[still_animal()], seed=12)
    write_photos(tmp_path / "card", shots(deer, [0.0]))
    result = run_trapcount(
        "process", "card", "--db", "t.sqlite", "--model", model, "-q", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "no events" in result.stdout
    assert "unprocessed: no reference: 1 frame" in result.stdout
    assert "--detections" in result.stdout  # what to do about it
    assert query(tmp_path / "t.sqlite", "SELECT reason FROM unprocessed") == [(NO_REFERENCE,)]
    report = run_trapcount("report", "--db", "t.sqlite", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "unprocessed: no reference: 1 frame" in report.stdout


def with_data_bars(frame: np.ndarray, taken: float, number: int, of: int) -> np.ndarray:
    """The bands a Reconyx prints on its photos: black, with the date, time, the photo's
    number in its burst and the temperature in white on top, the camera's name below."""
    out = frame.copy()
    h = out.shape[0]
    bar = max(12, h // 24)
    out[:bar] = 0
    out[h - bar :] = 0
    when = (START + timedelta(seconds=taken)).strftime("%Y-%m-%d %I:%M:%S %p")
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, bar / 30
    cv2.putText(out, f"{when}  M {number}/{of}  17C", (4, bar - 3), font, scale, (255,) * 3, 1)
    cv2.putText(out, "HV0218", (4, h - 3), font, scale, (255,) * 3, 1)
    return out


def test_the_data_bars_printed_on_a_burst_are_not_counted(tmp_path):
    """The text of a trap's data bar changes from photo to photo (time, photo number):
    against the burst's median or an empty view it differs, yet it is no animal. An empty
    burst with bars counts nothing; a burst with a still deer counts it once."""
    times = [float(t) for t in range(10)]
    empty = scenes.Scene(duration_s=1, walks=[], seed=12)
    deer = scenes.Scene(duration_s=1, walks=[still_animal()], seed=12)

    def barred(scene: scenes.Scene, start: float) -> list[tuple[float, np.ndarray]]:
        return [
            (start + t, with_data_bars(f, start + t, i + 1, len(times)))
            for i, (t, f) in enumerate(shots(scene, times))
        ]

    counts, _ = counts_of(write_photos(tmp_path / "empty", barred(empty, 0.0)))
    assert counts == []
    card = write_photos(tmp_path / "card", barred(empty, 0.0) + barred(deer, 3600.0))
    counts, _ = counts_of(card)
    assert counts == [1]


def test_a_band_of_flash_light_across_the_ground_is_not_an_animal(tmp_path):
    """An infrared flash lights the ground nearest the camera more in some photos of a
    burst than in others: a bright band across the bottom of the frame, not an animal."""
    scene = scenes.Scene(duration_s=1, walks=[], seed=13)
    photos = []
    for i, (t, frame) in enumerate(shots(scene, [float(t) for t in range(6)])):
        frame = grey(frame)
        if i % 2:
            h = frame.shape[0]
            band = frame[h * 7 // 8 :].astype(np.int16) + 45
            frame[h * 7 // 8 :] = np.clip(band, 0, 255).astype(np.uint8)
        photos.append((t, frame))
    counts, _ = counts_of(write_photos(tmp_path / "card", photos))
    assert counts == []


def test_an_animal_crossing_a_strongly_textured_view_is_no_ghost(tmp_path):
    """A flat, mid-grey animal walks across the first four photos of a six-photo burst over
    ground of sharp light and dark stripes (a fence, reeds, a log pile in IR): the burst's
    median is the bare ground, and along the animal's outline the ground has stronger edges
    than the photo, which the outline test alone reads as a ghost (real Reconyx bursts lost
    whole animals so). Each photo has only that one thing, and it moves: it counts 1."""
    width, height, stripe = 640, 480, 16
    ground = np.where((np.arange(width) // stripe) % 2 == 0, 40, 215).astype(np.uint8)
    ground = np.tile(ground, (height, 1))
    photos = []
    for i in range(6):
        frame = ground.copy()
        if i < 4:
            x = 20 + i * 110
            frame[180:290, x : x + 150] = 128
        photos.append((float(i), np.dstack([frame, frame, frame])))
    counts, _ = counts_of(write_photos(tmp_path / "card", photos))
    assert counts == [1]


Ellipse = tuple[tuple[int, int], tuple[int, int]]  # centre, half-axes (pixels)


def smooth_ground_burst(
    seed: int,
    animals: list[list[Ellipse]],
    *,
    brightness: float = 70.0,
    flicker: float = 0.0,
    sun: tuple[slice, slice] | None = None,
) -> list[tuple[float, np.ndarray]]:
    """Grey 640x480 photos a second apart of smooth ground with sensor noise; in photo
    ``i``, flat animals ``brightness`` grey levels brighter than the ground at
    ``animals[i]``. ``flicker``: blotches of light of about this many grey levels that
    change from photo to photo (leaves in sun and wind, haze); ``sun``: rows and columns
    50 levels brighter in every photo."""
    rng = np.random.default_rng(seed)
    height, width = 480, 640
    yy, xx = np.mgrid[0:height, 0:width]
    ground = (90 + 30 * np.sin(xx / 37.0) * np.cos(yy / 23.0)).astype(np.float32)
    photos = []
    for i, ellipses in enumerate(animals):
        frame = ground + rng.normal(0, 1.5, ground.shape)
        if flicker:
            blotches = rng.normal(0, flicker, (height // 24 + 1, width // 24 + 1))
            frame += cv2.resize(blotches.astype(np.float32), (width, height), cv2.INTER_CUBIC)
        body = np.zeros_like(frame)
        for centre, axes in ellipses:
            cv2.ellipse(body, centre, axes, 0, 0, 360, 1, -1)
        frame += brightness * body
        if sun is not None:
            frame[sun] += 50
        grey_frame = np.clip(frame, 0, 255).astype(np.uint8)
        photos.append((float(i), np.dstack([grey_frame] * 3)))
    return photos


def faint_burst(seed: int, *, animal: bool, flicker: float = 0.0) -> list[tuple[float, np.ndarray]]:
    """Six photos; ``animal``: one only 13 grey levels brighter than the ground walks
    across the first four (a dark deer on dark ground under the IR lamp)."""
    walk = [[((130 + i * 120, 240), (70, 40))] if animal and i < 4 else [] for i in range(6)]
    return smooth_ground_burst(seed, walk, brightness=13.0, flicker=flicker)


def test_a_faint_animal_in_a_quiet_burst_is_found_below_the_video_level(tmp_path):
    """The burst's own noise sets its difference level: a still night view differs from
    its median by a grey level or two, so a difference of 13 there is something, though
    under ``threshold`` (16, video's level). One level for all (quiet = threshold) misses it."""
    folder = write_photos(tmp_path / "card", faint_burst(1, animal=True))
    assert counts_of(folder)[0] == [1]
    assert counts_of(folder, quiet_burst_threshold=16)[0] == []


def test_a_noisy_empty_burst_is_compared_at_the_full_level(tmp_path):
    """Flickering light makes the burst's noise high: its level stays at ``threshold`` and
    nothing counts, where the quiet level for every burst would count the blotches."""
    noisy = faint_burst(2, animal=False, flicker=7.0)
    assert counts_of(write_photos(tmp_path / "card", noisy))[0] == []
    flat = {"threshold": 10, "quiet_burst_threshold": 10}
    assert counts_of(tmp_path / "card", **flat)[0] != []
    # What tells them apart: the noise of the two bursts, at motion resolution.
    smalls = {}
    for name, photos in (("quiet", faint_burst(1, animal=False)), ("noisy", noisy)):
        small = [cv2.resize(cv2.GaussianBlur(f[..., 0], (5, 5), 0), (320, 240)) for _, f in photos]
        smalls[name] = burst_noise(small, np.median(np.stack(small), axis=0).astype(np.uint8))
    assert smalls["quiet"] < 2.0 < 3.2 < smalls["noisy"]


def test_an_animal_that_shrinks_between_two_photos_stays_one_track(tmp_path):
    """A deer broadside in three photos, then only its rump as it walks off into cover (a
    tenth of the area) in two more: one box in the photo before, one in this one, so it is
    the same animal, however much its size changed. Before, the box was more than four
    times smaller than the track's and began a second track, which the classifier often
    labelled otherwise: one deer counted as a deer and an unknown (field-train's real
    bursts SEQ76076, SEQ76129, SEQ81565 and SEQ81952 were each counted twice so)."""
    broadside = [[((100 + 150 * i, 260), (80, 60))] for i in range(3)]
    rump = [[((540 + 5 * i, 250), (24, 20))] for i in (3, 4)]
    folder = write_photos(tmp_path / "card", smooth_ground_burst(3, [*broadside, *rump, []]))
    settings = Settings.model_validate({"source": {"uri": str(folder)}})
    pipeline = Pipeline(settings, None)
    with open_source(settings.source) as source:
        events = list(pipeline.run(source))
    assert [sum(e.counts.values()) for e in events] == [1]
    (track,) = events[0].tracks
    assert track.seen_frames == [0, 1, 2, 3, 4]


def test_a_flicker_where_the_animal_was_photos_before_is_not_a_second_animal(tmp_path):
    """An animal crosses six photos; in the last one a patch of light flashes where it
    walked in the first: near a candidate in place, but four photos and more away in time.
    It is not corroborated (a partner must be at most two photos away), so it is not a
    second animal seen beside the first."""
    walk = [[((100 + 80 * i, 300), (30, 20))] for i in range(6)]
    walk[5].append(((110, 300), (18, 18)))
    counts, _ = counts_of(write_photos(tmp_path / "card", smooth_ground_burst(4, walk)))
    assert counts == [1]


def test_a_candidate_is_corroborated_only_by_a_photo_near_in_time() -> None:
    """``_corroborated``: a box has a partner near it in place in a photo at most
    ``CORROBORATING_PHOTOS`` away; the same partner farther away in time does not count."""

    def found(*boxes: tuple[int, int, int, int] | None) -> list[list[Candidate]]:
        return [[Candidate(box, "burst")] if box else [] for box in boxes]

    box = (100, 100, 40, 30)
    near_in_time = found(box, None, (110, 100, 40, 30))
    assert [len(c) for c in _corroborated(near_in_time)] == [1, 0, 1]
    gap = [None] * CORROBORATING_PHOTOS
    far_in_time = found(box, *gap, (110, 100, 40, 30))
    assert all(not c for c in _corroborated(far_in_time))


def test_sun_on_the_ground_since_the_empty_view_is_not_a_second_animal(tmp_path):
    """An empty trigger in the morning gave the camera's empty view; at noon a patch of
    sun lies on the ground through a whole burst in which a deer walks past. Against the
    empty view the sun patch differs in every photo; the burst's median finds the deer, so
    the empty view is not asked, and the sun is not a second animal. (Without an animal
    found by the median, the empty view is what finds one standing still: the test above.)"""
    empty = smooth_ground_burst(6, [[] for _ in range(5)])
    sunny = smooth_ground_burst(
        6,
        [[((100 + 100 * i, 330), (60, 40))] for i in range(5)],
        sun=(slice(60, 200), slice(380, 560)),
    )
    photos = empty + [(3600.0 + t, frame) for t, frame in sunny]
    counts, pipeline = counts_of(write_photos(tmp_path / "card", photos))
    assert counts == [1]
    assert pipeline.unprocessed == []


def test_a_perfectly_still_animal_after_landing_counts_one(tmp_path):
    """The heron case without the generator's sprite animation (whose moving legs leave a
    little change in every photo): a flat bird lands over the first two photos of ten, then
    stands in the next eight without a pixel changing. The median holds it where it
    stands; the first two photos show it arriving, each the other's partner."""
    places = [(150, 150), (330, 250)] + [(400, 300)] * 8
    photos = smooth_ground_burst(7, [[(centre, (30, 45))] for centre in places])
    counts, _ = counts_of(write_photos(tmp_path / "card", photos))
    assert counts == [1]


def brighter(frame: np.ndarray, levels: float) -> np.ndarray:
    """The frame as the camera took it with its exposure (or its lamp) stepped up."""
    return np.clip(frame.astype(np.float32) * 1.1 + levels, 0, 255).astype(np.uint8)


def test_an_animal_in_photos_whose_exposure_stepped_is_found(tmp_path):
    """An infrared burst of six: three empty photos, then the camera raises its exposure
    and a deer walks in for the last three (the Reconyx bursts of field-train do this
    when an animal comes near the lamp). Against the burst's median the brighter photos
    differ everywhere, more than any animal, so nothing was found; with each photo's
    exposure matched to the median's first, the deer counts 1."""
    walk = scenes.Walk("deer", ((3.0, 0.25, 0.6), (5.0, 0.6, 0.6)), width=0.2)
    scene = scenes.Scene(duration_s=6, walks=[walk], seed=9)
    photos = [(t, grey(f)) for t, f in shots(scene, [float(t) for t in range(6)])]
    photos = [(t, brighter(f, 25.0) if t >= 3 else f) for t, f in photos]
    assert counts_of(write_photos(tmp_path / "card", photos))[0] == [1]


def test_an_exposure_step_over_an_empty_burst_counts_nothing(tmp_path):
    scene = scenes.Scene(duration_s=6, walks=[], seed=10)
    photos = [(t, grey(f)) for t, f in shots(scene, [float(t) for t in range(6)])]
    photos = [(t, brighter(f, 25.0) if t >= 3 else f) for t, f in photos]
    assert counts_of(write_photos(tmp_path / "card", photos))[0] == []


def blotched_burst(
    places: list[list[tuple[int, int]]], *, seed: int
) -> list[tuple[float, np.ndarray]]:
    """Grey 640x480 photos a second apart of ground in sharp blotches 16 px across (leaf
    litter under the lamp) with sensor noise; in photo ``i``, flat bright animals (100 x 70
    px ellipses) centred at ``places[i]``. The ground is the same in every call."""
    ground = np.random.default_rng(1).normal(0, 1, (31, 41)).astype(np.float32)
    ground = 110 + 60 * cv2.resize(ground, (640, 480), interpolation=cv2.INTER_NEAREST)
    noise = np.random.default_rng(seed)
    photos = []
    for i, centres in enumerate(places):
        frame = ground + noise.normal(0, 1.5, ground.shape)
        for centre in centres:
            body = np.zeros(ground.shape, np.float32)
            cv2.ellipse(body, centre, (50, 35), 0, 0, 360, 1, -1)
            frame = frame * (1 - body) + 200 * body
        grey_frame = np.clip(frame, 0, 255).astype(np.uint8)
        photos.append((float(i), np.dstack([grey_frame] * 3)))
    return photos


def test_the_ground_an_animal_stood_on_is_no_second_animal_beside_an_empty_view(tmp_path):
    """An empty trigger gave the camera's empty view; an hour later an animal walks in over
    two photos, stands in one place for five and walks off in the eighth. The burst's median
    holds it where it stood, so the first two photos and the last differ there too: the
    ground behind it. Over these blotches the outline test does not call that a ghost, so
    beside the animal it was a second one (field-train's SEQ81618 fed by camera). Inside
    its box the photo is the empty view and the median is not: it is ground, not counted."""
    stood = (420, 300)
    places = [[(120, 300)], [(250, 300)], *[[stood]] * 5, [(560, 200)]]
    empty = blotched_burst([[] for _ in range(4)], seed=1)
    burst = [(3600.0 + t, frame) for t, frame in blotched_burst(places, seed=2)]
    counts, pipeline = counts_of(write_photos(tmp_path / "card", empty + burst))
    assert counts == [1]
    assert pipeline.unprocessed == []


def test_revealed_ground_is_the_empty_view_where_the_median_is_not() -> None:
    rng = np.random.default_rng(0)
    view = rng.integers(40, 200, (40, 40)).astype(np.uint8)
    animal = np.full((40, 40), 210, np.uint8)
    noisy_view = np.clip(view + rng.normal(0, 2, view.shape), 0, 255).astype(np.uint8)
    # The photo shows the ground, the median the animal that stood there: a ghost.
    assert revealed_ground(noisy_view, animal, view)
    # The photo shows an animal the median and the view lack: not ground.
    assert not revealed_ground(animal, noisy_view, view)
    # Both differ from an empty view taken in other light (sun, shadow): left to the rest.
    assert not revealed_ground(np.clip(view + 40, 0, 255).astype(np.uint8), animal, view)


def test_a_patch_of_light_beside_a_small_animal_is_not_a_second_animal(tmp_path):
    """A small animal walks across six photos; in the third the lamp lights a patch of
    ground below it, 300 x 80 pixels. The patch differs from the burst's median in that
    photo only; the animal's box in the photos beside it is near the patch's centre counted
    in the patch's own size, but a box a tenth of its size is not the patch seen again."""
    photos = smooth_ground_burst(9, [[((120 + 80 * i, 200), (18, 12))] for i in range(6)])
    t, frame = photos[2]
    lit = frame.astype(np.int16)
    lit[360:440, 200:500] += 30
    photos[2] = (t, np.clip(lit, 0, 255).astype(np.uint8))
    counts, _ = counts_of(write_photos(tmp_path / "card", photos))
    assert counts == [1]


def test_only_a_like_sized_box_corroborates() -> None:
    """``_corroborated``: a box many times larger (or smaller) near it is not a partner;
    one twice its size is."""
    small = [Candidate((300, 200, 36, 24), "burst")]
    patch = [Candidate((200, 360, 300, 80), "burst")]
    assert [len(c) for c in _corroborated([small, patch])] == [0, 0]
    twice = [Candidate((290, 190, 72, 48), "burst")]
    assert [len(c) for c in _corroborated([small, twice])] == [1, 1]

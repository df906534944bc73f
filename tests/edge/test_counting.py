"""Events and MaxN from tracks: pure logic, no frames."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest

from edge_agent.config import EventSettings
from edge_agent.counting.events import ClosedEvent, EventCounter, LabelObservation, observations
from edge_agent.counting.tracking import Track

T0 = datetime(2024, 6, 1, 4, 0, tzinfo=UTC)
FPS = 10


def at(frame: int) -> datetime:
    return T0 + timedelta(seconds=frame / FPS)


def make_track(
    track_id: int,
    frames: range,
    label: str = "deer",
    confidence: float = 0.8,
    counted: bool = True,
) -> Track:
    track = Track(
        id=track_id,
        box=(0, 0, 10, 10),
        first_seen=at(frames[0]),
        last_seen=at(frames[-1]),
        first_frame=frames[0],
        last_frame=frames[-1],
        seen_frames=list(frames),
        counted=counted,
    )
    track.add_vote(label, confidence)
    return track


def replay(counter: EventCounter, tracks: list[Track], until: int) -> list[ClosedEvent]:
    """Feed the counter frame by frame as the pipeline would; tracks end 15 frames unseen."""
    closed = []
    for frame in range(until):
        visible, ended = [], []
        for track in tracks:
            if frame in track.seen_frames:
                visible.append(track)
            if frame == track.last_frame + 15:
                track.ended = True
                ended.append(track)
        closed += counter.update(at(frame), visible, ended)
    return closed


def test_closed_event_matches_the_documented_dataclasses() -> None:
    assert [f.name for f in fields(LabelObservation)] == [
        "label",
        "max_n",
        "frames",
        "mean_confidence",
        "tracks",
        "suppressed",
    ]
    assert [f.name for f in fields(ClosedEvent)] == [
        "start",
        "end",
        "frames",
        "observations",
        "model_sha256",
        "tracks",
        "illumination",
    ]
    event = ClosedEvent(T0, T0, 1, (), None)
    with pytest.raises(AttributeError):
        event.frames = 2  # type: ignore[misc]


def test_maxn_counts_simultaneous_tracks_not_detections() -> None:
    # Three deer: two together from frame 0, a third overlapping them for frames 20-30.
    tracks = [
        make_track(1, range(0, 40), confidence=0.9),
        make_track(2, range(5, 35), confidence=0.7),
        make_track(3, range(20, 31), confidence=0.8),
        make_track(4, range(10, 50), label="fox", confidence=0.6),
    ]
    counter = EventCounter(EventSettings(event_gap_s=5), model_sha256="abc")
    closed = replay(counter, tracks, until=200)
    assert len(closed) == 1
    event = closed[0]
    assert event.start == at(0) and event.end == at(49)
    assert event.frames == 50
    assert event.model_sha256 == "abc"
    deer, fox = event.observations
    assert deer == LabelObservation("deer", max_n=3, frames=40, mean_confidence=0.8, tracks=3)
    assert fox == LabelObservation("fox", max_n=1, frames=40, mean_confidence=0.6, tracks=1)
    assert event.counts == {"deer": 3, "fox": 1}


def test_one_animal_split_into_successive_tracks_is_counted_once() -> None:
    # A minute-long visit seen as three tracks that never overlap in time.
    tracks = [
        make_track(1, range(0, 200)),
        make_track(2, range(210, 400)),
        make_track(3, range(405, 600)),
    ]
    closed = replay(EventCounter(EventSettings(event_gap_s=60)), tracks, until=2000)
    assert [e.counts for e in closed] == [{"deer": 1}]
    assert closed[0].observations[0].tracks == 3


def test_a_gap_longer_than_event_gap_s_makes_two_events() -> None:
    tracks = [make_track(1, range(0, 30)), make_track(2, range(30 + 120, 180))]  # 12 s apart
    short_gap = replay(EventCounter(EventSettings(event_gap_s=10)), tracks, until=400)
    assert [e.counts for e in short_gap] == [{"deer": 1}, {"deer": 1}]
    for track in tracks:
        track.ended = False
    long_gap = replay(EventCounter(EventSettings(event_gap_s=15)), tracks, until=400)
    assert [e.counts for e in long_gap] == [{"deer": 1}]


def test_an_event_closes_only_after_the_gap_with_no_live_counted_track() -> None:
    counter = EventCounter(EventSettings(event_gap_s=3))
    track = make_track(1, range(0, 10))
    closed_at = None
    for frame in range(100):
        visible = [track] if frame < 10 else []
        ended = []
        if frame == 25:  # the tracker ends it late: 1.5 s unseen
            track.ended = True
            ended = [track]
        if counter.update(at(frame), visible, ended):
            closed_at = frame
            break
        assert counter.open_events == 1
    assert closed_at == 39  # last seen at frame 9, + 3 s
    assert counter.open_events == 0


def test_uncounted_tracks_make_no_event() -> None:
    branch = make_track(1, range(0, 300), counted=False)
    counter = EventCounter(EventSettings(event_gap_s=1))
    assert replay(counter, [branch], until=400) == []
    assert counter.open_events == 0
    assert counter.close([branch]) == []


def test_a_track_rejected_after_it_qualified_is_dropped() -> None:
    branch = make_track(1, range(0, 300))
    counter = EventCounter(EventSettings(event_gap_s=1))
    assert counter.update(at(0), [branch]) == []
    assert counter.open_events == 1
    branch.counted = False  # the tracker saw it swing back and forth
    assert counter.update(at(1), [branch]) == []
    assert counter.open_events == 0


def test_close_emits_the_open_event_with_tracks_still_live() -> None:
    counter = EventCounter(EventSettings(event_gap_s=60))
    a, b = make_track(1, range(0, 20)), make_track(2, range(0, 20), label="unknown")
    for frame in range(20):
        assert counter.update(at(frame), [a, b]) == []
    closed = counter.close([a, b])
    assert [e.counts for e in closed] == [{"deer": 1, "unknown": 1}]
    assert counter.close() == []


def test_observations_sorted_by_label() -> None:
    tracks = [make_track(1, range(0, 5), label="zebra"), make_track(2, range(0, 5), label="ant")]
    assert [o.label for o in observations(tracks)] == ["ant", "zebra"]


def test_an_event_that_was_over_closes_before_the_next_bursts_tracks_join_it() -> None:
    """Photo bursts hours apart: the next burst's first photo comes long after the last
    sighting, and its track may count at once (stills count a one-photo track)."""
    first = make_track(1, range(0, 3))
    counter = EventCounter(EventSettings(event_gap_s=5), model_sha256="abc")
    closed = []
    for frame in range(3):
        closed += counter.update(at(frame), [first])
    first.ended = True
    later = make_track(2, range(900, 903))
    closed += counter.update(at(900), [later], [first])
    assert [e.counts for e in closed] == [{"deer": 1}]  # the first burst's event, alone
    closed += counter.close([later])
    assert len(closed) == 2 and closed[1].start == at(900)


def walking(track_id: int, frames: range, step: float, label: str = "empty") -> Track:
    """A track of 40-pixel boxes whose centre moves ``step`` pixels a frame along x (a
    negative step every other frame: back and forth)."""
    track = make_track(track_id, frames, label=label)
    x = 100.0
    for i, _ in enumerate(frames):
        x += step if step > 0 or i % 2 else -step
        track.shapes.append((x, 200.0, 40.0, 40.0))
    return track


def burst_counter() -> EventCounter:
    return EventCounter(EventSettings(event_gap_s=2.0), photo_bursts=True)


def test_an_empty_track_that_walked_across_a_burst_alone_counts_unknown() -> None:
    """The classifier said ``empty`` for every crop of a coati walking across the burst in
    daylight; a thing that walks across photos is an animal it did not see."""
    track = walking(1, range(0, 6), step=40.0)  # 200 px, 5 of its sizes, straight
    (event,) = replay(burst_counter(), [track], until=60)
    assert event.counts == {"unknown": 1}
    assert track.label == "unknown"


def test_an_empty_track_beside_an_animal_stays_empty() -> None:
    """Beside an animal, a walking ``empty`` track is more often a piece of it or its
    shadow: not a second animal."""
    deer = make_track(1, range(0, 6))
    shadow = walking(2, range(0, 6), step=40.0)
    (event,) = replay(burst_counter(), [deer, shadow], until=60)
    assert event.counts == {"deer": 1}
    assert shadow.label == "empty"


@pytest.mark.parametrize("step", [5.0, -200.0], ids=["too short", "back and forth"])
def test_an_empty_track_that_did_not_walk_counts_nothing(step: float) -> None:
    """A flicker in place, or one that jumps between two places, is no walk."""
    assert replay(burst_counter(), [walking(1, range(0, 6), step=step)], until=60) == []


def test_video_keeps_every_empty_track_out() -> None:
    """Without ``photo_bursts`` (video: an insect at the lamp walks too), an
    ``empty`` track never counts."""
    counter = EventCounter(EventSettings(event_gap_s=2.0))
    assert replay(counter, [walking(1, range(0, 6), step=40.0)], until=60) == []


def test_an_unknown_track_never_seen_beside_the_named_animal_joins_it() -> None:
    """A deer's track broken in two by the localiser: its last photos (half out of the
    frame) were not recognised. MaxN is the fewest animals certainly there together: one
    deer, not a deer and an unknown animal."""
    deer = make_track(1, range(0, 4))
    rest = make_track(2, range(4, 7), label="unknown", confidence=0.3)
    (event,) = replay(burst_counter(), [deer, rest], until=60)
    assert event.counts == {"deer": 1}
    assert rest.label == "deer"
    (deer_seen,) = event.observations
    # Two tracks, and the confidence the deer's own crops gave, not the piece's 0.
    assert (deer_seen.tracks, deer_seen.mean_confidence) == (2, 0.8)


def test_an_unknown_track_seen_beside_the_named_animal_stays_unknown() -> None:
    deer = make_track(1, range(0, 6))
    other = make_track(2, range(3, 8), label="unknown", confidence=0.3)
    (event,) = replay(burst_counter(), [deer, other], until=60)
    assert event.counts == {"deer": 1, "unknown": 1}


def test_an_unknown_track_joins_no_label_when_two_are_named() -> None:
    tracks = [
        make_track(1, range(0, 3)),
        make_track(2, range(3, 6), label="cat"),
        make_track(3, range(6, 9), label="unknown", confidence=0.3),
    ]
    (event,) = replay(burst_counter(), tracks, until=60)
    assert event.counts == {"cat": 1, "deer": 1, "unknown": 1}


def test_in_video_an_unknown_track_keeps_its_label() -> None:
    tracks = [make_track(1, range(0, 4)), make_track(2, range(4, 7), label="unknown")]
    (event,) = replay(EventCounter(EventSettings(event_gap_s=2.0)), tracks, until=60)
    assert event.counts == {"deer": 1, "unknown": 1}


def test_a_track_seen_in_one_photo_beside_an_animal_seen_in_several_is_dropped() -> None:
    """A burst's candidate must be seen in two photos; one seen in a single photo beside a
    deer seen in six was corroborated by the deer's own box (the ground it left, its
    shadow): not a second animal, and not a second label."""
    deer = make_track(1, range(0, 6))
    piece = make_track(2, range(5, 6), label="cat")
    (event,) = replay(burst_counter(), [deer, piece], until=60)
    assert event.counts == {"deer": 1}
    assert [t.id for t in event.tracks] == [1]


def test_tracks_each_seen_in_one_photo_all_count() -> None:
    """A lone photo compared with the camera's empty view: every track is one photo long,
    and two animals in it are two."""
    tracks = [make_track(1, range(0, 1)), make_track(2, range(0, 1))]
    (event,) = replay(burst_counter(), tracks, until=60)
    assert event.counts == {"deer": 2}


def test_in_video_a_short_track_beside_a_long_one_counts() -> None:
    """Video's tracks are already several frames long (``min_track_frames``); the rule is
    the burst's."""
    tracks = [make_track(1, range(0, 6)), make_track(2, range(5, 6), label="cat")]
    (event,) = replay(EventCounter(EventSettings(event_gap_s=2.0)), tracks, until=60)
    assert event.counts == {"cat": 1, "deer": 1}

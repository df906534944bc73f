"""``trapcount review``: the review page through Flask's test client. Security first: path
traversal, the token off localhost, people's media; then the decisions and the export."""

from __future__ import annotations

import http.client
import re
import socket
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import event
from sqlalchemy.engine import Engine

from edge_agent.cli import cli
from edge_agent.config import TrapSettings
from edge_agent.office.dataset import export_dataset
from edge_agent.office.review import ReviewError, check_bind, create_app, normalise_label, redact
from edge_agent.store.database import Store
from tests.helpers.media import start_trapcount, stop, wait_for

pytest.importorskip("flask", reason="the review page needs Flask (the review extra)")

START = datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
JPEG = b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9"


@pytest.fixture
def trap(tmp_path: Path) -> tuple[str, Path, dict[str, int]]:
    """A database with kept media: two deer crops (one hard), a fox crop with its frame, a
    person crop, and a row whose recorded path points outside the media folder."""
    media = tmp_path / "media"
    day = media / "2026-05-01"
    day.mkdir(parents=True)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"outside the media folder")
    db = str(tmp_path / "trap.sqlite")
    ids: dict[str, int] = {}
    with Store.open(db) as store:
        deployment = store.ensure_deployment(TrapSettings())

        def add(name: str, label: str, kind: str = "crop", **extra) -> int:
            path = extra.pop("path", day / f"{name}-{kind}.jpg")
            if path.parent == day:
                path.write_bytes(JPEG + name.encode())
            fields = {
                "confidence": 0.9,
                "disagreed": False,
                "privacy_status": "clear",
                **extra,
            }
            return store.add_media(
                deployment_id=deployment,
                event_id=None,
                time=START + timedelta(seconds=len(ids)),
                kind=kind,
                path=str(path),
                sha256="0" * 64,
                bytes=10,
                label=label,
                **fields,
            )

        ids["deer_easy"] = add("deer1", "deer", confidence=0.95)
        ids["deer_hard"] = add("deer2", "deer", confidence=0.4, disagreed=True)
        ids["fox"] = add("fox1", "fox", confidence=0.7)
        ids["person"] = add("person1", "person")
        ids["outside"] = add("outside", "deer", path=secret)
    return db, media, ids


def client(trap, **kwargs):
    db, media, _ = trap
    app = create_app(db, media, **kwargs)
    app.testing = True
    return app.test_client()


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match
    return match.group(1)


def test_path_traversal_in_media_urls_is_refused(trap):
    c = client(trap)
    _, _, ids = trap
    assert c.get(f"/media/{ids['deer_easy']}").data.startswith(JPEG)
    for url in (
        "/media/../../secret.jpg",
        "/media/..%2F..%2Fsecret.jpg",
        "/media/%2e%2e/%2e%2e/etc/passwd",
        "/media/-1",
        "/static/../../secret.jpg",
        f"/media/{ids['deer_easy']}/../../secret.jpg",
    ):
        response = c.get(url)
        assert response.status_code in (403, 404), url
        assert b"outside the media folder" not in response.data
    # a database row whose path leads outside --media is not served either
    assert c.get(f"/media/{ids['outside']}").status_code == 404


def test_person_media_is_never_listed_or_served(trap):
    c = client(trap)
    _, _, ids = trap
    page = c.get("/").get_data(as_text=True)
    assert f"/media/{ids['person']}" not in page and "person1" not in page
    assert c.get(f"/media/{ids['person']}").status_code == 404
    # nor after a reviewer calls a crop a person
    c.post(
        "/decide",
        data={"csrf": csrf_of(page), "ids": ids["fox"], "action": "relabel", "label": "person"},
    )
    assert c.get(f"/media/{ids['fox']}").status_code == 404
    # and a person crop cannot be relabelled into the dataset
    response = c.post(
        "/decide",
        data={"csrf": csrf_of(page), "ids": ids["person"], "action": "relabel", "label": "deer"},
    )
    assert response.status_code == 404


def test_off_localhost_a_token_is_required(trap):
    with pytest.raises(ReviewError, match="--token"):
        check_bind("0.0.0.0", None)
    with pytest.raises(ReviewError):
        client(trap, host="192.168.1.20")
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("192.168.1.20", "s3cret")
    db, media, _ = trap
    result = CliRunner().invoke(
        cli, ["review", "--db", db, "--media", str(media), "--host", "0.0.0.0"]
    )
    assert result.exit_code == 2 and "--token" in result.output

    c = client(trap, host="0.0.0.0", token="s3cret")
    _, _, ids = trap
    assert c.get("/", base_url="http://trap.local").status_code == 403
    assert c.get(f"/media/{ids['fox']}", base_url="http://trap.local").status_code == 403
    assert c.get("/?token=wrong", base_url="http://trap.local").status_code == 403
    assert c.post("/decide", base_url="http://trap.local").status_code == 403
    assert c.get("/", headers={"X-Review-Token": "s3cret"}).status_code == 200
    # ?token= once sets an HttpOnly cookie and drops the token from the URL
    response = c.get("/?token=s3cret", base_url="http://trap.local")
    assert response.status_code == 302 and "token" not in response.headers["Location"]
    assert "HttpOnly" in response.headers["Set-Cookie"]
    assert c.get("/", base_url="http://trap.local").status_code == 200


def test_on_localhost_other_host_names_and_cross_site_posts_are_refused(trap):
    c = client(trap)
    _, _, ids = trap
    assert c.get("/", base_url="http://evil.example").status_code == 403  # DNS rebinding
    response = c.post("/decide", data={"ids": ids["fox"], "action": "confirm"})
    assert response.status_code == 403  # no per-start form secret


def test_decisions_are_written_at_once_and_the_export_follows(trap, tmp_path):
    db, _, ids = trap
    c = client(trap)
    page = c.get("/").get_data(as_text=True)
    assert "4 of 4 crops remain" in page
    # deer group first, the hard (disagreeing, low-confidence) crop before the easy one
    assert page.index(f'id="m{ids["deer_hard"]}"') < page.index(f'id="m{ids["deer_easy"]}"')
    assert page.index(f'id="m{ids["deer_easy"]}"') < page.index(f'id="m{ids["fox"]}"')
    token = csrf_of(page)
    c.post("/decide", data={"csrf": token, "ids": ids["deer_easy"], "action": "confirm"})
    r = c.post(
        "/decide",
        data={"csrf": token, "ids": ids["deer_hard"], "action": "relabel", "label": "Red Fox"},
    )
    assert r.status_code == 302
    c.post("/decide", data={"csrf": token, "ids": ids["fox"], "action": "empty"})
    bad = c.post(
        "/decide",
        data={"csrf": token, "ids": ids["outside"], "action": "relabel", "label": "../etc"},
    )
    assert "message=" in bad.headers["Location"]
    assert c.get("/api/progress").get_json() == {"total": 4, "remaining": 1}
    with Store.open(db, create=False) as store:
        reviewed = {m.id: m.reviewed_label for m in store.media()}
    assert reviewed[ids["deer_easy"]] == "deer"
    assert reviewed[ids["deer_hard"]] == "red_fox"
    assert reviewed[ids["fox"]] == "empty"
    assert reviewed[ids["outside"]] is None
    # bulk: several at once
    c.post(
        "/decide",
        data={"csrf": token, "ids": [ids["deer_easy"], ids["outside"]], "action": "confirm"},
    )
    assert c.get("/api/progress").get_json()["remaining"] == 0

    out = tmp_path / "dataset"
    result = CliRunner().invoke(cli, ["collect", "export", "--db", db, "--out", str(out)])
    assert result.exit_code == 0, result.output
    # the crop marked empty is left out, the relabelled one has its new class
    assert sorted(p.parent.name for p in out.rglob("*.jpg")) == ["deer", "deer", "red_fox"]


def test_labels_from_the_database_are_shown_as_text(trap, tmp_path, monkeypatch):
    """A label holding markup (a tampered or foreign database) is escaped wherever the page
    shows it, and reaches the page's script as a JSON string. The page is rendered from
    another working directory: its template comes from the package."""
    db, _, ids = trap
    hostile = "<script>alert(1)</script>"
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE media SET label = ? WHERE id = ?", (hostile, ids["fox"]))
        connection.execute(
            "UPDATE media SET reviewed_label = ? WHERE id = ?", ('"><b>x</b>', ids["deer_easy"])
        )
    connection.close()
    monkeypatch.chdir(tmp_path)
    page = client(trap).get("/?message=%3Cb%3Ehi%3C/b%3E").get_data(as_text=True)
    assert page.count("<script") == 1 and "alert(1)</script>" not in page
    assert "<b>x</b>" not in page and "<b>hi</b>" not in page
    assert "<h2>&lt;script&gt;alert(1)&lt;/script&gt; <small>(1)</small></h2>" in page
    assert '<p class="msg" id="message">&lt;b&gt;hi&lt;/b&gt;</p>' in page
    assert r'"\u003cscript\u003ealert(1)\u003c/script\u003e"' in page  # in the labels JSON


def test_labels_become_safe_folder_names():
    assert normalise_label("  Red Fox ") == "red_fox"
    for bad in ("", "../x", "a/b", ".hidden", "-x", "x" * 65, "é"):
        with pytest.raises(ReviewError):
            normalise_label(bad)


def test_a_tampered_label_never_writes_outside_the_export_folder(trap, tmp_path):
    """Labels from a tampered or foreign database ("../../escaped", "a/b") are skipped and
    counted by ``collect export``: nothing outside --out, no nested folders."""
    db, _, ids = trap
    with sqlite3.connect(db) as connection:
        connection.execute(
            "UPDATE media SET label = '../../escaped' WHERE id = ?", (ids["deer_easy"],)
        )
        connection.execute("UPDATE media SET reviewed_label = 'a/b' WHERE id = ?", (ids["fox"],))
    connection.close()
    out = tmp_path / "exports" / "dataset"
    before = set(tmp_path.rglob("*"))
    result = CliRunner().invoke(cli, ["collect", "export", "--db", db, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.endswith(", 2 skipped (label not a valid folder name)\n")
    written = set(tmp_path.rglob("*")) - before
    assert all(p.is_relative_to(out.parent) for p in written), sorted(written)
    assert not (tmp_path / "escaped").exists()
    # one folder per label, nothing nested: the untampered deer crops
    folders = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_dir()]
    assert folders == ["deer"]
    assert len(list((out / "deer").iterdir())) == 2

    # In depth: a valid label whose folder in --out is a symbolic link to elsewhere.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "deer").symlink_to(elsewhere, target_is_directory=True)
    with Store.open(db, create=False) as store:
        export = export_dataset(store, linked)
    assert (export.images, export.bad_labels) == (0, 4)
    assert list(elsewhere.iterdir()) == []


# -- the server under load and in its log ---------------------------------------------------


def add_crops(db: str, media: Path, count: int) -> list[int]:
    """``count`` more deer crops, each with its file."""
    day = media / "2026-05-01"
    ids = []
    with Store.open(db, create=False) as store:
        deployment = store.ensure_deployment(TrapSettings())
        for i in range(count):
            path = day / f"extra{i}-crop.jpg"
            path.write_bytes(JPEG)
            ids.append(
                store.add_media(
                    deployment_id=deployment,
                    event_id=None,
                    kind="crop",
                    path=str(path),
                    time=START + timedelta(minutes=10, seconds=i),
                    sha256="0" * 64,
                    bytes=10,
                    label="deer",
                    confidence=0.8,
                    disagreed=False,
                    privacy_status="clear",
                )
            )
    return ids


def reviewed_labels(db: str) -> dict[int, str | None]:
    with Store.open(db, create=False) as store:
        return {m.id: m.reviewed_label for m in store.media()}


def test_an_oversized_decision_is_refused_at_once_and_the_page_still_answers(trap):
    db, _, ids = trap
    c = client(trap)
    token = csrf_of(c.get("/").get_data(as_text=True))
    began = time.monotonic()
    response = c.post(
        "/decide",
        data={"csrf": token, "ids": ids["fox"], "action": "empty", "pad": "x" * (2 << 20)},
    )
    assert response.status_code == 413
    assert time.monotonic() - began < 5
    assert c.get("/").status_code == 200
    # too many crops in one decision: refused with a reason, nothing written
    response = c.post(
        "/decide", data={"csrf": token, "ids": [ids["fox"]] * 5001, "action": "empty"}
    )
    assert response.status_code == 413
    assert "at most 5000 crops in one decision" in response.get_data(as_text=True)
    assert reviewed_labels(db)[ids["fox"]] is None


def test_a_decision_on_many_crops_is_one_transaction(trap):
    db, media, ids = trap
    many = add_crops(db, media, 60)
    c = client(trap)
    token = csrf_of(c.get("/").get_data(as_text=True))
    statements: list[str] = []

    def record(_connection, _cursor, statement, *_rest) -> None:
        statements.append(" ".join(statement.split()).upper())

    event.listen(Engine, "before_cursor_execute", record)
    try:
        response = c.post(
            "/decide",
            data={"csrf": token, "ids": [*many, *many], "action": "relabel", "label": "Roe Deer"},
        )
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert response.status_code == 302
    assert len([s for s in statements if s.startswith("UPDATE MEDIA")]) == 1
    labels = reviewed_labels(db)
    assert {labels[i] for i in many} == {"roe_deer"} and labels[ids["fox"]] is None
    # confirm: each crop keeps its own predicted label
    c.post("/decide", data={"csrf": token, "ids": [ids["fox"], *many], "action": "confirm"})
    labels = reviewed_labels(db)
    assert labels[ids["fox"]] == "fox" and {labels[i] for i in many} == {"deer"}


def test_a_media_id_beyond_sqlite_integers_is_404_not_500(trap):
    c = client(trap)
    for media_id in ("99999999999999999999999", str(2**63), str(2**63 - 1)):
        assert c.get(f"/media/{media_id}").status_code == 404, media_id


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ask(port: int, method: str, path: str, body: bytes | None = None, **headers: str):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def test_the_served_review_page_keeps_its_token_out_of_the_log_and_survives_a_huge_post(
    trap, tmp_path
):
    """The real server (``trapcount review`` in a subprocess): its access log shows the
    request lines but never the token, and a 12 MB decision is refused at once."""
    db, media, ids = trap
    secret = "s3cret-review-token-4711"
    port = free_port()
    log = tmp_path / "review.log"
    proc = start_trapcount(
        "review", "--db", db, "--media", media, "--host", "127.0.0.1", "--port", str(port),
        "--token", secret, cwd=tmp_path, log=log,
    )  # fmt: skip
    try:
        wait_for(lambda: port_open(port), 30, "the review server", proc)
        status, _ = ask(port, "GET", f"/?token={secret}")
        assert status == 302
        status, page = ask(port, "GET", "/", **{"X-Review-Token": secret})
        assert status == 200
        body = f"csrf={csrf_of(page)}&action=empty&" + "&".join([f"ids={ids['fox']}"] * 2_000_000)
        began = time.monotonic()
        status, _ = ask(
            port, "POST", "/decide", body.encode(),
            **{"X-Review-Token": secret, "Content-Type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        assert status == 413 and time.monotonic() - began < 10
        assert ask(port, "GET", "/api/progress", **{"X-Review-Token": secret})[0] == 200
    finally:
        stop(proc)
    output = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(encoding="utf-8"))  # werkzeug's colours
    assert '"GET /?token=*** HTTP/1.1" 302' in output, output
    assert '"POST /decide HTTP/1.1" 413' in output
    assert secret not in output
    assert reviewed_labels(db)[ids["fox"]] is None


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_log_lines_lose_every_token_value():
    token = "s3cret/review+token"
    assert redact('"GET /?a=1&token=wrong-guess HTTP/1.1" 403 -', token) == (
        '"GET /?a=1&token=*** HTTP/1.1" 403 -'
    )
    assert redact('"GET /?TOKEN=s3cret%2Freview%2Btoken HTTP/1.1"', token) == (
        '"GET /?TOKEN=*** HTTP/1.1"'
    )
    # elsewhere in the line, a long token is replaced too, a short one only as token=
    assert redact('"GET /s3cret%2Freview%2Btoken HTTP/1.1"', token) == '"GET /*** HTTP/1.1"'
    assert redact('"GET /?token=T HTTP/1.1" 302', "T") == '"GET /?token=*** HTTP/1.1" 302'


# -- by event: filters, pages, whole-event decisions ----------------------------------------


@pytest.fixture
def events(tmp_path):
    """Events with crops across two local days in Zurich: a deer event with two crops (one
    disagreeing, low confidence), a fox event, a hare event the next local day."""
    from tests.edge.test_reviewed_counts import Trap

    trap = Trap(tmp_path / "events.sqlite")
    media = tmp_path / "media"
    media.mkdir()
    ids = {}
    ids["deer"] = trap.event(0, deer=(2, 2))  # 2026-05-01 06:00 local
    ids["deer_a"] = trap.crop(ids["deer"], "deer", disagreed=True)
    ids["deer_b"] = trap.crop(ids["deer"], "deer")
    ids["fox"] = trap.event(60, fox=(1, 1))
    ids["fox_a"] = trap.crop(ids["fox"], "fox")
    ids["hare"] = trap.event(20 * 60, hare=(1, 1))  # 2026-05-02 02:00 local, 05-01 in UTC
    ids["hare_a"] = trap.crop(ids["hare"], "hare")
    trap.store.close()
    app = create_app(trap.path, media, reviewer="Ana")
    app.testing = True
    return trap.path, app.test_client(), ids


def cards_on(page: str) -> list[str]:
    return re.findall(r'<section class="card[^"]*" id="(e\d+|m\d+)"', page)


def test_the_page_groups_crops_by_event_and_filters_them(events):
    _db, c, ids = events
    page = c.get("/?sort=time").get_data(as_text=True)
    assert cards_on(page) == [f"e{ids['deer']}", f"e{ids['fox']}", f"e{ids['hare']}"]
    deer = page[page.index(f'id="e{ids["deer"]}"') : page.index(f'id="e{ids["fox"]}"')]
    assert len(re.findall(r'class="item( done)?"', deer)) == 2 and "2026-05-01 06:00:00" in deer
    assert "CEST, UTC+02:00, Europe/Zurich" in deer and "machine: deer ×2" in deer
    assert "reviewing as Ana" in page

    def shown(query: str) -> list[str]:
        return cards_on(c.get(f"/?sort=time&{query}").get_data(as_text=True))

    assert shown("label=fox") == [f"e{ids['fox']}"]
    assert shown("conf_max=0.5") == []  # the crops' confidence is 0.7
    assert shown("conf_min=0.6&conf_max=0.8") == shown("")
    assert shown("disagree=model") == [f"e{ids['deer']}"]
    # dates are the trap's local days: the hare (00:00 UTC) is on May 2nd in Zurich
    assert shown("since=2026-05-02") == [f"e{ids['hare']}"]
    assert shown("until=2026-05-01") == [f"e{ids['deer']}", f"e{ids['fox']}"]
    assert shown("per=10&page=2") == shown("") == shown("page=99")[:3]
    bad = c.get("/?conf_min=high&since=yesterday&sort=x").get_data(as_text=True)
    assert "conf_min: not a number" in bad and "since: not a date" in bad
    assert len(cards_on(bad)) == 3
    # newest first
    newest = cards_on(c.get("/?sort=newest").get_data(as_text=True))
    assert newest == [f"e{ids['hare']}", f"e{ids['fox']}", f"e{ids['deer']}"]


def test_a_whole_event_is_decided_at_once_with_the_reviewers_count(events):
    db, c, ids = events
    page = c.get("/").get_data(as_text=True)
    token = csrf_of(page)
    form = {"csrf": token, "event": ids["deer"], "action": "relabel", "label": "Roe Deer"}
    assert c.post("/event", data={**form, "csrf": "forged"}).status_code == 403
    assert c.post("/event", data={**form, "event": 99999}).status_code == 404
    assert c.post("/event", data={**form, "action": "burn"}).status_code == 400
    refused = c.post("/event", data={**form, "count": "-2"})
    assert "message=" in refused.headers["Location"] and reviewed_labels(db)[ids["deer_a"]] is None
    # the filters the decision came from are kept in the redirect
    done = c.post("/event", data={**form, "count": "3", "back": "label=deer&sort=time&evil=1"})
    assert done.status_code == 302
    location = done.headers["Location"]
    assert "label=deer" in location and "sort=time" in location and "evil" not in location
    labels = reviewed_labels(db)
    assert labels[ids["deer_a"]] == labels[ids["deer_b"]] == "roe_deer"
    page = c.get("/?status=reviewed").get_data(as_text=True)
    assert cards_on(page) == [f"e{ids['deer']}"]
    assert "roe_deer ×3" in page and "by Ana" in page
    # one crop of the fox event: decided, and the event's counts follow
    c.post(
        "/decide", data={"csrf": token, "ids": ids["fox_a"], "action": "relabel", "label": "cat"}
    )
    with Store.open(db, create=False) as store:
        from edge_agent.office.report_data import load

        counts = {(r.event_id, r.label): (r.max_n, r.counted_by) for r in load(store).rows}
    assert counts[(ids["deer"], "roe_deer")] == (3, "reviewer")
    assert counts[(ids["fox"], "cat")] == (1, "reviewer")
    assert counts[(ids["hare"], "hare")] == (1, "machine")

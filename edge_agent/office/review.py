"""``trapcount review``: a local web page where a person checks the kept crops, and with
them the counts.

The page shows the kept crops by **event** (``review_cards``): each card holds every crop
and record of one event, the box drawn on the full frame where the frame was kept, the
event's time in its trap's zone, the machine's counts and, once reviewed, the reviewer's.
Filters (label, confidence, local dates, unreviewed, disagreement), sorting and pages keep
thousands of crops workable. A reviewer decides on a crop

- **confirm** (``reviewed_label`` = ``label``), **relabel** (to a label, or a new one such
  as a local species) or **empty** (not an animal: a shadow, a branch; left out of
  ``trapcount collect export``, like people and ``unknown``),

one at a time with the keyboard (``j``/``k`` move, ``c`` confirm, ``e`` empty, ``r``
relabel, ``1``-``9`` the n-th label; ``n``/``p`` next/previous event, ``C``/``E`` confirm
or empty the whole event, ``L`` relabel it, ``]``/``[`` next/previous page), with the check
boxes, or on a **whole event** (its crops at once, and a count of the reviewer's own).
Once every crop of an event has a decision, the event's observations become the
reviewer's (``edge_agent.store.reviews``: the rules; docs/reports.md); reports and exports
then count them, marked as reviewed. Every decision is written to the database at once.

Security: the server (waitress, a production WSGI server) listens on 127.0.0.1 by default;
bound to any other address it refuses to start without a token, which every request must
then carry (``?token=`` once, kept in an HttpOnly SameSite=Strict cookie, or an
``X-Review-Token`` header). On loopback it answers only requests whose Host is a loopback
name (no DNS rebinding). Forms carry a per-start secret (no cross-site POSTs). Images are
addressed by media id only, served only from inside ``--media`` (symbolic links resolved),
and media of people (``person``, as predicted or as reviewed) is never listed or served. A
body over 1 MiB or a decision on more than 5000 crops is refused (413), and a decision is
written in one transaction. Its access log shows ``token=***``, never the token. Flask and
waitress are imported only when the app is built or served (the ``review`` extra), so the
agent itself needs neither. The page is the Jinja template ``templates/review.html``
(autoescape on), with no external asset: it works offline.
"""

from __future__ import annotations

import getpass
import hmac
import ipaddress
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl, quote

from edge_agent import labels as label_rules
from edge_agent.office.review_cards import (
    DISAGREEMENTS,
    PAGE_SIZES,
    SORTS,
    STATUSES,
    Filters,
    add_counts,
    is_person,
    known_labels,
    load_cards,
    next_undecided,
    page_of,
)
from edge_agent.store.database import Store
from edge_agent.store.models import Media
from edge_agent.store.reviews import MAX_COUNT, ReviewRefused, decide_crops, decide_event

EMPTY = "empty"
PERSON = "person"
RECORD = "record"  # a media row without a file (service.media.RECORD)
TOKEN_COOKIE = "trapcount_review"
TOKEN_HEADER = "X-Review-Token"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
# A decision form is a few ids; a larger body is refused (413) before the form is parsed.
MAX_BODY_BYTES = 1 << 20
# What waitress itself spools (to a temporary file) before the app refuses it: a larger
# body is cut off by waitress (413, not in the access log).
MAX_SPOOLED_BYTES = 64 << 20
# Crops per decision: more than a page of bulk selections ever needs.
MAX_IDS = 5000
# Media ids are SQLite INTEGERs (64-bit); a larger one in a URL is no media.
MAX_MEDIA_ID = 2**63 - 1
# Worker threads of the WSGI server: decisions are serialised by the store's write lock.
THREADS = 4
# "?token=..." or "&token=..." in a logged request line.
TOKEN_PARAM = re.compile(r"([?&;]token=)[^&;#\s\"]*", re.IGNORECASE)
# A token this long is also replaced wherever it appears in a log line; a shorter one only
# as the token= value (replacing a few letters everywhere would garble every line).
MIN_LITERAL_TOKEN = 8
TEMPLATE = "review.html"  # in templates/, next to this module


class ReviewError(ValueError):
    """The review server cannot start as asked."""


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen off loopback without a token."""
    if not is_loopback(host) and not token:
        raise ReviewError(
            f"--host {host} is not a loopback address: give --token (every request must "
            "carry it), or review on 127.0.0.1 through an SSH tunnel"
        )


def host_name(host: str) -> str:
    """The name part of a Host header, lower case (``[::1]:8080`` -> ``[::1]``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def normalise_label(text: str) -> str:
    """A reviewer's label as a safe folder name: lower case, spaces to ``_`` (the rule of
    :mod:`edge_agent.labels`); ReviewError when it cannot be one."""
    try:
        return label_rules.normalise_label(text)
    except ValueError as exc:
        raise ReviewError(str(exc)) from None


def default_reviewer() -> str:
    """Who reviews when ``--reviewer`` is not given: the login name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"


def resolve_media_file(root: Path, row: Media) -> Path | None:
    """The file of ``row`` inside ``root`` (the ``--media`` folder), or None. A copied media
    folder works too: ``root/<day>/<name>`` is tried before the recorded path. Anything that
    resolves outside ``root`` is refused."""
    if row.path is None:
        return None  # a record of a withheld track: there is no file
    root = root.resolve()
    recorded = Path(row.path)
    candidates = [root / recorded.parent.name / recorded.name, recorded]
    if not recorded.is_absolute():
        candidates.append(root / recorded)
    for candidate in candidates:
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError):
            continue
        if resolved.is_relative_to(root) and resolved.is_file():
            return resolved
    return None


def back_filters(form: Any) -> Filters:
    """The filters a decision came from (the form's ``back``: the page's query string;
    only the filter keys are read, so a redirect never leaves the page)."""
    query = dict(parse_qsl(str(form.get("back", ""))[:2000]))
    filters, _problems = Filters.parse(
        {k: v for k, v in query.items() if k in (*Filters.KEYS, "page")}
    )
    return filters


def create_app(
    db: str,
    media_dir: Path | str,
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    reviewer: str | None = None,
) -> Any:
    """The Flask app (imported here: Flask is the ``review`` extra)."""
    from flask import Flask, abort, redirect, render_template, request, send_file, url_for

    check_bind(host, token)
    root = Path(media_dir).expanduser()
    if not root.is_dir():
        raise ReviewError(f"media folder not found: {root}")
    store = Store.open(db, create=False)
    loopback = is_loopback(host)
    csrf = secrets.token_urlsafe(24)
    who = (reviewer or default_reviewer()).strip()[:200] or "reviewer"
    # Templates come from the package's templates/ folder (Flask's root_path is this
    # module's folder, wherever it is installed); autoescape is on for .html.
    app = Flask(__name__, static_folder=None, template_folder="templates")
    app.config["TRAPCOUNT_STORE"] = store
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    @app.before_request
    def guard() -> Any:
        if loopback and host_name(request.host or "") not in LOOPBACK_NAMES:
            abort(403)
        if token:
            given = (
                request.args.get("token")
                or request.headers.get(TOKEN_HEADER)
                or request.cookies.get(TOKEN_COOKIE)
                or ""
            )
            if not hmac.compare_digest(given.encode(), token.encode()):
                abort(403)
            if request.args.get("token") and request.method == "GET":
                args = {k: v for k, v in request.args.items() if k != "token"}
                endpoint = request.endpoint or "index"
                response = redirect(url_for(endpoint, **(request.view_args or {}), **args))
                response.set_cookie(
                    TOKEN_COOKIE, token, httponly=True, samesite="Strict", secure=request.is_secure
                )
                return response
        return None

    @app.after_request
    def headers(response: Any) -> Any:
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/")
    def index() -> Any:
        filters, problems = Filters.parse(request.args)
        try:
            at = int(request.args.get("at", ""))
        except ValueError:
            at = None
        cards = load_cards(store)
        page = page_of(cards, filters, at)
        add_counts(store, page.cards)
        groups: list[tuple[str, list[Any]]] = []
        for card in page.cards:
            heading = card.main_label if filters.sort == "hard" else f"{card.local():%Y-%m-%d}"
            if not groups or groups[-1][0] != heading:
                groups.append((heading, []))
            groups[-1][1].append(card)
        items = [i for c in cards for i in c.items]
        remaining = sum(1 for i in items if not i.crop.reviewed_label)
        events = [c for c in cards if c.event_id is not None]
        message = request.args.get("message", "")
        return render_template(
            TEMPLATE,
            groups=groups,
            page=page,
            filters=filters,
            total=len(items),
            remaining=remaining,
            events=len(events),
            events_done=sum(1 for c in events if c.done),
            labels=known_labels(cards),
            csrf=csrf,
            message="; ".join([m for m in (message, *problems) if m]),
            reviewer=who,
            back="&".join(f"{k}={quote(v)}" for k, v in filters.args(page=page.number).items()),
            sorts=SORTS,
            statuses=STATUSES,
            disagreements=DISAGREEMENTS,
            page_sizes=PAGE_SIZES,
            max_count=MAX_COUNT,
        )

    @app.get("/api/progress")
    def progress() -> Any:
        items = [i for c in load_cards(store) for i in c.items]
        remaining = sum(1 for i in items if not i.crop.reviewed_label)
        return {"total": len(items), "remaining": remaining}

    def check_csrf() -> None:
        if not hmac.compare_digest(request.form.get("csrf", "").encode(), csrf.encode()):
            abort(403)

    def back_to(filters: Filters, message: str = "", **extra: Any) -> Any:
        args = filters.args(**({"page": extra.pop("page")} if "page" in extra else {}))
        if message:
            args["message"] = message
        return redirect(url_for("index", **args, **{k: v for k, v in extra.items() if v}))

    @app.post("/decide")
    def decide() -> Any:
        check_csrf()
        filters = back_filters(request.form)
        action = request.form.get("action", "")
        given = request.form.getlist("ids")
        if len(given) > MAX_IDS:
            abort(413, f"at most {MAX_IDS} crops in one decision; select fewer")
        try:
            ids = list(dict.fromkeys(int(v) for v in given))  # once each, in order
        except ValueError:
            abort(400)
        if not ids:
            return back_to(filters, "nothing selected")
        if action not in ("confirm", "empty", "relabel"):
            abort(400)
        cards = load_cards(store)
        shown = {i.crop.id for c in cards for i in c.items}
        if any(i not in shown for i in ids):
            abort(404)  # not a crop or record on the page: people's, blurred, unknown
        label = None
        if action == "relabel":
            try:
                label = normalise_label(request.form.get("label", ""))
            except ReviewError as exc:
                return back_to(filters, str(exc), at=ids[0])
        try:
            decide_crops(store, ids, action, label, reviewer=who)
        except ReviewRefused as exc:
            return back_to(filters, str(exc), at=ids[0])
        # Go on at the next crop still to be reviewed.
        nxt = next_undecided(load_cards(store), filters, ids[-1])
        return back_to(filters, at=nxt)

    @app.post("/event")
    def event() -> Any:
        check_csrf()
        filters = back_filters(request.form)
        action = request.form.get("action", "")
        if action not in ("confirm", "empty", "relabel"):
            abort(400)
        try:
            event_id = int(request.form.get("event", ""))
        except ValueError:
            abort(400)
        card = next((c for c in load_cards(store) if c.event_id == event_id), None)
        if card is None:
            abort(404)
        first = card.items[0].crop.id
        label = None
        count: int | None = None
        try:
            if action == "relabel":
                label = normalise_label(request.form.get("label", ""))
            text = request.form.get("count", "").strip()
            if text and action != "empty":
                if not text.isdigit() or int(text) > MAX_COUNT:
                    raise ReviewRefused(f"a count is a whole number from 0 to {MAX_COUNT}")
                count = int(text)
            decide_event(store, event_id, action, label, count, reviewer=who)
        except (ReviewError, ReviewRefused) as exc:
            return back_to(filters, str(exc), at=first)
        nxt = next_undecided(load_cards(store), filters, card.items[-1].crop.id)
        return back_to(filters, at=nxt or first)

    @app.get("/media/<int:media_id>")
    def media(media_id: int) -> Any:
        if media_id > MAX_MEDIA_ID:
            abort(404)
        with store.read() as session:
            row = session.get(Media, media_id)
        if row is None or is_person(row):
            abort(404)
        path = resolve_media_file(root, row)
        if path is None:
            abort(404)
        return send_file(path, mimetype="image/jpeg", max_age=0)

    return app


def serve(
    db: str,
    media_dir: Path | str,
    *,
    host: str,
    port: int,
    token: str | None,
    reviewer: str | None = None,
    announce: Any = None,
) -> None:  # pragma: no cover - blocking server
    """Build the app and serve it with waitress until interrupted."""
    app = create_app(db, media_dir, host=host, token=token, reviewer=reviewer)
    from waitress import serve as waitress_serve

    if announce is not None:
        announce()
    waitress_serve(
        AccessLog(app, token),
        host=host.strip("[]"),
        port=port,
        threads=THREADS,
        ident="trapcount",
        max_request_body_size=MAX_SPOOLED_BYTES,
        _quiet=True,
    )


def redact(line: str, token: str | None) -> str:
    """``line`` with the value of every ``token=`` query parameter, and the review token
    itself where it is long enough to tell apart, replaced by ``***``."""
    line = TOKEN_PARAM.sub(r"\1***", line)
    if token and len(token) >= MIN_LITERAL_TOKEN:
        for form in {token, quote(token, safe="")}:
            line = line.replace(form, "***")
    return line


class AccessLog:
    """WSGI middleware writing one line per request (the Common Log Format's request
    line and status) to ``stream``, never the review token: the first request of a
    session carries it as ``?token=``, and the access log goes to the journal, which more
    people can read than the token was meant for."""

    def __init__(self, app: Any, token: str | None, stream: TextIO | None = None) -> None:
        self.app = app
        self.token = token
        self.stream = stream

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        status: list[str] = ["-"]

        def start(code: str, headers: Any, exc_info: Any = None) -> Any:
            status[0] = code.split(" ", 1)[0]
            return start_response(code, headers, exc_info)

        result = self.app(environ, start)
        path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
        query = environ.get("QUERY_STRING", "")
        request = f"{environ.get('REQUEST_METHOD', '-')} {path}{'?' + query if query else ''}"
        stamp = time.strftime("%d/%b/%Y %H:%M:%S")
        line = (
            f"{environ.get('REMOTE_ADDR', '-')} - - [{stamp}] "
            f'"{request} {environ.get("SERVER_PROTOCOL", "HTTP/1.1")}" {status[0]} -'
        )
        stream = self.stream or sys.stderr
        print(redact(line, self.token), file=stream, flush=True)
        return result

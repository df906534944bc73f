"""``trapcount review``: a small local web page where a person checks the kept crops.

The page lists the kept crops (``media`` rows of kind ``crop``) grouped by predicted label,
the hard cases first within each group (crops whose classifications disagreed, then the
lowest confidence), each with its full frame where one was kept. A reviewer

- **confirms** the predicted label (``reviewed_label`` = ``label``),
- **relabels** it, to an existing label or a new one such as a local species, or
- marks it **empty** (not an animal: a shadow, a branch): ``reviewed_label`` = ``empty``,
  which ``trapcount collect export`` leaves out of the dataset, like people and ``unknown``,

one crop at a time with the keyboard (``j``/``k`` move, ``c`` confirm, ``e`` empty, ``r``
relabel, ``1``-``9`` the n-th label) or several at once with the check boxes. Every
decision is written to the database at once; the page shows how many crops remain.

Security: the server listens on 127.0.0.1 by default; bound to any other address it refuses
to start without a token, which every request must then carry (``?token=`` once, kept in an
HttpOnly SameSite=Strict cookie, or an ``X-Review-Token`` header). On loopback it answers
only requests whose Host is a loopback name (no DNS rebinding). Forms carry a per-start
secret (no cross-site POSTs). Images are addressed by media id only, served only from inside
``--media`` (symbolic links resolved), and media of people (``person``, as predicted or as
reviewed) is never listed or served. The server answers one request at a time, so none may
hold it long: a body over 1 MiB or a decision on more than 5000 crops is refused (413), and
a decision is written in one transaction. Its access log shows ``token=***``, never the
token. Flask is imported only when the app is built (the ``review`` extra), so the agent
itself does not need it. The page is the Jinja template ``templates/review.html``, rendered
by Flask with autoescape on.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import update

from edge_agent import labels as label_rules
from edge_agent.store.database import Store
from edge_agent.store.models import Media

EMPTY = "empty"
PERSON = "person"
RECORD = "record"  # a media row without a file (service.media.RECORD)
TOKEN_COOKIE = "trapcount_review"
TOKEN_HEADER = "X-Review-Token"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
# A decision form is a few ids; a larger body is refused (413) before it is read, so that
# one request cannot keep the single-threaded server busy for minutes.
MAX_BODY_BYTES = 1 << 20
# Crops per decision: more than a page of bulk selections ever needs.
MAX_IDS = 5000
# Media ids are SQLite INTEGERs (64-bit); a larger one in a URL is no media.
MAX_MEDIA_ID = 2**63 - 1
# Rows per UPDATE inside a decision's one transaction (SQLite's bound-parameter limit).
UPDATE_CHUNK = 500
# "?token=..." or "&token=..." in a logged request line.
TOKEN_PARAM = re.compile(r"([?&;]token=)[^&;#\s\"]*", re.IGNORECASE)
# A token this long is also replaced wherever it appears in a log line; a shorter one only
# as the token= value (replacing a few letters everywhere would garble every line).
MIN_LITERAL_TOKEN = 8


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


def is_person(row: Media) -> bool:
    return row.label == PERSON or row.reviewed_label == PERSON


def write_decision(store: Store, ids: list[int], action: str, label: str | None = None) -> None:
    """One decision on the crops ``ids`` in ONE transaction: ``confirm`` (the predicted label
    becomes the reviewed one), ``empty`` or ``relabel`` (to ``label``). One commit, not one
    per crop, and all of them or none."""
    new: Any = Media.label if action == "confirm" else EMPTY if action == "empty" else label
    with store.write() as session:
        for start in range(0, len(ids), UPDATE_CHUNK):
            chunk = ids[start : start + UPDATE_CHUNK]
            session.execute(
                update(Media).where(Media.id.in_(chunk)).values(reviewed_label=new),
                execution_options={"synchronize_session": False},
            )


def hard_first(row: Media) -> tuple[int, float, int]:
    return (0 if row.disagreed else 1, float(row.confidence), row.id)


@dataclass
class Item:
    crop: Media
    frame: Media | None


def review_items(store: Store) -> list[Item]:
    """Kept crops to review (no people, no blurred crops: neither is exported), grouped by
    predicted label, hard cases first, each with its frame where one was kept; and the
    records of tracks whose images the privacy guard withheld, without an image (a reviewer
    can still relabel one, say to ``person``, or confirm the animal)."""
    frames = {(m.event_id, m.time, m.label): m for m in store.media(kind="frame")}
    crops = [m for m in store.media(kind="crop") if not is_person(m)]
    crops = [m for m in crops if m.privacy_status != "blurred"]
    crops += [m for m in store.media(kind=RECORD) if not is_person(m)]
    crops.sort(key=lambda m: (m.label, *hard_first(m)))
    items = []
    for crop in crops:
        frame = frames.get((crop.event_id, crop.time, crop.label))
        items.append(Item(crop, frame if frame is not None and not is_person(frame) else None))
    return items


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


TEMPLATE = "review.html"  # in templates/, next to this module


def create_app(
    db: str, media_dir: Path | str, *, host: str = "127.0.0.1", token: str | None = None
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

    def known_labels(items: list[Item]) -> list[str]:
        labels = {i.crop.label for i in items} | {
            i.crop.reviewed_label for i in items if i.crop.reviewed_label
        }
        return sorted(labels - {EMPTY, PERSON, "unknown"})

    @app.get("/")
    def index() -> Any:
        items = review_items(store)
        groups: dict[str, list[Item]] = {}
        for item in items:
            groups.setdefault(item.crop.label, []).append(item)
        remaining = sum(1 for i in items if not i.crop.reviewed_label)
        return render_template(
            TEMPLATE,
            groups=list(groups.items()),
            total=len(items),
            remaining=remaining,
            labels=known_labels(items),
            csrf=csrf,
            message=request.args.get("message", ""),
        )

    @app.get("/api/progress")
    def progress() -> Any:
        items = review_items(store)
        remaining = sum(1 for i in items if not i.crop.reviewed_label)
        return {"total": len(items), "remaining": remaining}

    @app.post("/decide")
    def decide() -> Any:
        if not hmac.compare_digest(request.form.get("csrf", "").encode(), csrf.encode()):
            abort(403)
        action = request.form.get("action", "")
        given = request.form.getlist("ids")
        if len(given) > MAX_IDS:
            abort(413, f"at most {MAX_IDS} crops in one decision; select fewer")
        try:
            ids = list(dict.fromkeys(int(v) for v in given))  # once each, in order
        except ValueError:
            abort(400)
        if not ids:
            return redirect(url_for("index", message="nothing selected"))
        rows = {m.id: m for m in [*store.media(kind="crop"), *store.media(kind=RECORD)]}
        chosen = [rows.get(i) for i in ids]
        if any(m is None or is_person(m) for m in chosen):
            abort(404)
        if action == "relabel":
            try:
                label = normalise_label(request.form.get("label", ""))
            except ReviewError as exc:
                return redirect(url_for("index", message=str(exc), at=ids[0]))
        elif action not in ("confirm", "empty"):
            abort(400)
        write_decision(store, ids, action, label if action == "relabel" else None)
        # Go on at the next crop still to be reviewed.
        order = [(i.crop.id, bool(i.crop.reviewed_label)) for i in review_items(store)]
        ids_in_order = [i for i, _ in order]
        cut = ids_in_order.index(ids[-1]) + 1 if ids[-1] in ids_in_order else 0
        nxt = next((i for i, done in order[cut:] + order[:cut] if not done), None)
        return redirect(url_for("index", at=nxt) if nxt else url_for("index"))

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
    announce: Any = None,
) -> None:  # pragma: no cover - blocking server
    """Build the app and serve it (single-threaded: one reviewer) until interrupted."""
    app = create_app(db, media_dir, host=host, token=token)
    from werkzeug.serving import run_simple

    if announce is not None:
        announce()
    run_simple(
        host,
        port,
        app,
        threaded=False,
        use_reloader=False,
        use_debugger=False,
        request_handler=redacting_handler(token),
    )


def redact(line: str, token: str | None) -> str:
    """``line`` with the value of every ``token=`` query parameter, and the review token
    itself where it is long enough to tell apart, replaced by ``***``."""
    line = TOKEN_PARAM.sub(r"\1***", line)
    if token and len(token) >= MIN_LITERAL_TOKEN:
        for form in {token, quote(token, safe="")}:
            line = line.replace(form, "***")
    return line


def redacting_handler(token: str | None) -> Any:
    """werkzeug's request handler whose log lines never show the review token: the first
    request of a session carries it as ``?token=``, and the access log goes to the journal,
    which more people can read than the token was meant for."""
    from werkzeug.serving import WSGIRequestHandler

    class RedactingRequestHandler(WSGIRequestHandler):
        def log(self, type: str, message: str, *args: Any) -> None:
            text = message % args if args else message
            super().log(type, "%s", redact(text, token))

    return RedactingRequestHandler

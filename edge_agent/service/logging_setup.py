"""Logging to stderr that journald understands.

Under systemd (``JOURNAL_STREAM`` names our stderr) every line starts with a syslog priority
prefix, ``<6>trapcount.service: started``, so ``journalctl -p warning`` filters by level and
timestamps come from the journal. Elsewhere lines are plain and carry their own time.
A traceback is prefixed line by line, so it stays one record's priority in the journal.
``TRAPCOUNT_LOG_FORMAT=journal|plain`` overrides the detection.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

# logging level -> syslog priority (sd-daemon(3)).
_PRIORITIES = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
    (logging.DEBUG, 7),
)

_HANDLER_NAME = "trapcount-stderr"


def syslog_priority(levelno: int) -> int:
    for level, priority in _PRIORITIES:
        if levelno >= level:
            return priority
    return 7


class JournalFormatter(logging.Formatter):
    """``<priority>logger: message``, every line of a multi-line record prefixed."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")


def stream_is_journal(stream: TextIO) -> bool:
    """True when ``stream`` is the journald stream systemd handed us (JOURNAL_STREAM)."""
    forced = os.environ.get("TRAPCOUNT_LOG_FORMAT", "").lower()
    if forced in {"journal", "plain"}:
        return forced == "journal"
    value = os.environ.get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        device, inode = (int(part) for part in value.split(":", 1))
        info = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (info.st_dev, info.st_ino) == (device, inode)


def setup_logging(level: str | int = "INFO", stream: TextIO | None = None) -> logging.Logger:
    """Configure the root logger once (calling again replaces our handler); return
    the ``trapcount`` logger."""
    stream = stream or sys.stderr
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JournalFormatter() if stream_is_journal(stream) else PlainFormatter())
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    # Library chatter we do not need at INFO: one line per scheduled job run, per migration.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return logging.getLogger("trapcount")

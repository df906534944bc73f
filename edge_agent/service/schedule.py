"""Time for the service: active hours, replaying a recording at its own pace, and the one
wrapper every scheduled job runs in."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from edge_agent.store.errors import StoreError

log = logging.getLogger("trapcount.service")


class ActiveHours:
    """Cron hour and day-of-week fields, evaluated in the trap's time zone."""

    def __init__(self, hours: str, days_of_week: str, timezone: str) -> None:
        from apscheduler.triggers.cron import CronTrigger

        self.always = hours.strip() == "*" and days_of_week.strip() == "*"
        self._trigger = CronTrigger(
            day_of_week=days_of_week, hour=hours, minute="*", second="*", timezone=timezone
        )
        self.description = f"hours {hours!r}, days {days_of_week!r} ({timezone})"

    def contains(self, when: datetime) -> bool:
        if self.always:
            return True
        second = when.replace(microsecond=0)
        return self._trigger.get_next_fire_time(None, second) == second

    def next_start(self, when: datetime) -> datetime | None:
        return self._trigger.get_next_fire_time(None, when)


class Pacer:
    """``service.replay_speed``: play a recorded file as if it were live."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._origin: tuple[datetime, float] | None = None

    def wait(self, timestamp: datetime, stop: threading.Event) -> bool:
        """Sleep until ``timestamp`` is due; False when ``stop`` was set meanwhile."""
        if self.speed <= 0:
            return True
        if self._origin is None:
            self._origin = (timestamp, time.monotonic())
            return True
        first, began = self._origin
        due = began + (timestamp - first).total_seconds() / self.speed
        delay = due - time.monotonic()
        if delay > 5.0:  # a long gap in a folder of stills: do not sleep for hours
            self._origin = (timestamp, time.monotonic())
            delay = 0.0
        return not (delay > 0 and stop.wait(delay))


def guarded(what: str, job: Callable[[], Any]) -> Callable[[], None]:
    """``job`` as a scheduled job: a database error is one log line (``what`` failed) and
    anything else one logged traceback; neither stops the scheduler or the trap, and the
    job runs again at its next time."""

    def run() -> None:
        try:
            job()
        except StoreError as exc:
            log.error("%s failed: %s", what, exc)
        except Exception:  # a bug in one job must not stop the others, nor counting
            log.exception("%s crashed", what)

    run.__name__ = getattr(job, "__name__", what)
    return run

"""Exponential back-off, the one used for every retry: a camera that dropped out
(``source.reconnect_*``), a capture session that failed, a central database that is
unreachable (``sync.backoff_*``)."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays of ``initial``, doubling up to ``maximum``; ``reset()`` after a success.

    ``jitter`` spreads each delay uniformly by up to that fraction either way, so that a
    fleet of traps that lost the same server does not retry in step.
    """

    def __init__(
        self,
        initial: float,
        maximum: float,
        *,
        jitter: float = 0.0,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.initial = float(initial)
        self.maximum = max(float(maximum), self.initial)
        self.jitter = jitter
        self._uniform = uniform
        self.delay = self.initial

    def next(self) -> float:
        """The delay to wait now; the one after it doubles (up to ``maximum``)."""
        delay = self.delay
        self.delay = min(self.delay * 2.0, self.maximum)
        if self.jitter:
            delay *= self._uniform(1.0 - self.jitter, 1.0 + self.jitter)
        return delay

    def reset(self) -> None:
        self.delay = self.initial

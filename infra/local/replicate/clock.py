"""The Replicate emulator's clock: the injected clock, running faster while the capacity model says so."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta


class EmulatedClock:
    """The emulator's clock: the injected clock plus a lead that grows by `scale - 1` seconds every real second.

    At scale 1 (no capacity model) it reads exactly as the injected clock. At scale 60 it gains a minute every real
    second, so a 73-second run takes 1.2 real seconds and its timestamps still span 73 seconds; created_at,
    started_at and completed_at all come from this one clock, so they stay in order with each other. A moved
    injected clock moves it too. The lead is kept when the scale changes or returns to 1, so time never runs
    backwards; webhook-timestamp headers use the injected clock instead, since receivers check them against theirs.
    """

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._scale = 1.0
        self._lead_s = 0.0
        self._since = time.monotonic()

    @property
    def scale(self) -> float:
        with self._lock:
            return self._scale

    def now(self) -> datetime:
        with self._lock:
            lead_s = self._lead_s + (self._scale - 1) * (time.monotonic() - self._since)
        return self._clock() + timedelta(seconds=lead_s)

    def set_scale(self, scale: float) -> None:
        with self._lock:
            now = time.monotonic()
            self._lead_s += (self._scale - 1) * (now - self._since)
            self._since, self._scale = now, scale

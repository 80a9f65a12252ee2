"""Clocks. Services get one injected, so retention can be tested without waiting 48 hours."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class MovableClock:
    """Real time plus an offset that only moves forward (the local stack's `/_local/clock`)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0) if start is None else start - datetime.now(UTC)

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += timedelta(seconds=seconds)
            return datetime.now(UTC) + self._offset


def hour_key(moment: datetime) -> str:
    """The expiry-hour index key: the UTC hour a job becomes due, e.g. `2026-11-27T15`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H")

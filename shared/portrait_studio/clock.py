"""Clocks. Services get one injected, so retention can be tested without waiting 48 hours."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class MovableClock:
    """Real time plus an offset that only moves forward (the local stack's `/_local/clock`).

    With `offset_file`, every move is also written there (seconds, as text) for `SharedOffsetClock`s in other
    processes: the local stack's function workers see the stack's clock."""

    def __init__(self, start: datetime | None = None, offset_file: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0) if start is None else start - datetime.now(UTC)
        self._offset_file = offset_file
        self._publish()

    def _publish(self) -> None:
        if self._offset_file is None:
            return
        # Written aside then renamed: a reader never sees half a number.
        temporary = self._offset_file.with_name(f"{self._offset_file.name}.{os.getpid()}.tmp")
        temporary.write_text(repr(self._offset.total_seconds()))
        temporary.replace(self._offset_file)

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += timedelta(seconds=seconds)
            self._publish()
            return datetime.now(UTC) + self._offset


class SharedOffsetClock:
    """Real time plus the offset a `MovableClock` publishes to a file, read on every `now()`: a move made by
    another process is seen at once (the local stack's function workers)."""

    def __init__(self, offset_file: Path) -> None:
        self._offset_file = offset_file

    def now(self) -> datetime:
        try:
            seconds = float(self._offset_file.read_text() or 0)
        except FileNotFoundError:
            seconds = 0.0
        return datetime.now(UTC) + timedelta(seconds=seconds)


def hour_key(moment: datetime) -> str:
    """The expiry-hour index key: the UTC hour a job becomes due, e.g. `2026-11-27T15`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H")

"""The capacity model at work: it decides when a prediction runs, in emulated time, while it is turned on.

`CapacityScheduler` feeds the model (`capacity.py`) each prediction created and canceled, looks at it again
whenever its next event falls due (at least every `_CAPACITY_TICK_S` of real time), and hands the runs that
started or ended to the predictions' lifecycle (`show`), which shows them once the create response is out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from infra.local.emulators.runner import Runner
from infra.local.replicate.capacity import (
    DEFAULT_NUM_STEPS,
    STEPS_PER_RATE,
    CapacityModel,
    RunEvent,
    validate_capacity,
)
from infra.local.replicate.clock import EmulatedClock
from infra.local.replicate.state import Prediction, Scheduled
from infra.local.replicate.wire import JSONDict, iso

# The longest real wait between two looks at the model: a moved injected clock (the local stack's `/_local/clock`)
# plays out the model's events that fell due within this, not when their real-time wait would have ended.
_CAPACITY_TICK_S: Final = 0.1


class CapacityScheduler:
    """The capacity model and the emulated clock it runs on, guarded by the emulator's lock."""

    def __init__(
        self,
        lock: threading.Lock,
        runner: Runner,
        clock: Callable[[], datetime],
        records: dict[str, Prediction],
        show: Callable[[Prediction], None],
    ) -> None:
        self._lock = lock
        self._runner = runner
        self._records = records  # the lifecycle's, read to find the predictions the model's events are about
        self._show_locked = show
        self._emulated = EmulatedClock(clock)
        self._capacity = CapacityModel()
        self._capacity_tick_at: float | None = None  # time.monotonic() of the pending look at the model

    @property
    def active(self) -> bool:
        return self._capacity.active

    def now(self) -> datetime:
        """Emulated time: the injected clock, run `time_scale` times faster while the capacity model says so."""
        return self._emulated.now()

    # ----------------------------------------------------------------------- the profile

    def view(self) -> JSONDict:
        """The capacity profile, the instances booting, idle and busy, the queue's length and the emulated time."""
        with self._lock:
            self.publish_locked(self._capacity.advance(self.now()))
            return self._view_locked()

    def configure(self, profile: dict[str, Any]) -> JSONDict:
        """Replace the given keys of the capacity profile (ValueError if any is invalid); returns `view()`."""
        with self._lock:
            changed = validate_capacity(profile, self._capacity.profile)
            self.publish_locked(self._capacity.configure(changed, self.now()))
            self._emulated.set_scale(changed["time_scale"])
            return self._view_locked()

    def reset(self) -> JSONDict:
        with self._lock:
            self.publish_locked(self._capacity.reset(self.now()))
            self._emulated.set_scale(1.0)
            return self._view_locked()

    def _view_locked(self) -> JSONDict:
        return {**self._capacity.profile, **self._capacity.view(), "now": iso(self.now())}

    # ----------------------------------------------------------------------- predictions

    def admit_locked(self, record: Prediction) -> None:
        model_input = record.data["input"]
        steps = int(model_input.get("num_steps", DEFAULT_NUM_STEPS))
        work = int(model_input.get("num_outputs", 1)) * steps / STEPS_PER_RATE
        record.capacity = Scheduled()
        created_at = datetime.fromisoformat(record.data["created_at"])
        events = self._capacity.admit(record.id, work, created_at)
        self.publish_locked(events + self._capacity.advance(self.now()))

    def cancel_locked(self, prediction_id: str, at: datetime) -> None:
        """A prediction ended before its run did: its place frees now."""
        self.publish_locked(self._capacity.cancel(prediction_id, at))

    def publish_locked(self, events: list[RunEvent]) -> None:
        for event in events:
            record = self._records.get(event.prediction)
            if record is None or record.capacity is None:
                continue
            if event.kind == "start":
                record.capacity.started = event.at
            else:
                record.capacity.ended = event.at
            self._show_locked(record)
        self._schedule_capacity_tick_locked()

    def _schedule_capacity_tick_locked(self) -> None:
        due = self._capacity.next_due()
        if due is None:
            return
        wait_s = (due - self.now()).total_seconds() / self._emulated.scale
        wait_s = min(max(wait_s, 0.0), _CAPACITY_TICK_S)
        tick_at = time.monotonic() + wait_s
        if self._capacity_tick_at is not None and self._capacity_tick_at <= tick_at:
            return  # an earlier look is on its way, and it schedules the next
        self._capacity_tick_at = tick_at
        self._runner.call_later(wait_s, lambda: self._capacity_tick(tick_at))

    def _capacity_tick(self, tick_at: float) -> None:
        with self._lock:
            if self._capacity_tick_at != tick_at:  # superseded by an earlier look, which keeps the model going
                return
            self._capacity_tick_at = None
            self.publish_locked(self._capacity.advance(self.now()))

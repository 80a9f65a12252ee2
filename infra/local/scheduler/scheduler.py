"""`Scheduler`: the template's schedules fired on the stack's clock, as EventBridge rules fire them.

A schedule fires once when its time has come, however many periods passed (a moved clock does not replay them).
Tests may ask for the reconciler more often than the template does: `LOCAL_RECONCILE_EVERY_S`.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from typing import Any

from infra.local.scheduler.schedules import next_fire, scheduled_event
from infra.local.template import Schedule


class Scheduler:
    """Looks every second for schedules that are due, and invokes their functions."""

    def __init__(
        self,
        schedules: list[Schedule],
        now: Callable[[], datetime],
        invoke: Callable[[str, dict[str, Any]], Any],
        stop: threading.Event,
    ) -> None:
        self._schedules = schedules
        self._now = now
        self._invoke = invoke
        self._stop = stop
        self._next_fire: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()

    def prime(self) -> None:
        """Each schedule's first time, from now."""
        now = self._now()
        for schedule in self._schedules:
            self._next_fire[(schedule.function, schedule.name)] = next_fire(schedule.expression, now)

    def run(self) -> None:
        """The scheduler's thread: until the stack stops."""
        # Tests may ask for the reconciler more often than the template does (LOCAL_RECONCILE_EVERY_S).
        extra = float(os.environ.get("LOCAL_RECONCILE_EVERY_S", "0"))
        last_extra = time.monotonic()
        while not self._stop.wait(min(1.0, extra) if extra else 1.0):
            try:
                self.fire_due()
                if extra and time.monotonic() - last_extra >= extra:
                    last_extra = time.monotonic()
                    self._invoke("ReconcileFunction", scheduled_event(self._reconcile_schedule(), self._now()))
            except Exception:
                traceback.print_exc()

    def _reconcile_schedule(self) -> Schedule:
        return next(s for s in self._schedules if s.function == "ReconcileFunction")

    def fire_due(self) -> list[str]:
        """Invoke every schedule whose time has come (once, however many periods passed)."""
        fired = []
        with self._lock:
            now = self._now()
            for schedule in self._schedules:
                key = (schedule.function, schedule.name)
                if self._next_fire[key] <= now:
                    self._next_fire[key] = next_fire(schedule.expression, now)
                    self._invoke(schedule.function, scheduled_event(schedule, now))
                    fired.append(f"{schedule.function}.{schedule.name}")
        return fired

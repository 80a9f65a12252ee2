"""The global create budget: every job's prediction creates take turns in one paced line.

Replicate accepts at most 600 creates a minute per account; a launch spike would otherwise turn into a 429
storm. The line (GCRA, one DynamoDB item) hands out turns `interval_s` apart, `burst` at once after a quiet
spell, so no 60-second window holds more than `creates_per_minute`. A job takes one turn at a time — for its
next prediction only — so every waiting job gets its next prediction before any job gets one more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from portrait_studio.ports import Clock, JobStore

LINE = "replicate-creates"


@dataclass
class CreatePacer:
    store: JobStore
    clock: Clock
    per_minute: int

    @property
    def burst(self) -> int:
        return max(1, self.per_minute // 50)

    @property
    def interval_s(self) -> float:
        # `burst` turns at once, then one every interval: at most burst - 1 + 60 / interval = per_minute a minute.
        return 60.0 / (self.per_minute - self.burst + 1)

    def next_turn(self) -> datetime:
        """When this caller may create: now, or a later turn it now holds."""
        return self.store.reserve_turn(LINE, self.clock.now(), self.interval_s, self.burst)

"""The global create budget: every job's prediction creates take turns in one paced line.

Replicate accepts at most 600 creates a minute per account; a launch spike would otherwise turn into a 429
storm. The line (GCRA, one DynamoDB item) hands out turns `interval_s` apart, `burst` at once after a quiet
spell, so no 60-second window holds more than `creates_per_minute` creates, even arriving a little late.
A job takes one turn at a time — for its next prediction only — so every waiting job gets its next prediction
before any job gets one more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from portrait_studio.ports import Clock, JobStore

LINE = "replicate-creates"
# A turn is used when its delayed message arrives: up to a second late for SQS's whole-second delays, plus the
# poll and the invocation. Turns are spaced for a minute plus this slack, so the creates as Replicate counts them
# (on arrival) stay within the budget too.
LATENESS_S = 5.0


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
        # `burst` turns at once, then one every interval: at most burst - 1 + (60 + lateness) / interval creates
        # arrive within any minute, which is `per_minute`.
        return (60.0 + LATENESS_S) / (self.per_minute - self.burst + 1)

    def free_at(self) -> datetime:
        """When a create asked for now would get its turn (for estimates; takes nothing)."""
        booked = self.store.line_free_at(LINE)
        return max(self.clock.now(), booked) if booked else self.clock.now()

    def next_turn(self) -> datetime:
        """When this caller may create: now, or a later turn it now holds."""
        return self.store.reserve_turn(LINE, self.clock.now(), self.interval_s, self.burst)

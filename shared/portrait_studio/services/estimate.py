"""An honest estimate of when a generating job will be ready, for the page: from the job's own measured
prediction times (Replicate's published typical run until it has some) and its place in the create line."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from statistics import mean

from portrait_studio.config import Settings
from portrait_studio.models import Prediction
from portrait_studio.services.lifecycle import IN_FLIGHT

COLLECT_S = 15.0  # copying a prediction's images and finishing the job


def estimated_ready_at(
    slots: Sequence[Prediction], now: datetime, line_free_at: datetime, interval_s: float, settings: Settings
) -> datetime | None:
    """The latest of the owed slots' expected ends; None when nothing is owed."""
    owed = [s for s in slots if not s.status.is_terminal]
    if not owed:
        return None
    measured = [s.predict_time for s in slots if s.predict_time]
    run = timedelta(seconds=(mean(measured) if measured else settings.expected_predict_s) + COLLECT_S)
    ends = []
    waiting = 0
    for slot in owed:
        if slot.status in IN_FLIGHT:
            ends.append(max(now, (slot.created_at or now) + run))
        elif slot.status.has_prediction_outcome:
            ends.append(now + timedelta(seconds=COLLECT_S))
        else:  # planned or claimed: a turn in the line first (this job takes one at a time)
            turn = max(now, line_free_at) + timedelta(seconds=waiting * interval_s)
            ends.append(turn + run)
            waiting += 1
    return max(ends)

"""The global create budget: one paced line for every job's creates — never more than `creates_per_minute` in a
minute, no 429 needed, and fair: every waiting job gets its next prediction before any job gets one more."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portrait_studio.config import Settings
from portrait_studio.models import JobStatus
from portrait_studio.services.pacing import CreatePacer
from tests.fakes import FixedClock, MemoryJobStore
from tests.model.world import COLLECT, DISPATCH, NORMALIZE, World


def most_in_a_minute(times: list[datetime]) -> int:
    """The most events in any half-open 60-second window [t, t + 60 s)."""
    times = sorted(times)
    return max((sum(1 for u in times if t <= u < t + timedelta(seconds=60)) for t in times), default=0)


@given(per_minute=st.integers(1, 600), requests=st.lists(st.floats(0, 300), min_size=1, max_size=200))
def test_no_minute_holds_more_turns_than_the_budget(per_minute: int, requests: list[float]) -> None:
    clock = FixedClock()
    start = clock.now()
    pacer = CreatePacer(MemoryJobStore(clock), clock, per_minute)
    turns = []
    for offset in sorted(requests):
        clock.current = start + timedelta(seconds=offset)
        turn = pacer.next_turn()
        assert turn >= clock.now()  # never in the past, so never a negative balance
        turns.append(turn)
    assert most_in_a_minute(turns) <= per_minute


@pytest.mark.parametrize("per_minute", [20, 500])
def test_four_jobs_at_once_share_the_line_fairly_and_all_end_ready(per_minute: int) -> None:
    world = World(
        Settings(
            dispatch_queue_url=DISPATCH,
            collect_queue_url=COLLECT,
            normalize_queue_url=NORMALIZE,
            creates_per_minute=per_minute,
        )
    )
    jobs = [world.start_job() for _ in range(4)]
    for _ in range(40):
        world.run_for(15)
        for record in world.replicate.live():
            world.replicate.advance(record, "succeeded", 0)
            world.replicate.advance(record, "succeeded", 0)
        while world.replicate.outbox:
            world.deliver_webhook(0)
    world.run_to_quiescence()
    records = sorted(world.replicate.records.values(), key=lambda r: r.number)
    assert world.replicate.calls["create"] == len(records)  # no 429 was needed
    assert most_in_a_minute([r.created_at for r in records]) <= per_minute
    order = [r.job_id for r in records]
    firsts = [order.index(job) for job in jobs]
    thirds = [[i for i, j in enumerate(order) if j == job][2] for job in jobs]
    if per_minute == 20:  # under contention: round robin
        assert max(firsts) < min(thirds), order
    for job in jobs:
        assert world.job(job).status == JobStatus.READY  # type: ignore[union-attr]
        assert world.results(job) >= 30

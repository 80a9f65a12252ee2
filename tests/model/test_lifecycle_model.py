"""The lifecycle, model-checked: the real services and handlers, driven by hypothesis through every fault we know
— 429 bursts of any length, 5xx, failed and canceled predictions, NSFW drops of any count, duplicate, reordered,
late and missing webhooks, a failure at any store, queue, bucket or Replicate call (before or after it took
effect; SQS then redelivers), reconciler runs and clock jumps at production settings, DELETE at any moment.

After every step: never two live predictions for one slot's current claim, none for a deleted job, none
beyond the job's budget; every owed slot is terminal, in flight, or queued; `ready` has at least 30 images.
At the end, with the faults over: every job is terminal within `max_generating_s` of its start.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from portrait_studio.config import Settings
from portrait_studio.models import JobStatus
from tests.model.test_pacing import most_in_a_minute
from tests.model.world import COLLECT, DISPATCH, NORMALIZE, World

EXAMPLES = int(os.environ.get("LIFECYCLE_EXAMPLES", "500"))
TARGETS = ("store", "queue", "blobs", "replicate")


@dataclass
class ModelStats:
    """What the runs saw, for benchmarks/lifecycle.py."""

    examples: int = 0
    jobs: Counter[str] = field(default_factory=Counter)
    worst_to_terminal_s: float = 0.0
    predictions_per_job: list[int] = field(default_factory=list)
    faults_fired: Counter[str] = field(default_factory=Counter)


STATS = ModelStats()


class LifecycleModel(RuleBasedStateMachine):
    world_settings = Settings(dispatch_queue_url=DISPATCH, collect_queue_url=COLLECT, normalize_queue_url=NORMALIZE)

    def __init__(self) -> None:
        super().__init__()
        self.world = World(self.world_settings)
        self.world.before_reconcile = self.nothing_owed_is_lost

    # --- users -------------------------------------------------------------------------------------
    @precondition(lambda self: len(self.world.started) < 3)
    @rule()
    def a_job_starts_generating(self) -> None:
        self.world.start_job()

    @precondition(lambda self: self.world.started)
    @rule(pick=st.integers(0, 2))
    def the_user_deletes_a_job(self, pick: int) -> None:
        jobs = sorted(self.world.started)
        self.world.delete(jobs[pick % len(jobs)])

    # --- AWS ---------------------------------------------------------------------------------------
    @rule(queue=st.sampled_from([DISPATCH, COLLECT]))
    def a_queue_is_polled(self, queue: str) -> None:
        self.world.deliver(queue)

    @rule(
        queue=st.sampled_from([DISPATCH, COLLECT]), when=st.sampled_from(["before", "after"]), times=st.integers(1, 6)
    )
    def invocations_crash(self, queue: str, when: str, times: int) -> None:
        """Lambda timeouts or OOM kills: SQS redelivers after the visibility timeout; the fifth time, to the DLQ."""
        for _ in range(times):
            self.world.deliver(queue, crash=when)  # type: ignore[arg-type]
            self.world.advance_clock(self.world.sqs_visibility(queue))

    @rule(seconds=st.one_of(st.integers(1, 120), st.integers(121, 900)))
    def time_passes(self, seconds: int) -> None:
        """With the pollers running, as they do: messages are handled as they become visible."""
        self.world.run_for(seconds)

    @rule(seconds=st.integers(60, 1800))
    def the_clock_jumps(self, seconds: int) -> None:
        """Time passes with every poller stalled (Lambda throttled); only the scheduler fires."""
        self.world.advance_clock(seconds)

    @rule(dependency=st.sampled_from(TARGETS), after_calls=st.integers(0, 6), mode=st.sampled_from(["before", "after"]))
    def a_call_will_fail(self, dependency: str, after_calls: int, mode: str) -> None:
        self.world.faults.arm(dependency, after_calls, mode)  # type: ignore[arg-type]

    # --- Replicate ---------------------------------------------------------------------------------
    @rule(creates=st.integers(1, 60), retry_after_s=st.sampled_from([1.0, 10.0, 60.0, 600.0]))
    def replicate_throttles(self, creates: int, retry_after_s: float) -> None:
        self.world.replicate.throttled += creates
        self.world.replicate.retry_after_s = retry_after_s

    @rule(creates=st.integers(1, 5))
    def replicate_is_down(self, creates: int) -> None:
        self.world.replicate.unavailable += creates

    @precondition(lambda self: self.world.replicate.live())
    @rule(
        pick=st.integers(0, 50),
        outcome=st.sampled_from(["succeeded", "succeeded", "succeeded", "failed", "canceled"]),
        filtered=st.one_of(st.just(0), st.integers(0, 4)),
    )
    def a_prediction_moves_on(self, pick: int, outcome: str, filtered: int) -> None:
        live = self.world.replicate.live()
        self.world.replicate.advance(live[pick % len(live)], outcome, filtered)

    @precondition(lambda self: self.world.replicate.live())
    @rule(filtered=st.sampled_from([0, 0, 1, 4]))
    def replicate_finishes_everything_running(self, filtered: int) -> None:
        for record in self.world.replicate.live():
            self.world.replicate.advance(record, "succeeded", 0)
            self.world.replicate.advance(record, "succeeded", filtered)

    @precondition(lambda self: self.world.replicate.outbox)
    @rule(lost=st.sampled_from([0, 0, 1, 3]))
    def the_pending_webhooks_arrive(self, lost: int) -> None:
        """All at once, but the last `lost` of them never come."""
        del self.world.replicate.outbox[len(self.world.replicate.outbox) - lost :]
        while self.world.replicate.outbox:
            self.world.deliver_webhook(0)

    @rule()
    def the_pollers_drain_the_queues(self) -> None:
        for _ in range(20):
            if not (self.world.deliver(DISPATCH) | self.world.deliver(COLLECT)):
                return

    @precondition(lambda self: self.world.replicate.outbox)
    @rule(pick=st.integers(0, 50), fate=st.sampled_from(["deliver", "deliver", "duplicate", "drop"]))
    def a_webhook_arrives(self, pick: int, fate: str) -> None:
        if fate == "drop":
            outbox = self.world.replicate.outbox
            outbox.pop(pick % len(outbox))  # a webhook that never comes
        else:
            self.world.deliver_webhook(pick, duplicate=fate == "duplicate")

    # --- invariants --------------------------------------------------------------------------------
    @invariant()
    def no_unexpected_errors(self) -> None:
        assert not self.world.unexpected, self.world.unexpected

    @invariant()
    def never_two_live_predictions_for_one_claim(self) -> None:
        # A prediction of an abandoned claim (its create answer lost) is canceled at its first webhook; Replicate
        # has no idempotency key, so "one slot" is checked as "one claim of a slot" (README: the residual risk).
        live = Counter((r.job_id, r.slot, r.claim) for r in self.world.replicate.live())
        assert all(n == 1 for n in live.values()), live

    @invariant()
    def no_prediction_for_a_deleted_job(self) -> None:
        for record in self.world.replicate.records.values():
            made_before_deletion = self.world.deleted.get(record.job_id, record.number + 1)
            assert record.number < made_before_deletion, record

    @invariant()
    def predictions_within_the_budget(self) -> None:
        made = Counter(r.job_id for r in self.world.replicate.records.values())
        for job_id, count in made.items():
            job = self.world.job(job_id)
            if job is not None:
                assert count <= job.predictions_reserved <= job.prediction_budget, (count, job)

    @invariant()
    def nothing_owed_is_lost(self) -> None:
        """Every slot of a generating job is terminal, in flight, or named by a queued message; one whose
        message died (DLQ) or was never sent waits no longer than the reconciler's promise: a stale claim plus
        two runs (one may fail)."""
        settings = self.world.settings
        allowed = timedelta(seconds=settings.claim_stale_s + 2 * settings.reconcile_every_s)
        for job_id in self.world.started:
            job = self.world.job(job_id)
            if job is None:
                continue
            slots = self.world.store.list_slots(job_id)
            if job.status != JobStatus.GENERATING:
                assert all(s.status.is_terminal for s in slots), (job.status, [s.status for s in slots])
                continue
            for slot in slots:
                waited = self.world.unmoved_for(job, slot)
                assert waited <= allowed, (slot, waited)

    @invariant()
    def creates_stay_within_the_global_budget(self) -> None:
        created = [r.created_at for r in self.world.replicate.records.values()]
        assert most_in_a_minute(created) <= self.world.settings.creates_per_minute

    @invariant()
    def ready_means_at_least_30(self) -> None:
        for job_id in self.world.started:
            job = self.world.job(job_id)
            if job is not None and job.status == JobStatus.READY:
                assert self.world.results(job_id) >= self.world.settings.images_minimum

    # --- the end: faults over, every job terminal within the bound ---------------------------------
    def teardown(self) -> None:
        world = self.world
        STATS.examples += 1
        STATS.faults_fired.update(world.faults.fired)
        world.run_to_quiescence()
        assert not world.unexpected, world.unexpected
        bound = timedelta(seconds=world.settings.max_generating_s)
        for job_id, started in world.started.items():
            job = world.job(job_id)
            if job is None:
                continue  # deleted
            assert job.status.is_finished, (job_id, job.status)
            took = world.finished[job_id] - started
            assert took <= bound, (job_id, took)
            STATS.jobs[job.status.value] += 1
            STATS.worst_to_terminal_s = max(STATS.worst_to_terminal_s, took.total_seconds())
            STATS.predictions_per_job.append(sum(1 for r in world.replicate.records.values() if r.job_id == job_id))
            if job.status == JobStatus.READY:
                assert world.results(job_id) >= world.settings.images_minimum
            else:
                assert job.failure_reason, job
            assert all(s.status.is_terminal for s in world.store.list_slots(job_id))
        assert not world.replicate.live(), world.replicate.live()


class TightBudgetModel(LifecycleModel):
    """The same, with a global create budget so small that the jobs queue for turns: nobody starves."""

    world_settings = LifecycleModel.world_settings.model_copy(update={"creates_per_minute": 6})


def run_settings(examples: int) -> settings:
    """Seeded and derandomized (`make test` runs the same examples every time); LIFECYCLE_NO_SHRINK skips shrinking."""
    return settings(
        max_examples=examples,
        stateful_step_count=50,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        phases=[p for p in Phase if p != Phase.shrink or not os.environ.get("LIFECYCLE_NO_SHRINK")],
    )


LifecycleModel.TestCase.settings = run_settings(EXAMPLES)
TestLifecycleModel = LifecycleModel.TestCase
TightBudgetModel.TestCase.settings = run_settings(max(50, EXAMPLES // 5))
TestTightBudgetModel = TightBudgetModel.TestCase

"""The lifecycle, model-checked: the real services and handlers, driven by hypothesis through every fault we know
— 429 bursts of any length, 5xx, failed and canceled predictions, NSFW drops of any count, duplicate, reordered,
late and missing webhooks, a failure at any store, queue, bucket or Replicate call (before or after it took
effect; SQS then redelivers), reconciler runs and clock jumps at production settings, DELETE at any moment.

Payments: buyers pay a job's checkout (with or without a discount) or another session of it, Stripe's events are
delivered, duplicated, replayed under another id or lost (the payment reconciler then finds what they said),
checkouts expire, Stripe is down for any call (opening a checkout, closing one, refunding).

After every step: never two live predictions for one slot's current claim, none for a deleted job, none
beyond the job's budget, none without a payment recorded on its job before it was made; one start of generation
per job, by the payment that stays recorded; refunds never beyond what was paid, never for a `ready` job; every
owed slot is terminal, in flight, or queued; `ready` has at least 30 images; a tombstone leaves no object, and
an expired checkout's job never paid nor generated.
At the end, with the faults over: every job is terminal within `max_generating_s` of its start of generation;
every unpaid checkout ended its job; every payment is refunded exactly as its job's outcome says (`failed` in
full, `partial` pro rata, deleted with nothing made in full, `ready` not at all), once; a stray or second
payment in full, once (by its event's handler, or by the ledger when every event of it was lost).

Deletion and the ledger: a DELETE records the deletion and the refund it owes first; the write recording its refund
may fail after Stripe refunded (the next reconciler run records it). Support refunds `ready` jobs by hand in the
dashboard; the ledger runs at any moment: when nothing failed during a run, no mismatch is left unrepaired and every
refund made by hand is recorded. At the end every refund of a job's own payment is on its job or tombstone.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from portrait_studio import keys
from portrait_studio.config import Settings
from portrait_studio.models import JobStatus, Payment, Tombstone
from portrait_studio.services.finishing import refund_owed
from portrait_studio.services.ledger import LedgerReport
from portrait_studio.services.payments import LOOKUP_AFTER_S, refund_key
from tests.model.more_rounds import ask_for_more, base_images, expire
from tests.model.test_pacing import most_in_a_minute
from tests.model.world import COLLECT, DISPATCH, NORMALIZE, STRIPE_DOWN, InjectedFault, World, job_of_email

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
    gap_second_payment_unheard: int = 0  # the allowance in `payments_settled`, how often it was used
    checks: Counter[str] = field(default_factory=Counter)  # how often the rarer checks had something to check


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
    def a_job_awaits_payment(self) -> None:
        """Its photos accepted: the job waits for payment, its checkout opened (or not: Stripe was down)."""
        self.world.start_job(pay=False)

    @precondition(lambda self: self.world.started)
    @rule(pick=st.integers(0, 2))
    def the_user_deletes_a_job(self, pick: int) -> None:
        """DELETE /jobs/{id}: the deletion and the refund it owes are recorded first (the job is `deleting`), then
        refunded and purged. An awaiting job whose checkout was just paid (its event still on the way) has that
        payment refunded in full by the DELETE itself. With Stripe down (or any step failing) the DELETE answers 202
        and the reconciler finishes it, the refund included."""
        world = self.world
        job_id = sorted(world.started)[pick % len(world.started)]
        job = world.job(job_id)
        awaiting = job is not None and job.status == JobStatus.AWAITING_PAYMENT and job.checkout_session_id
        session = world.stripe.sessions[job.checkout_session_id] if awaiting else None  # type: ignore[union-attr,index]
        finished = world.delete(job_id)
        record = world.store.jobs.get(job_id)
        assert isinstance(record, Tombstone) or (record is not None and record.status.is_tombstone), record
        if not finished:
            STATS.checks["DELETE answered 202, left to the reconciler"] += 1
        elif session is not None:
            paid = world.stripe.sessions[session.session_id]
            if paid.status == "complete" and paid.payment_intent:
                assert world.stripe.refunded(paid.payment_intent) == [paid.amount_total], (paid, world.stripe.refunds)
                STATS.checks["DELETE refunded a just-paid checkout at once"] += 1

    @precondition(lambda self: self.world.started and not self.world.stripe.fail_next)
    @rule(pick=st.integers(0, 2), mode=st.sampled_from(["before", "after"]))
    def a_delete_whose_refund_record_fails(self, pick: int, mode: str) -> None:
        """DELETE, and the write recording the refund Stripe has just made fails (or its answer is lost): the user
        never retries. The refund is recorded by the next reconciler run, never made twice."""
        world = self.world
        job_id = sorted(world.started)[pick % len(world.started)]
        world.faults.arm("store.update_job", 1, mode)  # the 1st write records the deletion, the 2nd the refund
        world.delete(job_id)
        world.faults.armed.pop("store.update_job", None)
        key = refund_key(job_id)
        made = [r for r in world.stripe.refund_records if r.key == key]
        if not made:
            return
        with world.faults_off():
            world.reconcile()
        record = world.store.jobs.get(job_id)
        if isinstance(record, Tombstone) or world.stripe.fail_next == 0:
            refund = record.refund if record is not None else None  # type: ignore[union-attr]
            assert refund is not None and refund.refund_id == made[0].refund_id, (record, made)
            STATS.checks["DELETE's refund record failed, recorded by the next run"] += 1
        assert len(made) == 1, made

    @precondition(lambda self: self._payable())
    @rule(pick=st.integers(0, 2), discount=st.sampled_from([0, 0, 300, 645, 1290]), lost=st.booleans())
    def the_buyer_pays(self, pick: int, discount: int, lost: bool) -> None:
        """On the checkout page of an awaiting job (optionally with a promotion code; 1290 off: free); its
        `completed` event may never come (the reconciler then finds the payment, free or not)."""
        sessions = self._payable()
        self.world.stripe.pay(sessions[pick % len(sessions)], discount=discount)
        if lost:
            self.world.drop_stripe_event(-1)

    @precondition(lambda self: self.world.started)
    @rule(pick=st.integers(0, 2))
    def another_session_of_a_job_is_paid(self, pick: int) -> None:
        """A second payment for one job (another session: a second tab, a race's escaped loser)."""
        jobs = sorted(self.world.started)
        spare = self.world.stripe.open_spare(jobs[pick % len(jobs)])
        self.world.stripe.pay(spare.session_id)

    def _ready_payments(self) -> list[tuple[str, int]]:
        """(payment intent, cents left to refund) of `ready` jobs: what support may refund by hand."""
        world, found = self.world, []
        for job_id in sorted(world.started):
            job = world.job(job_id)
            if job is None or job.status != JobStatus.READY or job.payment is None or not job.payment.payment_intent:
                continue
            left = job.payment.amount_total - sum(world.stripe.refunded(job.payment.payment_intent))
            if left > 0:
                found.append((job.payment.payment_intent, left))
        return found

    @precondition(lambda self: self._ready_payments())
    @rule(pick=st.integers(0, 2), cents=st.sampled_from([100, 645, 1290]))
    def support_refunds_in_the_dashboard(self, pick: int, cents: int) -> None:
        """A refund made by hand in Stripe's dashboard, outside the product: only the ledger ever hears of it."""
        payments = self._ready_payments()
        intent, left = payments[pick % len(payments)]
        self.world.stripe.refund_outside(intent, min(cents, left))

    @rule()
    def the_ledger_runs(self) -> None:
        """The daily ledger (any moment, under any fault): when nothing failed during it, every payment Stripe holds
        is matched and nothing is left unrepaired."""
        world = self.world
        fired, down = sum(world.faults.fired.values()), world.stripe.fail_next
        try:
            report = world.ledger.run(timedelta(hours=72))
        except (InjectedFault, *STRIPE_DOWN):
            return
        if sum(world.faults.fired.values()) == fired and world.stripe.fail_next == down:
            self.ledger_matched(report)

    @precondition(lambda self: self.world.started)
    @rule(pick=st.integers(0, 2), result=st.integers(0, 41), twice=st.booleans())
    def the_owner_asks_for_more_like_this(self, pick: int, result: int, twice: bool) -> None:
        """POST /jobs/{id}/more at any moment, for a headshot of the job (or one it does not have), maybe sent
        twice (a double click, a retried request): started only while ready/partial with rounds left, else a 409
        or 404 that writes nothing."""
        job_id = sorted(self.world.started)[pick % len(self.world.started)]
        for _ in range(2 if twice else 1):
            before = self.world.job(job_id)
            answer = ask_for_more(self.world, job_id, result)
            STATS.checks[f"more like this: {answer}"] += 1
            if answer not in ("started", "fault"):
                assert self.world.job(job_id) == before, (answer, before, self.world.job(job_id))

    @precondition(lambda self: self._delivered())
    @rule(pick=st.integers(0, 2), result=st.integers(0, 39), twice=st.booleans())
    def a_delivered_job_asks_for_more_like_this(self, pick: int, result: int, twice: bool) -> None:
        """The same request, for a job that is ready or partial: it starts a round while rounds are left."""
        delivered = self._delivered()
        job_id = delivered[pick % len(delivered)]
        job = self.world.job(job_id)
        answers = [ask_for_more(self.world, job_id, result) for _ in range(2 if twice else 1)]
        STATS.checks[f"more like this on a delivered job: {answers}"] += 1
        if job is not None and job.more_rounds < self.world.settings.more_rounds_per_job:
            assert answers[0] in ("started", "fault"), (answers, job)
        if twice and answers[0] == "started":
            assert answers[1] == "job_not_finished", answers  # the duplicate finds the round running

    def _delivered(self) -> list[str]:
        return [
            j
            for j in sorted(self.world.started)
            if (job := self.world.job(j)) is not None and job.status in (JobStatus.READY, JobStatus.PARTIAL)
        ]

    @precondition(lambda self: self.world.started)
    @rule(pick=st.integers(0, 2))
    def the_48_hours_end(self, pick: int) -> None:
        """The expiry sweep purges a delivered job, a round of More like this running or not."""
        job_id = sorted(self.world.started)[pick % len(self.world.started)]
        job = self.world.job(job_id)
        if expire(self.world, job_id):
            running = job is not None and job.status == JobStatus.GENERATING
            STATS.checks["expired at 48 h during a round" if running else "expired at 48 h"] += 1

    # --- Stripe ------------------------------------------------------------------------------------
    @precondition(lambda self: self.world.stripe.outbox)
    @rule(pick=st.integers(0, 20), fate=st.sampled_from(["deliver", "deliver", "duplicate", "replay", "drop"]))
    def a_stripe_event_arrives(self, pick: int, fate: str) -> None:
        if fate == "drop":
            self.world.drop_stripe_event(pick)
        else:
            self.world.deliver_stripe_event(pick, fate)

    @precondition(lambda self: self.world.stripe.open_sessions())
    @rule(pick=st.integers(0, 5), lost=st.booleans())
    def a_checkout_expires(self, pick: int, lost: bool) -> None:
        """Its time came (or the buyer left): Stripe expires it; the event may never come."""
        sessions = self.world.stripe.open_sessions()
        self.world.stripe.expire(sessions[pick % len(sessions)].session_id)
        if lost:
            self.world.drop_stripe_event(-1)

    @precondition(lambda self: self._payable())
    @rule(pick=st.integers(0, 2), after_calls=st.integers(0, 2), mode=st.sampled_from(["before", "after"]))
    def an_expiry_is_found_by_the_reconciler(self, pick: int, after_calls: int, mode: str) -> None:
        """A checkout expires and its event never comes: the reconciler finds it and ends the job, its purge
        failing halfway at a bucket call (job marked expired, photos still there): the next run finishes it."""
        sessions = self._payable()
        self.world.stripe.expire(sessions[pick % len(sessions)])
        self.world.drop_stripe_event(-1)
        self.world.faults.arm("blobs", after_calls, mode)  # type: ignore[arg-type]
        self.world.advance_clock(LOOKUP_AFTER_S + 2 * self.world.settings.reconcile_every_s)

    @rule(calls=st.integers(1, 4))
    def stripe_is_down(self, calls: int) -> None:
        """The next calls to Stripe fail: opening a checkout, looking one up, closing one, refunding."""
        self.world.stripe.fail_next += calls

    @rule(
        fault=st.one_of(
            st.none(),
            st.tuples(st.sampled_from(["store", "blobs"]), st.integers(0, 8), st.sampled_from(["before", "after"])),
        )
    )
    def the_reconciler_runs(self, fault: tuple[str, int, str] | None) -> None:
        """generation's reconciler, payments', the aftercare's (refunds and emails not done yet), then the purges
        left halfway; a store or bucket call of the run may fail (an expiry it found purged halfway)."""
        if fault is not None:
            self.world.faults.arm(*fault)  # type: ignore[arg-type]
        self.world.reconcile()

    @rule(sends=st.integers(1, 2))
    def ses_refuses(self, sends: int) -> None:
        """The next outcome emails bounce or are refused: counted, never sent twice, never failing a job."""
        self.world.notifier.fail_next += sends

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
        # has no idempotency key, so "one slot" is checked as "one claim of a slot" (docs/architecture.md says what
        # remains: a create whose answer is lost and whose webhooks never come).
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
    def more_rounds_within_the_allowance(self) -> None:
        """At most `more_rounds_per_job` rounds, each written whole (all its slots at once), each adding its
        predictions (a retry each) to the budget and nothing else; a round never changes the outcome."""
        settings = self.world.settings
        per_round = -(-settings.more_images_per_round // settings.outputs_per_prediction)
        for job_id in self.world.started:
            job = self.world.job(job_id)
            if job is None:
                continue
            assert job.more_rounds <= settings.more_rounds_per_job, job
            rounds = Counter(s.more_round for s in self.world.store.list_slots(job_id) if s.more_round)
            assert rounds == dict.fromkeys(range(1, job.more_rounds + 1), per_round), (job, rounds)
            if job.more_rounds:
                base = self.world.store.starts_budget[job_id]
                assert job.prediction_budget == base + 2 * per_round * job.more_rounds, job
                if job.status.is_finished:
                    assert job.status.value == job.delivered_as, job

    @invariant()
    def nothing_owed_is_lost(self) -> None:
        """Every slot of a generating job is terminal, in flight, or named by a queued message; one whose
        message died (DLQ) or was never sent waits no longer than the reconciler's promise: a stale claim plus
        two runs (one may fail)."""
        settings = self.world.settings
        allowed = timedelta(seconds=settings.claim_stale_s + 2 * settings.reconcile_every_s)
        for job_id in self.world.started:
            job = self.world.job(job_id)
            if job is None or job.status.is_tombstone:
                continue  # deleting: nothing is owed but the refund and the purge (the deletion invariants' part)
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

    # --- payments ----------------------------------------------------------------------------------
    def _payable(self) -> list[str]:
        """The open sessions a buyer can reach: the checkout_url of an awaiting job."""
        sessions = []
        for job_id in sorted(self.world.started):
            job = self.world.job(job_id)
            if job is None or job.status != JobStatus.AWAITING_PAYMENT or not job.checkout_session_id:
                continue
            if self.world.stripe.sessions[job.checkout_session_id].status == "open":
                sessions.append(job.checkout_session_id)
        return sessions

    def _payment_of(self, job_id: str) -> Payment | None:
        """The payment recorded on the job, or on it when its owner deleted it."""
        job = self.world.job(job_id)
        if job is not None:
            return job.payment
        deleted = self.world.deleted_as.get(job_id)
        return deleted.job.payment if deleted and deleted.job else None

    @invariant()
    def no_prediction_without_a_recorded_payment(self) -> None:
        world = self.world
        assert not world.unpaid_creates, world.unpaid_creates
        for record in world.replicate.records.values():
            payment = self._payment_of(record.job_id) or world.store.paid.get(record.job_id)
            assert payment is not None, record
            assert record.created_at >= payment.paid_at, (record, payment)
            if record.job_id not in world.deleted_as:  # an unpaid end (expiry) has no prediction at all
                assert world.job(record.job_id) is not None, (record, world.store.jobs.get(record.job_id))
        for job_id in world.started:
            job = world.job(job_id)
            if job is None:
                continue
            if any(s.prediction_id for s in world.store.list_slots(job_id)) or job.status.is_finished:
                assert job.payment is not None, job
            if job.status == JobStatus.AWAITING_PAYMENT:
                assert job.payment is None and not world.store.list_slots(job_id), job

    @invariant()
    def started_once_per_payment(self) -> None:
        """One start of generation per job (the plan written once, one dispatch start), by the payment that stays
        recorded on it."""
        world = self.world
        assert all(n == 1 for n in world.store.starts.values()), world.store.starts
        assert all(n <= 1 for n in world.payment_queue.starts.values()), world.payment_queue.starts
        assert set(world.payment_queue.starts) <= set(world.store.starts)
        for job_id, payment in world.store.paid.items():
            recorded = self._payment_of(job_id)
            assert recorded is None or recorded == payment, (recorded, payment)
            session = world.stripe.sessions[payment.checkout_session_id]
            assert session.status == "complete" and session.payment_intent == payment.payment_intent
            assert (session.amount_total, session.job_id) == (payment.amount_total, job_id)

    @invariant()
    def refunds_never_exceed_payments(self) -> None:
        stripe = self.world.stripe
        paid: Counter[str] = Counter()
        for session in stripe.sessions.values():
            if session.payment_intent:
                paid[session.payment_intent] += session.amount_total
        refunded: Counter[str] = Counter()
        for payment_intent, amount, _ in stripe.refunds:
            assert amount > 0
            refunded[payment_intent] += amount
        assert all(refunded[pi] <= paid[pi] for pi in refunded), (refunded, paid)
        assert len({key for _, _, key in stripe.refunds}) == len(stripe.refunds)  # one refund per key

    @invariant()
    def a_ready_job_is_never_refunded(self) -> None:
        for job_id in self.world.started:
            job = self.world.job(job_id)
            if job is not None and job.status == JobStatus.READY:
                assert job.payment is not None and job.refund is None and job.refund_due == 0, job
                ours = [k for pi, _, k in self.world.stripe.refunds if pi == job.payment.payment_intent]
                assert all(k.startswith("outside:") for k in ours), job  # only support, by hand

    @invariant()
    def a_job_that_ended_left_nothing(self) -> None:
        """A tombstone has no object under its prefix; an expired checkout's job never paid, never generated."""
        world = self.world
        for job_id in world.started:
            record = world.store.jobs.get(job_id)
            if not isinstance(record, Tombstone):
                continue
            assert not list(world.blobs.list_keys(keys.job_prefix(job_id))), record
            if record.reason == "checkout_expired":
                assert job_id not in world.store.paid, record
                assert not any(r.job_id == job_id for r in world.replicate.records.values()), record

    @invariant()
    def one_email_per_outcome_at_most(self) -> None:
        """An outcome email only for a job that ended (or was deleted after it ended), at most one per job, to its
        buyer, with its outcome and its refund."""
        world = self.world
        emailed = Counter(job_of_email(m["text"]) for m in world.notifier.sent)
        assert all(n == 1 for n in emailed.values()), emailed
        for job_id in emailed:
            job = world.job(job_id)
            deleted = world.deleted_as.get(job_id)
            ended = job if job is not None else (deleted.job if deleted else None)
            if job is not None:  # ended, or delivered and making More like this
                assert (job.status.is_finished or job.delivered_as) and job.notified_outcome is not None, job
            if ended is not None and ended.status.is_finished:
                (email,) = world.notifier.emails_of(job_id)
                assert email["to"] == "buyer@example.com"
                refunded = ended.refund_due and ended.payment and ended.payment.payment_intent
                assert ("We have refunded" in email["text"]) == bool(refunded), (ended, email["text"])

    def aftercare_done(self) -> None:
        """At the end: every finished job had its aftercare: refund made, one email (none if SES refused it), its
        address forgotten."""
        world = self.world
        for job_id in world.started:
            job = world.job(job_id)
            if job is None or not job.status.is_finished:
                continue
            assert not job.aftercare_due and job.email is None, job
            assert job.refund_due == 0 or job.refund is not None or not job.payment.payment_intent, job  # type: ignore[union-attr]
            sent = len(world.notifier.emails_of(job_id))
            STATS.checks[f"{job.status.value} job emailed {sent}x"] += 1
            assert sent == (0 if world.notifier.refused[job_id] else 1), (job, sent, world.notifier.refused)

    def _expected_refund(self, job_id: str, payment: Payment) -> int:
        """What the job's own payment gets back, by the job's end: `failed` all of it, `partial` pro rata, `ready`
        nothing; deleted by its owner with no headshot made all of it."""
        world, target = self.world, self.world.settings.images_target
        job = world.job(job_id)
        # A round of More like this changes neither: the outcome is the delivered one, on the paid plan's images.
        if job is not None:
            images = base_images(world.store.list_slots(job_id))
            return refund_owed(JobStatus(job.delivered_as or job.status), images, payment, target)
        deleted = world.deleted_as.get(job_id)
        assert deleted is not None and deleted.job is not None, (job_id, world.store.jobs.get(job_id))
        if deleted.images == 0:
            return payment.amount_total
        return refund_owed(JobStatus(deleted.job.delivered_as or deleted.job.status), deleted.images, payment, target)

    def payments_settled(self) -> None:
        """At the end, with Stripe up and the reconciler run: every paid session is a job's recorded payment,
        refunded exactly as its outcome says (once), or a stray payment, refunded in full (once)."""
        world, stripe = self.world, self.world.stripe
        for session in stripe.sessions.values():
            if session.status == "open":
                assert (
                    session.job_id not in world.started
                    or world.job(session.job_id or "") is None
                    or (
                        world.job(session.job_id or "").status != JobStatus.AWAITING_PAYMENT  # type: ignore[union-attr]
                    )
                ), session
            free = session.status == "complete" and session.payment_status == "no_payment_required"
            if free and session.session_id in stripe.dropped and session.session_id not in stripe.heard:
                # A free checkout whose `completed` event never came: the reconciler found it and started the job
                # (or its owner deleted it first).
                assert session.job_id in world.store.paid or session.job_id in world.deleted_as, session
                STATS.checks["free checkout unheard, started by the reconciler"] += 1
            if session.status != "complete" or not session.payment_intent:
                continue
            job_id = session.job_id or ""
            payment = self._payment_of(job_id) or world.store.paid.get(job_id)
            # Refunds made by hand in the dashboard are the ledger's to record (`ledger_matched`), not the product's.
            refunds = [
                a for pi, a, key in stripe.refunds if pi == session.payment_intent and not key.startswith("outside:")
            ]
            if payment is not None and payment.checkout_session_id == session.session_id:
                owed = self._expected_refund(job_id, payment)
                assert refunds == ([owed] if owed else []), (job_id, session, owed, refunds, world.job(job_id))
                job = world.job(job_id)
                if job is not None and owed:
                    assert job.refund is not None and job.refund.amount == owed, job
            else:
                # A payment no job holds (a second session, a job gone): refunded whole, once — by its event's
                # handler, or, when every event of it was lost, by the ledger run at the end.
                if session.session_id in stripe.dropped and session.session_id not in stripe.heard:
                    STATS.gap_second_payment_unheard += 1  # formerly a gap: now the ledger's repair
                assert refunds == [session.amount_total], (job_id, session, refunds, world.store.jobs.get(job_id))

    def ledger_matched(self, report: LedgerReport) -> None:
        """After a ledger run nothing broke: no mismatch left unrepaired; every refund made outside the product is
        recorded on its job or tombstone; a payment no job holds is refunded whole, once."""
        world = self.world
        assert report.unrepaired == 0, report.items
        STATS.checks["ledger run, every payment matched"] += 1
        STATS.checks["ledger repaired a mismatch"] += report.repaired
        for made in world.stripe.refund_records:
            if made.key is not None:
                continue
            session = world.stripe.checkout_of_payment(made.payment_intent or "")
            assert session is not None and session.job_id
            record = world.store.jobs.get(session.job_id)
            assert record is not None and any(r.refund_id == made.refund_id for r in record.outside_refunds), record
            STATS.checks["dashboard refund recorded by the ledger"] += 1

    def refunds_recorded(self) -> None:
        """At the end: every refund Stripe made of a job's own payment is recorded on its job or its tombstone."""
        world = self.world
        for made in world.stripe.refund_records:
            if made.key is None or made.job_id is None or made.key != refund_key(made.job_id):
                continue  # a stray payment given back whole (no job holds it), or made outside the product
            record = world.store.jobs.get(made.job_id)
            refund = record.refund if record is not None else None
            assert refund is not None and refund.refund_id == made.refund_id, (made, record)
            STATS.checks["a job's refund recorded on it or its tombstone"] += 1

    def purges_finished(self, halfway: list[str], stopped: datetime) -> None:
        """At the end: a purge that stopped halfway (job marked deleted/expired, objects left) is finished by the
        next reconciler run once the faults are over — within a minute, not at the 48 h sweep — as the tombstone
        its deletion began with (a DELETE's `user_request`, an unpaid expiry's `checkout_expired`)."""
        world = self.world
        assert not world.store.jobs_purging(), world.store.jobs_purging()
        for job_id in halfway:
            STATS.checks["purge stopped halfway at the end, finished within a minute"] += 1
            tombstone = world.store.jobs.get(job_id)
            assert isinstance(tombstone, Tombstone), tombstone
            assert not list(world.blobs.list_keys(keys.job_prefix(job_id))), job_id
            took = tombstone.deleted_at - stopped
            assert took <= timedelta(seconds=world.settings.reconcile_every_s), (job_id, took)
            expected = "checkout_expired"
            if job_id in world.deleted_as:
                expected = "expired" if job_id in world.expired else "user_request"
            assert tombstone.reason == expected, (tombstone, job_id in world.deleted_as)

    # --- the end: faults over, every job terminal within the bound ---------------------------------
    def teardown(self) -> None:
        world = self.world
        STATS.examples += 1
        STATS.faults_fired.update(world.faults.fired)
        halfway = world.store.jobs_purging()  # purges that stopped halfway (a fault): the reconciler finishes them
        stopped = world.clock.now()
        world.run_to_quiescence()
        assert not world.unexpected, world.unexpected
        self.ledger_matched(world.ledger.run(timedelta(hours=72)))  # the daily run, with everything up
        self.payments_settled()
        self.refunds_recorded()
        self.aftercare_done()
        self.purges_finished(halfway, stopped)
        STATS.checks["purge stopped halfway, finished by the reconciler"] += world.purges_finished
        bound = timedelta(seconds=world.settings.max_generating_s)
        for job_id in world.started:
            job = world.job(job_id)
            if job is None:
                continue  # deleted, or its checkout expired unpaid
            assert job.status.is_finished, (job_id, job.status)
            assert job.generating_since is not None, job
            took = world.finished[job_id] - job.generating_since
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

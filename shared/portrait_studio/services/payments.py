"""Paying for a job with Stripe Checkout, and giving money back when we fall short.

- When a job's photos are accepted it waits in `awaiting_payment` and gets one Checkout Session, opened when its
  page looks next or by the reconciler (the price and any promotion code live in Stripe; the amount never comes
  from the client).
- Only a verified `checkout.session.completed` (paid) starts generation: the payment is recorded in the same
  transaction that writes the plan, so no prediction exists without a recorded payment. A replayed event finds
  the job already generating and starts nothing. A payment that arrives for a job that is gone, or a second
  payment for one job, is refunded in full.
- `checkout.session.expired` ends the job at once: its photos are deleted.
- A `failed` job is refunded in full, a `partial` one pro rata to the missing headshots; the amount owed is
  written with the outcome, and the refund (one idempotency key per job) is retried until Stripe made it.
- The reconciler repairs what a lost webhook or a Stripe outage left: sessions never opened, payments or expiries
  never heard of (refunds not made yet are retried by the aftercare: services/aftercare.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from portrait_studio.config import Settings
from portrait_studio.errors import PaymentProviderError, PaymentProviderUnavailable
from portrait_studio.models import Job, JobStatus, Payment, Refund, Tombstone
from portrait_studio.ports import (
    CheckoutSession,
    Clock,
    JobStore,
    Metrics,
    NullMetrics,
    PaymentEvent,
    Payments,
    Price,
    Queue,
)
from portrait_studio.services.lifecycle import Lifecycle
from portrait_studio.services.plan import base_plan, prediction_budget
from portrait_studio.services.retention import RetentionService

log = logging.getLogger(__name__)
PAID_EVENTS = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})
# A promotion code can make a job free: Stripe then completes the session with no payment to collect.
SETTLED = frozenset({"paid", "no_payment_required"})
EXPIRED_EVENT = "checkout.session.expired"
PRICE_CACHE_S = 300
# A job accepted this long ago with no session and no page looking at it (or Stripe down): the reconciler opens it.
OPEN_AFTER_S = 30
# An unpaid job quiet this long has its session looked up (a lost `completed` or `expired` event).
LOOKUP_AFTER_S = 120


def refund_key(job_id: str) -> str:
    """The idempotency key of a job's own refund (at most one per job), kept in the refund's metadata."""
    return f"refund:{job_id}"


def stray_refund_key(session_id: str) -> str:
    """The key of a payment given back whole: a second session's, or one for a job that is gone."""
    return f"refund:stray:{session_id}"


@dataclass
class PaymentsService:
    settings: Settings
    store: JobStore
    queue: Queue
    payments: Payments
    clock: Clock
    retention: RetentionService
    metrics: Metrics = field(default_factory=NullMetrics)
    _price: tuple[Price, datetime] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.lifecycle = Lifecycle(self.store, self.clock)

    # --- what a job costs ---------------------------------------------------------------------------
    def price(self) -> Price:
        now = self.clock.now()
        if self._price is None or (now - self._price[1]).total_seconds() > PRICE_CACHE_S:
            self._price = (self.payments.price(self.settings.stripe_price_id), now)
        return self._price[0]

    # --- checkout ------------------------------------------------------------------------------------
    def open_checkout(self, job_id: str) -> bool:
        """Give an accepted job its Checkout Session (once). False when there is nothing to do."""
        job = self.store.get_job(job_id)
        if not isinstance(job, Job) or job.status != JobStatus.AWAITING_PAYMENT or job.checkout_session_id:
            return False
        now = self.clock.now().replace(microsecond=0)
        expires_at = now + timedelta(seconds=self.settings.checkout_ttl_s)
        origin = self.settings.web_origin.rstrip("/")
        session = self.payments.create_checkout(
            job_id,
            self.settings.stripe_price_id,
            success_url=f"{origin}/?checkout=success",
            cancel_url=f"{origin}/?checkout=canceled",
            expires_at=expires_at,
            # A retry of this very call gets the same session back; a later attempt gets a fresh one.
            idempotency_key=f"checkout:{job_id}:{int(expires_at.timestamp())}",
        )
        if self.lifecycle.record_checkout(job_id, session.session_id, session.url, session.expires_at):
            self.metrics.count("CheckoutsStarted")
            return True
        # Another worker recorded a session first. The same one (the idempotency key gave us both the same
        # session) is the job's; a different one must never be paid.
        current = self.store.get_job(job_id)
        if not isinstance(current, Job) or current.checkout_session_id != session.session_id:
            self.payments.expire_checkout(session.session_id)
        return False

    def open_checkout_for_page(self, job_id: str) -> None:
        """GET /jobs/{id}: an accepted job's page gets its checkout on its next look (normalization, which decodes
        untrusted images, holds no Stripe key). Stripe down: the page looks again, the reconciler opens it."""
        try:
            self.open_checkout(job_id)
        except (PaymentProviderUnavailable, PaymentProviderError) as exc:
            log.warning("checkout not opened yet: %s", exc.code)

    def receive(self, payload: bytes, signature: str | None, once: Callable[[str, Callable[[], str]], str]) -> str:
        """A Stripe webhook: verified (PaymentWebhookRejected otherwise), then applied once per event id."""
        event = self.payments.verify_event(payload, signature)
        return once(f"stripe:{event.event_id}", lambda: self.handle(event))

    def handle(self, event: PaymentEvent) -> str:
        """Apply one verified Stripe event. Returns what happened (for the log and the webhook's reply)."""
        session = event.session
        if session is None or not session.job_id:
            return "ignored"
        if event.type in PAID_EVENTS:
            if session.payment_status not in SETTLED:
                return "not_paid_yet"  # a delayed method: `async_payment_succeeded` follows
            return self._paid(session)
        if event.type == EXPIRED_EVENT:
            return self._expired(session)
        return "ignored"

    def _paid(self, session: CheckoutSession) -> str:
        job_id = session.job_id or ""
        if self._start(job_id, session):
            return "started"
        record = self.store.get_job(job_id)
        if isinstance(record, Job) and record.payment and record.payment.checkout_session_id == session.session_id:
            return "duplicate"
        if isinstance(record, Tombstone) and record.paid_session == session.session_id:
            return "duplicate"  # the deleted job's own payment: its refunds were settled before it went
        # Paid for a job that is gone, or a second payment for one job: it is given back whole.
        self._refund_stray(session, job_id)
        return "refunded_stray"

    def _refund_stray(self, session: CheckoutSession, job_id: str) -> None:
        """The whole payment back; the key is the session's, so the event and a DELETE never refund it twice."""
        if session.payment_intent and session.amount_total > 0:
            key = stray_refund_key(session.session_id)
            self.payments.refund(session.payment_intent, session.amount_total, key, job_id)
            self.metrics.count("StrayPaymentsRefunded")
            self.metrics.count("RefundedCents", session.amount_total)

    def _start(self, job_id: str, session: CheckoutSession) -> bool:
        """awaiting_payment → generating with this payment, if it is the job's own session."""
        job = self.store.get_job(job_id)
        if not isinstance(job, Job) or job.status != JobStatus.AWAITING_PAYMENT:
            return False
        if session.amount_total > 0 and not session.payment_intent:
            return False
        if job.checkout_session_id not in (None, session.session_id):
            return False
        now = self.clock.now()
        payment = Payment(
            checkout_session_id=session.session_id,
            payment_intent=session.payment_intent,
            amount_subtotal=session.amount_subtotal,
            amount_discount=session.amount_discount,
            amount_total=session.amount_total,
            currency=session.currency,
            paid_at=now,
        )
        plan = base_plan(job, self.settings, now)
        budget = prediction_budget(job.styles, self.settings)
        if not self.lifecycle.start_generation(job_id, plan, budget, payment, session.email):
            return False
        # If this send is lost, the reconciler dispatches the planned slots.
        self.queue.send(self.settings.dispatch_queue_url, {"job_id": job_id})
        self.metrics.count("CheckoutsPaid")
        self.metrics.count("PaidCents", session.amount_total)
        return True

    def _expired(self, session: CheckoutSession) -> str:
        job = self.store.get_job(session.job_id or "")
        if not isinstance(job, Job) or job.checkout_session_id not in (None, session.session_id):
            return "ignored"  # gone already, or a spare session of a race, already closed
        # Awaiting payment; or ended by this very expiry whose deletion failed halfway (Stripe retries the event):
        # the purge is idempotent and finishes it.
        unpaid_end = job.status == JobStatus.EXPIRED and job.payment is None
        if job.status != JobStatus.AWAITING_PAYMENT and not unpaid_end:
            return "ignored"
        self.retention.purge(job.job_id, "checkout_expired")
        self.metrics.count("CheckoutsExpired")
        return "ended"

    # --- refunds -------------------------------------------------------------------------------------
    def settle_refund(self, job_id: str) -> bool:
        """Make the refund a finished job is owed, once (Stripe idempotency key per job). True when made now."""
        job = self.store.get_job(job_id)
        if not isinstance(job, Job) or job.refund or job.refund_due <= 0 or job.payment is None:
            return False
        if job.payment.payment_intent is None:  # free (a 100 % promotion code): nothing was paid
            return False
        # One key per job: the aftercare's refund of an outcome and a DELETE's refund can never both be made.
        self._refund(job, job.refund_due, refund_key(job_id), job.refund_reason or "failed")
        return True

    def owed_on_delete(self, job: Job, images: int) -> tuple[int, str | None]:
        """What a DELETE owes the owner, with its reason: a paid job with no headshot made is refunded in full; one
        that ended short keeps the refund its outcome owes; anything already refunded owes nothing more."""
        paid = job.payment
        if paid is None or paid.payment_intent is None or paid.amount_total <= 0 or job.refund is not None:
            return 0, None
        if images == 0:
            return paid.amount_total, "deleted"
        return job.refund_due, job.refund_reason

    def close_unpaid_checkout(self, job: Job) -> None:
        """A deleting job that never recorded a payment: its open checkout is closed; one paid just now (its event
        still on the way) is given back whole, under the key the event's handler would use (so never twice)."""
        if job.payment is not None or not job.checkout_session_id:
            return
        self.payments.expire_checkout(job.checkout_session_id)
        session = self.payments.get_checkout(job.checkout_session_id)
        if session.payment_status == "paid":
            self._refund_stray(session, job.job_id)

    def _refund(self, job: Job, amount: int, key: str, reason: Literal["failed", "partial", "deleted"]) -> None:
        """Stripe refunds `amount` of the job's payment (once per key), then the job records it. A refund made
        earlier under this key whose record was lost (a write failed after Stripe refunded) is found again by
        listing the payment's refunds (Stripe forgets idempotency keys after 24 hours), and recorded instead."""
        assert job.payment is not None and job.payment.payment_intent is not None
        intent = job.payment.payment_intent
        made = next((r for r in self.payments.list_refunds(intent) if r.key == key), None)
        refund_id = made.refund_id if made else self.payments.refund(intent, amount, key, job.job_id)
        currency, now = job.payment.currency, self.clock.now()
        refund = Refund(refund_id=refund_id, amount=amount, currency=currency, reason=reason, refunded_at=now)
        if self.lifecycle.record_refund(job.job_id, refund):
            self.metrics.count("Refunds")
            self.metrics.count("RefundedCents", amount)
            if made:
                self.metrics.count("RefundsFoundAgain")

    # --- repair --------------------------------------------------------------------------------------
    def reconcile(self) -> dict[str, int]:
        """Every minute: open missing sessions, apply payments and expiries whose events were lost (owed refunds
        are the aftercare's). One job's trouble never stops the others."""
        summary = {"checkouts_opened": 0, "payments_found": 0, "expired": 0, "errors": 0}
        now = self.clock.now()
        for job_id in self.store.jobs_awaiting_payment():
            try:
                self._reconcile_unpaid(job_id, now, summary)
            except Exception:  # Stripe, the store, a purge halfway: tried again next minute, the others go on
                summary["errors"] += 1
        if summary["errors"]:
            self.metrics.count("PaymentReconcileErrors", summary["errors"])
        return summary

    def _reconcile_unpaid(self, job_id: str, now: datetime, summary: dict[str, int]) -> None:
        job = self.store.get_job(job_id)
        if not isinstance(job, Job) or job.status != JobStatus.AWAITING_PAYMENT:
            return
        if not job.checkout_session_id:
            if (now - job.updated_at).total_seconds() > OPEN_AFTER_S:  # else normalization is opening it now
                summary["checkouts_opened"] += int(self.open_checkout(job_id))
            return
        if (now - job.updated_at).total_seconds() <= LOOKUP_AFTER_S:
            return  # the webhook normally comes within seconds
        # Lost webhook? Stripe's word on the session decides.
        session = self.payments.get_checkout(job.checkout_session_id)
        if session.status == "complete" and session.payment_status in SETTLED:
            summary["payments_found"] += int(self._paid(session) == "started")
        elif session.status == "expired":
            summary["expired"] += int(self._expired(session) == "ended")

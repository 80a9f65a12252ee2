"""The ledger: every cent Stripe holds for a window, matched against our jobs and tombstones.

Daily (the reconcile function, `{"mode": "ledger"}`) and on demand (`portrait-studio ledger --since 72h`). It lists
the window's Checkout Sessions and refunds and matches each paid session to a job or a tombstone:
- the job's own payment: started, and refunded exactly as recorded (a refund Stripe made under the job's key but not
  recorded is recorded now; a recorded refund Stripe does not have, or of another amount, is an alarm);
- a payment for a job that is gone, or a second payment for one job: refunded whole (once: the session's key);
- a refund made outside the product (the dashboard: no metadata of ours): recorded on the job or its tombstone;
- a job generating or in aftercare that claims a payment Stripe does not have: an alarm.
A payment whose start is still on the way (the webhook, or the payments reconciler) is left to them. Ids and amounts
only: no email address, no name, ever. `LedgerMismatches` counts what is left unrepaired (the template alarms on it).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from portrait_studio.errors import PaymentProviderError, PaymentProviderUnavailable
from portrait_studio.models import Job, JobStatus, Refund, Tombstone
from portrait_studio.ports import CheckoutSession, Clock, JobStore, Metrics, NullMetrics, Payments, RefundRecord
from portrait_studio.services.lifecycle import Lifecycle
from portrait_studio.services.payments import SETTLED, PaymentsService, refund_key, stray_refund_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LedgerItem:
    """One mismatch: what Stripe holds against what we hold, and whether this run repaired it."""

    kind: str
    job_id: str | None
    session_id: str | None
    payment_intent: str | None
    amount: int
    repaired: bool

    def line(self) -> str:
        state = "repaired" if self.repaired else "UNREPAIRED"
        return (
            f"{state:10} {self.kind:24} job={self.job_id or '-'} session={self.session_id or '-'} "
            f"payment={self.payment_intent or '-'} amount={self.amount}"
        )


@dataclass
class LedgerReport:
    since: datetime
    sessions: int = 0
    paid: int = 0
    refunded: int = 0
    items: list[LedgerItem] = field(default_factory=list)

    @property
    def repaired(self) -> int:
        return sum(1 for item in self.items if item.repaired)

    @property
    def unrepaired(self) -> int:
        return len(self.items) - self.repaired

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "sessions": self.sessions,
            "paid": self.paid,
            "refunded": self.refunded,
            "mismatches": len(self.items),
            "repaired": self.repaired,
            "items": [asdict(item) for item in self.items],
        }


@dataclass
class _Seen:
    sessions: set[str] = field(default_factory=set)
    intents: set[str] = field(default_factory=set)


@dataclass
class Ledger:
    store: JobStore
    payments: Payments
    service: PaymentsService
    clock: Clock
    metrics: Metrics = field(default_factory=NullMetrics)

    def __post_init__(self) -> None:
        self.lifecycle = Lifecycle(self.store, self.clock)

    def run(self, window: timedelta) -> LedgerReport:
        report = LedgerReport(since=self.clock.now() - window)
        seen = _Seen()
        for session in self.payments.list_checkouts(report.since):
            report.sessions += 1
            self._session(session, report, seen)
        for refund in self.payments.list_refunds_since(report.since):
            if refund.payment_intent is None or refund.payment_intent in seen.intents:
                continue
            # A refund in the window of a payment made before it: the payment is matched too.
            paid_by = self.payments.checkout_of_payment(refund.payment_intent)
            if paid_by is None:
                report.items.append(LedgerItem("unknown_payment", refund.job_id, None, refund.payment_intent, 0, False))
            else:
                self._session(paid_by, report, seen)
            seen.intents.add(refund.payment_intent)
        self._claims(report, seen)
        self.metrics.count("LedgerSessions", report.sessions)
        self.metrics.count("LedgerMismatches", report.unrepaired)
        self.metrics.count("LedgerRepaired", report.repaired)
        return report

    def _session(self, session: CheckoutSession, report: LedgerReport, seen: _Seen) -> None:
        if session.session_id in seen.sessions:
            return
        seen.sessions.add(session.session_id)
        if session.status != "complete" or session.payment_status not in SETTLED:
            return
        report.paid += 1
        intent = session.payment_intent
        if intent is None:  # free (a 100 % promotion code): no money moved
            return
        seen.intents.add(intent)
        refunds = self.payments.list_refunds(intent)
        report.refunded += int(bool(refunds))
        job_id = session.job_id or ""
        record = self.store.get_job(job_id) if job_id else None
        own = isinstance(record, Job) and record.payment and record.payment.checkout_session_id == session.session_id
        own = own or (isinstance(record, Tombstone) and record.paid_session == session.session_id)
        if not own:
            waiting = isinstance(record, Job) and record.status == JobStatus.AWAITING_PAYMENT
            if waiting and record.checkout_session_id in (None, session.session_id):  # type: ignore[union-attr]
                return  # may start the job (as the webhook's handler decides): its event, or the payments reconciler
            self._stray(session, intent, refunds, report)
            return
        assert isinstance(record, Job | Tombstone)
        self._outside(record, refunds, report)
        self._own_refund(record, session, refunds, report)

    def _stray(self, session: CheckoutSession, intent: str, refunds: list[RefundRecord], report: LedgerReport) -> None:
        """A payment no job holds: given back whole, once (the key the webhook's handler uses too)."""
        key = stray_refund_key(session.session_id)
        left = session.amount_total - sum(r.amount for r in refunds)
        if any(r.key == key for r in refunds) or left <= 0:
            return
        try:
            self.payments.refund(intent, left, key, session.job_id or "")
            repaired = True
            self.metrics.count("StrayPaymentsRefunded")
        except (PaymentProviderUnavailable, PaymentProviderError) as exc:
            log.warning("stray payment not refunded yet: %s", exc.code)
            repaired = False
        report.items.append(LedgerItem("stray_payment", session.job_id, session.session_id, intent, left, repaired))

    def _outside(self, record: Job | Tombstone, refunds: list[RefundRecord], report: LedgerReport) -> None:
        """Refunds made in the dashboard (no metadata of ours): recorded on the job or its tombstone, once each."""
        for made in refunds:
            if made.key is not None or any(r.refund_id == made.refund_id for r in record.outside_refunds):
                continue
            refund = _recorded(made, "outside")
            if isinstance(record, Job):
                repaired = self.lifecycle.record_outside_refund(record, refund)
            else:
                repaired = self.store.update_tombstone(record.job_id, outside_refunds=[*record.outside_refunds, refund])
            fresh = self.store.get_job(record.job_id)
            record = fresh if isinstance(fresh, Job | Tombstone) else record
            self.metrics.count("OutsideRefundsRecorded", int(repaired))
            item = LedgerItem("outside_refund", record.job_id, None, made.payment_intent, made.amount, repaired)
            report.items.append(item)

    def _own_refund(
        self, record: Job | Tombstone, session: CheckoutSession, refunds: list[RefundRecord], report: LedgerReport
    ) -> None:
        job_id, intent = record.job_id, session.payment_intent
        made = [r for r in refunds if r.key == refund_key(job_id)]
        recorded = record.refund

        def mismatch(kind: str, amount: int, repaired: bool = False) -> None:
            report.items.append(LedgerItem(kind, job_id, session.session_id, intent, amount, repaired))

        if recorded is not None:
            stripe_has = next((r for r in refunds if r.refund_id == recorded.refund_id), None)
            if stripe_has is None:
                mismatch("refund_not_in_stripe", recorded.amount)
            elif stripe_has.amount != recorded.amount:
                mismatch("refund_amount_differs", stripe_has.amount)
            return
        if not made:
            return  # nothing refunded: none owed, or owed and recorded (the aftercare or the deletion makes it)
        # Stripe refunded under the job's key, and no record says so (the record write was lost): record it.
        if isinstance(record, Job):
            with contextlib.suppress(PaymentProviderUnavailable, PaymentProviderError):  # left unrepaired: next run
                self.service.settle_refund(job_id)
            fresh = self.store.get_job(job_id)
            repaired = isinstance(fresh, Job | Tombstone) and fresh.refund is not None
        else:
            repaired = self.store.update_tombstone(job_id, refund=_recorded(made[0], "deleted"))
        mismatch("refund_unrecorded", made[0].amount, repaired)

    def _claims(self, report: LedgerReport, seen: _Seen) -> None:
        """Jobs under way that claim a payment: Stripe must hold it (paid), or something is very wrong."""
        for job_id in {*self.store.jobs_generating(), *self.store.jobs_in_aftercare()}:
            job = self.store.get_job(job_id)
            if not isinstance(job, Job) or job.payment is None or job.payment.payment_intent is None:
                continue
            if job.payment.checkout_session_id in seen.sessions:
                continue
            session = self.payments.get_checkout(job.payment.checkout_session_id)
            if session.payment_status != "paid" or session.payment_intent != job.payment.payment_intent:
                item = LedgerItem(
                    "payment_not_in_stripe",
                    job_id,
                    job.payment.checkout_session_id,
                    job.payment.payment_intent,
                    job.payment.amount_total,
                    False,
                )
                report.items.append(item)


def _recorded(made: RefundRecord, reason: Literal["deleted", "outside"]) -> Refund:
    """A refund Stripe holds, as our records keep it."""
    return Refund(
        refund_id=made.refund_id, amount=made.amount, currency=made.currency, reason=reason, refunded_at=made.created
    )

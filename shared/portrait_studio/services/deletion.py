"""Deletion as a durable state: the money owed is written before anything is undone.

`DELETE /jobs/{id}` first records the deletion, the refund it owes and its receipt in one conditional write (the
job is `deleting`: status `deleted`, still a record); then the refund is made and recorded, then everything is
purged and a tombstone keeps the payment's and refund's ids and amounts. Whatever stops it halfway (Stripe down, a
write failing after Stripe refunded, a crash), the reconciler finishes it within a minute, the refund included: a
refund Stripe made is found again (its idempotency key, or the payment's refunds listed) and recorded before the
record goes. Expiries that stopped halfway are finished the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from portrait_studio.errors import (
    JobNotFound,
    JobStateConflict,
    PaymentProviderError,
    PaymentProviderUnavailable,
    RefundNotRecorded,
)
from portrait_studio.models import Job, Tombstone
from portrait_studio.ports import Clock, JobStore, Metrics, NullMetrics
from portrait_studio.services.finishing import images_of
from portrait_studio.services.lifecycle import Lifecycle
from portrait_studio.services.payments import PaymentsService
from portrait_studio.services.retention import PrefixNotEmpty, RetentionService, new_receipt

log = logging.getLogger(__name__)
RECORD_ATTEMPTS = 3  # the job moved on between the read and the write (a payment, an outcome): read it again


@dataclass(frozen=True)
class DeletionReceipt:
    receipt_id: str
    finished: bool  # False: recorded, and the reconciler finishes it (the API answers 202 instead of 204)


@dataclass
class DeletionService:
    store: JobStore
    clock: Clock
    payments: PaymentsService
    retention: RetentionService
    metrics: Metrics = field(default_factory=NullMetrics)

    def __post_init__(self) -> None:
        self.lifecycle = Lifecycle(self.store, self.clock)

    def request(self, job_id: str) -> DeletionReceipt:
        """The owner's DELETE: recorded durably first (a failure here deletes nothing: the API answers 5xx), then
        finished now if it can be; what is left the reconciler finishes."""
        record = self.store.get_job(job_id)
        if isinstance(record, Tombstone):  # done already (the API's token check answers 404 before this)
            return DeletionReceipt(record.receipt_id, finished=True)
        receipt = self._record(job_id)
        try:
            self.finish(job_id)
        except Exception as exc:  # whatever stopped it, the recorded deletion is finished next minute
            log.warning("deletion recorded, left to the reconciler: %s", type(exc).__name__)
            self.metrics.count("DeletionsLeftHalfway")
            return DeletionReceipt(receipt, finished=False)
        return DeletionReceipt(receipt, finished=True)

    def _record(self, job_id: str) -> str:
        for _ in range(RECORD_ATTEMPTS):
            job = self.store.get_job(job_id)
            if not isinstance(job, Job):
                raise JobNotFound()
            if job.status.is_tombstone:  # being deleted already (a retried DELETE, or its expiry): the same receipt
                return job.deletion_receipt or new_receipt()
            owed, reason = self.payments.owed_on_delete(job, images_of(self.store.list_slots(job_id)))
            receipt = new_receipt()
            if self.lifecycle.record_deletion(job, owed, reason, receipt):
                return receipt
        raise JobStateConflict("The job changed while deleting it; try again.")

    def finish(self, job_id: str) -> Tombstone | None:
        """Refund (found again or made, then recorded), close an unpaid checkout, then purge. Raises when a step
        failed (Stripe, the store, the bucket): nothing owed is lost, the next call goes on from there."""
        record = self.store.get_job(job_id)
        if isinstance(record, Tombstone):
            return record
        if not isinstance(record, Job) or not record.status.is_tombstone:
            return None
        self.payments.close_unpaid_checkout(record)
        self.payments.settle_refund(job_id)
        settled = self.store.get_job(job_id)
        if isinstance(settled, Job) and self._refund_unrecorded(settled):
            raise RefundNotRecorded()  # never purge before it is
        return self.retention.purge(job_id, record.deletion_reason or "user_request")

    @staticmethod
    def _refund_unrecorded(job: Job) -> bool:
        paid = job.payment is not None and job.payment.payment_intent is not None
        return paid and job.refund_due > 0 and job.refund is None

    def finish_interrupted(self) -> int:
        """Every minute: deletions and expiries that stopped halfway are finished. Returns how many."""
        done = 0
        for job_id in self.store.jobs_purging():
            try:
                done += int(self.finish(job_id) is not None)
            except PrefixNotEmpty:
                self.metrics.count("PurgesUnfinished")
            except (PaymentProviderUnavailable, PaymentProviderError, RefundNotRecorded) as exc:
                log.warning("deletion's refund not settled yet (next minute): %s", exc.code)
                self.metrics.count("DeletionRefundsLeft")
        return done

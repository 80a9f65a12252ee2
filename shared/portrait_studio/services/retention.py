"""Retention: nothing of the user's outlives 48 hours (+ at most 1), and DELETE is immediate."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from portrait_studio import keys
from portrait_studio.clock import hour_key
from portrait_studio.config import Settings
from portrait_studio.models import Job, JobStatus, Tombstone
from portrait_studio.ports import BlobStore, Clock, Generator, JobStore, Metrics, NullMetrics
from portrait_studio.services.cancel import cancel_quietly
from portrait_studio.services.lifecycle import IN_FLIGHT, Lifecycle

DELETE_PASSES = 5
PURGE_METRIC = {"expired": "JobsExpired", "user_request": "JobsDeletedByUser", "checkout_expired": "JobsUnpaidEnded"}
SWEEP_LOOKBACK_HOURS = 72


def new_receipt() -> str:
    return "del_" + secrets.token_hex(12)


class PrefixNotEmpty(RuntimeError):
    """Objects remained under a job's prefix after every pass: the job is not reported deleted."""


@dataclass
class RetentionReport:
    jobs_by_status: dict[str, int]
    oldest_object_age_h: float | None
    orphans: list[str] = field(default_factory=list)
    max_age_h: float = 49.0
    jobs_holding_email: int = 0  # buyers' addresses kept until their outcome's email (then forgotten)

    @property
    def promise_kept(self) -> bool:
        return self.oldest_object_age_h is None or self.oldest_object_age_h <= self.max_age_h


@dataclass
class RetentionService:
    settings: Settings
    store: JobStore
    blobs: BlobStore
    clock: Clock
    generator: Generator | None = None
    metrics: Metrics = field(default_factory=NullMetrics)

    def purge(self, job_id: str, reason: Literal["expired", "user_request", "checkout_expired"]) -> Tombstone:
        """Cancel, delete every object and record of the job, leave a tombstone. Idempotent."""
        record = self.store.get_job(job_id)
        if isinstance(record, Tombstone):
            return record
        status = JobStatus.DELETED if reason == "user_request" else JobStatus.EXPIRED
        if isinstance(record, Job):
            if not record.status.is_tombstone:
                # First make the job unreachable, so late webhooks and queued collects drop their results.
                Lifecycle(self.store, self.clock).begin_deletion(job_id, status, reason)
            self._cancel_predictions(job_id)  # again when a purge stopped halfway is finished
        deleted = self.delete_prefix(keys.job_prefix(job_id))
        job = record if isinstance(record, Job) else None
        payment = job.payment if job else None
        tombstone = Tombstone(
            job_id=job_id,
            status=status,
            reason=reason,
            deleted_at=self.clock.now(),
            objects_deleted=deleted,
            receipt_id=(job.deletion_receipt if job else None) or new_receipt(),
            paid_session=payment.checkout_session_id if payment else None,
            # The money stays accounted for after the job is gone (ids and cents only): the ledger's match.
            payment_intent=payment.payment_intent if payment else None,
            amount_paid=payment.amount_total if payment else 0,
            refund=job.refund if job else None,
            outside_refunds=job.outside_refunds if job else [],
        )
        self.store.delete_job(tombstone, self.clock.now() + timedelta(days=self.settings.tombstone_days))
        self.metrics.count(PURGE_METRIC[reason])
        return tombstone

    def _cancel_predictions(self, job_id: str) -> None:
        if self.generator is None:
            return
        for slot in self.store.list_slots(job_id):
            if slot.prediction_id and slot.status in IN_FLIGHT:
                cancel_quietly(self.generator, self.metrics, slot.prediction_id)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under the prefix, listing again until nothing is left."""
        deleted = 0
        for _ in range(DELETE_PASSES):
            batch = list(self.blobs.list_keys(prefix))
            if not batch:
                return deleted
            for start in range(0, len(batch), 1000):
                chunk = batch[start : start + 1000]
                failed = self.blobs.delete(chunk)
                deleted += len(chunk) - len(failed)
        if any(True for _ in self.blobs.list_keys(prefix)):
            raise PrefixNotEmpty(prefix)
        return deleted

    def sweep(self) -> dict[str, int]:
        """The hourly run: purge every job whose expiry hour has come, found through the index."""
        now = self.clock.now()
        summary = {"due": 0, "purged": 0, "failed": 0}
        for hours_ago in range(SWEEP_LOOKBACK_HOURS, -1, -1):
            for job_id in self.store.jobs_expiring_in_hour(hour_key(now - timedelta(hours=hours_ago))):
                record = self.store.get_job(job_id)
                if not isinstance(record, Job) or record.expires_at > now:
                    continue
                summary["due"] += 1
                try:
                    self.purge(job_id, "expired")
                    summary["purged"] += 1
                except PrefixNotEmpty:
                    summary["failed"] += 1  # retried next hour; the lifecycle rule is the backstop
        return summary

    def audit(self) -> dict[str, int]:
        """The nightly run: delete any job prefix whose job is missing, deleted or past its expiry."""
        now = self.clock.now()
        orphans = self.find_orphans(now)
        for job_id in orphans:
            record = self.store.get_job(job_id)
            if isinstance(record, Job):
                self.purge(job_id, "expired")
            else:
                self.delete_prefix(keys.job_prefix(job_id))
        self.metrics.count("OrphansFound", len(orphans))
        return {"orphans": len(orphans)}

    def find_orphans(self, now: datetime) -> list[str]:
        orphans = []
        for prefix in self.blobs.list_prefixes("jobs/"):
            job_id = keys.job_id_from_key(prefix + "x")
            if job_id is None:
                continue
            record = self.store.get_job(job_id)
            if not isinstance(record, Job) or record.status.is_tombstone or record.expires_at <= now:
                orphans.append(job_id)
        return orphans

    def report(self) -> RetentionReport:
        now = self.clock.now()
        age_s = self.blobs.oldest_object_age_s("jobs/", now)
        return RetentionReport(
            jobs_by_status=self.store.status_counts(),
            oldest_object_age_h=None if age_s is None else round(age_s / 3600, 2),
            orphans=self.find_orphans(now),
            max_age_h=self.settings.retention_hours + 1,
            jobs_holding_email=self.store.jobs_holding_email(),
        )

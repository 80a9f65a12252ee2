"""The reconciler (every `reconcile_every_s`): moves every non-terminal slot of every generating job forward,
whatever message or webhook was lost, and ends jobs that reach their time limit.

- planned, and no dispatch due: dispatched again;
- claimed by a dispatch that died before creating anything: dispatched again;
- in flight with no word for `reconcile_grace_s`: fetched from Replicate and applied like a webhook;
- finished but not collected for `reconcile_grace_s`: collected again.
A job is timed out two periods before `max_generating_s`, so it is terminal within `max_generating_s` even when
one run fails for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from portrait_studio.config import Settings
from portrait_studio.models import Job, JobStatus, Prediction, SlotStatus
from portrait_studio.ports import Clock, Generator, JobStore, Metrics, Queue
from portrait_studio.services.cancel import cancel_quietly
from portrait_studio.services.collect import CollectService
from portrait_studio.services.finishing import Finisher
from portrait_studio.services.lifecycle import IN_FLIGHT, Lifecycle

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class ReconcileSummary:
    jobs: int = 0
    fetched: int = 0
    redispatched: int = 0
    recollected: int = 0
    timed_out: int = 0
    failed_jobs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "jobs": self.jobs,
            "fetched": self.fetched,
            "redispatched": self.redispatched,
            "recollected": self.recollected,
            "timed_out": self.timed_out,
            "errors": len(self.failed_jobs),
        }


@dataclass
class Reconciler:
    settings: Settings
    store: JobStore
    queue: Queue
    generator: Generator
    clock: Clock
    lifecycle: Lifecycle
    collector: CollectService
    finisher: Finisher
    metrics: Metrics

    def reconcile(self) -> dict[str, int]:
        summary = ReconcileSummary()
        for job_id in self.store.jobs_generating():
            try:
                self._reconcile_job(job_id, summary)
            except Exception:
                # One job's trouble must not stop the others; it is tried again on the next run.
                summary.failed_jobs.append(job_id)
                self.metrics.count("ReconcileErrors")
        return summary.as_dict()

    def deadline(self, job: Job) -> datetime:
        """From when the reconciler ends the job: two runs before `max_generating_s` (one may fail)."""
        started = job.generating_since or job.updated_at
        return started + timedelta(seconds=self.settings.max_generating_s - 2 * self.settings.reconcile_every_s)

    def _reconcile_job(self, job_id: str, summary: ReconcileSummary) -> None:
        job = self.store.get_job(job_id)
        if not isinstance(job, Job) or job.status != JobStatus.GENERATING:
            return
        summary.jobs += 1
        now = self.clock.now()
        if now >= self.deadline(job):
            self._time_out(job)
            summary.timed_out += 1
            return
        stale = now - timedelta(seconds=self.settings.claim_stale_s)
        quiet = now - timedelta(seconds=self.settings.reconcile_grace_s)
        redispatch = []
        for slot in self.store.list_slots(job_id):
            if self._dispatch_lost(job, slot, stale):
                redispatch.append(slot.slot)
            elif slot.status in IN_FLIGHT and slot.prediction_id and slot.changed_at <= quiet:
                summary.fetched += 1
                if self.collector.apply(slot, self.generator.get(slot.prediction_id)) == "completed":
                    summary.recollected += 1
            elif slot.status.has_prediction_outcome and slot.changed_at <= quiet:
                self.queue.send(self.settings.collect_queue_url, {"job_id": job_id, "slot": slot.slot})
                summary.recollected += 1
        if redispatch:
            self.queue.send(self.settings.dispatch_queue_url, {"job_id": job_id, "slots": redispatch})
            summary.redispatched += len(redispatch)
        self.finisher.finish_if_done(job_id)

    @staticmethod
    def _dispatch_lost(job: Job, slot: Prediction, stale: datetime) -> bool:
        """Planned with no dispatch due, or claimed by a dispatch that died before creating anything."""
        if slot.status == SlotStatus.PLANNED:
            return max(slot.changed_at, job.dispatch_retry_at or EPOCH) <= stale
        return slot.status == SlotStatus.CLAIMED and (slot.claimed_at or EPOCH) <= stale

    def _time_out(self, job: Job) -> None:
        """Stop what runs, keep what was made, and end the job with what there is."""
        for slot in self.store.list_slots(job.job_id):
            if slot.status == SlotStatus.SUCCEEDED:
                self.collector.store_outputs(job, slot)
                continue
            if slot.prediction_id and slot.status in IN_FLIGHT:
                cancel_quietly(self.generator, self.metrics, slot.prediction_id)
            if not slot.status.is_terminal:
                self.lifecycle.give_up(slot, "timed out")
        self.metrics.count("JobsTimedOut")
        self.finisher.finish(job, self.store.list_slots(job.job_id), timed_out=True)

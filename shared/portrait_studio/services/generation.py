"""Generation, assembled: dispatch, outcomes and collect, finishing, reconcile — one object for the handlers.

Each step lives in its own module; they share one `Lifecycle`, the only writer of a status. Each step runs only
what its function's role allows (docs/security.md "Grants"): a job dispatch ends gets its aftercare (Stripe refund, SES
email) from collect, by message; an orphan the webhook receiver finds is canceled by dispatch (the token's holder).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from portrait_studio.config import Settings
from portrait_studio.ports import BlobStore, Clock, Downloader, Generator, JobStore, Metrics, NullMetrics, Queue
from portrait_studio.services.cancel import cancel_quietly
from portrait_studio.services.collect import CollectService
from portrait_studio.services.dispatch import DispatchResult, DispatchService
from portrait_studio.services.finishing import Finisher
from portrait_studio.services.lifecycle import Lifecycle
from portrait_studio.services.pacing import CreatePacer
from portrait_studio.services.provenance import ProvenanceStamp
from portrait_studio.services.reconcile import Reconciler


@dataclass
class GenerationService:
    settings: Settings
    store: JobStore
    blobs: BlobStore
    queue: Queue
    generator: Generator
    downloader: Downloader
    clock: Clock
    metrics: Metrics = field(default_factory=NullMetrics)
    provenance: ProvenanceStamp | None = None  # wiring always passes one (see CollectService)
    after_finish: Callable[[str], object] | None = None  # Aftercare.run, when wired: refund and email

    def __post_init__(self) -> None:
        s = self
        self.lifecycle = Lifecycle(s.store, s.clock)
        self.finisher = Finisher(s.settings, s.store, s.queue, s.clock, self.lifecycle, s.metrics, s.after_finish)
        # Dispatch holds neither the Stripe key nor ses:SendEmail: a job it ends has its aftercare run by collect.
        handover = self._aftercare_by_collect if s.after_finish is not None else None
        dispatch_finisher = Finisher(s.settings, s.store, s.queue, s.clock, self.lifecycle, s.metrics, handover)
        pacer = CreatePacer(s.store, s.clock, s.settings.creates_per_minute)
        self.dispatcher = DispatchService(
            s.settings,
            s.store,
            s.blobs,
            s.queue,
            s.generator,
            s.clock,
            self.lifecycle,
            dispatch_finisher,
            pacer,
            s.metrics,
        )
        self.collector = CollectService(
            s.settings,
            s.store,
            s.blobs,
            s.queue,
            s.downloader,
            self.lifecycle,
            self.finisher,
            s.metrics,
            s.provenance,
        )
        self.reconciler = Reconciler(
            s.settings, s.store, s.queue, s.generator, s.clock, self.lifecycle, self.collector, self.finisher, s.metrics
        )

    def dispatch(
        self, job_id: str, slots: Sequence[str] | None = None, attempt: int = 0, turn_at: datetime | None = None
    ) -> DispatchResult:
        return self.dispatcher.dispatch(job_id, slots, attempt, turn_at)

    def cancel_orphan(self, prediction_id: str) -> None:
        """Stop a prediction nothing will collect (the webhook receiver found it and handed it over)."""
        cancel_quietly(self.generator, self.metrics, prediction_id)

    def aftercare(self, job_id: str) -> object:
        """A finished job's refund and email (a job dispatch ended); what is left, the reconciler does."""
        return self.after_finish(job_id) if self.after_finish is not None else None

    def _aftercare_by_collect(self, job_id: str) -> None:
        # If this send is lost, the job still carries `aftercare_due`: the reconciler's next pass does it.
        self.queue.send(self.settings.collect_queue_url, {"job_id": job_id, "aftercare": True})

    def record_event(self, job_id: str, slot: str, claim_id: str | None, body: Mapping[str, Any]) -> str:
        return self.collector.record_event(job_id, slot, claim_id, body)

    def collect(self, job_id: str, slot: str) -> int:
        return self.collector.collect(job_id, slot)

    def one_collect_invocation(self) -> AbstractContextManager[None]:
        """One invocation's batch of collects: each job's person is computed once in it, and forgotten after."""
        return self.collector.one_invocation()

    def finish_if_done(self, job_id: str) -> None:
        self.finisher.finish_if_done(job_id)

    def reconcile(self) -> dict[str, int]:
        return self.reconciler.reconcile()

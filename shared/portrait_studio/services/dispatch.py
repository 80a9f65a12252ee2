"""Dispatch: create the PhotoMaker predictions of a job's planned slots, at most one per slot.

Every create first takes a turn in the global create line (pacing.py). Waiting is never poison: no turn yet,
a 429, a 5xx or an unreachable Replicate sends a new, delayed dispatch message for the remaining slots (a
throttled attempt counted in its body); the message at hand succeeds, so waiting never spends the queue's
dead-letter budget. A 429 puts its slot back to `planned`; a 5xx keeps the claim (the prediction may exist).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from portrait_studio import keys
from portrait_studio.config import Settings
from portrait_studio.errors import GeneratorRateLimited, GeneratorRejectedInput, GeneratorUnavailable
from portrait_studio.models import Job, JobStatus, Prediction, SlotStatus
from portrait_studio.ports import BlobStore, Clock, Generator, JobStore, Metrics, Queue
from portrait_studio.services.backdrops import backdrop_phrase
from portrait_studio.services.cancel import cancel_quietly
from portrait_studio.services.finishing import Finisher
from portrait_studio.services.lifecycle import Lifecycle
from portrait_studio.services.pacing import CreatePacer
from portrait_studio.services.plan import build_prompt, load_styles, photomaker_input, select_references, slot_seed

WEBHOOK_EVENTS = ("start", "completed")
MAX_DELAY_S = 900  # SQS's DelaySeconds limit


@dataclass
class DispatchResult:
    created: int = 0
    skipped: int = 0
    gave_up: int = 0
    deferred: list[str] = field(default_factory=list)
    wait_s: int = 0
    turn_at: datetime | None = None  # the create turn the deferred message holds


@dataclass
class DispatchService:
    settings: Settings
    store: JobStore
    blobs: BlobStore
    queue: Queue
    generator: Generator
    clock: Clock
    lifecycle: Lifecycle
    finisher: Finisher
    pacer: CreatePacer
    metrics: Metrics

    def dispatch(
        self, job_id: str, slots: Sequence[str] | None = None, attempt: int = 0, turn_at: datetime | None = None
    ) -> DispatchResult:
        """Create the predictions of the named slots (default: every planned slot). Idempotent per slot.

        Each create takes a turn in the global line first; `turn_at` is a turn this message already holds."""
        result = DispatchResult()
        job = self.store.get_job(job_id)
        if not isinstance(job, Job) or job.status != JobStatus.GENERATING:
            return result
        existing = {s.slot: s for s in self.store.list_slots(job_id)}
        wanted = list(slots) if slots else [name for name, s in existing.items() if s.status == SlotStatus.PLANNED]
        references = select_references(self.store.list_files(job_id), self.settings.identity_same_person_max_distance)
        if not references:
            for name in wanted:
                if name in existing and self.lifecycle.give_up(existing[name], "no usable reference photo"):
                    result.gave_up += 1
            self.finisher.finish_if_done(job_id)
            return result
        now = self.clock.now()
        url_ttl = min(self.settings.reference_url_ttl_s, max(60, int((job.expires_at - now).total_seconds())))
        reference_urls = [self.blobs.presign_get(keys.reference(job_id, f.file_id), url_ttl) for f in references]
        held_turn = turn_at
        for index, name in enumerate(wanted):
            current = existing.get(name)
            if current is None or not self._claimable(current):
                result.skipped += 1
                continue
            if held_turn is None:
                turn = self.pacer.next_turn()
                if turn > self.clock.now():  # not this job's turn yet: come back for it, holding it
                    result.deferred, result.turn_at = list(wanted[index:]), turn
                    result.wait_s = max(1, math.ceil((turn - self.clock.now()).total_seconds()))
                    break
            held_turn = None  # spent on this slot
            claimed = self._claim(current)
            if claimed is None:
                if self._unfunded(current):
                    result.gave_up += self.lifecycle.out_of_budget(current)
                else:
                    result.skipped += 1
                continue
            if not self._create_one(job, claimed, reference_urls, result, attempt):
                result.deferred = list(wanted[index:])
                break
        if result.deferred:
            self._defer(job_id, result, attempt)
        if result.gave_up:
            self.finisher.finish_if_done(job_id)
        return result

    def _create_one(
        self, job: Job, claimed: Prediction, reference_urls: list[str], result: DispatchResult, attempt: int
    ) -> bool:
        """Create the claimed slot's prediction and record it. False: Replicate asks us to wait (`wait_s` set)."""
        try:
            prediction_id = self._create(job, claimed, reference_urls)
        except GeneratorRejectedInput as rejected:
            self.lifecycle.give_up(claimed, rejected.message)
            self.metrics.count("PredictionsRejected")
            result.gave_up += 1
            return True
        except GeneratorRateLimited as exc:
            self.lifecycle.release(claimed)  # a 429 created nothing: the slot and its reservation go back
            result.wait_s = self._wait_s(exc, attempt)
            return False
        except GeneratorUnavailable as exc:
            # A 5xx or a lost response may still have created the prediction: the claim stays, so its first
            # webhook is adopted; if none comes, the deferred dispatch takes the stale claim over.
            result.wait_s = max(self._wait_s(exc, attempt), self.settings.claim_stale_s + 1)
            return False
        recorded = False
        try:
            recorded = self.lifecycle.record_created(claimed, prediction_id)
        finally:
            if not recorded:
                self._cancel_unless_recorded(claimed, prediction_id)
        if recorded:
            self.metrics.count("PredictionsCreated")
            result.created += 1
        else:
            result.skipped += 1
        return True

    def _claimable(self, slot: Prediction) -> bool:
        """Planned, or claimed by a dispatch that died before recording a prediction (a stale claim)."""
        if slot.status == SlotStatus.PLANNED:
            return True
        stale = slot.claimed_at is not None and slot.claimed_at < self._stale_before()
        return slot.status == SlotStatus.CLAIMED and slot.prediction_id is None and stale

    def _stale_before(self) -> datetime:
        return self.clock.now() - timedelta(seconds=self.settings.claim_stale_s)

    def _claim(self, slot: Prediction) -> Prediction | None:
        seed = slot_seed(slot.job_id, slot.slot, slot.attempts)
        if slot.status == SlotStatus.PLANNED:
            return self.lifecycle.claim(slot, seed=seed)
        return self.lifecycle.reclaim_stale(slot, self._stale_before(), seed=seed)

    def _unfunded(self, slot: Prediction) -> bool:
        """A claimable slot whose claim failed because the job's prediction budget is spent: it never will be."""
        job = self.store.get_job(slot.job_id)
        return isinstance(job, Job) and job.predictions_reserved >= job.prediction_budget

    def _create(self, job: Job, slot: Prediction, reference_urls: list[str]) -> str:
        book = load_styles()
        prompt = build_prompt(book.prompts[slot.style][slot.prompt_index], job.subject, backdrop_phrase(job.backdrop))
        seed = slot_seed(job.job_id, slot.slot, slot.attempts)
        body = photomaker_input(prompt, reference_urls, seed, slot.num_outputs, self.settings)
        query = urlencode({"job": job.job_id, "slot": slot.slot, "claim": slot.claim_id})
        webhook = f"{self.settings.webhook_url}?{query}"
        return self.generator.create(self.settings.photomaker_version, body, webhook, WEBHOOK_EVENTS).id

    def _wait_s(self, exc: GeneratorRateLimited | GeneratorUnavailable, attempt: int) -> int:
        if isinstance(exc, GeneratorRateLimited):
            wait = exc.retry_after_s
        else:
            wait = self.settings.unavailable_backoff_s * 2 ** min(attempt, 6)
        return max(1, min(MAX_DELAY_S, math.ceil(wait)))

    def _defer(self, job_id: str, result: DispatchResult, attempt: int) -> None:
        """The same slots come back after the wait as a new message; this one is done."""
        self.lifecycle.defer_dispatch(job_id, self.clock.now() + timedelta(seconds=result.wait_s))
        message: dict[str, object] = {"job_id": job_id, "slots": result.deferred, "attempt": attempt}
        if result.turn_at is not None:  # waiting for a turn is not a throttled attempt
            message["turn_at"] = result.turn_at.isoformat()
            self.metrics.count("CreatesPaced")
        else:
            message["attempt"] = attempt + 1
            self.metrics.count("DispatchDeferred")
        self.queue.send(self.settings.dispatch_queue_url, message, delay_s=result.wait_s)

    def _cancel_unless_recorded(self, slot: Prediction, prediction_id: str) -> None:
        """A prediction its slot does not know (the job was deleted meanwhile, or the write failed) could never be
        collected, and a retry would run a second one: stop it. One its first webhook adopted is kept."""
        try:
            current = self.store.get_slot(slot.job_id, slot.slot)
        except Exception:
            current = None
        if current is None or current.prediction_id != prediction_id:
            cancel_quietly(self.generator, self.metrics, prediction_id)

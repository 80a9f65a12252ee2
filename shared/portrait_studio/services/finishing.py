"""Finishing a job: once every slot is terminal, top up towards 32 while the budget lasts, then end it.

`ready` means at least `images_minimum` headshots. Fewer, with some to show, is `partial` (with the count
and a reason the user reads); none at all is `failed`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from portrait_studio.config import Settings
from portrait_studio.models import Job, JobStatus, Payment, Prediction, SlotStatus
from portrait_studio.ports import Clock, JobStore, Metrics, Queue
from portrait_studio.services.lifecycle import Lifecycle
from portrait_studio.services.plan import as_style, expected_per_style, new_slot


def images_of(slots: Sequence[Prediction]) -> int:
    return sum(s.images_collected for s in slots)


def shortfall_reason(slots: Sequence[Prediction], images: int, target: int, timed_out: bool) -> str:
    """Why a job has fewer than the target, in words a user reads."""
    collected = [s for s in slots if s.status == SlotStatus.COLLECTED]
    unlike = sum(s.drops.get("not_like_you", 0) for s in collected)
    faceless = sum(s.drops.get("no_face", 0) + s.drops.get("extra_faces", 0) for s in collected)
    filtered = sum(max(0, s.num_outputs - s.images_collected) for s in collected) - unlike - faceless
    gave_up = [s for s in slots if s.status == SlotStatus.GAVE_UP]
    # Replicate fails a prediction whose every image the safety checker held back ("NSFW content").
    all_filtered = [s for s in gave_up if "nsfw" in (s.error or "").lower()]
    filtered += sum(s.num_outputs for s in all_filtered)
    failed = len(gave_up) - len(all_filtered)
    causes = []
    if unlike:
        causes.append(f"{unlike} image(s) did not look enough like you")
    if faceless:
        causes.append(f"{faceless} image(s) did not show exactly one face")
    if filtered:
        causes.append(f"{filtered} image(s) were held back by the safety filter or were unusable")
    if failed:
        causes.append(f"{failed} generation(s) failed")
    if timed_out:
        causes.append("generation took longer than we allow")
    why = "; ".join(causes) or "generation fell short"
    if images == 0:
        return f"No headshots could be made: {why}. Please try again, perhaps with other photos."
    return f"We could make only {images} of {target} headshots: {why}."


@dataclass
class Finisher:
    settings: Settings
    store: JobStore
    queue: Queue
    clock: Clock
    lifecycle: Lifecycle
    metrics: Metrics
    # What follows a job's end at once: its refund and its email (Aftercare.run); None leaves it to the reconciler.
    after_finish: Callable[[str], object] | None = None

    def finish_if_done(self, job_id: str) -> None:
        job = self.store.get_job(job_id)
        if not isinstance(job, Job) or job.status != JobStatus.GENERATING:
            return
        slots = self.store.list_slots(job_id)
        if not slots or any(not s.status.is_terminal for s in slots):
            return
        images = images_of(slots)
        budget_left = job.prediction_budget - job.predictions_reserved
        # A "more like this" round is never topped up: its budget is its own slots' (a retry each), no more.
        if images < self.settings.images_target and budget_left > 0 and not job.delivered_as:
            self._top_up(job, slots, images, budget_left)
            return
        self.finish(job, slots)

    def finish(self, job: Job, slots: Sequence[Prediction], timed_out: bool = False) -> None:
        if job.delivered_as:
            self._end_round(job, job.delivered_as)
            return
        images = images_of(slots)
        target = self.settings.images_target
        fields: dict[str, Any]
        if images >= self.settings.images_minimum:
            note = None if images >= target else shortfall_reason(slots, images, target, timed_out)
            outcome, fields = JobStatus.READY, {"note": note}
        else:
            reason = shortfall_reason(slots, images, target, timed_out)
            outcome = JobStatus.PARTIAL if images else JobStatus.FAILED
            fields = {"failure_reason": reason}
        owed = refund_owed(outcome, images, job.payment, target)
        if owed:
            fields |= {"refund_due": owed, "refund_reason": outcome.value}
        if not self.lifecycle.finish(job.job_id, outcome, **fields):
            return
        self._count(job.job_id, outcome, images)
        if self.after_finish is not None:
            self.after_finish(job.job_id)

    def _end_round(self, job: Job, delivered_as: str) -> None:
        """A "more like this" round ends the job as it was delivered: outcome, note, refund and email unchanged
        (the extra headshots are a gift, not a new order)."""
        if self.lifecycle.finish(job.job_id, JobStatus(delivered_as)):
            self.metrics.count("MoreRoundsFinished")
            if self.after_finish is not None:
                self.after_finish(job.job_id)

    def _count(self, job_id: str, outcome: JobStatus, images: int) -> None:
        """What operators watch: outcomes (alarms on JobsPartial and JobsFailed), time, images, cost."""
        job = self.store.get_job(job_id)
        if not isinstance(job, Job):
            return
        self.metrics.count(f"Jobs{outcome.value.capitalize()}")
        self.metrics.count("ImagesDelivered", images)
        self.metrics.count("PredictionsPerJob", job.predictions_reserved)
        if job.generating_since:
            self.metrics.count("TimeToFinish", (self.clock.now() - job.generating_since).total_seconds(), "Seconds")
        self.metrics.count("PredictSeconds", job.predict_seconds, "Seconds")
        self.metrics.count("EstimatedCostUSD", estimated_cost_usd(job.predict_seconds, self.settings), "None")

    def _top_up(self, job: Job, slots: Sequence[Prediction], images: int, budget_left: int) -> None:
        """Ask for more images: full predictions, as many as the yield seen so far says are needed."""
        per = self.settings.outputs_per_prediction
        asked = sum(s.num_outputs for s in slots if s.status == SlotStatus.COLLECTED)
        yield_rate = images / asked if asked else 1.0
        needed = math.ceil((self.settings.images_target - images) / max(0.25, yield_rate) / per)
        count = max(1, min(needed, budget_left))
        expected = expected_per_style(job.styles, self.settings)
        have = dict.fromkeys(job.styles, 0)
        next_k = dict.fromkeys(job.styles, 0)
        for s in slots:
            have[s.style] = have.get(s.style, 0) + s.images_collected
            next_k[s.style] = max(next_k.get(s.style, 0), int(s.slot.split("#")[1]) + 1)
        now = self.clock.now()
        new_slots = []
        for _ in range(count):
            # The style furthest behind its share gets the next prediction.
            style = max(job.styles, key=lambda st: expected[st] - have[st])
            new_slots.append(new_slot(job, as_style(style), next_k[style], per, now, topup=True))
            next_k[style] += 1
            have[style] += per
        if self.lifecycle.top_up(job, new_slots):  # else another worker topped up first
            self.metrics.count("TopUps", count)
            self.queue.send(
                self.settings.dispatch_queue_url, {"job_id": job.job_id, "slots": [s.slot for s in new_slots]}
            )


def refund_owed(outcome: JobStatus, images: int, payment: Payment | None, target: int) -> int:
    """Cents owed back: all of it for `failed`, the missing headshots' share (rounded down) for `partial`."""
    if payment is None or payment.amount_total <= 0:
        return 0
    if outcome == JobStatus.FAILED:
        return payment.amount_total
    if outcome == JobStatus.PARTIAL:
        return payment.amount_total * max(0, target - images) // target
    return 0


def estimated_cost_usd(predict_seconds: float, settings: Settings) -> float:
    return round(predict_seconds * settings.price_per_second_usd, 4)

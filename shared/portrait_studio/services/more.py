""" "More like this": a delivered headshot's style, prompt and backdrop again, with new seeds.

A round is a few planned slots written with the job's move back to `generating` (lifecycle `more_like_this`, one
transaction that also counts the round against the allowance and adds its predictions to the budget), then the
same path as the first 32: the paced create line, webhooks, the output gate, likeness ordering, provenance and
crops, the 48 h deletion. When its slots are done the job ends as it was delivered (services/finishing.py), and
its zip is a new one (keys.archive names it by its number of headshots).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from portrait_studio.api_models import MoreResponse
from portrait_studio.config import Settings
from portrait_studio.errors import JobGone, JobNotFinished, MoreLimitReached, ResultNotFound
from portrait_studio.models import Job, JobStatus, Prediction
from portrait_studio.ports import BlobStore, Clock, JobStore, Queue
from portrait_studio.services.jobs import JobsService
from portrait_studio.services.lifecycle import Lifecycle
from portrait_studio.services.plan import as_style, new_slot

# Predictions the budget grows by per prediction of a round: the prediction and one retry.
BUDGET_PER_PREDICTION = 2


@dataclass
class MoreLikeThis:
    settings: Settings
    store: JobStore
    blobs: BlobStore
    queue: Queue
    clock: Clock
    jobs: JobsService

    def request(self, job_id: str, token: str | None, result: str) -> MoreResponse:
        return self.start(self.jobs.authorize(job_id, token), result)

    def start(self, job: Job, result: str) -> MoreResponse:
        """Start a round for the job's headshot `result` ("style/number"), or refuse with why."""
        self._check(job)
        slots = self.store.list_slots(job.job_id)
        source = _source_of(slots, result)
        round_slots = self._plan(job, source, slots)
        budget = BUDGET_PER_PREDICTION * len(round_slots)
        if not Lifecycle(self.store, self.clock).more_like_this(job, round_slots, budget):
            current = self.store.get_job(job.job_id)
            if isinstance(current, Job):
                self._check(current)  # the reason it changed: another round, a deletion
            raise JobNotFinished("Another request changed this job just now; look at it and try again.")
        names = [s.slot for s in round_slots]
        self.queue.send(self.settings.dispatch_queue_url, {"job_id": job.job_id, "slots": names})
        rounds = job.more_rounds + 1
        return MoreResponse(
            job_id=job.job_id,
            status=JobStatus.GENERATING,
            round=rounds,
            rounds_left=max(0, self.settings.more_rounds_per_job - rounds),
            images=sum(s.num_outputs for s in round_slots),
        )

    def _check(self, job: Job) -> None:
        if job.status.is_tombstone:
            raise JobGone()
        if job.status not in (JobStatus.READY, JobStatus.PARTIAL):
            if job.status == JobStatus.FAILED:
                raise JobNotFinished("This job has no headshots to make more like.")
            raise JobNotFinished()
        limit = self.settings.more_rounds_per_job
        if job.more_rounds >= limit:
            raise MoreLimitReached(
                f"More like this can be used {limit} times per job; this one has used them all.",
                details={"limit": limit},
            )

    def _plan(self, job: Job, source: Prediction, slots: list[Prediction]) -> list[Prediction]:
        """New slots after the style's last, with the source's prompt; new slot names give new seeds."""
        per = self.settings.outputs_per_prediction
        count = math.ceil(self.settings.more_images_per_round / per)
        next_k = 1 + max(int(s.slot.split("#")[1]) for s in slots if s.style == source.style)
        now = self.clock.now()
        return [
            new_slot(job, as_style(source.style), next_k + i, per, now).model_copy(
                update={"prompt_index": source.prompt_index, "more_round": job.more_rounds + 1}
            )
            for i in range(count)
        ]


def _source_of(slots: list[Prediction], result: str) -> Prediction:
    style, _, number = result.partition("/")
    for slot in slots:
        if slot.style == style and number.isdigit() and int(number) in slot.results:
            return slot
    raise ResultNotFound()

"""Prediction outcomes: a verified webhook (or the reconciler's GET) records them; collect copies the images.

Replicate deletes outputs after an hour, so succeeded predictions are copied into the bucket at once.
Failed and canceled predictions are retried a capped number of times; then the slot is given up.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from portrait_studio import keys
from portrait_studio.config import Settings
from portrait_studio.errors import OutputInvalid
from portrait_studio.models import Job, JobStatus, Prediction, SlotStatus, Tombstone
from portrait_studio.ports import BlobStore, Downloader, JobStore, Metrics, Queue, RemotePrediction
from portrait_studio.services.finishing import Finisher
from portrait_studio.services.lifecycle import IN_FLIGHT, OUTCOME_TRANSITION, RETRYABLE, Lifecycle
from portrait_studio.services.provenance import ProvenanceStamp

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from portrait_studio.services.identity import Descriptor, OutputJudgement

    Pixels = npt.NDArray[np.uint8]  # a decoded output's RGB

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OUTPUT_SIZE = (1024, 1024)


@dataclass
class CollectService:
    settings: Settings
    store: JobStore
    blobs: BlobStore
    queue: Queue
    downloader: Downloader
    lifecycle: Lifecycle
    finisher: Finisher
    metrics: Metrics
    # Marks every stored result as AI-made (XMP + signed C2PA); a failure raises, so nothing is stored unmarked.
    # None only where tests build the service without it; wiring always passes one.
    provenance: ProvenanceStamp | None = None
    # Each job's person while one invocation's batch is collected (`one_invocation`); None outside one.
    _people: dict[str, _PersonOnce] | None = field(default=None, init=False, repr=False)

    @contextmanager
    def one_invocation(self) -> Iterator[None]:
        """Within it, each job's person is computed once for all of that job's messages in the batch (a batch of
        four often holds several of one job's predictions); at its end the person is forgotten."""
        self._people = {}
        try:
            yield
        finally:
            self._people = None

    # --- outcomes ----------------------------------------------------------------------------------
    def record_event(self, job_id: str, slot: str, claim_id: str | None, body: Mapping[str, Any]) -> str:
        """Apply a verified webhook. Returns what happened: progress, completed, noop, orphan or unknown."""
        remote = RemotePrediction.from_api(body)
        current = self.store.get_slot(job_id, slot) if keys.is_valid_id(job_id) else None
        if current is None or not remote.id:
            if remote.status in ("starting", "processing") and remote.id and keys.is_valid_id(job_id):
                self._cancel_elsewhere(job_id, remote.id)  # its job is gone: it must not run on
                return "orphan"
            return "unknown"
        # The claim's prediction, not recorded yet (its create response lost, or still on its way): adopt it. If
        # dispatch recorded it meanwhile, the adoption fails and the slot as it is now is the one to apply to.
        adoptable = current.prediction_id is None and claim_id is not None and claim_id == current.claim_id
        if adoptable:
            if self.lifecycle.record_created(current, remote.id):
                current = current.model_copy(update={"prediction_id": remote.id, "status": SlotStatus.STARTING})
            else:
                current = self.store.get_slot(job_id, slot) or current
        if current.prediction_id != remote.id:
            if claim_id != current.claim_id and remote.status in ("starting", "processing"):
                self._cancel_elsewhere(job_id, remote.id)  # from an abandoned claim: a second prediction for the slot
                return "orphan"
            return "unknown"  # an earlier attempt's late webhook
        return self.apply(current, remote)

    def _cancel_elsewhere(self, job_id: str, prediction_id: str) -> None:
        """The webhook receiver holds no Replicate token: dispatch, which does, cancels (DispatchMessage.cancel)."""
        self.queue.send(self.settings.dispatch_queue_url, {"job_id": job_id, "cancel": prediction_id})
        self.metrics.count("OrphansHandedOver")

    def apply(self, current: Prediction, remote: RemotePrediction) -> str:
        if current.status not in IN_FLIGHT:
            return "noop"  # already recorded: duplicates and out-of-order events change nothing
        if remote.status == "processing":
            return (
                "progress"
                if current.status == SlotStatus.STARTING and self.lifecycle.mark_processing(current)
                else "noop"
            )
        if remote.status not in OUTCOME_TRANSITION:
            return "noop"
        recorded = self.lifecycle.record_outcome(
            current,
            remote.status,
            outputs=remote.output,
            predict_time=remote.predict_time,
            error=(remote.error or "")[:500] or None,
        )
        if not recorded:
            return "noop"
        self.queue.send(self.settings.collect_queue_url, {"job_id": current.job_id, "slot": current.slot})
        return "completed"

    # --- collect -----------------------------------------------------------------------------------
    def collect(self, job_id: str, slot: str) -> int:
        """Copy a succeeded prediction's images, or retry a failed one; then see whether the job is done."""
        job = self.store.get_job(job_id)
        if isinstance(job, Tombstone):
            # Deleted. A collect of this slot killed (timeout, out of memory) after writing an output and before
            # removing it left that output behind: its message, back after the visibility timeout, removes it.
            self._delete_results_of(job_id, slot, self.settings.outputs_per_prediction)
            return 0
        if not isinstance(job, Job) or job.status != JobStatus.GENERATING:
            return 0  # being deleted or finished: late results are dropped, never written
        current = self.store.get_slot(job_id, slot)
        if current is None:
            return 0
        stored = 0
        if current.status == SlotStatus.SUCCEEDED:
            stored = self.store_outputs(job, current)
        elif current.status in RETRYABLE:
            self.metrics.count("PredictionsFailed")
            self._retry_or_give_up(current)
        self.finisher.finish_if_done(job_id)
        return stored

    def store_outputs(self, job: Job, slot: Prediction) -> int:
        """Copy the outputs that pass the gate into the bucket and count them on the slot (succeeded → collected)."""
        kept = self._copy_outputs(job, slot)
        stored = [number for number, _ in kept]
        if slot.num_outputs - len(stored):
            self.metrics.count("OutputsDropped", slot.num_outputs - len(stored))
        for reason, count in kept.drops.items():
            self.metrics.count(f"OutputsDropped_{reason}", count)
        likeness = [score for _, score in kept]
        self.lifecycle.mark_collected(slot, stored, slot.predict_time, likeness, kept.drops, crops=kept.crops)
        if not self._still_generating(job.job_id):
            self._delete_results_of(job.job_id, slot.slot, slot.num_outputs)  # the job was deleted while we copied
            return 0
        return len(stored)

    def _copy_outputs(self, job: Job, slot: Prediction) -> KeptOutputs:
        """The outputs that are valid 1024×1024 PNGs showing exactly the job's person, stamped as AI-made and
        copied; returns their result numbers with their likeness, and what was dropped why."""
        style, k = slot.slot.split("#")
        kept = KeptOutputs()
        person = self._person_of(job)
        for i, url in enumerate(slot.outputs[: slot.num_outputs]):
            if i and not self._still_generating(job.job_id):
                break  # deleted meanwhile: nothing more is written (store_outputs removes what was)
            number = int(k) * self.settings.outputs_per_prediction + i + 1
            key = keys.result(job.job_id, style, number)
            if self.blobs.size(key) is not None:  # stored by an earlier attempt that died before recording it
                judged, pixels = self._judge(self.blobs.get(key, self.settings.max_output_bytes), person)
                kept.add(number, judged.likeness or 0)
                self._crop(job, style, number, pixels, judged, kept)
                continue
            try:
                data = self._fetch_png(url)
            except OutputInvalid:
                kept.drop("invalid")
                continue
            judged, pixels = self._judge(data, person)
            if judged.drop:
                kept.drop(judged.drop)
                continue
            self.blobs.put(key, self.provenance.stamp(data, "image/png") if self.provenance else data, "image/png")
            kept.add(number, judged.likeness or 0)
            self._crop(job, style, number, pixels, judged, kept)
        return kept

    def _crop(
        self, job: Job, style: str, number: int, pixels: Pixels | None, judged: OutputJudgement, kept: KeptOutputs
    ) -> None:
        """The result's LinkedIn-ready square, stamped as the result is; none when the face allows no good one."""
        from portrait_studio.services.crops import linkedin_crop

        if judged.face is None or pixels is None:
            return
        crop = linkedin_crop(pixels, judged.face)
        if crop is None:
            self.metrics.count("CropsSkipped")
            return
        stamped = self.provenance.stamp(crop, "image/jpeg") if self.provenance else crop
        self.blobs.put(keys.crop(job.job_id, style, number), stamped, "image/jpeg")
        kept.crops.append(number)

    def _fetch_png(self, url: str) -> bytes:
        from PIL import Image

        data, content_type = self.downloader.fetch(url, self.settings.max_output_bytes)
        if not data.startswith(PNG_MAGIC) or content_type.split(";")[0].strip() not in ("image/png", ""):
            raise OutputInvalid()
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG" or image.size != OUTPUT_SIZE:
                raise OutputInvalid()
        return data

    def _person_of(self, job: Job) -> _PersonOnce:
        if self._people is None:
            return _PersonOnce(self, job)
        return self._people.setdefault(job.job_id, _PersonOnce(self, job))

    def _judge(self, data: bytes, person: _PersonOnce) -> tuple[OutputJudgement, Pixels | None]:
        """The gate's verdict, and the image's pixels when it decoded them (for the crop: decoded once)."""
        from portrait_studio.services.identity import OutputJudgement, decode_output, judge_pixels

        consensus = person.get()
        if consensus is None:  # no reference face could be read: nothing to measure against, keep the image
            return OutputJudgement(drop=None, faces=1, distance=None, likeness=None), None
        try:
            pixels = decode_output(data)
            return judge_pixels(pixels, consensus, self.settings), pixels
        except ValueError:
            return OutputJudgement(drop="no_face", faces=0, distance=None, likeness=None), None

    def _still_generating(self, job_id: str) -> bool:
        job = self.store.get_job(job_id)
        return isinstance(job, Job) and (job.status == JobStatus.GENERATING or job.status.is_finished)

    def _delete_results_of(self, job_id: str, slot: str, outputs: int) -> None:
        style, k = slot.split("#")
        base = int(k) * self.settings.outputs_per_prediction
        numbers = [base + i + 1 for i in range(outputs)]
        self.blobs.delete(
            [keys.result(job_id, style, n) for n in numbers] + [keys.crop(job_id, style, n) for n in numbers]
        )

    def _retry_or_give_up(self, slot: Prediction) -> None:
        if slot.attempts >= self.settings.max_attempts_per_slot:
            self.lifecycle.give_up(slot, slot.error or "the prediction failed")
            return
        # Back to planned, then a dispatch; if that message is lost, the reconciler sends another.
        if self.lifecycle.retry(slot):
            self.queue.send(self.settings.dispatch_queue_url, {"job_id": slot.job_id, "slots": [slot.slot]})


class KeptOutputs:
    """What the gate let through of one prediction (result number, likeness) and what it dropped, by reason."""

    def __init__(self) -> None:
        self._kept: list[tuple[int, int]] = []
        self.drops: dict[str, int] = {}
        self.crops: list[int] = []  # the kept results that have a LinkedIn-ready crop

    def add(self, number: int, likeness: int) -> None:
        self._kept.append((number, likeness))

    def drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self._kept)


class _PersonOnce:
    """The job's person (the mean descriptor of its reference photos), computed at most once per collect
    invocation, in memory only: it is never stored, logged or passed on, and it is gone when the invocation ends
    (`CollectService.one_invocation`; outside one, when the message's collect ends)."""

    def __init__(self, collector: CollectService, job: Job) -> None:
        self._collector = collector
        self._job = job
        self._done = False
        self._consensus: Descriptor | None = None

    def get(self) -> Descriptor | None:
        if not self._done:
            self._consensus = self._compute()
            self._done = True
        return self._consensus

    def _compute(self) -> Descriptor | None:
        from portrait_studio.services.identity import check_one_person, describe_references
        from portrait_studio.services.plan import select_references

        c = self._collector
        references = select_references(
            c.store.list_files(self._job.job_id), c.settings.identity_same_person_max_distance
        )
        descriptors = describe_references(c.blobs, self._job.job_id, references, c.settings)
        return check_one_person(descriptors, c.settings).consensus

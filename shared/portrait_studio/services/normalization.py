"""The normalize step of a job: one uploaded file → a normalized reference (or a verdict), then,
when the job's last file is done, exactly one move on: to payment or back to collecting.

This runs the decoders on untrusted bytes, so its function holds no payment key: the checkout of a job it moves
to payment is opened by the API when the page next looks (GET /jobs/{id}), or by the reconciler."""

from __future__ import annotations

from dataclasses import dataclass, field

from portrait_studio import keys
from portrait_studio.config import Settings
from portrait_studio.errors import (
    DifferentPerson,
    NoSinglePerson,
    PhotoRejected,
    ProcessingFailed,
    UploadMissing,
)
from portrait_studio.models import FileStatus, Job, JobStatus, UploadFile, Verdict
from portrait_studio.ports import BlobStore, Clock, JobStore, Metrics, NullMetrics, Queue
from portrait_studio.services.lifecycle import Lifecycle

ACCEPTED = Verdict(accepted=True, code="accepted", message="Looks good.")


@dataclass
class NormalizationService:
    settings: Settings
    store: JobStore
    blobs: BlobStore
    queue: Queue
    clock: Clock
    metrics: Metrics = field(default_factory=NullMetrics)

    def __post_init__(self) -> None:
        self.lifecycle = Lifecycle(self.store, self.clock)

    def process(self, job_id: str, file_id: str) -> str:
        """Normalize one file. Returns its verdict code ("accepted" or a refusal code)."""
        from portrait_studio.services.photos import check_photo

        job = self.store.get_job(job_id)
        if not isinstance(job, Job) or job.status != JobStatus.NORMALIZING:
            return "skipped"
        files = self.store.list_files(job_id)
        file = next((f for f in files if f.file_id == file_id), None)
        if file is None or file.status != FileStatus.QUEUED:
            self.advance_if_done(job_id)  # a redelivery after a crash still finishes the job's round
            return "skipped"
        upload_key = keys.upload(job_id, file_id)
        others = {
            f.file_id: f.quality.phash
            for f in files
            if f.file_id != file_id and f.status == FileStatus.ACCEPTED and f.quality and f.quality.phash
        }
        try:
            try:
                data = self.blobs.get(upload_key, max_bytes=self.settings.max_file_bytes)
            except KeyError as exc:
                raise UploadMissing() from exc
            checked = check_photo(data, self.settings, others)
            del data
            self.blobs.put(keys.reference(job_id, file_id), checked.normalized.jpeg, "image/jpeg")
            updated = file.model_copy(
                update={"status": FileStatus.ACCEPTED, "verdict": ACCEPTED, "quality": checked.quality}
            )
        except PhotoRejected as rejection:
            verdict = Verdict(accepted=False, **rejection.verdict())
            updated = file.model_copy(update={"status": FileStatus.REFUSED, "verdict": verdict})
        self.metrics.count("PhotosAccepted" if updated.status == FileStatus.ACCEPTED else "PhotosRefused")
        # The raw upload goes as soon as its fate is decided: only the normalized copy is kept.
        self.blobs.delete([upload_key])
        self.store.record_verdict(job_id, updated)
        self.advance_if_done(job_id)
        assert updated.verdict is not None
        return updated.verdict.code

    def rescue_stuck(self) -> int:
        """Give up on photos whose normalization never finished (their messages went to the DLQ), so
        the job moves on instead of staying `normalizing` forever. Returns the photos given up on."""
        given_up = 0
        now = self.clock.now()
        for job_id in self.store.jobs_normalizing():
            job = self.store.get_job(job_id)
            if not isinstance(job, Job) or (now - job.updated_at).total_seconds() < self.settings.normalize_stuck_s:
                continue
            for file in self.store.list_files(job_id):
                if file.status == FileStatus.QUEUED:
                    verdict = Verdict(accepted=False, **ProcessingFailed().verdict())
                    self.store.record_verdict(
                        job_id, file.model_copy(update={"status": FileStatus.REFUSED, "verdict": verdict})
                    )
                    self.blobs.delete([keys.upload(job_id, file.file_id)])
                    given_up += 1
            self.advance_if_done(job_id)
        if given_up:
            self.metrics.count("PhotosGivenUp", given_up)
        return given_up

    def advance_if_done(self, job_id: str) -> None:
        job = self.store.get_job(job_id)
        if not isinstance(job, Job) or job.status != JobStatus.NORMALIZING or job.pending_files > 0:
            return
        files = self.store.list_files(job_id)
        if any(f.status == FileStatus.QUEUED for f in files):
            return
        checked, problem = self._check_one_person(job_id, [f for f in files if f.status == FileStatus.ACCEPTED])
        usable = sum(1 for f in checked if f.status == FileStatus.ACCEPTED)
        # The move is conditional on the round read above: another call (a redelivered message, two photos done
        # at once) may have decided this round while the faces were compared, and the person submitted again.
        if problem or usable < self.settings.min_files:
            if self.lifecycle.ask_for_more_photos(job_id, checked, problem, round=job.round):
                self._forget_refused(job_id, checked)
            return
        # The conditional move happens once. The checkout is opened by the API when the page looks next (or the
        # reconciler): never here, where untrusted images are decoded.
        if self.lifecycle.await_payment(job_id, checked, round=job.round):
            self._forget_refused(job_id, checked)

    def _check_one_person(self, job_id: str, accepted: list[UploadFile]) -> tuple[list[UploadFile], str | None]:
        """Compare the accepted photos' faces (descriptors in memory only, for this call): a photo far from the
        others' person is refused `different_person`; no majority person at all is the job's problem
        `no_single_person`. Returns every accepted file with its new verdict and distance, and the problem."""
        from portrait_studio.services.identity import check_one_person, describe_references

        if len(accepted) < 2:
            return accepted, None
        descriptors = describe_references(self.blobs, job_id, accepted, self.settings)
        check = check_one_person(descriptors, self.settings)
        del descriptors
        if not check.single_person:
            self.metrics.count("JobsWithoutOnePerson")
            return accepted, NoSinglePerson.code
        refused = Verdict(accepted=False, **DifferentPerson().verdict())
        checked = []
        for f in accepted:
            update: dict[str, object] = {}
            if f.quality is not None:
                update["quality"] = f.quality.model_copy(update={"identity_distance": check.distances.get(f.file_id)})
            if f.file_id in check.outliers:
                update |= {"status": FileStatus.REFUSED, "verdict": refused}
            checked.append(f.model_copy(update=update))
        if check.outliers:
            self.metrics.count("PhotosOfSomebodyElse", len(check.outliers))
        return checked, None

    def _forget_refused(self, job_id: str, checked: list[UploadFile]) -> None:
        """A photo refused as somebody else's is of no further use: its normalized copy goes at once."""
        refused = [keys.reference(job_id, f.file_id) for f in checked if f.status == FileStatus.REFUSED]
        if refused:
            self.blobs.delete(refused)

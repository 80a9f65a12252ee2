"""The job use cases behind the HTTP API: create, add photos, submit, look, archive."""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from portrait_studio import keys
from portrait_studio.api_models import (
    ArchiveResponse,
    BackdropView,
    CreateJobRequest,
    CreateJobResponse,
    ErrorDetail,
    FileSpec,
    FileView,
    JobView,
    PaymentView,
    RefundView,
    ResultItem,
    StyleProgress,
    SubmitResponse,
    TokenResponse,
    UploadTicket,
)
from portrait_studio.config import Settings
from portrait_studio.errors import (
    FileCountOutOfRange,
    FileTooLarge,
    JobNotFound,
    JobStateConflict,
    NoSinglePerson,
    SubmitLimitReached,
    TooManyRequests,
    UnsupportedContentType,
    UploadLimitReached,
    UploadsIncomplete,
)
from portrait_studio.models import STYLES, FileStatus, Job, JobStatus, Prediction, UploadFile
from portrait_studio.ports import BlobStore, Clock, JobStore, Queue
from portrait_studio.services.backdrops import backdrop_label, parse_backdrop
from portrait_studio.services.estimate import estimated_ready_at
from portrait_studio.services.lifecycle import Lifecycle
from portrait_studio.services.pacing import CreatePacer
from portrait_studio.services.plan import expected_per_style
from portrait_studio.services.variety import photo_hints

# What a job sent back for photos of different people says, in its message and its intake_error.
NO_SINGLE_PERSON = f"{NoSinglePerson.default_message} {NoSinglePerson.hint}"
# The page marks this many results per style as the closest to the person (the ones to try first).
CLOSEST_PER_STYLE = 2
CONTENT_TYPE_ALIASES = {"image/jpg": "image/jpeg", "image/x-png": "image/png"}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """256 random bits: the bearer secret of one job (only its hash is stored)."""
    return secrets.token_urlsafe(32)


def new_id() -> str:
    """128 random bits, URL-safe: job and file ids are not guessable."""
    return secrets.token_hex(16)


@dataclass
class JobsService:
    settings: Settings
    store: JobStore
    blobs: BlobStore
    queue: Queue
    clock: Clock

    # --- access ------------------------------------------------------------------------------------
    def authorize(self, job_id: str, token: str | None) -> Job:
        """The job, if the token is its own. Unknown job, tombstone and wrong token look the same."""
        record = self.store.get_job(job_id) if keys.is_valid_id(job_id) else None
        presented = hash_token(token or "")
        if not isinstance(record, Job):
            hmac.compare_digest(presented, presented)  # same work either way
            raise JobNotFound()
        # The page's token, or one minted for an emailed private link (until the link is rotated).
        matches = [hmac.compare_digest(presented, h) for h in (record.token_hash, *record.link_token_hashes)]
        if not token or not any(matches):  # every hash compared: the time says nothing about which matched
            raise JobNotFound()
        return record

    def rotate_token(self, job_id: str, token: str | None) -> TokenResponse:
        """A new private link: a new token, and every earlier one (the page's, emailed links) dead at once."""
        job = self.authorize(job_id, token)
        fresh = new_token()
        if not self.store.update_job(
            job_id, expect_fields={"token_hash": job.token_hash}, token_hash=hash_token(fresh), link_token_hashes=[]
        ):
            raise JobNotFound()  # rotated meanwhile (elsewhere) or deleted: this token is dead either way
        return TokenResponse(job_id=job_id, token=fresh)

    # --- create ------------------------------------------------------------------------------------
    def create(self, request: CreateJobRequest, client_key: str) -> CreateJobResponse:
        now = self.clock.now()
        self._rate_limit(client_key, now)
        count = len(request.files)
        if not self.settings.min_files <= count <= self.settings.max_files:
            raise FileCountOutOfRange(
                f"Upload between {self.settings.min_files} and {self.settings.max_files} photos; you sent {count}."
            )
        backdrop = parse_backdrop(request.backdrop, request.backdrop_color)
        files = self._new_files(request.files, round=0)
        token = new_token()
        job = Job(
            job_id=new_id(),
            token_hash=hash_token(token),
            status=JobStatus.COLLECTING,
            subject=request.subject,
            styles=tuple(dict.fromkeys(request.styles)) if request.styles else STYLES,
            backdrop=backdrop,
            created_at=now,
            expires_at=now + timedelta(hours=self.settings.retention_hours),
            updated_at=now,
            uploads_granted=len(files),
        )
        self.store.create_job(job, files)
        return CreateJobResponse(
            job_id=job.job_id,
            token=token,
            status=job.status,
            expires_at=job.expires_at,
            uploads=[self._ticket(job, f, now) for f in files],
        )

    def add_files(self, job_id: str, token: str | None, specs: Sequence[FileSpec]) -> list[UploadTicket]:
        job = self.authorize(job_id, token)
        if job.status != JobStatus.COLLECTING:
            raise JobStateConflict("Photos can only be added while the job is collecting photos.")
        self._check_upload_room(job, len(specs))
        live = [f for f in self.store.list_files(job_id) if f.status != FileStatus.REFUSED]
        if len(live) + len(specs) > self.settings.max_files:
            raise FileCountOutOfRange(f"A job holds at most {self.settings.max_files} usable photos.")
        files = self._new_files(specs, round=job.round + 1)
        # The places are counted in the same conditional write that adds the files: racing adds cannot both fit.
        if not self.store.add_files(job_id, files, self.settings.max_uploads_per_job):
            current = self.store.get_job(job_id)
            if isinstance(current, Job) and current.status == JobStatus.COLLECTING:
                self._check_upload_room(current, len(specs))
            raise JobStateConflict("Photos can only be added while the job is collecting photos.")
        now = self.clock.now()
        return [self._ticket(job, f, now) for f in files]

    def _check_upload_room(self, job: Job, adding: int) -> None:
        limit = self.settings.max_uploads_per_job
        if job.uploads_granted + adding > limit:
            left = max(0, limit - job.uploads_granted)
            raise UploadLimitReached(
                f"A job can take {limit} photos in all, removed ones included; {left} left. "
                "Start a new job to try other photos.",
                details={"limit": limit, "left": left},
            )

    def remove_file(self, job_id: str, token: str | None, file_id: str) -> None:
        """Drop a photo while collecting: one that never arrived (an expired upload link), was refused, or was
        accepted but is not wanted (e.g. not of the person, after `no_single_person`)."""
        self.authorize(job_id, token)
        if not keys.is_valid_id(file_id) or not self.store.remove_file(job_id, file_id):
            raise JobStateConflict("Photos can be removed only while you are adding photos, not while checked.")
        self.blobs.delete([keys.upload(job_id, file_id), keys.reference(job_id, file_id)])

    def _new_files(self, specs: Sequence[FileSpec], round: int) -> list[UploadFile]:
        files = []
        for spec in specs:
            content_type = CONTENT_TYPE_ALIASES.get(spec.content_type.lower(), spec.content_type.lower())
            if content_type not in self.settings.allowed_content_types:
                raise UnsupportedContentType(
                    f"{spec.content_type!s} is not accepted. Use JPEG, PNG, WebP, HEIC/HEIF or AVIF.",
                    details={"accepted": list(self.settings.allowed_content_types)},
                )
            if spec.bytes > self.settings.max_file_bytes:
                raise FileTooLarge(f"Each photo may be at most {self.settings.max_file_bytes // (1024 * 1024)} MB.")
            files.append(
                UploadFile(
                    file_id=new_id()[:16],
                    name=spec.name,
                    content_type=content_type,
                    declared_bytes=spec.bytes,
                    round=round,
                )
            )
        return files

    def _ticket(self, job: Job, file: UploadFile, now: datetime) -> UploadTicket:
        ttl = self.settings.upload_url_ttl_s
        url = self.blobs.presign_put(keys.upload(job.job_id, file.file_id), file.content_type, file.declared_bytes, ttl)
        return UploadTicket(
            file_id=file.file_id,
            name=file.name,
            url=url,
            headers={"Content-Type": file.content_type, "Content-Length": str(file.declared_bytes)},
            expires_at=now + timedelta(seconds=ttl),
        )

    def _rate_limit(self, client_key: str, now: datetime) -> None:
        window = now.replace(minute=0, second=0, microsecond=0)
        key = hashlib.sha256(client_key.encode()).hexdigest()[:32]  # no raw IPs stored
        limit = self.settings.create_job_rate_per_hour
        if self.store.hit_rate_limit(key, window, limit, window + timedelta(hours=2)):
            wait = (window + timedelta(hours=1) - now).total_seconds()  # the hour's window ends then
            raise TooManyRequests(
                "Too many new jobs from here in the last hour. Please try again later.", retry_after_s=wait
            )

    # --- submit ------------------------------------------------------------------------------------
    def submit(self, job_id: str, token: str | None) -> SubmitResponse:
        job = self.authorize(job_id, token)
        if job.status != JobStatus.COLLECTING:
            raise JobStateConflict(f"The job is already {job.status.value}.")
        self._check_submits_left(job)
        files = self.store.list_files(job_id)
        waiting = [f for f in files if f.status == FileStatus.AWAITING_UPLOAD]
        usable_so_far = sum(1 for f in files if f.status == FileStatus.ACCEPTED)
        if not waiting:
            raise JobStateConflict("Add photos before submitting.")
        missing, wrong_size = [], []
        for f in waiting:
            size = self.blobs.size(keys.upload(job_id, f.file_id))
            if size is None:
                missing.append(f.file_id)
            elif size != f.declared_bytes:
                wrong_size.append(f.file_id)
        if missing or wrong_size:
            raise UploadsIncomplete(
                "Some photos have not arrived (or arrived incomplete). Upload them and submit again.",
                details={"missing": missing, "size_mismatch": wrong_size},
            )
        if usable_so_far + len(waiting) < self.settings.min_files:
            raise FileCountOutOfRange(f"At least {self.settings.min_files} usable photos are needed.")
        round = job.round + 1
        limit = self.settings.max_submits_per_job
        if not Lifecycle(self.store, self.clock).submit(job_id, [f.file_id for f in waiting], round, limit):
            current = self.store.get_job(job_id)
            if isinstance(current, Job) and current.status == JobStatus.COLLECTING:
                self._check_submits_left(current)
            raise JobStateConflict("The job changed while submitting; look at it and try again.")
        self.queue.send_batch(
            self.settings.normalize_queue_url,
            [{"job_id": job_id, "file_id": f.file_id, "round": round} for f in waiting],
        )
        return SubmitResponse(job_id=job_id, status=JobStatus.NORMALIZING, queued_files=len(waiting))

    def _check_submits_left(self, job: Job) -> None:
        limit = self.settings.max_submits_per_job
        if job.round >= limit:
            raise SubmitLimitReached(
                f"A job can be submitted {limit} times; this one has been. Start a new job to try other photos.",
                details={"limit": limit},
            )

    # --- look --------------------------------------------------------------------------------------
    def view(self, job_id: str, token: str | None) -> JobView:
        job = self.authorize(job_id, token)
        now = self.clock.now()
        files = self.store.list_files(job_id)
        slots = self.store.list_slots(job_id)
        expected = expected_per_style(job.styles, self.settings)
        for extra in (s for s in slots if s.more_round):  # "More like this" rounds: shown in progress as the rest
            expected[extra.style] = expected.get(extra.style, 0) + extra.num_outputs
        url_ttl = self._get_url_ttl(job, now)
        styles: list[StyleProgress] = []
        ranked_by_style = _ranked_results(job_id, slots)
        for style in job.styles:
            ranked = ranked_by_style.get(style, [])
            urls = [self.blobs.presign_get(r.key, url_ttl) for r in ranked] if url_ttl else []
            crops = [self.blobs.presign_get(r.crop_key, url_ttl) if r.crop_key else None for r in ranked]
            styles.append(
                StyleProgress(
                    style=style,
                    expected=expected[style],
                    done=len(ranked),
                    results=urls,
                    items=[
                        ResultItem(
                            url=url,
                            likeness=r.likeness,
                            closest=r.rank <= CLOSEST_PER_STYLE,
                            linkedin_url=crop,
                            result=f"{style}/{r.number}",
                            more=r.more,
                        )
                        for url, crop, r in zip(urls, crops, ranked, strict=True)
                    ],
                )
            )
        in_flight = any(not s.status.is_terminal for s in slots)
        return JobView(
            job_id=job.job_id,
            status=job.status,
            subject=job.subject,
            backdrop=BackdropView(kind=job.backdrop.kind, label=backdrop_label(job.backdrop), color=job.backdrop.color),
            created_at=job.created_at,
            expires_at=job.expires_at,
            files=[self._file_view(job_id, f, url_ttl) for f in files],
            usable_files=sum(1 for f in files if f.status == FileStatus.ACCEPTED),
            styles=styles,
            images_done=sum(s.done for s in styles),
            images_expected=sum(expected.values()),
            message=_status_message(job, files, in_flight, self.settings),
            failure_reason=job.failure_reason,
            estimated_ready_at=self._estimate(job, slots, now),
            checkout_url=job.checkout_url if job.status == JobStatus.AWAITING_PAYMENT else None,
            checkout_expires_at=job.checkout_expires_at if job.status == JobStatus.AWAITING_PAYMENT else None,
            intake_error=_intake_error(job),
            payment=_payment_view(job),
            refund=_refund_view(job),
            more_rounds_left=_more_rounds_left(job, self.settings),
            hints=photo_hints(job.status, files),
        )

    def _estimate(self, job: Job, slots: Sequence[Prediction], now: datetime) -> datetime | None:
        if job.status != JobStatus.GENERATING:
            return None
        pacer = CreatePacer(self.store, self.clock, self.settings.creates_per_minute)
        return estimated_ready_at(slots, now, pacer.free_at(), pacer.interval_s, self.settings)

    def _get_url_ttl(self, job: Job, now: datetime) -> int:
        """Result links live ≤ 1 h and never beyond the job's expiry."""
        left = int((job.expires_at - now).total_seconds())
        return max(0, min(self.settings.result_url_ttl_s, left))

    # --- archive -----------------------------------------------------------------------------------
    def archive(self, job_id: str, token: str | None) -> ArchiveResponse:
        import zipfile

        job = self.authorize(job_id, token)
        if job.status not in (JobStatus.READY, JobStatus.PARTIAL):
            raise JobStateConflict("The archive is available once the job is ready.")
        now = self.clock.now()
        ranked = [r for results in _ranked_results(job_id, self.store.list_slots(job_id)).values() for r in results]
        key = keys.archive(job_id, len(ranked))
        if self.blobs.size(key) is None:
            # Built once: PNGs are already compressed, so store them without deflating again.
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
                for r in ranked:
                    archive.writestr(keys.archive_member(r.key, r.rank, r.likeness), self.blobs.get(r.key))
                    if r.crop_key:
                        member = keys.archive_crop_member(r.key, r.rank, r.likeness)
                        archive.writestr(member, self.blobs.get(r.crop_key))
            self.blobs.put(key, buffer.getvalue(), "application/zip")
        ttl = self._get_url_ttl(job, now)
        return ArchiveResponse(
            url=self.blobs.presign_get(key, ttl),
            expires_at=now + timedelta(seconds=ttl),
            images=len(ranked),
            linkedin_crops=sum(1 for r in ranked if r.crop_key),
        )

    def _file_view(self, job_id: str, f: UploadFile, url_ttl: int) -> FileView:
        view = _file_view(f)
        if f.status == FileStatus.ACCEPTED and url_ttl:
            view.thumbnail_url = self.blobs.presign_get(keys.reference(job_id, f.file_id), url_ttl)
        return view


def _more_rounds_left(job: Job, settings: Settings) -> int:
    if job.status not in (JobStatus.READY, JobStatus.PARTIAL):
        return 0
    return max(0, settings.more_rounds_per_job - job.more_rounds)


def _intake_error(job: Job) -> ErrorDetail | None:
    if job.status != JobStatus.COLLECTING or job.intake_problem != NoSinglePerson.code:
        return None
    return ErrorDetail(code=NoSinglePerson.code, message=NO_SINGLE_PERSON)


def _payment_view(job: Job) -> PaymentView | None:
    p = job.payment
    if p is None:
        return None
    return PaymentView(
        amount_subtotal=p.amount_subtotal,
        amount_discount=p.amount_discount,
        amount_total=p.amount_total,
        currency=p.currency,
        paid_at=p.paid_at,
    )


def _refund_view(job: Job) -> RefundView | None:
    if job.refund is not None:
        r = job.refund
        return RefundView(
            amount=r.amount, currency=r.currency, reason=r.reason, status="refunded", refunded_at=r.refunded_at
        )
    if job.refund_due > 0 and job.payment is not None:
        reason = job.refund_reason or "failed"
        return RefundView(amount=job.refund_due, currency=job.payment.currency, reason=reason, status="pending")
    return None


class RankedResult(NamedTuple):
    key: str
    likeness: int
    rank: int  # 1 = the most like the person within its style
    crop_key: str | None = None  # its LinkedIn-ready crop, when it has one
    number: int = 0  # its number within the style (keys.result)
    more: bool = False  # made by a round of More like this


def _ranked_results(job_id: str, slots: Sequence[Prediction]) -> dict[str, list[RankedResult]]:
    """Each style's stored results, the most like the person first, from the slot records: a status look lists
    nothing in the bucket (a listing is an R2 class A operation, and the page looks every few seconds)."""
    found: dict[str, list[tuple[int, int]]] = {}
    cropped: set[tuple[str, int]] = set()
    extra: set[tuple[str, int]] = set()
    for slot in slots:
        if slot.more_round:
            extra.update((slot.style, number) for number in slot.results)
        scores = slot.likeness if len(slot.likeness) == len(slot.results) else [0] * len(slot.results)
        found.setdefault(slot.style, []).extend(zip(slot.results, scores, strict=True))
        cropped.update((slot.style, number) for number in slot.crops)
    ranked: dict[str, list[RankedResult]] = {}
    for style, results in found.items():
        ordered = sorted(results, key=lambda r: (-r[1], r[0]))
        ranked[style] = [
            RankedResult(
                keys.result(job_id, style, number),
                likeness,
                rank,
                keys.crop(job_id, style, number) if (style, number) in cropped else None,
                number,
                (style, number) in extra,
            )
            for rank, (number, likeness) in enumerate(ordered, start=1)
        ]
    return ranked


def _file_view(f: UploadFile) -> FileView:
    verdict = f.verdict
    return FileView(
        file_id=f.file_id,
        name=f.name,
        status=f.status.value,
        accepted=None if verdict is None else verdict.accepted,
        code=None if verdict is None else verdict.code,
        message=None if verdict is None else verdict.message,
        hint=None if verdict is None or not verdict.hint else verdict.hint,
        width=f.quality.width if f.quality else None,
        height=f.quality.height if f.quality else None,
    )


def _status_message(job: Job, files: Sequence[UploadFile], in_flight: bool, settings: Settings) -> str | None:
    usable = sum(1 for f in files if f.status == FileStatus.ACCEPTED)
    if job.status == JobStatus.COLLECTING and job.intake_problem == NoSinglePerson.code:
        return NO_SINGLE_PERSON
    if job.status == JobStatus.COLLECTING and job.round > 0:
        need = settings.min_files - usable
        if need > 0:
            return f"{usable} usable photo(s) so far: add at least {need} more and submit again."
    if job.status in (JobStatus.PARTIAL, JobStatus.FAILED) and job.failure_reason:
        return job.failure_reason
    if job.status == JobStatus.GENERATING and not in_flight:
        return "Finishing up."
    return job.note

"""Domain models (pydantic v2). All datetimes are tz-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_require_utc)]


class JobStatus(StrEnum):
    COLLECTING = "collecting"
    NORMALIZING = "normalizing"
    AWAITING_PAYMENT = "awaiting_payment"  # photos accepted; no prediction until a verified Stripe payment
    GENERATING = "generating"
    READY = "ready"  # at least `images_minimum` headshots
    PARTIAL = "partial"  # some headshots, fewer than `images_minimum`: the budget or the time ran out
    FAILED = "failed"  # nothing to show
    DELETED = "deleted"
    EXPIRED = "expired"

    @property
    def is_tombstone(self) -> bool:
        return self in (JobStatus.DELETED, JobStatus.EXPIRED)

    @property
    def is_finished(self) -> bool:
        """Generation is over: the job changes again only by a round of "more like this" (ready/partial →
        generating → the same outcome) or its deletion."""
        return self in (JobStatus.READY, JobStatus.PARTIAL, JobStatus.FAILED)


class FileStatus(StrEnum):
    AWAITING_UPLOAD = "awaiting_upload"
    QUEUED = "queued"
    ACCEPTED = "accepted"
    REFUSED = "refused"


class SlotStatus(StrEnum):
    PLANNED = "planned"  # owed: written when generation starts (or by a top-up / retry), no prediction yet
    CLAIMED = "claimed"  # a dispatch owns the slot and is creating its prediction
    STARTING = "starting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"  # outputs known, not yet copied to the bucket
    FAILED = "failed"
    CANCELED = "canceled"
    ABORTED = "aborted"
    COLLECTED = "collected"  # outputs copied: the slot is done
    GAVE_UP = "gave_up"  # retries exhausted

    @property
    def is_terminal(self) -> bool:
        # A failed or canceled prediction is not the end of its slot: collect retries it or gives up.
        return self in (SlotStatus.COLLECTED, SlotStatus.GAVE_UP)

    @property
    def has_prediction_outcome(self) -> bool:
        return self in (SlotStatus.SUCCEEDED, SlotStatus.FAILED, SlotStatus.CANCELED, SlotStatus.ABORTED)


Subject = Literal["man", "woman", "person"]
Style = Literal["corporate", "business_casual", "creative", "formal"]
STYLES: tuple[Style, ...] = ("corporate", "business_casual", "creative", "formal")
BackdropKind = Literal["studio_grey", "office", "outdoors", "solid"]
BACKDROPS: tuple[BackdropKind, ...] = ("studio_grey", "office", "outdoors", "solid")
HEX_COLOR = r"^#[0-9a-f]{6}$"


class Backdrop(BaseModel):
    """The backdrop of every headshot of a job, chosen before payment. `color` (lowercase #rrggbb) iff solid."""

    model_config = ConfigDict(frozen=True)
    kind: BackdropKind = "studio_grey"
    color: Annotated[str, Field(pattern=HEX_COLOR)] | None = None


class FaceBox(BaseModel):
    model_config = ConfigDict(frozen=True)
    left: int
    top: int
    width: int
    height: int


class PhotoQuality(BaseModel):
    """What reference selection needs about an accepted photo. Never the face embedding."""

    model_config = ConfigDict(frozen=True)
    width: int
    height: int
    face: FaceBox
    face_fraction: float
    sharpness: float
    yaw_hint: float = 0.0  # -1 (looking left) .. 1 (looking right), from landmarks-free box offset
    phash: str = ""
    # Distance of this face from the job's person (their photos' consensus): a derived number, never the embedding.
    identity_distance: float | None = None


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)
    accepted: bool
    code: str
    message: str
    hint: str = ""


class UploadFile(BaseModel):
    file_id: str
    name: str
    content_type: str
    declared_bytes: int
    status: FileStatus = FileStatus.AWAITING_UPLOAD
    verdict: Verdict | None = None
    quality: PhotoQuality | None = None
    round: int = 0


class Payment(BaseModel):
    """What Stripe says was paid for a job (integer cents). No card or personal data."""

    model_config = ConfigDict(frozen=True)
    checkout_session_id: str
    payment_intent: str | None  # None when a promotion code made it free (Stripe: no_payment_required)
    amount_subtotal: int
    amount_discount: int
    amount_total: int
    currency: str
    paid_at: UtcDatetime


class Refund(BaseModel):
    model_config = ConfigDict(frozen=True)
    refund_id: str
    amount: int
    currency: str
    # `outside`: made in Stripe's dashboard (support), found and recorded by the ledger.
    reason: Literal["failed", "partial", "deleted", "outside"]
    refunded_at: UtcDatetime


class Job(BaseModel):
    job_id: str
    token_hash: str
    status: JobStatus
    subject: Subject = "person"
    styles: tuple[Style, ...] = STYLES
    backdrop: Backdrop = Backdrop()
    created_at: UtcDatetime
    expires_at: UtcDatetime
    updated_at: UtcDatetime
    round: int = 0  # submits so far: each queues the new photos for checking (capped by max_submits_per_job)
    pending_files: int = 0
    # Upload places ever granted (at create and every add): removing a photo does not give one back, so the free
    # work on an unpaid job is bounded (max_uploads_per_job).
    uploads_granted: int = 0
    generating_since: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    topups_used: int = 0
    # "More like this" rounds started (at most settings.more_rounds_per_job), and the outcome the job had before
    # its first: a round adds headshots but never changes the job's outcome, its refund or its email.
    more_rounds: int = 0
    delivered_as: Literal["ready", "partial"] | None = None
    # Predictions this job may create (retries and top-ups included) and how many it has reserved so far.
    prediction_budget: int = 0
    predictions_reserved: int = 0
    # Set when Replicate throttled a dispatch: the reconciler leaves planned slots alone until then.
    dispatch_retry_at: UtcDatetime | None = None
    failure_reason: str | None = None
    note: str | None = None
    predict_seconds: float = 0.0
    # Why the last submit came back to collecting when no single photo was at fault (e.g. `no_single_person`).
    intake_problem: str | None = None
    # Checkout: one Stripe Checkout Session per job, opened when its photos are accepted.
    checkout_session_id: str | None = None
    checkout_url: str | None = None
    checkout_expires_at: UtcDatetime | None = None
    payment: Payment | None = None
    # Owed when the job ended short (set with the outcome, in the same write); `refund` once Stripe made it.
    refund_due: int = 0
    refund_reason: Literal["failed", "partial", "deleted"] | None = None
    refund: Refund | None = None
    # Refunds made outside the product (Stripe's dashboard) that the ledger found and recorded here.
    outside_refunds: list[Refund] = Field(default_factory=list)
    # The address Stripe Checkout collected: personal data, kept only until the outcome's email is sent.
    email: str | None = None
    notified_outcome: str | None = None  # the outcome an email was sent (or attempted) for: at most one each
    # Set with the outcome: the refund and the email still to do (services/aftercare.py clears it).
    aftercare_due: bool = False
    # Why it is being deleted, while a purge is under way (status deleted/expired, not yet a tombstone).
    deletion_reason: Literal["expired", "user_request", "checkout_expired"] | None = None
    # The receipt a DELETE answers with, written with the deletion so a retried DELETE answers the same one.
    deletion_receipt: str | None = None
    # Tokens minted for emailed private links; rotating the link (a new token_hash) empties it.
    link_token_hashes: list[str] = Field(default_factory=list)


class Prediction(BaseModel):
    """A slot `PRED#{style}#{k}`: one Replicate prediction of `num_outputs` images."""

    job_id: str
    slot: str
    style: Style
    prompt_index: int
    seed: int
    num_outputs: int
    status: SlotStatus = SlotStatus.PLANNED
    prediction_id: str | None = None
    attempts: int = 0
    changed_at: UtcDatetime  # the last transition: the reconciler's measure of "stuck"
    claimed_at: UtcDatetime | None = None
    # A new id with every claim, carried in the prediction's webhook URL: a webhook from an earlier claim's
    # prediction (created, but its create response lost) is recognized as an orphan and canceled.
    claim_id: str | None = None
    created_at: UtcDatetime | None = None
    outputs: list[str] = Field(default_factory=list)
    images_collected: int = 0
    results: list[int] = Field(default_factory=list)  # numbers of the stored results (keys.result): no listing
    likeness: list[int] = Field(default_factory=list)  # each stored result's likeness (0-100), as `results`
    crops: list[int] = Field(default_factory=list)  # the results that have a LinkedIn-ready crop (keys.crop)
    # Outputs the gate dropped, by reason (no_face, extra_faces, not_like_you, invalid): the shortfall's words.
    drops: dict[str, int] = Field(default_factory=dict)
    predict_time: float | None = None
    error: str | None = None
    topup: bool = False
    more_round: int = 0  # 0: the paid plan (and its top-ups); n: the n-th "more like this" round


class Tombstone(BaseModel):
    job_id: str
    status: Literal[JobStatus.DELETED, JobStatus.EXPIRED]
    reason: Literal["expired", "user_request", "checkout_expired"]
    deleted_at: UtcDatetime
    objects_deleted: int
    receipt_id: str
    # The Checkout Session that paid for the job (Stripe's id, not personal): a late or replayed event of that
    # payment is recognized as the job's own, not refunded as a stray one.
    paid_session: str | None = None
    # What money moved for the job (Stripe's ids and integer cents only): the ledger matches Stripe against it.
    payment_intent: str | None = None
    amount_paid: int = 0
    refund: Refund | None = None
    # Refunds made outside the product (Stripe's dashboard) that the ledger found and recorded here.
    outside_refunds: list[Refund] = Field(default_factory=list)


def slot_key(style: str, k: int) -> str:
    return f"{style}#{k}"

"""Request and response bodies of the HTTP API (validated by the resolver; they make the OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from portrait_studio.models import BackdropKind, JobStatus, Style, Subject, UtcDatetime

FileName = Annotated[str, Field(min_length=1, max_length=255)]


class FileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: FileName
    content_type: Annotated[str, Field(min_length=1, max_length=100)]
    bytes: Annotated[int, Field(ge=1)]


class CreateJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: Annotated[list[FileSpec], Field(max_length=50)]
    styles: Annotated[list[Style] | None, Field(min_length=1, max_length=4)] = None
    subject: Subject = "person"
    # Plain strings, checked by the service: an unknown value gets `invalid_backdrop` with the allowed list.
    backdrop: Annotated[
        str | None,
        Field(max_length=32, description="studio_grey (default), office, outdoors or solid: every style's backdrop."),
    ] = None
    backdrop_color: Annotated[
        str | None, Field(max_length=16, description="The solid backdrop's colour as #rrggbb (solid only).")
    ] = None


class AddFilesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: Annotated[list[FileSpec], Field(min_length=1, max_length=50)]


class UploadTicket(BaseModel):
    file_id: str
    name: str
    url: str
    method: str = "PUT"
    headers: dict[str, str]
    expires_at: UtcDatetime


class CreateJobResponse(BaseModel):
    job_id: str
    token: str
    status: JobStatus
    expires_at: UtcDatetime
    uploads: list[UploadTicket]


class AddFilesResponse(BaseModel):
    job_id: str
    uploads: list[UploadTicket]


class FileView(BaseModel):
    file_id: str
    name: str
    status: str
    accepted: bool | None = None
    code: str | None = None
    message: str | None = None
    hint: str | None = None
    width: int | None = None
    height: int | None = None
    thumbnail_url: str | None = None  # the normalized photo (≤ 1024 px, no metadata), for every accepted file


class ResultItem(BaseModel):
    url: str
    likeness: Annotated[int, Field(ge=0, le=100, description="How much the face is like yours, 0-100.")]
    closest: Annotated[bool, Field(description="Among this style's closest likenesses: the ones to try first.")]
    result: Annotated[str, Field(description="This headshot's id (style/number), for More like this.")] = ""
    more: Annotated[bool, Field(description="Made by a round of More like this.")] = False
    linkedin_url: Annotated[
        str | None, Field(description="The same headshot as an 800 × 800 JPEG centred on the face (profile circles).")
    ] = None


class StyleProgress(BaseModel):
    style: Style
    expected: int
    done: int
    results: Annotated[list[str], Field(description="The headshots' links, the most like you first (as `items`).")]
    items: list[ResultItem] = Field(default_factory=list)


class BackdropView(BaseModel):
    kind: BackdropKind
    label: str
    color: str | None = None


class ErrorDetail(BaseModel):
    code: str
    message: str


class PriceView(BaseModel):
    amount: Annotated[int, Field(description="Integer cents, before any promotion code.")]
    currency: str
    images: int


class PaymentView(BaseModel):
    amount_subtotal: int
    amount_discount: Annotated[int, Field(description="What a promotion code took off, in cents.")]
    amount_total: Annotated[int, Field(description="What was paid, in cents.")]
    currency: str
    paid_at: UtcDatetime


class RefundView(BaseModel):
    amount: int
    currency: str
    reason: str
    status: Annotated[str, Field(description="`pending` until Stripe has made it, then `refunded`.")]
    refunded_at: UtcDatetime | None = None


class JobHint(BaseModel):
    """Advice about the job's photos that never blocks it (the person may still pay and go on)."""

    code: Annotated[Literal["low_variety"], Field(description="low_variety: the photos all show one pose.")]
    message: Annotated[str, Field(description="What to tell the person, in words.")]


class JobView(BaseModel):
    job_id: str
    status: JobStatus
    subject: Subject
    backdrop: BackdropView
    created_at: UtcDatetime
    expires_at: UtcDatetime
    files: list[FileView]
    usable_files: int
    styles: list[StyleProgress]
    images_done: int
    images_expected: int
    message: str | None = None
    failure_reason: str | None = None
    # While generating: when the headshots should be ready, from measured prediction times and the create line.
    estimated_ready_at: UtcDatetime | None = None
    # While awaiting_payment: Stripe Checkout's page for this job, and when it stops accepting payment.
    # Back in collecting when no single photo was at fault, e.g. `no_single_person` (photos of different people).
    intake_error: ErrorDetail | None = None
    checkout_url: str | None = None
    checkout_expires_at: UtcDatetime | None = None
    payment: PaymentView | None = None
    refund: RefundView | None = None
    more_rounds_left: Annotated[
        int, Field(description="Rounds of More like this still possible (while ready/partial).")
    ] = 0
    hints: Annotated[
        list[JobHint],
        Field(description="Non-blocking advice about the accepted photos (collecting, awaiting_payment)."),
    ] = Field(default_factory=list)


class TokenResponse(BaseModel):
    job_id: str
    token: Annotated[str, Field(description="The job's new token; every earlier one no longer works.")]


class SubmitResponse(BaseModel):
    job_id: str
    status: JobStatus
    queued_files: int


class MoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    result: Annotated[
        str,
        Field(
            pattern=r"^(corporate|business_casual|creative|formal)/[0-9]{1,3}$",
            description="The headshot to make more like: its `result` in GET /jobs/{id} (style/number).",
        ),
    ]


class MoreResponse(BaseModel):
    job_id: str
    status: JobStatus
    round: Annotated[int, Field(description="Which round of More like this this is (1 or 2).")]
    rounds_left: int
    images: Annotated[int, Field(description="New headshots this round makes, in the same style and prompt.")]


class ArchiveResponse(BaseModel):
    url: str
    expires_at: UtcDatetime
    images: int
    linkedin_crops: Annotated[int, Field(description="Square crops in the zip's linkedin/ folder.")] = 0


class ErrorBody(BaseModel):
    error: ErrorDetail

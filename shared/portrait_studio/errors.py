"""Domain errors: one hierarchy, stable codes, messages a person can read.

The API maps every `PortraitError` to `{"error": {"code", "message"}}` with its `http_status`;
nothing else (stack traces, internal names) ever reaches a client.
"""

from __future__ import annotations

from typing import ClassVar


class PortraitError(Exception):
    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Something went wrong on our side. Please try again."
    # When the same request may succeed again (a reply's `Retry-After`); None = no such moment.
    retry_after_s: float | None = None

    def __init__(self, message: str | None = None, *, details: dict[str, object] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)

    def to_body(self) -> dict[str, object]:
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


# --- client errors (API) ---------------------------------------------------------------------------
class InvalidRequest(PortraitError):
    code = "invalid_request"
    http_status = 400
    default_message = "The request is not valid."


class FileCountOutOfRange(InvalidRequest):
    code = "file_count_out_of_range"


class UnsupportedContentType(InvalidRequest):
    code = "unsupported_content_type"


class InvalidBackdrop(InvalidRequest):
    code = "invalid_backdrop"
    default_message = "Choose a backdrop we offer; a solid colour needs a hex value like #1f5fbf."


class FileTooLarge(InvalidRequest):
    code = "file_too_large"
    http_status = 413


class RequestTooLarge(InvalidRequest):
    code = "request_too_large"
    http_status = 413
    default_message = "The request body is too large."


class JobNotFound(PortraitError):
    """Also what a wrong or missing token gets: nobody learns whether a job exists."""

    code = "job_not_found"
    http_status = 404
    default_message = "No such job, or the token does not match."


class JobStateConflict(PortraitError):
    code = "job_state_conflict"
    http_status = 409
    default_message = "The job cannot do that in its current state."


class JobNotFinished(JobStateConflict):
    code = "job_not_finished"
    default_message = "More like this is possible once your headshots are ready."


class JobGone(JobStateConflict):
    code = "job_gone"
    default_message = "This job is being deleted: nothing more can be made for it."


class ResultNotFound(PortraitError):
    code = "result_not_found"
    http_status = 404
    default_message = "No such headshot in this job."


class UploadsIncomplete(PortraitError):
    code = "uploads_incomplete"
    http_status = 409
    default_message = "Some photos have not finished uploading."


class JobLimitReached(PortraitError):
    """The job has used its free work (photos checked before payment): a conflict with the job's state that no
    wait resolves (so 409, not 429 with a Retry-After); a new job starts afresh."""

    code = "job_limit_reached"
    http_status = 409
    default_message = "This job has reached its limit. Start a new job to try other photos."


class UploadLimitReached(JobLimitReached):
    code = "upload_limit_reached"
    default_message = "This job cannot take more photos. Start a new job to try other photos."


class SubmitLimitReached(JobLimitReached):
    code = "submit_limit_reached"
    default_message = "This job has been submitted as many times as it can be. Start a new job to try again."


class MoreLimitReached(JobLimitReached):
    code = "more_limit_reached"
    default_message = "This job has used its rounds of More like this."


class TooManyRequests(PortraitError):
    code = "rate_limited"
    http_status = 429
    default_message = "Too many requests. Please wait a little and try again."

    def __init__(self, message: str | None = None, *, retry_after_s: float = 60) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PaymentRequired(PortraitError):
    code = "payment_required"
    http_status = 402
    default_message = "This job has not been paid for."


class PaymentProviderUnavailable(PortraitError):
    """Stripe could not be reached or answered 5xx: retried (the reconciler), never a lost payment or refund."""

    code = "payment_provider_unavailable"
    http_status = 503
    default_message = "Payments are unavailable for a moment. Please try again shortly."


class PaymentProviderError(PortraitError):
    """Stripe refused a request (4xx): a configuration or state problem an operator must look at."""

    code = "payment_provider_error"
    http_status = 502
    default_message = "The payment provider refused the request."


class RefundNotRecorded(PortraitError):
    """A deleting job's refund is owed and not recorded yet: its record must not go before it is (retried)."""

    code = "refund_not_recorded"
    http_status = 503
    default_message = "The deletion is under way; it finishes within a minute."


class NotificationFailed(PortraitError):
    """An email could not be sent (SES refused or unreachable): logged and counted, never a failed job."""

    code = "notification_failed"
    http_status = 502
    default_message = "The email could not be sent."


class PaymentWebhookRejected(PortraitError):
    """A Stripe webhook that is forged, stale or malformed: 400, as Stripe's docs ask, and nothing changes."""

    code = "invalid_payment_webhook"
    http_status = 400
    default_message = "The payment webhook could not be verified."


class WebhookRejected(PortraitError):
    code = "invalid_webhook"
    http_status = 401
    default_message = "The webhook could not be verified."


# --- photo verdicts (normalization and the quality gate) -------------------------------------------
class PhotoRejected(PortraitError):
    """A photo we refuse. Never an HTTP error: it becomes the file's verdict and the job goes on."""

    http_status = 422
    hint: ClassVar[str] = ""

    def verdict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


class UnsupportedFormat(PhotoRejected):
    code = "unsupported_format"
    default_message = "This file is not a photo format we accept."
    hint = "Upload a JPEG, PNG, WebP, HEIC/HEIF or AVIF photo straight from your phone or camera."


class CorruptImage(PhotoRejected):
    code = "corrupt"
    default_message = "This photo is damaged or incomplete and cannot be read."
    hint = "Upload the original photo again; it may have been cut off while copying."


class TooManyPixels(PhotoRejected):
    code = "too_many_pixels"
    default_message = "This image is larger than any camera photo we accept (over 200 megapixels)."
    hint = "Upload the photo as your phone or camera saved it."


class TooSmall(PhotoRejected):
    code = "too_small"
    default_message = "This photo is too small to make a sharp headshot."
    hint = "Use a photo at least 512 pixels on its shorter side."


class NoFace(PhotoRejected):
    code = "no_face"
    default_message = "We could not find a face in this photo."
    hint = "Use a photo where your whole face is visible, looking roughly at the camera."


class MultipleFaces(PhotoRejected):
    code = "multiple_faces"
    default_message = "This photo shows more than one face."
    hint = "Use a photo of just you, with nobody else in the frame."


class FaceTooSmall(PhotoRejected):
    code = "face_too_small"
    default_message = "Your face is too small in this photo."
    hint = "Use a closer photo, where your face fills more of the frame."


class FaceCutOff(PhotoRejected):
    code = "face_cut_off"
    default_message = "Your face is cut off by the edge of this photo."
    hint = "Use a photo where your whole face is visible, with some space around it."


class TooBlurry(PhotoRejected):
    code = "too_blurry"
    default_message = "This photo is too blurry."
    hint = "Use a sharp photo taken in good light, holding the camera steady."


class DuplicatePhoto(PhotoRejected):
    code = "duplicate"
    default_message = "This photo is (almost) the same as another one you uploaded."
    hint = "Use different photos: other days, angles, expressions or lighting help most."


class DifferentPerson(PhotoRejected):
    """Decided across the job's accepted photos (services/identity.py): this face is not the others' person."""

    code = "different_person"
    default_message = "This photo seems to show somebody else than your other photos."
    hint = "Use only photos of yourself: every headshot is made to look like the person in them."


class NoSinglePerson(InvalidRequest):
    """The accepted photos agree on nobody: no majority of them shows one person."""

    code = "no_single_person"
    http_status = 422
    default_message = "These photos seem to show different people, so we cannot tell which one is you."
    hint = "Remove the photos that are not of you, or add more photos of yourself, then submit again."


class ProcessingFailed(PhotoRejected):
    """Our failure, not the photo's: its normalization never finished (crashed or timed out repeatedly)."""

    code = "processing_failed"
    default_message = "We could not process this photo."
    hint = "Try uploading it again, or use another photo."


class UploadMissing(PhotoRejected):
    code = "upload_missing"
    default_message = "This photo never arrived."
    hint = "Upload it again."


PHOTO_REJECTIONS: tuple[type[PhotoRejected], ...] = (
    UnsupportedFormat,
    CorruptImage,
    TooManyPixels,
    TooSmall,
    NoFace,
    MultipleFaces,
    FaceTooSmall,
    FaceCutOff,
    TooBlurry,
    DuplicatePhoto,
    UploadMissing,
    ProcessingFailed,
)


# --- generation -----------------------------------------------------------------------------------
class GeneratorError(PortraitError):
    code = "generator_error"
    http_status = 502


class GeneratorRateLimited(GeneratorError):
    """Replicate said 429. Carries the wait it named, so the message can come back after it."""

    code = "generator_rate_limited"
    retry_after_s: float

    def __init__(self, retry_after_s: float, message: str | None = None) -> None:
        super().__init__(message or f"Replicate rate limit; retry in {retry_after_s:.0f}s")
        self.retry_after_s = retry_after_s


class GeneratorUnavailable(GeneratorError):
    """5xx or a network error: worth retrying later."""

    code = "generator_unavailable"


class GeneratorRejectedInput(GeneratorError):
    """4xx other than 429: retrying the same input will not help."""

    code = "generator_rejected_input"


class OutputInvalid(PortraitError):
    code = "output_invalid"
    http_status = 502
    default_message = "A generated image was not a valid 1024x1024 PNG."


class OutputHostRefused(OutputInvalid):
    """An output URL off Replicate's delivery hosts (or a redirect): never fetched, dropped like an invalid image."""

    code = "output_host_refused"
    default_message = "A generated image was offered from a host we do not download from."


class ProvenanceFailed(PortraitError):
    """A result could not be marked as AI-made (XMP + C2PA). Never stored unmarked: collect fails and is retried."""

    code = "provenance_failed"
    http_status = 500
    default_message = "A generated image could not be marked with its provenance."

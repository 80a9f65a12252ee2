"""What the services need from the outside world. Adapters implement these; tests use fakes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from portrait_studio.models import Job, Prediction, Tombstone, UploadFile


class Clock(Protocol):
    def now(self) -> datetime: ...


class BlobStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def get(self, key: str, max_bytes: int | None = None) -> bytes: ...
    def size(self, key: str) -> int | None: ...
    def delete(self, keys: Sequence[str]) -> list[str]:
        """Delete keys; return the keys that could not be deleted."""
        ...

    def list_keys(self, prefix: str) -> Iterator[str]: ...
    def list_prefixes(self, prefix: str) -> Iterator[str]: ...
    def oldest_object_age_s(self, prefix: str, now: datetime) -> float | None: ...
    def presign_put(self, key: str, content_type: str, content_length: int, expires_s: int) -> str: ...
    def presign_get(self, key: str, expires_s: int) -> str: ...


class Queue(Protocol):
    def send(self, queue_url: str, body: Mapping[str, Any], delay_s: int = 0) -> None: ...
    def send_batch(self, queue_url: str, bodies: Sequence[Mapping[str, Any]]) -> None: ...
    def change_visibility(self, queue_url: str, receipt_handle: str, timeout_s: int) -> None: ...


@dataclass(frozen=True)
class RemotePrediction:
    """Replicate's prediction object, reduced to what we use."""

    id: str
    status: str
    output: list[str] = field(default_factory=list)
    error: str | None = None
    predict_time: float | None = None

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> RemotePrediction:
        output = body.get("output") or []
        if isinstance(output, str):
            output = [output]
        metrics = body.get("metrics") or {}
        predict_time = metrics.get("predict_time") if isinstance(metrics, Mapping) else None
        return cls(
            id=str(body.get("id", "")),
            status=str(body.get("status", "")),
            output=[str(url) for url in output if isinstance(url, str)],
            error=str(body["error"]) if body.get("error") else None,
            predict_time=float(predict_time) if isinstance(predict_time, int | float) else None,
        )


class Generator(Protocol):
    def create(self, version: str, input: Mapping[str, Any], webhook: str, events: Sequence[str]) -> RemotePrediction:
        """Raises GeneratorRateLimited, GeneratorUnavailable or GeneratorRejectedInput."""
        ...

    def get(self, prediction_id: str) -> RemotePrediction: ...
    def cancel(self, prediction_id: str) -> None: ...


@dataclass(frozen=True)
class CheckoutSession:
    """The fields of a Stripe Checkout Session we act on (amounts in integer cents)."""

    session_id: str
    url: str | None
    status: str  # open | complete | expired
    payment_status: str  # unpaid | paid | no_payment_required
    job_id: str | None  # client_reference_id
    expires_at: datetime
    amount_subtotal: int
    amount_discount: int
    amount_total: int
    currency: str
    payment_intent: str | None
    email: str | None  # customer_details.email: personal data, kept only until the job ends


@dataclass(frozen=True)
class RefundRecord:
    """A refund as Stripe holds it: ids and integer cents, and the metadata we wrote (none when made by hand)."""

    refund_id: str
    payment_intent: str | None
    amount: int
    currency: str
    status: str  # pending | succeeded | failed | canceled | requires_action
    created: datetime
    job_id: str | None  # metadata.job_id
    key: str | None  # metadata.refund_key: the idempotency key it was made with


@dataclass(frozen=True)
class PaymentEvent:
    """A verified Stripe event: only the checkout events we handle carry a session."""

    event_id: str
    type: str
    session: CheckoutSession | None


@dataclass(frozen=True)
class Price:
    price_id: str
    amount: int
    currency: str


class Payments(Protocol):
    """Stripe. Raises PaymentProviderUnavailable (retry later) or PaymentProviderError (refused)."""

    def price(self, price_id: str) -> Price: ...
    def create_checkout(
        self,
        job_id: str,
        price_id: str,
        success_url: str,
        cancel_url: str,
        expires_at: datetime,
        idempotency_key: str,
    ) -> CheckoutSession: ...
    def get_checkout(self, session_id: str) -> CheckoutSession: ...
    def expire_checkout(self, session_id: str) -> None:
        """Closes an open session so it can no longer be paid; a session already closed is fine."""
        ...

    def refund(self, payment_intent: str, amount: int, idempotency_key: str, job_id: str) -> str:
        """Refund `amount` cents of the payment; returns the refund's id. The same key refunds once (Stripe keeps
        a key 24 hours: the key also goes into the refund's metadata, so `list_refunds` finds it later)."""
        ...

    def list_refunds(self, payment_intent: str) -> list[RefundRecord]:
        """Every refund of one payment, newest first."""
        ...

    def list_checkouts(self, created_gte: datetime) -> list[CheckoutSession]:
        """Every Checkout Session created since then (every page), newest first."""
        ...

    def list_refunds_since(self, created_gte: datetime) -> list[RefundRecord]:
        """Every refund created since then (every page), newest first: ours and those made in the dashboard."""
        ...

    def checkout_of_payment(self, payment_intent: str) -> CheckoutSession | None:
        """The Checkout Session that collected a payment (None: not one of ours)."""
        ...

    def verify_event(self, payload: bytes, signature: str | None) -> PaymentEvent:
        """Checks `Stripe-Signature` (HMAC-SHA256, tolerance); raises PaymentWebhookRejected."""
        ...


class Notifier(Protocol):
    """Email (Amazon SES). Raises NotificationFailed; a failure never fails a job."""

    def send(self, to: str, subject: str, text: str, html: str) -> str:
        """Returns the message id."""
        ...


class Downloader(Protocol):
    def fetch(self, url: str, max_bytes: int) -> tuple[bytes, str]:
        """Return (body, content type). Raises OutputInvalid when over max_bytes or not 2xx."""
        ...


class SecretStore(Protocol):
    def get(self, name: str) -> str: ...


class Idempotency(Protocol):
    def once(self, key: str, action: Callable[[], Mapping[str, Any]], context: Any = None) -> Mapping[str, Any]:
        """Run the action the first time a key is seen; afterwards return that first result.

        `context` (the Lambda context) bounds how long a crashed attempt blocks a retry."""
        ...


class Metrics(Protocol):
    def count(self, name: str, value: float = 1, unit: str = "Count") -> None: ...


class NullMetrics:
    """Metrics that go nowhere: the default where a caller does not care."""

    def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        return None


class JobStore(Protocol):
    # jobs
    def create_job(self, job: Job, files: Sequence[UploadFile]) -> None: ...
    def get_job(self, job_id: str) -> Job | Tombstone | None: ...
    def update_job(
        self,
        job_id: str,
        expect: Iterable[str] | None = None,
        expect_fields: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> bool:
        """Set fields; only if the status is one of `expect` and `expect_fields` hold (when given).

        Setting `status` also maintains `active_status` (the reconciler's index) and `updated_at`.
        """
        ...

    def add_files(self, job_id: str, files: Sequence[UploadFile], max_uploads: int) -> bool:
        """Add files to a collecting job and count them in its `uploads_granted`, in one conditional write that
        fails (False) when the count would pass `max_uploads`."""
        ...

    def list_files(self, job_id: str) -> list[UploadFile]: ...
    def remove_file(self, job_id: str, file_id: str) -> bool:
        """Drop a file that never arrived or was refused, while the job is collecting."""
        ...

    def queue_files(
        self,
        job_id: str,
        file_ids: Sequence[str],
        round: int,
        now: datetime,
        expect: Iterable[str],
        status: str,
        max_rounds: int | None = None,
    ) -> bool:
        """expect → status with `pending_files = len(file_ids)`; those files become queued. With `max_rounds`,
        only while the job's stored `round` is below it (checked in the same write)."""
        ...

    def move_with_files(
        self, job_id: str, files: Sequence[UploadFile], expect: Iterable[str], round: int | None = None, **fields: Any
    ) -> bool:
        """One transaction: the job's conditional update and these accepted files' new verdicts and qualities
        (each still `accepted`); with `round`, only while the job is still in that round of photos. False, and
        nothing written, when any condition fails."""
        ...

    def record_verdict(self, job_id: str, file: UploadFile) -> int | None:
        """Store a queued file's verdict and count it done. Returns files still pending, or None if the
        file was not queued (a redelivered message)."""
        ...

    # predictions (slots): the lifecycle is the only caller of the methods that write a status
    def start_generation(
        self, job_id: str, slots: Sequence[Prediction], expect: Iterable[str], status: str, **fields: Any
    ) -> bool:
        """One transaction: the job expect → status (with fields), and every planned slot written."""
        ...

    def add_slots(self, job_id: str, slots: Sequence[Prediction], expect_topups_used: int, job_status: str) -> bool:
        """One transaction: new slots written, `topups_used` moved on (only if it still is the expected one)."""
        ...

    def start_round(
        self,
        job_id: str,
        slots: Sequence[Prediction],
        expect: Iterable[str],
        expect_rounds: int,
        status: str,
        **fields: Any,
    ) -> bool:
        """One transaction: the job expect → status (with fields) only if it has had `expect_rounds` extra rounds
        ("more like this") so far, and the round's planned slots written."""
        ...

    def claim_slot(
        self,
        job_id: str,
        slot: str,
        expect: Iterable[str],
        status: str,
        reserve: bool,
        stale_before: datetime | None = None,
        **fields: Any,
    ) -> bool:
        """Take a slot with no prediction, while the job is generating. `reserve` also takes one prediction of
        the job's budget (fails when it is spent); `stale_before` only takes a claim older than that."""
        ...

    def release_slot(self, job_id: str, slot: str, expect: Iterable[str], status: str, **fields: Any) -> bool:
        """A claim with no prediction goes back, and so does its reservation."""
        ...

    def update_slot(self, job_id: str, slot: str, expect: Iterable[str] | None = None, **fields: Any) -> bool: ...
    def get_slot(self, job_id: str, slot: str) -> Prediction | None: ...
    def list_slots(self, job_id: str) -> list[Prediction]: ...
    def add_collected(
        self,
        job_id: str,
        slot: str,
        images: int,
        predict_time: float | None,
        expect: Iterable[str],
        status: str,
        **fields: Any,
    ) -> bool:
        """expect → status with the images counted, adding to the job's predict seconds."""
        ...

    # rate limits
    def hit_rate_limit(self, key: str, window_start: datetime, limit: int, expires_at: datetime) -> bool:
        """Count a hit in the window; True when the limit is exceeded."""
        ...

    def reserve_turn(self, key: str, now: datetime, interval_s: float, burst: int) -> datetime:
        """A place in a paced line shared by every caller (GCRA): the time this caller may act, at the earliest
        `now`. Turns are `interval_s` apart; after a quiet spell up to `burst` come at once."""
        ...

    def line_free_at(self, key: str) -> datetime | None:
        """When the line's next turn is free (None: nobody has queued yet). Reads only."""
        ...

    # retention
    def jobs_expiring_in_hour(self, hour_key: str) -> list[str]: ...
    def jobs_generating(self) -> list[str]: ...
    def jobs_normalizing(self) -> list[str]: ...
    def jobs_awaiting_payment(self) -> list[str]: ...
    def jobs_purging(self) -> list[str]:
        """Jobs marked deleted/expired whose purge has not finished (still records, not tombstones)."""
        ...

    def jobs_in_aftercare(self) -> list[str]:
        """Finished jobs whose refund or outcome email is still to do (`aftercare_due`)."""
        ...

    def delete_job(self, tombstone: Tombstone, tombstone_expires_at: datetime) -> None:
        """Delete every item of the job and leave the tombstone."""
        ...

    def update_tombstone(self, job_id: str, **fields: Any) -> bool:
        """Set fields of a tombstone (the ledger records money found after the job went); False if there is none."""
        ...

    def status_counts(self) -> dict[str, int]: ...
    def jobs_holding_email(self) -> int: ...

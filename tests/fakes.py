"""In-memory fakes of the ports, with the same conditional semantics as the real adapters."""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from portrait_studio.clock import hour_key
from portrait_studio.errors import (
    GeneratorRateLimited,
    GeneratorUnavailable,
    NotificationFailed,
    OutputInvalid,
    PaymentProviderError,
    PaymentProviderUnavailable,
    PaymentWebhookRejected,
)
from portrait_studio.models import Job, JobStatus, Prediction, Tombstone, UploadFile
from portrait_studio.ports import CheckoutSession, PaymentEvent, Price, RefundRecord, RemotePrediction


class FixedClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


class MemoryBlobStore:
    def __init__(self, clock: FixedClock) -> None:
        self.objects: dict[str, tuple[bytes, str, datetime]] = {}
        self.clock = clock
        self.fail_keys: set[str] = set()
        self.listings = 0  # R2 bills a listing as a class A operation

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = (data, content_type, self.clock.now())

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        if key not in self.objects:
            raise KeyError(key)
        data = self.objects[key][0]
        if max_bytes is not None and len(data) > max_bytes:
            raise KeyError(key)
        return data

    def size(self, key: str) -> int | None:
        return len(self.objects[key][0]) if key in self.objects else None

    def delete(self, keys: Sequence[str]) -> list[str]:
        failed = [k for k in keys if k in self.fail_keys]
        for key in keys:
            if key not in self.fail_keys:
                self.objects.pop(key, None)
        return failed

    def list_keys(self, prefix: str) -> Iterator[str]:
        self.listings += 1
        return iter(sorted(k for k in list(self.objects) if k.startswith(prefix)))

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        found = {prefix + k[len(prefix) :].split("/", 1)[0] + "/" for k in self.objects if k.startswith(prefix)}
        return iter(sorted(found))

    def oldest_object_age_s(self, prefix: str, now: datetime) -> float | None:
        times = [t for k, (_, _, t) in self.objects.items() if k.startswith(prefix)]
        return None if not times else (now - min(times)).total_seconds()

    def presign_put(self, key: str, content_type: str, content_length: int, expires_s: int) -> str:
        return f"https://bucket.test/{key}?put&ct={content_type}&len={content_length}&exp={expires_s}"

    def presign_get(self, key: str, expires_s: int) -> str:
        return f"https://bucket.test/{key}?exp={expires_s}"


@dataclass
class MemoryQueue:
    sent: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    visibility: list[tuple[str, str, int]] = field(default_factory=list)
    delays: list[tuple[str, int]] = field(default_factory=list)

    def send(self, queue_url: str, body: Mapping[str, Any], delay_s: int = 0) -> None:
        self.sent.setdefault(queue_url, []).append(dict(body))
        if delay_s:
            self.delays.append((queue_url, delay_s))

    def send_batch(self, queue_url: str, bodies: Sequence[Mapping[str, Any]]) -> None:
        for body in bodies:
            self.send(queue_url, body)

    def change_visibility(self, queue_url: str, receipt_handle: str, timeout_s: int) -> None:
        self.visibility.append((queue_url, receipt_handle, timeout_s))

    def take(self, queue_url: str) -> list[dict[str, Any]]:
        return self.sent.pop(queue_url, [])


class FakeGenerator:
    """Replicate as the services see it: predictions created, fetched and cancelled."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.canceled: list[str] = []
        self.rate_limit_next = 0
        self.lose_next_response = False  # the prediction is created, but its response never reaches us
        self.remote: dict[str, RemotePrediction] = {}

    def create(self, version: str, input: Mapping[str, Any], webhook: str, events: Sequence[str]) -> RemotePrediction:
        if self.rate_limit_next:
            self.rate_limit_next -= 1
            raise GeneratorRateLimited(7)
        prediction_id = f"p{len(self.created):03d}"
        self.created.append({"id": prediction_id, "version": version, "input": dict(input), "webhook": webhook})
        remote = RemotePrediction(id=prediction_id, status="starting")
        self.remote[prediction_id] = remote
        if self.lose_next_response:
            self.lose_next_response = False
            raise GeneratorUnavailable("Replicate unreachable: ReadTimeout")
        return remote

    def get(self, prediction_id: str) -> RemotePrediction:
        return self.remote[prediction_id]

    def cancel(self, prediction_id: str) -> None:
        self.canceled.append(prediction_id)

    def finish(self, prediction_id: str, outputs: int, status: str = "succeeded") -> RemotePrediction:
        urls = [f"https://replicate.test/{prediction_id}/{i}.png" for i in range(outputs)]
        self.remote[prediction_id] = RemotePrediction(prediction_id, status, urls, None, 3.5)
        return self.remote[prediction_id]


class FakeDownloader:
    """Every output URL serves `png`, unless `by_index` serves its own for the output's index (`.../{i}.png`)."""

    def __init__(self, png: bytes) -> None:
        self.png = png
        self.by_index: dict[int, bytes] = {}
        self.fetched: list[str] = []

    def fetch(self, url: str, max_bytes: int) -> tuple[bytes, str]:
        self.fetched.append(url)
        index = url.rsplit("/", 1)[-1].removesuffix(".png")
        png = self.by_index.get(int(index), self.png) if index.isdigit() else self.png
        if len(png) > max_bytes:
            raise OutputInvalid()
        return png, "image/png"


class MemoryIdempotency:
    def __init__(self) -> None:
        self.results: dict[str, Mapping[str, Any]] = {}

    def once(self, key: str, action: Any, context: Any = None) -> Mapping[str, Any]:
        if key not in self.results:
            self.results[key] = dict(action())
        return self.results[key]


class CountingMetrics:
    def __init__(self) -> None:
        self.counts: dict[str, float] = {}

    def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        self.counts[name] = self.counts.get(name, 0) + value


def _updated(model: Any, fields: Mapping[str, Any]) -> Any:
    """model_copy(update=...) skips validation; DynamoDB round-trips would coerce, so validate here."""
    return type(model).model_validate({**model.model_dump(), **fields})


class MemoryJobStore:
    """JobStore with DynamoDB's conditional-write semantics, for unit tests."""

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.jobs: dict[str, Job | Tombstone] = {}
        self.files: dict[str, dict[str, UploadFile]] = {}
        self.slots: dict[str, dict[str, Prediction]] = {}
        self.rates: dict[tuple[str, str], int] = {}
        self.lines: dict[str, float] = {}  # reserve_turn: each line's next free turn (epoch seconds)
        self._lock = threading.RLock()

    def create_job(self, job: Job, files: Sequence[UploadFile]) -> None:
        with self._lock:
            assert job.job_id not in self.jobs
            self.jobs[job.job_id] = job.model_copy()
            self.files[job.job_id] = {f.file_id: f.model_copy() for f in files}
            self.slots[job.job_id] = {}

    def get_job(self, job_id: str) -> Job | Tombstone | None:
        record = self.jobs.get(job_id)
        return copy.deepcopy(record)

    def update_job(
        self,
        job_id: str,
        expect: Iterable[str] | None = None,
        expect_fields: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> bool:
        with self._lock:
            job = self.jobs.get(job_id)
            if not isinstance(job, Job):
                return False
            if expect is not None and job.status not in {str(s) for s in expect}:
                return False
            if any(getattr(job, k) != v for k, v in (expect_fields or {}).items()):
                return False
            self.jobs[job_id] = _updated(job, {**fields, "updated_at": self.clock.now()})
            return True

    def add_files(self, job_id: str, files: Sequence[UploadFile], max_uploads: int) -> bool:
        with self._lock:
            job = self.jobs.get(job_id)
            if not isinstance(job, Job) or job.status != JobStatus.COLLECTING:
                return False
            if job.uploads_granted + len(files) > max_uploads:
                return False
            self.files[job_id].update({f.file_id: f.model_copy() for f in files})
            self.jobs[job_id] = _updated(job, {"uploads_granted": job.uploads_granted + len(files)})
            return True

    def list_files(self, job_id: str) -> list[UploadFile]:
        return [f.model_copy() for f in self.files.get(job_id, {}).values()]

    def remove_file(self, job_id: str, file_id: str) -> bool:
        with self._lock:
            job = self.jobs.get(job_id)
            current = self.files.get(job_id, {}).get(file_id)
            if not isinstance(job, Job) or job.status != JobStatus.COLLECTING or current is None:
                return False
            if current.status == "queued":
                return False
            del self.files[job_id][file_id]
            return True

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
        with self._lock:
            job = self.jobs.get(job_id)
            if not isinstance(job, Job) or job.status not in set(expect):
                return False
            if max_rounds is not None and job.round >= max_rounds:
                return False
            files = self.files[job_id]
            if any(files[f].status != "awaiting_upload" for f in file_ids):
                return False
            for f in file_ids:
                files[f] = _updated(files[f], {"status": "queued"})
            self.jobs[job_id] = _updated(job, {"status": status, "pending_files": len(file_ids), "round": round})
            return True

    def move_with_files(
        self, job_id: str, files: Sequence[UploadFile], expect: Iterable[str], round: int | None = None, **fields: Any
    ) -> bool:
        with self._lock:
            job = self.jobs.get(job_id)
            current = self.files.get(job_id, {})
            if not isinstance(job, Job) or job.status not in {str(s) for s in expect}:
                return False
            if round is not None and job.round != round:
                return False
            if any(f.file_id not in current or current[f.file_id].status != "accepted" for f in files):
                return False
            self.jobs[job_id] = _updated(job, {**fields, "updated_at": self.clock.now()})
            current.update({f.file_id: f.model_copy() for f in files})
            return True

    def record_verdict(self, job_id: str, file: UploadFile) -> int | None:
        with self._lock:
            current = self.files.get(job_id, {}).get(file.file_id)
            job = self.jobs.get(job_id)
            if current is None or current.status != "queued" or not isinstance(job, Job):
                return None
            self.files[job_id][file.file_id] = file.model_copy()
            self.jobs[job_id] = _updated(job, {"pending_files": job.pending_files - 1})
            return job.pending_files - 1

    def start_generation(
        self, job_id: str, slots: Sequence[Prediction], expect: Iterable[str], status: str, **fields: Any
    ) -> bool:
        with self._lock:
            job = self.jobs.get(job_id)
            existing = self.slots.get(job_id, {})
            if not isinstance(job, Job) or job.status not in set(expect) or any(s.slot in existing for s in slots):
                return False
            self.jobs[job_id] = _updated(job, {**fields, "status": status, "updated_at": self.clock.now()})
            existing.update({s.slot: s.model_copy() for s in slots})
            return True

    def start_round(
        self,
        job_id: str,
        slots: Sequence[Prediction],
        expect: Iterable[str],
        expect_rounds: int,
        status: str,
        **fields: Any,
    ) -> bool:
        with self._lock:
            job = self.jobs.get(job_id)
            existing = self.slots.get(job_id, {})
            if not isinstance(job, Job) or job.status not in set(expect) or job.more_rounds != expect_rounds:
                return False
            if any(s.slot in existing for s in slots):
                return False
            self.jobs[job_id] = _updated(job, {**fields, "status": status, "updated_at": self.clock.now()})
            existing.update({s.slot: s.model_copy() for s in slots})
            self.slots[job_id] = existing
            return True

    def add_slots(self, job_id: str, slots: Sequence[Prediction], expect_topups_used: int, job_status: str) -> bool:
        with self._lock:
            job = self.jobs.get(job_id)
            existing = self.slots.get(job_id, {})
            if not isinstance(job, Job) or job.status != job_status or job.topups_used != expect_topups_used:
                return False
            if any(s.slot in existing for s in slots):
                return False
            self.jobs[job_id] = _updated(job, {"topups_used": expect_topups_used + len(slots)})
            existing.update({s.slot: s.model_copy() for s in slots})
            return True

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
        with self._lock:
            job = self.jobs.get(job_id)
            current = self.slots.get(job_id, {}).get(slot)
            if not isinstance(job, Job) or job.status != JobStatus.GENERATING or current is None:
                return False
            if current.status not in set(expect) or current.prediction_id is not None:
                return False
            if stale_before is not None and (current.claimed_at is None or current.claimed_at >= stale_before):
                return False
            if reserve:
                if job.predictions_reserved >= job.prediction_budget:
                    return False
                self.jobs[job_id] = _updated(job, {"predictions_reserved": job.predictions_reserved + 1})
            self.slots[job_id][slot] = _updated(current, {**fields, "status": status})
            return True

    def release_slot(self, job_id: str, slot: str, expect: Iterable[str], status: str, **fields: Any) -> bool:
        with self._lock:
            job = self.jobs.get(job_id)
            current = self.slots.get(job_id, {}).get(slot)
            if not isinstance(job, Job) or current is None or job.predictions_reserved <= 0:
                return False
            if current.status not in set(expect) or current.prediction_id is not None:
                return False
            self.jobs[job_id] = _updated(job, {"predictions_reserved": job.predictions_reserved - 1})
            self.slots[job_id][slot] = _updated(current, {**fields, "status": status, "claimed_at": None})
            return True

    def update_slot(self, job_id: str, slot: str, expect: Iterable[str] | None = None, **fields: Any) -> bool:
        with self._lock:
            current = self.slots.get(job_id, {}).get(slot)
            if current is None:
                return False
            if expect is not None and current.status not in {str(s) for s in expect}:
                return False
            self.slots[job_id][slot] = _updated(current, fields)
            return True

    def get_slot(self, job_id: str, slot: str) -> Prediction | None:
        current = self.slots.get(job_id, {}).get(slot)
        return current.model_copy() if current else None

    def list_slots(self, job_id: str) -> list[Prediction]:
        return [s.model_copy() for s in self.slots.get(job_id, {}).values()]

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
        with self._lock:
            current = self.slots.get(job_id, {}).get(slot)
            job = self.jobs.get(job_id)
            if current is None or current.status not in set(expect) or not isinstance(job, Job):
                return False
            self.slots[job_id][slot] = _updated(current, {**fields, "status": status, "images_collected": images})
            self.jobs[job_id] = _updated(job, {"predict_seconds": job.predict_seconds + (predict_time or 0)})
            return True

    def hit_rate_limit(self, key: str, window_start: datetime, limit: int, expires_at: datetime) -> bool:
        with self._lock:
            slot = (key, hour_key(window_start))
            self.rates[slot] = self.rates.get(slot, 0) + 1
            return self.rates[slot] > limit

    def reserve_turn(self, key: str, now: datetime, interval_s: float, burst: int) -> datetime:
        with self._lock:
            moment = now.timestamp()
            turn = max(self.lines.get(key, 0.0), moment - (burst - 1) * interval_s)
            self.lines[key] = turn + interval_s
            return datetime.fromtimestamp(max(turn, moment), UTC)

    def line_free_at(self, key: str) -> datetime | None:
        return datetime.fromtimestamp(self.lines[key], UTC) if key in self.lines else None

    def jobs_expiring_in_hour(self, hour: str) -> list[str]:
        return [j.job_id for j in self.jobs.values() if isinstance(j, Job) and hour_key(j.expires_at) == hour]

    def jobs_normalizing(self) -> list[str]:
        return [j.job_id for j in self.jobs.values() if isinstance(j, Job) and j.status == JobStatus.NORMALIZING]

    def jobs_generating(self) -> list[str]:
        return [j.job_id for j in self.jobs.values() if isinstance(j, Job) and j.status == JobStatus.GENERATING]

    def jobs_awaiting_payment(self) -> list[str]:
        return [j.job_id for j in self.jobs.values() if isinstance(j, Job) and j.status == JobStatus.AWAITING_PAYMENT]

    def jobs_purging(self) -> list[str]:
        return [j.job_id for j in self.jobs.values() if isinstance(j, Job) and j.status.is_tombstone]

    def jobs_in_aftercare(self) -> list[str]:
        return [j.job_id for j in self.jobs.values() if isinstance(j, Job) and j.aftercare_due]

    def delete_job(self, tombstone: Tombstone, tombstone_expires_at: datetime) -> None:
        with self._lock:
            self.jobs[tombstone.job_id] = tombstone
            self.files.pop(tombstone.job_id, None)
            self.slots.pop(tombstone.job_id, None)

    def update_tombstone(self, job_id: str, **fields: Any) -> bool:
        with self._lock:
            record = self.jobs.get(job_id)
            if not isinstance(record, Tombstone):
                return False
            self.jobs[job_id] = _updated(record, fields)
            return True

    def jobs_holding_email(self) -> int:
        return sum(1 for record in self.jobs.values() if isinstance(record, Job) and record.email)

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.jobs.values():
            counts[str(record.status)] = counts.get(str(record.status), 0) + 1
        return counts


class FakePayments:
    """Stripe as the adapter sees it: sessions that can be paid or expire, idempotency keys that replay the first
    answer, refunds never beyond what was paid. `fail_next` makes the next calls raise as an outage would."""

    def __init__(self, clock: Any, price: int = 1290) -> None:
        self.clock = clock
        self.amount = price
        self.sessions: dict[str, CheckoutSession] = {}
        self.refunds: list[tuple[str, int, str]] = []  # (payment_intent, amount, key)
        self.refund_records: list[RefundRecord] = []  # as Stripe lists them (ids, metadata)
        self.created: dict[str, datetime] = {}  # session → when it was created (the lists' `created`)
        self._by_key: dict[str, Any] = {}
        self.fail_next = 0
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.fail_next > 0:
            self.fail_next -= 1
            raise PaymentProviderUnavailable()

    def price(self, price_id: str) -> Price:
        self._maybe_fail()
        return Price(price_id=price_id, amount=self.amount, currency="usd")

    def create_checkout(
        self,
        job_id: str,
        price_id: str,
        success_url: str,
        cancel_url: str,
        expires_at: datetime,
        idempotency_key: str,
    ) -> CheckoutSession:
        self._maybe_fail()
        if idempotency_key in self._by_key:
            return self.sessions[self._by_key[idempotency_key]]
        session_id = f"cs_test_{len(self.sessions) + 1:04d}"
        session = CheckoutSession(
            session_id=session_id,
            url=f"https://checkout.example/c/pay/{session_id}",
            status="open",
            payment_status="unpaid",
            job_id=job_id,
            expires_at=expires_at,
            amount_subtotal=self.amount,
            amount_discount=0,
            amount_total=self.amount,
            currency="usd",
            payment_intent=None,
            email=None,
        )
        self.sessions[session_id] = session
        self.created[session_id] = self.clock.now()
        self._by_key[idempotency_key] = session_id
        return session

    def pay(self, session_id: str, discount: int = 0, email: str | None = "buyer@example.com") -> CheckoutSession:
        """What the hosted page does when the buyer pays: the completed session the webhook carries."""
        session = self.sessions[session_id]
        assert session.status == "open"
        paid = dataclasses.replace(
            session,
            status="complete",
            payment_status="paid",
            amount_discount=discount,
            amount_total=session.amount_subtotal - discount,
            payment_intent="pi_" + session_id[3:],
            email=email,
        )
        self.sessions[session_id] = paid
        return paid

    def expire(self, session_id: str) -> CheckoutSession:
        session = self.sessions[session_id]
        if session.status == "open":
            self.sessions[session_id] = dataclasses.replace(session, status="expired")
        return self.sessions[session_id]

    def get_checkout(self, session_id: str) -> CheckoutSession:
        self._maybe_fail()
        return self.sessions[session_id]

    def expire_checkout(self, session_id: str) -> None:
        self._maybe_fail()
        self.expire(session_id)

    def refund(self, payment_intent: str, amount: int, idempotency_key: str, job_id: str) -> str:
        self._maybe_fail()
        if idempotency_key in self._by_key:
            return str(self._by_key[idempotency_key])
        paid = sum(s.amount_total for s in self.sessions.values() if s.payment_intent == payment_intent)
        refunded = sum(a for pi, a, _ in self.refunds if pi == payment_intent)
        if amount > paid - refunded:
            raise PaymentProviderError("Refund amount is greater than what is left to refund.")
        self.refunds.append((payment_intent, amount, idempotency_key))
        refund_id = f"re_{len(self.refunds):04d}"
        self._by_key[idempotency_key] = refund_id
        self.refund_records.append(
            RefundRecord(
                refund_id, payment_intent, amount, "usd", "succeeded", self.clock.now(), job_id, idempotency_key
            )
        )
        return refund_id

    def refund_outside(self, payment_intent: str, amount: int) -> str:
        """A refund made in Stripe's dashboard (support): no key, no metadata."""
        paid = sum(s.amount_total for s in self.sessions.values() if s.payment_intent == payment_intent)
        refunded = sum(a for pi, a, _ in self.refunds if pi == payment_intent)
        assert 0 < amount <= paid - refunded, (amount, paid, refunded)
        self.refunds.append((payment_intent, amount, f"outside:{len(self.refunds) + 1}"))
        refund_id = f"re_{len(self.refunds):04d}"
        self.refund_records.append(
            RefundRecord(refund_id, payment_intent, amount, "usd", "succeeded", self.clock.now(), None, None)
        )
        return refund_id

    def list_refunds(self, payment_intent: str) -> list[RefundRecord]:
        self._maybe_fail()
        return [r for r in reversed(self.refund_records) if r.payment_intent == payment_intent]

    def list_checkouts(self, created_gte: datetime) -> list[CheckoutSession]:
        self._maybe_fail()
        ids = [i for i, created in self.created.items() if created >= created_gte]
        return [self.sessions[i] for i in reversed(ids)]

    def list_refunds_since(self, created_gte: datetime) -> list[RefundRecord]:
        self._maybe_fail()
        return [r for r in reversed(self.refund_records) if r.created >= created_gte]

    def checkout_of_payment(self, payment_intent: str) -> CheckoutSession | None:
        self._maybe_fail()
        return next((s for s in self.sessions.values() if s.payment_intent == payment_intent), None)

    def verify_event(self, payload: bytes, signature: str | None) -> PaymentEvent:
        if signature != "valid":
            raise PaymentWebhookRejected()
        body = json.loads(payload)
        return PaymentEvent(body["id"], body["type"], self.sessions.get(body.get("session", "")))


class MemoryNotifier:
    """SES as the services see it: sent messages kept in order; `fail_next` makes sends raise."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []
        self.fail_next = 0

    def send(self, to: str, subject: str, text: str, html: str) -> str:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise NotificationFailed("MessageRejected")
        self.sent.append({"to": to, "subject": subject, "text": text, "html": html})
        return f"m-{len(self.sent)}"


class LambdaContext:
    """Enough of Lambda's context object for Powertools."""

    function_name = "test"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000

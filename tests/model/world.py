"""The world of the lifecycle model: the real services and Lambda handlers over in-memory fakes that behave
like the real services — SQS (tests/model/sqs_sim.py) with the template's visibility timeouts, receive counts
and dead-letter queues, a Replicate whose predictions, throttling and webhooks are driven step by step, and
faults that break any call of a store, queue, bucket or Replicate, before or after it took effect.

Used by the hypothesis state machine (test_lifecycle_model.py) and the long run (benchmarks/lifecycle.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from functions.collect import app as collect_handler
from functions.dispatch import app as dispatch_handler
from infra.local.template import LocalTemplate
from portrait_studio import keys, wiring
from portrait_studio.config import Settings
from portrait_studio.errors import (
    GeneratorRateLimited,
    GeneratorUnavailable,
    PaymentProviderError,
    PaymentProviderUnavailable,
)
from portrait_studio.models import (
    FaceBox,
    FileStatus,
    Job,
    JobStatus,
    Payment,
    PhotoQuality,
    Prediction,
    SlotStatus,
    UploadFile,
    Verdict,
)
from portrait_studio.ports import CheckoutSession, PaymentEvent, RemotePrediction
from portrait_studio.services.generation import GenerationService
from portrait_studio.services.ledger import Ledger
from portrait_studio.services.lifecycle import Lifecycle
from portrait_studio.services.payments import PaymentsService
from portrait_studio.services.retention import RetentionService
from tests.fakes import (
    CountingMetrics,
    FakeDownloader,
    FakePayments,
    FixedClock,
    LambdaContext,
    MemoryBlobStore,
    MemoryIdempotency,
    MemoryJobStore,
    MemoryNotifier,
)
from tests.model.sqs_sim import SimulatedSqs

DISPATCH, COLLECT, NORMALIZE = "sqs://dispatch", "sqs://collect", "sqs://normalize"
# Thousands of invocations per run: their log lines and metric documents would only cost time here.
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
for _module in (dispatch_handler, collect_handler):
    _module.logger.setLevel("CRITICAL")
LIVE = ("starting", "processing")
Mode = Literal["before", "after"]
STRIPE_DOWN = (PaymentProviderUnavailable, PaymentProviderError)


class InjectedFault(Exception):
    """A call that failed: a network error, a throttled AWS API, a Lambda that died mid-call."""


# --- faults -------------------------------------------------------------------------------------------
@dataclass
class Faults:
    """Arms the n-th next call to one dependency to fail, before it took effect or after (its answer lost)."""

    armed: dict[str, tuple[int, Mode]] = field(default_factory=dict)
    fired: Counter[str] = field(default_factory=Counter)
    enabled: bool = True

    def arm(self, target: str, after_calls: int, mode: Mode) -> None:
        self.armed[target] = (after_calls, mode)

    def take(self, target: str) -> Mode | None:
        if not self.enabled or target not in self.armed:
            return None
        left, mode = self.armed[target]
        if left > 0:
            self.armed[target] = (left - 1, mode)
            return None
        del self.armed[target]
        self.fired[target] += 1
        return mode


class Faulty:
    """A proxy of a port whose methods fail when `Faults` says so."""

    def __init__(self, name: str, target: Any, faults: Faults) -> None:
        self._name, self._target, self._faults = name, target, faults

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._target, attribute)
        if not callable(value) or attribute.startswith("_"):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            # A fault armed for this one method (e.g. `store.update_job`) counts only its calls.
            mode = self._faults.take(f"{self._name}.{attribute}") or self._faults.take(self._name)
            if mode == "before":
                raise InjectedFault(f"{self._name}.{attribute} failed")
            result = value(*args, **kwargs)
            if mode == "after":
                raise InjectedFault(f"{self._name}.{attribute} took effect, but its answer was lost")
            return result

        return call


# --- Replicate ----------------------------------------------------------------------------------------
@dataclass
class RemoteRecord:
    number: int  # in order of creation
    id: str
    job_id: str
    slot: str
    claim: str | None
    num_outputs: int
    created_at: datetime
    status: str = "starting"
    output: list[str] = field(default_factory=list)
    error: str | None = None

    def body(self) -> dict[str, Any]:
        done = self.status not in LIVE
        return {
            "id": self.id,
            "status": self.status,
            "output": self.output or None,
            "error": self.error,
            "metrics": {"predict_time": 70.0} if done and self.status == "succeeded" else {},
        }


@dataclass
class Webhook:
    webhook_id: str
    job_id: str
    slot: str
    claim: str | None
    body: dict[str, Any]


class ModelReplicate:
    """Replicate as the Generator port sees it, with predictions advanced by the model's rules. Every state
    change sends its webhook to the outbox (filter start + completed), from which rules deliver, duplicate,
    reorder or drop them."""

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.records: dict[str, RemoteRecord] = {}
        self.outbox: list[Webhook] = []
        self.throttled = 0  # the next creates answered 429
        self.retry_after_s = 10.0
        self.unavailable = 0  # the next creates answered 503
        self.calls: Counter[str] = Counter()
        self.on_create: Callable[[RemoteRecord], None] | None = None  # the model's check at the moment of a create
        self._webhooks = 0

    def create(self, version: str, input: Any, webhook: str, events: Any) -> RemotePrediction:
        self.calls["create"] += 1
        if self.throttled:
            self.throttled -= 1
            raise GeneratorRateLimited(self.retry_after_s)
        if self.unavailable:
            self.unavailable -= 1
            raise GeneratorUnavailable("Replicate answered 503")
        query = parse_qs(urlsplit(webhook).query)
        record = RemoteRecord(
            number=len(self.records),
            id=f"p{len(self.records):05d}",
            job_id=query["job"][0],
            slot=query["slot"][0],
            claim=query.get("claim", [None])[0],
            num_outputs=int(input["num_outputs"]),
            created_at=self.clock.now(),
        )
        self.records[record.id] = record
        if self.on_create is not None:
            self.on_create(record)
        self._send(record)
        return RemotePrediction(record.id, record.status)

    def get(self, prediction_id: str) -> RemotePrediction:
        self.calls["get"] += 1
        return RemotePrediction.from_api(self.records[prediction_id].body())

    def cancel(self, prediction_id: str) -> None:
        self.calls["cancel"] += 1
        record = self.records[prediction_id]
        if record.status in LIVE:
            record.status = "canceled"
            self._send(record)

    def advance(self, record: RemoteRecord, outcome: str, filtered: int) -> None:
        """starting → processing → an outcome (NSFW filtering silently drops `filtered` outputs)."""
        if record.status == "starting":
            record.status = "processing"  # no webhook: the filter asks only for start and completed
            return
        record.status = outcome
        if outcome == "succeeded":
            kept = max(0, record.num_outputs - filtered)
            record.output = [f"https://replicate.test/{record.id}/{i}.png" for i in range(kept)]
        else:
            record.error = "CUDA out of memory" if outcome == "failed" else None
        self._send(record)

    def live(self) -> list[RemoteRecord]:
        return [r for r in self.records.values() if r.status in LIVE]

    def _send(self, record: RemoteRecord) -> None:
        self._webhooks += 1
        self.outbox.append(Webhook(f"msg_{self._webhooks}", record.job_id, record.slot, record.claim, record.body()))


# --- Stripe -------------------------------------------------------------------------------------------
class ModelStripe(FakePayments):
    """FakePayments whose session changes send their webhook events to an outbox (from which rules deliver,
    duplicate, replay or drop them), and whose open sessions expire when the clock passes `expires_at`."""

    def __init__(self, clock: FixedClock) -> None:
        super().__init__(clock)
        self.outbox: list[PaymentEvent] = []
        self.dropped: set[str] = set()  # sessions of which a `completed` event never came
        self.heard: set[str] = set()  # sessions of which a `completed` event was handled (2xx)
        self._events = 0
        self._spares = 0

    def event(self, type: str, session: CheckoutSession) -> PaymentEvent:
        self._events += 1
        return PaymentEvent(f"evt_{self._events:05d}", type, session)

    def pay(self, session_id: str, discount: int = 0, email: str | None = "buyer@example.com") -> CheckoutSession:
        paid = super().pay(session_id, discount, email)
        if paid.amount_total <= 0:  # a 100 % promotion code: nothing to collect, no payment intent
            paid = dataclasses.replace(paid, amount_total=0, payment_status="no_payment_required", payment_intent=None)
            self.sessions[session_id] = paid
        self.outbox.append(self.event("checkout.session.completed", paid))
        return paid

    def expire(self, session_id: str) -> CheckoutSession:
        was = self.sessions[session_id].status
        session = super().expire(session_id)
        if was == "open" and session.status == "expired":
            self.outbox.append(self.event("checkout.session.expired", session))
        return session

    def expire_due(self, now: datetime) -> None:
        for session_id, session in list(self.sessions.items()):
            if session.status == "open" and session.expires_at <= now:
                self.expire(session_id)

    def open_spare(self, job_id: str) -> CheckoutSession:
        """Another session for a job (a second tab, a race's loser that escaped): never through an outage."""
        self._spares += 1
        down, self.fail_next = self.fail_next, 0
        try:
            expires_at = self.clock.now() + timedelta(hours=1)
            return self.create_checkout(job_id, "price", "s", "c", expires_at, f"spare:{self._spares}")
        finally:
            self.fail_next = down

    def open_sessions(self) -> list[CheckoutSession]:
        return [s for s in self.sessions.values() if s.status == "open"]

    def refunded(self, payment_intent: str) -> list[int]:
        return [amount for pi, amount, _ in self.refunds if pi == payment_intent]


class ModelNotifier(MemoryNotifier):
    """SES: the emails sent, and the jobs whose send was refused (that job gets no email: never a second try)."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: Counter[str] = Counter()

    def send(self, to: str, subject: str, text: str, html: str) -> str:
        try:
            return super().send(to, subject, text, html)
        except Exception:
            self.refused[job_of_email(text)] += 1
            raise

    def emails_of(self, job_id: str) -> list[dict[str, str]]:
        return [m for m in self.sent if job_of_email(m["text"]) == job_id]


def job_of_email(text: str) -> str:
    """The job an outcome email is about: its private link's fragment, #job=<id>&token=<token>."""
    found = re.search(r"#job=([0-9a-f]+)&token=", text)
    assert found, text
    return found.group(1)


class ModelJobStore(MemoryJobStore):
    """MemoryJobStore that remembers every start of generation: which payment started which job, how often."""

    def __init__(self, clock: FixedClock) -> None:
        super().__init__(clock)
        self.starts: Counter[str] = Counter()
        self.paid: dict[str, Payment] = {}
        self.starts_budget: dict[str, int] = {}  # the budget the start gave (a More like this round adds to it)

    def start_generation(self, job_id: str, slots: Any, expect: Any, status: str, **fields: Any) -> bool:
        started = super().start_generation(job_id, slots, expect, status, **fields)
        if started:
            self.starts[job_id] += 1
            self.paid.setdefault(job_id, fields["payment"])
            self.starts_budget.setdefault(job_id, fields["prediction_budget"])
        return started


class CountingQueue:
    """The payments service's queue: counts the dispatch starts that reached SQS, per job."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self.starts: Counter[str] = Counter()

    def send(self, queue_url: str, body: Any, delay_s: int = 0) -> None:
        self._target.send(queue_url, body, delay_s)
        self.starts[body["job_id"]] += 1

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._target, attribute)


@dataclass
class Deleted:
    """A job as its owner's DELETE found it (before the deletion was recorded)."""

    job: Job | None
    images: int


# --- the world ----------------------------------------------------------------------------------------
def png_1024() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1024, 1024), (120, 130, 140)).save(buffer, "PNG")
    return buffer.getvalue()


_PNG = png_1024()


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 130, 140)).save(buffer, "JPEG")
    return buffer.getvalue()


_JPEG = _jpeg()


class ModelBlobStore(MemoryBlobStore):
    """The bucket. The references are there (the purge must delete them), but collect's output gate cannot read a
    face from them: it keeps every image (services/collect.py, "no reference face could be read"). The gate needs
    real faces and costs ~0.4 s of HOG per 1024x1024 output — it has its own tests (tests/unit, tests/e2e); with
    a readable reference here it would drop every blank output as `no_face` and spend minutes doing it."""

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        if "/refs/" in key:
            raise KeyError(key)  # the reference's face unreadable: as if it were gone, for the gate only
        return super().get(key, max_bytes)


def template_queue(template: LocalTemplate, logical: str) -> tuple[int, int]:
    """(VisibilityTimeout, maxReceiveCount) of a queue, as template.yaml sets them."""
    props = template.queues[logical]
    return int(props["VisibilityTimeout"]), int(props["RedrivePolicy"]["maxReceiveCount"])


@functools.cache
def _template_queues() -> dict[str, tuple[int, int]]:
    """The dispatch and collect queues' (VisibilityTimeout, maxReceiveCount), read from template.yaml once per
    process: parsing it took 0.1 s, most of a model example's time when every World parsed it again."""
    template = LocalTemplate.read()
    return {
        url: template_queue(template, logical)
        for url, logical in ((DISPATCH, "DispatchQueue"), (COLLECT, "CollectQueue"))
    }


class World:
    """Everything the generation pipeline touches, at the template's settings and production timings."""

    def __init__(self, settings: Settings | None = None, seed: int = 0) -> None:
        self.settings = settings or Settings(
            dispatch_queue_url=DISPATCH, collect_queue_url=COLLECT, normalize_queue_url=NORMALIZE
        )
        self.clock = FixedClock()
        self.sqs = SimulatedSqs(self.clock, random.Random(seed))
        self.visibility: dict[str, int] = {}
        for url, (visibility, max_receives) in _template_queues().items():
            self.visibility[url] = visibility
            self.sqs.create_queue(url + "-dlq", visibility_timeout_s=30)
            self.sqs.create_queue(url, visibility, max_receive_count=max_receives, dead_letter_url=url + "-dlq")
        self.store = ModelJobStore(self.clock)
        self.blobs = ModelBlobStore(self.clock)
        self.replicate = ModelReplicate(self.clock)
        self.stripe = ModelStripe(self.clock)  # outages: `fail_next`, not `faults` (the adapter's own errors)
        self.faults = Faults()
        self.metrics = CountingMetrics()
        self.idempotency = MemoryIdempotency()
        self.notifier = ModelNotifier()  # SES: `fail_next` refuses the next sends (a bounce, a throttled API)
        store, blobs = Faulty("store", self.store, self.faults), Faulty("blobs", self.blobs, self.faults)
        queue, generator = Faulty("queue", self.sqs, self.faults), Faulty("replicate", self.replicate, self.faults)
        self.payment_queue = CountingQueue(self.sqs)
        payment_queue = Faulty("queue", self.payment_queue, self.faults)
        downloader = FakeDownloader(_PNG)
        s, c, m = self.settings, self.clock, self.metrics
        self.retention = RetentionService(s, store, blobs, c, generator, m)  # type: ignore[arg-type]
        self.payments = PaymentsService(s, store, payment_queue, self.stripe, c, self.retention, m)  # type: ignore[arg-type]
        self.container = wiring.Container(
            settings=s, clock=c, store=store, blobs=blobs, queue=queue, generator=generator,
            downloader=downloader, metrics=m, idempotency=self.idempotency, payment_provider=self.stripe,
            payments=self.payments, retention=self.retention, provenance=None, notifier=self.notifier,
        )  # fmt: skip
        # As wired in production: what follows a job's end (its refund, then its email) is the container's
        # Aftercare, run at once by the finisher (GenerationService(after_finish=...)) and by the reconciler.
        self.generation: GenerationService = self.container.generation
        assert self.generation.after_finish is not None
        self.replicate.on_create = self._check_paid
        # The payment and aftercare reconcilers go on past any one job's error (counted, tried next minute): the
        # model still sees every error that is neither an injected fault nor Stripe down.
        self._watch(self.payments, "_reconcile_unpaid")
        self._watch(self.container.aftercare, "run")
        self.deletion = self.container.deletion
        self.ledger = Ledger(store, self.stripe, self.payments, c, m)  # type: ignore[arg-type]
        self._watch(self.deletion, "finish")  # a DELETE leaves what failed to the reconciler: errors still seen
        self.unpaid_creates: list[RemoteRecord] = []
        self.deleted_as: dict[str, Deleted] = {}  # job → how its owner's DELETE found it
        self.expired: set[str] = set()  # jobs the 48 h sweep purged (tests/model/more_rounds.py)
        self.purges_finished = 0  # purges found halfway and finished by the reconciler
        self.reconcile_every = timedelta(seconds=s.reconcile_every_s)
        self.next_reconcile = self.clock.now() + self.reconcile_every
        self.started: dict[str, datetime] = {}
        self.deleted: dict[str, int] = {}  # job → how many predictions Replicate had made when it was deleted
        self.finished: dict[str, datetime] = {}
        self.unexpected: list[BaseException] = []
        self.before_reconcile: Callable[[], None] | None = None
        self._unnamed_since: dict[tuple[str, str, str], datetime] = {}

    # --- a job, as normalization leaves it: accepted, awaiting payment -------------------------------
    def start_job(self, photos: int = 4, pay: bool = True) -> str:
        """A job whose photos were accepted: awaiting payment, or (`pay`) paid and generating."""
        now = self.clock.now()
        job = Job(
            job_id=f"{len(self.started) + 1:032x}",
            token_hash="0" * 64,
            status=JobStatus.COLLECTING,
            created_at=now,
            expires_at=now + timedelta(hours=self.settings.retention_hours),
            updated_at=now,
        )
        files = [
            UploadFile(file_id=f"{i + 1:016x}", name=f"IMG_{i}.HEIC", content_type="image/heic", declared_bytes=9)
            for i in range(photos)
        ]
        self.store.create_job(job, files)
        lifecycle = Lifecycle(self.store, self.clock)
        assert lifecycle.submit(job.job_id, [f.file_id for f in files], 1)
        for i, f in enumerate(files):
            quality = PhotoQuality(
                width=1024,
                height=1024,
                face=FaceBox(left=300, top=300, width=300, height=300),
                face_fraction=0.3 + 0.01 * i,
                sharpness=100.0 + i,
            )
            verdict = Verdict(accepted=True, code="accepted", message="Looks good.")
            accepted = f.model_copy(update={"status": FileStatus.ACCEPTED, "verdict": verdict, "quality": quality})
            self.store.record_verdict(job.job_id, accepted)
            self.blobs.put(keys.reference(job.job_id, f.file_id), _JPEG, "image/jpeg")
        # What normalization does when the last photo is accepted (services/normalization.py, advance_if_done;
        # its one-person check needs real faces): the job waits for payment; the page's next look (GET
        # /jobs/{id}) opens its checkout or, if Stripe cannot be reached now, the reconciler does.
        assert Lifecycle(self.store, self.clock).await_payment(job.job_id)
        with contextlib.suppress(InjectedFault, *STRIPE_DOWN):
            self.payments.open_checkout(job.job_id)
        self.started[job.job_id] = now
        if pay:  # the buyer pays at once and the `completed` event comes: generation starts (the real path)
            session_id = self.job(job.job_id).checkout_session_id  # type: ignore[union-attr]
            assert session_id is not None, "pay=True needs Stripe up"
            self.stripe.pay(session_id)
            self.deliver_stripe_event(len(self.stripe.outbox) - 1)
            assert job.job_id in self.store.starts, self.store.jobs[job.job_id]
        return job.job_id

    # --- the pollers, the webhook receiver, the scheduler ------------------------------------------
    def deliver(self, queue_url: str, crash: Mode | None = None) -> bool:
        """One poll of the queue's event source mapping, into the real Lambda handler. `crash` kills the
        invocation before the handler runs or after (a timeout, out of memory): nothing is deleted."""
        module = dispatch_handler if queue_url == DISPATCH else collect_handler

        def invocation(event: dict[str, Any], context: Any) -> Any:
            if crash == "before":
                raise InjectedFault("the invocation died before the handler ran")
            response = module.lambda_handler(event, context)
            if crash == "after":
                raise InjectedFault("the invocation died after the handler ran")
            return response

        module.processor.exceptions.clear()  # the processor is module-global: no stale errors from earlier runs
        with self._installed():
            result = self.sqs.deliver(queue_url, invocation, batch_size=10, context=LambdaContext())
        self._check_errors(result.raised, [e[1] for e in module.processor.exceptions] if result.invoked else [])
        self._note_finished()
        return result.invoked

    def deliver_webhook(self, index: int, duplicate: bool = False) -> None:
        """The webhook receiver: verified (the model's webhooks are genuine), recorded once per webhook id."""
        hook = self.replicate.outbox[index % len(self.replicate.outbox)]
        try:
            self.idempotency.once(
                f"webhook:{hook.webhook_id}",
                lambda: {"result": self.generation.record_event(hook.job_id, hook.slot, hook.claim, hook.body)},
            )
        except InjectedFault:
            return  # a 500: Replicate sends the webhook again later
        if not duplicate:
            self.replicate.outbox.remove(hook)
        self._note_finished()

    def deliver_stripe_event(self, index: int, fate: str = "deliver") -> None:
        """POST /webhooks/stripe (functions/api/app.py): verified (the model's events are genuine), applied once
        per event id. `duplicate`: Stripe sends it again later; `replay`: the same session arrives again in an
        event of another id. A 5xx (a store fault, Stripe down for the stray refund) leaves it to Stripe's retry."""
        outbox = self.stripe.outbox
        event = outbox[index % len(outbox)]
        if fate == "replay":
            outbox.append(self.stripe.event(event.type, event.session))  # type: ignore[arg-type]
        try:
            self.idempotency.once(f"stripe:{event.event_id}", lambda: {"result": self.payments.handle(event)})
        except (InjectedFault, *STRIPE_DOWN) as error:
            self.last_stripe_error = error
            return
        if event.session is not None and event.type == "checkout.session.completed":
            self.stripe.heard.add(event.session.session_id)
        if fate != "duplicate":
            outbox.remove(event)
        self._note_finished()

    def drop_stripe_event(self, index: int) -> None:
        """An event Stripe never manages to deliver: the reconciler must find what it said."""
        event = self.stripe.outbox[index % len(self.stripe.outbox)]
        self.stripe.outbox.remove(event)
        if event.session is not None and event.type == "checkout.session.completed":
            self.stripe.dropped.add(event.session.session_id)

    def advance_clock(self, seconds: float) -> None:
        """Time passes; the scheduler fires the reconciler at every period on the way, as EventBridge does;
        Stripe expires the sessions whose time came."""
        end = self.clock.now() + timedelta(seconds=seconds)
        while self.next_reconcile <= end:
            self.clock.current = self.next_reconcile
            self.stripe.expire_due(self.clock.now())
            if self.before_reconcile:
                self.before_reconcile()  # the model's checks see every moment the reconciler sees
            self.reconcile()
            self.next_reconcile += self.reconcile_every
        self.clock.current = end
        self.stripe.expire_due(end)

    def run_for(self, seconds: float) -> None:
        """Time passes with the pollers running: each message is delivered when it becomes visible."""
        end = self.clock.now() + timedelta(seconds=seconds)
        for _ in range(200):  # bounded: a step of the model is not a whole day of traffic
            while self.deliver(DISPATCH) | self.deliver(COLLECT):
                pass
            due = [t for t in (self.sqs.next_visible_at(DISPATCH), self.sqs.next_visible_at(COLLECT)) if t]
            upcoming = min(due, default=end)
            if upcoming >= end:
                break
            self.advance_clock(max(1.0, (upcoming - self.clock.now()).total_seconds()))
        self.advance_clock(max(0.0, (end - self.clock.now()).total_seconds()))

    def reconcile(self) -> None:
        """One run of functions/reconcile: generation's reconciler, payments', the aftercare's, then the purges
        that stopped halfway (a failed run: the next one tries again)."""
        fired, stripe_down = sum(self.faults.fired.values()), self.stripe.fail_next
        with contextlib.suppress(InjectedFault):
            self.generation.reconcile()
            self.payments.reconcile()
            self.container.aftercare.reconcile()  # refunds not made yet, emails not sent (services/aftercare.py)
            # Jobs marked deleted/expired, not yet tombstones: an earlier purge, or one this run's payment
            # reconciler began (an unpaid expiry) and a fault stopped halfway.
            self.purges_finished += self.deletion.finish_interrupted()
        # A run nothing broke (no fault, Stripe up for a deletion's refund) leaves no purge halfway.
        broken = sum(self.faults.fired.values()) != fired or self.stripe.fail_next != stripe_down
        if not broken and (halfway := self.store.jobs_purging()):
            self.unexpected.append(AssertionError(f"purges left halfway by a whole run: {halfway}"))
        self._note_finished()

    def delete(self, job_id: str) -> bool:
        """DELETE /jobs/{id} (functions/api/app.py → services/deletion.py): the deletion and the refund it owes are
        recorded first; a person whose request failed before that (a 5xx) tries again. True when it finished at
        once (204), False when the refund or the purge was left to the reconciler (202)."""
        record = self.store.jobs.get(job_id)
        if job_id not in self.deleted_as and isinstance(record, Job) and not record.status.is_tombstone:
            # The paid plan's headshots (not a More like this round's): what the refund is decided on.
            images = sum(s.images_collected for s in self.store.list_slots(job_id) if not s.more_round)
            self.deleted_as[job_id] = Deleted(record, images)
        try:
            receipt = self.deletion.request(job_id)
        except InjectedFault:
            with self.faults_off():
                receipt = self.deletion.request(job_id)
        self.deleted.setdefault(job_id, len(self.replicate.records))
        self._note_finished()
        return receipt.finished

    # --- helpers -----------------------------------------------------------------------------------
    def faults_off(self) -> Any:
        world = self

        class _Off:
            def __enter__(self) -> None:
                world.faults.enabled = False

            def __exit__(self, *exc: object) -> None:
                world.faults.enabled = True

        return _Off()

    def _installed(self) -> Any:
        world = self

        class _Installed:
            def __enter__(self) -> None:
                wiring.use(world.container)

            def __exit__(self, *exc: object) -> None:
                wiring.use(None)

        return _Installed()

    def _watch(self, service: Any, method: str) -> None:
        inner = getattr(service, method)

        def watched(*args: Any, **kwargs: Any) -> Any:
            try:
                return inner(*args, **kwargs)
            except (InjectedFault, *STRIPE_DOWN):
                raise
            except Exception as error:
                self.unexpected.append(error)
                raise

        setattr(service, method, watched)

    def _check_errors(self, raised: BaseException | None, record_errors: list[BaseException]) -> None:
        for error in [raised, *record_errors]:
            if error is not None and not isinstance(error, InjectedFault):
                self.unexpected.append(error)

    def _note_finished(self) -> None:
        for job_id in self.started:
            record = self.store.jobs.get(job_id)
            if not isinstance(record, Job) or not record.status.is_finished:
                continue
            # A round of More like this finishes the job again: its end is measured from the round's start.
            if job_id not in self.finished or (record.finished_at and record.finished_at > self.finished[job_id]):
                self.finished[job_id] = record.finished_at or self.clock.now()

    def _check_paid(self, record: RemoteRecord) -> None:
        """At the moment of every create: the job's payment is recorded (by the transaction that wrote its plan)."""
        job = self.store.jobs.get(record.job_id)
        if not isinstance(job, Job) or job.payment is None or record.job_id not in self.store.paid:
            self.unpaid_creates.append(record)

    def awaiting_payment(self) -> list[str]:
        return [
            j for j in self.started if (job := self.job(j)) is not None and job.status == JobStatus.AWAITING_PAYMENT
        ]

    def owing(self) -> list[str]:
        return [
            j.job_id
            for j in self.store.jobs.values()
            if isinstance(j, Job) and not j.status.is_tombstone and j.refund_due > 0 and j.refund is None
        ]

    def job(self, job_id: str) -> Job | None:
        record = self.store.jobs.get(job_id)
        return record if isinstance(record, Job) else None

    def sqs_visibility(self, queue_url: str) -> int:
        return self.visibility[queue_url]

    def unmoved_for(self, job: Job, slot: Prediction) -> timedelta:
        """How long an owed slot has had nobody to move it on — no queued message naming it, no live prediction,
        no webhook on its way — counted from when the reconciler could first act on it (its quiet period over)
        and from when the model first saw it so. Zero while something will move it."""
        now = self.clock.now()
        if slot.status.is_terminal:
            return timedelta(0)
        if slot.status in (SlotStatus.PLANNED, SlotStatus.CLAIMED):
            named = any(
                m["job_id"] == job.job_id and (m.get("slots") is None or slot.slot in m["slots"])
                for m in self.sqs.messages(DISPATCH)
            )
            quiet_since = max(slot.changed_at, job.dispatch_retry_at or slot.changed_at)
        elif slot.status.has_prediction_outcome:
            named = any(m == {"job_id": job.job_id, "slot": slot.slot} for m in self.sqs.messages(COLLECT))
            quiet_since = slot.changed_at + timedelta(seconds=self.settings.reconcile_grace_s)
        else:  # in flight: Replicate runs it, or its outcome waits for a webhook or the reconciler's GET
            record = self.replicate.records.get(slot.prediction_id or "")
            named = record is not None and record.status in LIVE
            named |= any(h.body["id"] == slot.prediction_id for h in self.replicate.outbox)
            quiet_since = slot.changed_at + timedelta(seconds=self.settings.reconcile_grace_s)
        key = (job.job_id, slot.slot, slot.status.value)
        if named:
            self._unnamed_since.pop(key, None)
            return timedelta(0)
        seen = self._unnamed_since.setdefault(key, now)
        return max(timedelta(0), now - max(quiet_since, seen))

    def generating(self) -> list[str]:
        return [j for j in self.started if (job := self.job(j)) is not None and job.status == JobStatus.GENERATING]

    def results(self, job_id: str) -> int:
        return sum(1 for _ in self.blobs.list_keys(keys.results_prefix(job_id)))

    def run_to_quiescence(self, step: Callable[[], None] | None = None, limit_s: float = 6 * 3600) -> None:
        """Faults stop; Replicate and Stripe answer; everything is delivered; time moves to the next event (unpaid
        checkouts expire). Until every job is terminal, owes nothing and no purge is left halfway (or `limit_s` of
        model time passed)."""
        self.faults.enabled = False
        self.replicate.throttled = self.replicate.unavailable = 0
        self.stripe.fail_next = self.notifier.fail_next = 0
        end = self.clock.now() + timedelta(seconds=limit_s)
        while self.clock.now() < end:
            progressed = True
            while progressed:
                progressed = self.deliver(DISPATCH) | self.deliver(COLLECT)
                while self.replicate.outbox:
                    self.deliver_webhook(0)
                    progressed = True
                for _ in range(len(self.stripe.outbox)):  # Stripe retries an event for days
                    event = self.stripe.outbox[0]
                    self.deliver_stripe_event(0)
                    if self.stripe.outbox and self.stripe.outbox[0] is event:  # answered 5xx with Stripe up
                        error = getattr(self, "last_stripe_error", None)
                        self.unexpected.append(RuntimeError(f"Stripe event fails with all up: {error!r} {event}"))
                        self.stripe.outbox.pop(0)
                    progressed = True
                for record in self.replicate.live():
                    self.replicate.advance(record, "succeeded", 0)
                    progressed = True
                if step:
                    step()
            owed = self.generating() or self.awaiting_payment() or self.owing() or self.store.jobs_in_aftercare()
            if not (owed or self.store.jobs_purging()):
                return
            due = [t for t in (self.sqs.next_visible_at(DISPATCH), self.sqs.next_visible_at(COLLECT)) if t]
            wait = min([*due, self.next_reconcile]) - self.clock.now()
            self.advance_clock(max(1.0, wait.total_seconds()))

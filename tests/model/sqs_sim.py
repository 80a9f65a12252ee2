"""Amazon SQS standard queues and the Lambda SQS event source mapping, in memory, on a simulated clock.

Built for model-based tests (hypothesis RuleBasedStateMachine) of retry logic, so it follows the
behaviours that retry bugs hinge on rather than the happy path:

- a message sent with DelaySeconds stays hidden until the delay passes (capped at 900 s, like the adapter);
- each receive hides the message for the queue's visibility timeout, counts ApproximateReceiveCount and
  issues a new receipt handle; older handles of that message become stale;
- ChangeMessageVisibility counts from the call, not from the receive, needs the latest handle of a
  message still in flight, and cannot push the total beyond 12 hours after the receive;
- DeleteMessage with a stale handle "succeeds" but leaves the message in the queue (AWS: "the request
  will still succeed, but the message might not be deleted"; we take the unlucky branch every time);
- redrive happens on the receive that would exceed maxReceiveCount: the message moves to the DLQ then,
  not when its last visibility timeout lapses;
- messages expire after the retention period, counted from the original send even in the DLQ;
- receive order is random (standard queues are not FIFO) and drawn from an injected `random.Random`;
- the event source mapping deletes only what the handler reported as processed
  (ReportBatchItemFailures), and nothing when the handler raised.

Time is read only from the injected clock; nothing here sleeps or looks at the wall clock. Single-threaded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

MAX_DELAY_S = 900  # SQS DelaySeconds maximum (the adapter clamps to it too)
MAX_VISIBILITY_S = 43_200  # 12 hours: per call and in total after a receive
MAX_RECEIVE_BATCH = 10  # ReceiveMessage MaxNumberOfMessages and the *Batch APIs' entry limit
DEFAULT_RETENTION_S = 345_600  # 4 days, SQS's default MessageRetentionPeriod
DEFAULT_MAX_MESSAGE_BYTES = 262_144  # 256 KiB, SQS's default MaximumMessageSize
REGION = "us-east-1"  # as infra/local/stack.py and events/*.json
ACCOUNT = "123456789012"
SENDER_ID = "AIDAIENQZJOLO23YVJ4VO"  # the SenderId of events/sqs_dispatch.json
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SimClock(Protocol):
    def now(self) -> datetime: ...


# --- errors: one class per SQS error code a caller could meet -------------------------------------------


class SqsError(Exception):
    """Base of the simulated SQS errors; `code` is the AWS error code a real ClientError would carry."""

    code = "SqsError"


class QueueDoesNotExist(SqsError):
    code = "AWS.SimpleQueueService.NonExistentQueue"


class ReceiptHandleIsInvalid(SqsError):
    """Unknown handle, a handle of another queue, or a handle superseded by a later receive or deletion."""

    code = "ReceiptHandleIsInvalid"


class MessageNotInflight(SqsError):
    """The latest handle, but the message's visibility timeout has already run out."""

    code = "AWS.SimpleQueueService.MessageNotInflight"


class InvalidParameterValue(SqsError):
    code = "InvalidParameterValue"


class MessageTooLong(InvalidParameterValue):
    pass


class BatchRequestTooLong(SqsError):
    code = "AWS.SimpleQueueService.BatchRequestTooLong"


class ParamValidationError(SqsError):
    """What botocore raises client-side before sending, e.g. a float where the API wants an integer."""

    code = "ParamValidationError"


# --- state ----------------------------------------------------------------------------------------------

MessageState = Literal["visible", "delayed", "in_flight"]


@dataclass
class _Message:
    seq: int  # our own key: duplicates injected by `duplicate` share the MessageId but not the seq
    message_id: str
    body: str
    md5: str
    sent_at: datetime
    visible_at: datetime
    receive_count: int = 0
    first_received_at: datetime | None = None
    received_at: datetime | None = None  # the latest receive; the 12-hour visibility limit counts from it
    receipt_handle: str | None = None  # the latest handle; only it can change visibility or delete

    def state(self, now: datetime) -> MessageState:
        if self.visible_at <= now:
            return "visible"
        return "delayed" if self.receipt_handle is None else "in_flight"


@dataclass
class _Queue:
    url: str
    visibility_timeout_s: int
    max_receive_count: int | None
    dead_letter_url: str | None
    retention_s: int
    max_message_bytes: int
    messages: dict[int, _Message] = field(default_factory=dict)
    # Every handle ever issued here, stale ones included, so a stale handle can be told from a made-up one.
    handles: dict[str, int] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    expired: int = 0
    moved_to_dlq: int = 0
    stale_deletes: int = 0


@dataclass(frozen=True)
class MessageView:
    """A read-only look at a stored message, for invariants."""

    message_id: str
    body: dict[str, Any]
    state: MessageState
    receive_count: int
    sent_at: datetime
    visible_at: datetime


@dataclass(frozen=True)
class DeliveryResult:
    """What one poll of the event source mapping did. Message IDs, in the order the batch was received."""

    received: list[str]
    deleted: list[str]
    failed: list[str]
    raised: BaseException | None = None  # the handler's exception; Lambda logs it and deletes nothing
    response: Any = None

    @property
    def invoked(self) -> bool:
        return bool(self.received)


Handler = Callable[[dict[str, Any], Any], Any]


class SimulatedSqs:
    """In-memory SQS standard queues; implements portrait_studio.ports.Queue."""

    def __init__(self, clock: SimClock, rng: random.Random | None = None) -> None:
        self._clock = clock
        # Seeded by default so a failing example replays; hypothesis can pass `st.randoms()` instead.
        self._random = rng if rng is not None else random.Random(0)
        self._queues: dict[str, _Queue] = {}
        self._seq = 0
        self.requests: Counter[str] = Counter()  # API requests by operation, all queues: the billed unit

    # --- queues -----------------------------------------------------------------------------------------
    def create_queue(
        self,
        url: str,
        visibility_timeout_s: int,
        max_receive_count: int | None = None,
        dead_letter_url: str | None = None,
        *,
        retention_s: int = DEFAULT_RETENTION_S,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> str:
        if not 0 <= visibility_timeout_s <= MAX_VISIBILITY_S:
            raise InvalidParameterValue(f"VisibilityTimeout {visibility_timeout_s} is outside 0..{MAX_VISIBILITY_S}")
        if (max_receive_count is None) != (dead_letter_url is None):
            raise InvalidParameterValue("a redrive policy needs both maxReceiveCount and a dead-letter queue")
        if max_receive_count is not None and not 1 <= max_receive_count <= 1000:
            raise InvalidParameterValue(f"maxReceiveCount {max_receive_count} is outside 1..1000")
        if dead_letter_url is not None and dead_letter_url not in self._queues:
            # SQS checks that deadLetterTargetArn exists, so the DLQ has to be created first, as in the template.
            raise QueueDoesNotExist(dead_letter_url)
        if not 60 <= retention_s <= 1_209_600:
            raise InvalidParameterValue(f"MessageRetentionPeriod {retention_s} is outside 60..1209600")
        if not 1024 <= max_message_bytes <= 1_048_576:
            raise InvalidParameterValue(f"MaximumMessageSize {max_message_bytes} is outside 1024..1048576")
        queue = _Queue(url, visibility_timeout_s, max_receive_count, dead_letter_url, retention_s, max_message_bytes)
        existing = self._queues.get(url)
        if existing is not None:
            # CreateQueue is idempotent only when the attributes match.
            if self._attributes(existing) != self._attributes(queue):
                raise InvalidParameterValue(f"queue {url} already exists with different attributes")
            return url
        self._queues[url] = queue
        return url

    @staticmethod
    def _attributes(queue: _Queue) -> tuple[Any, ...]:
        return (
            queue.visibility_timeout_s,
            queue.max_receive_count,
            queue.dead_letter_url,
            queue.retention_s,
            queue.max_message_bytes,
        )

    @property
    def queue_urls(self) -> list[str]:
        return list(self._queues)

    # --- the Queue port ----------------------------------------------------------------------------------
    def send(self, queue_url: str, body: Mapping[str, Any], delay_s: int = 0) -> None:
        queue = self._request(queue_url, "send")
        _require_int("DelaySeconds", delay_s)
        now = self._now(queue)
        text = json.dumps(body)  # as adapters/sqs_queue.py serialises it
        self._check_size(queue, text)
        delay = max(0, min(MAX_DELAY_S, delay_s))  # the adapter clamps; SQS would reject out of range
        self._store(queue, self._new_message(text, now, now + timedelta(seconds=delay)))

    def send_batch(self, queue_url: str, bodies: Sequence[Mapping[str, Any]]) -> None:
        queue = self._queue(queue_url)
        texts = [json.dumps(body) for body in bodies]
        # One SendMessageBatch request per 10 bodies, like the adapter; an empty list sends nothing.
        for start in range(0, len(texts), MAX_RECEIVE_BATCH):
            chunk = texts[start : start + MAX_RECEIVE_BATCH]
            self._request(queue_url, "send")
            now = self._now(queue)
            for text in chunk:
                self._check_size(queue, text)
            if sum(len(text.encode()) for text in chunk) > queue.max_message_bytes:
                raise BatchRequestTooLong(f"batch payload over {queue.max_message_bytes} bytes")
            for text in chunk:
                self._store(queue, self._new_message(text, now, now))

    def change_visibility(self, queue_url: str, receipt_handle: str, timeout_s: int) -> None:
        queue = self._request(queue_url, "change_visibility")
        _require_int("VisibilityTimeout", timeout_s)
        now = self._now(queue)
        message = self._latest(queue, receipt_handle)
        if message.state(now) != "in_flight":
            raise MessageNotInflight(f"message {message.message_id} is not in flight")
        timeout = max(0, min(MAX_VISIBILITY_S, timeout_s))  # the adapter clamps each call to 0..43200
        visible_at = now + timedelta(seconds=timeout)
        assert message.received_at is not None
        limit = message.received_at + timedelta(seconds=MAX_VISIBILITY_S)
        if visible_at > limit:
            # SQS refuses rather than trimming to the time left; a back-off that keeps extending hits this.
            raise InvalidParameterValue(
                f"visibility would end {(visible_at - limit).total_seconds():.0f} s past 12 hours after the receive"
            )
        message.visible_at = visible_at

    # --- the rest of the SQS API that the functions' event source mapping uses --------------------------------
    def receive(
        self, queue_url: str, max_messages: int = MAX_RECEIVE_BATCH, visibility_timeout_s: int | None = None
    ) -> list[dict[str, Any]]:
        """ReceiveMessage with AttributeNames=["All"], in boto3's response shape (the "Messages" list)."""
        queue = self._request(queue_url, "receive")
        if not 1 <= max_messages <= MAX_RECEIVE_BATCH:
            raise InvalidParameterValue(f"MaxNumberOfMessages {max_messages} is outside 1..{MAX_RECEIVE_BATCH}")
        hide_s = queue.visibility_timeout_s if visibility_timeout_s is None else visibility_timeout_s
        if not 0 <= hide_s <= MAX_VISIBILITY_S:
            raise InvalidParameterValue(f"VisibilityTimeout {hide_s} is outside 0..{MAX_VISIBILITY_S}")
        now = self._now(queue)
        candidates = [m for m in queue.messages.values() if m.state(now) == "visible"]
        self._random.shuffle(candidates)
        received: list[dict[str, Any]] = []
        for message in candidates:
            if len(received) == max_messages:
                break
            if queue.max_receive_count is not None and message.receive_count >= queue.max_receive_count:
                self._move_to_dlq(queue, message, now)
                continue
            received.append(self._hand_out(queue, message, now, hide_s))
        return received

    def delete(self, queue_url: str, receipt_handle: str) -> None:
        queue = self._request(queue_url, "delete")
        self._now(queue)
        self._delete(queue, receipt_handle)

    def delete_batch(self, queue_url: str, receipt_handles: Sequence[str]) -> list[str]:
        """DeleteMessageBatch, 10 entries a request. Returns the handles SQS reports as failed (invalid ones)."""
        queue = self._queue(queue_url)
        failed: list[str] = []
        for start in range(0, len(receipt_handles), MAX_RECEIVE_BATCH):
            self._request(queue_url, "delete")
            self._now(queue)
            for handle in receipt_handles[start : start + MAX_RECEIVE_BATCH]:
                try:
                    self._delete(queue, handle)
                except ReceiptHandleIsInvalid:
                    failed.append(handle)
        return failed

    # --- Lambda -------------------------------------------------------------------------------------------
    def lambda_event(self, queue_url: str, messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The event Lambda passes for received messages (compare events/sqs_dispatch.json)."""
        self._queue(queue_url)
        region, arn = _arn(queue_url)
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": dict(m.get("Attributes", {})),
                    "messageAttributes": dict(m.get("MessageAttributes", {})),
                    "md5OfBody": m.get("MD5OfBody", ""),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": region,
                }
                for m in messages
            ]
        }

    def deliver(self, queue_url: str, handler: Handler, batch_size: int = 10, context: Any = None) -> DeliveryResult:
        """One poll of the event source mapping, with FunctionResponseTypes: [ReportBatchItemFailures].

        Nothing visible means no invocation (Lambda never sends an empty batch). The handler runs "instantly":
        to model a slow invocation, advance the clock inside it. An exception from the handler, even an
        AssertionError from test code, is recorded in `raised` rather than re-raised, as Lambda would: check it."""
        received: list[dict[str, Any]] = []
        while len(received) < batch_size:
            got = self.receive(queue_url, min(MAX_RECEIVE_BATCH, batch_size - len(received)))
            if not got:
                break
            received.extend(got)
        ids = [m["MessageId"] for m in received]
        if not received:
            return DeliveryResult(received=[], deleted=[], failed=[])
        event = self.lambda_event(queue_url, received)
        try:
            response = handler(event, context)
        except Exception as exc:
            # Lambda deletes nothing; every message comes back once its visibility timeout runs out.
            return DeliveryResult(received=ids, deleted=[], failed=ids, raised=exc)
        failed = _reported_failures(response, ids)
        done = [m for m in received if m["MessageId"] not in failed]
        if done:
            self.delete_batch(queue_url, [m["ReceiptHandle"] for m in done])
        return DeliveryResult(
            received=ids,
            deleted=[m["MessageId"] for m in done],
            failed=[i for i in ids if i in failed],
            response=response,
        )

    # --- inspection for tests and invariants --------------------------------------------------------------
    def depth(self, url: str) -> int:
        """Visible + delayed + in flight: every message still stored (ApproximateNumberOfMessages* summed)."""
        return len(self._live(url))

    def visible(self, url: str) -> int:
        return self._count_state(url, "visible")

    def delayed(self, url: str) -> int:
        return self._count_state(url, "delayed")

    def in_flight(self, url: str) -> int:
        return self._count_state(url, "in_flight")

    def messages(self, url: str) -> list[dict[str, Any]]:
        """Decoded bodies of every stored message, in send order."""
        return [json.loads(m.body) for m in self._live(url)]

    def peek(self, url: str) -> list[MessageView]:
        """Every stored message with its state and receive count, in send order. Counts no request."""
        queue = self._queue(url)
        now = self._now(queue)
        return [
            MessageView(m.message_id, json.loads(m.body), m.state(now), m.receive_count, m.sent_at, m.visible_at)
            for m in queue.messages.values()
        ]

    def dlq_depth(self, url: str) -> int:
        """Depth of the dead-letter queue of the source queue `url`."""
        dead_letter_url = self._queue(url).dead_letter_url
        if dead_letter_url is None:
            raise ValueError(f"queue {url} has no dead-letter queue")
        return self.depth(dead_letter_url)

    def next_visible_at(self, url: str) -> datetime | None:
        """When a receive could next return something: now if a message is visible, None if the queue is empty."""
        queue = self._queue(url)
        now = self._now(queue)
        if not queue.messages:
            return None
        return max(now, min(m.visible_at for m in queue.messages.values()))

    def requests_for(self, url: str) -> Counter[str]:
        """API requests against one queue by operation (send, receive, delete, change_visibility)."""
        return Counter(self._queue(url).requests)

    def expired(self, url: str) -> int:
        """Messages dropped because they outlived the retention period: lost work, unless that was intended."""
        queue = self._queue(url)
        self._now(queue)
        return queue.expired

    def moved_to_dlq(self, url: str) -> int:
        return self._queue(url).moved_to_dlq

    def stale_deletes(self, url: str) -> int:
        """Deletes that "succeeded" with a superseded handle and so left the message in the queue."""
        return self._queue(url).stale_deletes

    def duplicate(self, url: str, message_id: str | None = None) -> str:
        """Inject a second copy of a stored message, visible now, as standard queues' at-least-once delivery can.

        The copy has the same MessageId and body but its own receive count and handles, so deleting one copy
        leaves the other. Picks a random stored message when `message_id` is None; returns the MessageId."""
        queue = self._queue(url)
        now = self._now(queue)
        pool = [m for m in queue.messages.values() if message_id is None or m.message_id == message_id]
        if not pool:
            raise KeyError(message_id if message_id is not None else url)
        original = self._random.choice(pool)
        self._store(
            queue, _Message(self._next_seq(), original.message_id, original.body, original.md5, original.sent_at, now)
        )
        return original.message_id

    # --- internals ----------------------------------------------------------------------------------------
    def _queue(self, url: str) -> _Queue:
        queue = self._queues.get(url)
        if queue is None:
            raise QueueDoesNotExist(url)
        return queue

    def _request(self, url: str, operation: str) -> _Queue:
        queue = self._queue(url)
        queue.requests[operation] += 1
        self.requests[operation] += 1
        return queue

    def _now(self, queue: _Queue) -> datetime:
        """Read the clock and drop what outlived the queue's retention period."""
        now = self._clock.now()
        if now.tzinfo is None:
            raise ValueError("the clock must return timezone-aware datetimes")
        horizon = now - timedelta(seconds=queue.retention_s)
        for seq in [s for s, m in queue.messages.items() if m.sent_at <= horizon]:
            del queue.messages[seq]
            queue.expired += 1
        return now

    def _live(self, url: str) -> list[_Message]:
        queue = self._queue(url)
        self._now(queue)
        return list(queue.messages.values())

    def _count_state(self, url: str, state: MessageState) -> int:
        queue = self._queue(url)
        now = self._now(queue)
        return sum(1 for m in queue.messages.values() if m.state(now) == state)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _new_message(self, text: str, now: datetime, visible_at: datetime) -> _Message:
        message_id = str(uuid.UUID(int=self._random.getrandbits(128), version=4))
        md5 = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
        return _Message(self._next_seq(), message_id, text, md5, sent_at=now, visible_at=visible_at)

    @staticmethod
    def _store(queue: _Queue, message: _Message) -> None:
        queue.messages[message.seq] = message

    @staticmethod
    def _check_size(queue: _Queue, text: str) -> None:
        if len(text.encode()) > queue.max_message_bytes:
            raise MessageTooLong(f"message must be shorter than {queue.max_message_bytes} bytes")

    def _hand_out(self, queue: _Queue, message: _Message, now: datetime, hide_s: int) -> dict[str, Any]:
        message.receive_count += 1
        if message.first_received_at is None:
            message.first_received_at = now
        message.received_at = now
        message.visible_at = now + timedelta(seconds=hide_s)
        # Unique by construction (the sequence number), random-looking like the real "AQEB..." handles.
        raw = self._next_seq().to_bytes(8, "big") + self._random.randbytes(24)
        handle = "AQEB" + base64.b64encode(raw).decode()
        message.receipt_handle = handle
        queue.handles[handle] = message.seq
        return {
            "MessageId": message.message_id,
            "ReceiptHandle": handle,
            "MD5OfBody": message.md5,
            "Body": message.body,
            "Attributes": {
                "SenderId": SENDER_ID,
                "ApproximateFirstReceiveTimestamp": str(_epoch_ms(message.first_received_at)),
                "ApproximateReceiveCount": str(message.receive_count),
                "SentTimestamp": str(_epoch_ms(message.sent_at)),
            },
        }

    def _move_to_dlq(self, queue: _Queue, message: _Message, now: datetime) -> None:
        assert queue.dead_letter_url is not None
        dlq = self._queue(queue.dead_letter_url)
        del queue.messages[message.seq]
        queue.moved_to_dlq += 1
        # Same MessageId, body and receive count; for standard queues the enqueue timestamp is kept, so the
        # DLQ's retention counts from the original send. Old handles die with the move.
        moved = _Message(
            self._next_seq(),
            message.message_id,
            message.body,
            message.md5,
            sent_at=message.sent_at,
            visible_at=now,
            receive_count=message.receive_count,
            first_received_at=message.first_received_at,
        )
        self._store(dlq, moved)
        self._now(dlq)  # it may already be past the DLQ's retention

    def _latest(self, queue: _Queue, receipt_handle: str) -> _Message:
        seq = queue.handles.get(receipt_handle)
        message = queue.messages.get(seq) if seq is not None else None
        if message is None or message.receipt_handle != receipt_handle:
            raise ReceiptHandleIsInvalid(
                f"receipt handle {receipt_handle[:16]}... is not the latest of a stored message"
            )
        return message

    @staticmethod
    def _delete(queue: _Queue, receipt_handle: str) -> None:
        seq = queue.handles.get(receipt_handle)
        if seq is None:
            raise ReceiptHandleIsInvalid(f"receipt handle {receipt_handle[:16]}... was never issued by {queue.url}")
        message = queue.messages.get(seq)
        if message is None:
            return  # already deleted, expired or moved: SQS answers success
        if message.receipt_handle != receipt_handle:
            queue.stale_deletes += 1  # success without effect: a later receive owns the message now
            return
        # The latest handle deletes even after the visibility timeout ran out, as long as nobody received since.
        del queue.messages[seq]


def _require_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ParamValidationError(f"{name} must be an integer, got {value!r}")


def _epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _arn(queue_url: str) -> tuple[str, str]:
    """(region, ARN) of a queue URL; test URLs like "q-dispatch" get the default region and account."""
    parts = queue_url.rstrip("/").split("/")
    name = parts[-1]
    host = parts[2] if len(parts) >= 5 and queue_url.startswith("http") else ""
    if host.startswith("sqs.") and host.count(".") >= 3:
        region, account = host.split(".")[1], parts[-2]
    else:
        region, account = REGION, ACCOUNT
    return region, f"arn:aws:sqs:{region}:{account}:{name}"


def _reported_failures(response: Any, ids: Sequence[str]) -> set[str]:
    """The message IDs the event source mapping keeps, from a ReportBatchItemFailures response.

    Per the Lambda docs: None, no/None/empty batchItemFailures mean complete success; an item whose
    itemIdentifier is missing, empty, or not in the batch fails the whole batch. We are stricter than
    documented in one place: any non-object response also fails the whole batch, since a handler of ours
    returning one is a bug."""
    if response is None:
        return set()
    everything = set(ids)
    if not isinstance(response, Mapping):
        return everything
    try:
        json.dumps(response)
    except (TypeError, ValueError):
        return everything  # Lambda could not serialise it: an invalid response
    items = response.get("batchItemFailures")
    if items is None:
        return set()
    if not isinstance(items, list):
        return everything
    failed: set[str] = set()
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not isinstance(identifier, str) or identifier not in everything:
            return everything
        failed.add(identifier)
    return failed

"""Pins down each SQS / Lambda event source mapping behaviour the simulation promises (see sqs_sim's docstring)."""

from __future__ import annotations

import hashlib
import json
import math
import random
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSEvent, SQSRecord
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from portrait_studio.ports import Queue
from tests.fakes import FixedClock
from tests.model.sqs_sim import (
    MAX_DELAY_S,
    InvalidParameterValue,
    MessageNotInflight,
    MessageTooLong,
    ParamValidationError,
    QueueDoesNotExist,
    ReceiptHandleIsInvalid,
    SimulatedSqs,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"
URL = "https://sqs.us-east-1.amazonaws.com/123456789012/DispatchQueue"
DLQ = "https://sqs.us-east-1.amazonaws.com/123456789012/DispatchDeadLetterQueue"
VISIBILITY_S = 360  # the template's DispatchQueue
MAX_RECEIVES = 5
T = TypeVar("T")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def sqs(clock: FixedClock) -> SimulatedSqs:
    sim = SimulatedSqs(clock, random.Random(7))
    sim.create_queue(DLQ, visibility_timeout_s=30, retention_s=1_209_600)
    sim.create_queue(URL, VISIBILITY_S, MAX_RECEIVES, DLQ, retention_s=172_800)
    return sim


def only(items: list[T]) -> T:
    assert len(items) == 1, items
    return items[0]


# --- the port ----------------------------------------------------------------------------------------------


def test_implements_the_queue_port_and_serialises_like_the_adapter(sqs: SimulatedSqs) -> None:
    queue: Queue = sqs  # mypy checks the Protocol here
    queue.send(URL, {"job_id": "j1", "slots": ["a", "b"]})
    message = only(sqs.receive(URL))
    assert message["Body"] == json.dumps({"job_id": "j1", "slots": ["a", "b"]})
    assert message["MD5OfBody"] == hashlib.md5(message["Body"].encode(), usedforsecurity=False).hexdigest()
    assert sqs.messages(URL) == [{"job_id": "j1", "slots": ["a", "b"]}]


def test_unknown_queue_and_oversized_or_float_arguments_are_refused(sqs: SimulatedSqs) -> None:
    with pytest.raises(QueueDoesNotExist):
        sqs.send("https://sqs.us-east-1.amazonaws.com/123456789012/Nope", {})
    with pytest.raises(MessageTooLong):
        sqs.send(URL, {"blob": "x" * 262_144})
    # botocore refuses a float DelaySeconds / VisibilityTimeout before sending: callers must round (math.ceil).
    with pytest.raises(ParamValidationError):
        sqs.send(URL, {}, delay_s=1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterValue):
        sqs.receive(URL, max_messages=11)


# --- delay ---------------------------------------------------------------------------------------------------


def test_a_delayed_message_stays_hidden_until_the_delay_passes(sqs: SimulatedSqs, clock: FixedClock) -> None:
    sent_at = clock.now()
    sqs.send(URL, {"n": 1}, delay_s=30)
    assert (sqs.depth(URL), sqs.visible(URL), sqs.delayed(URL), sqs.in_flight(URL)) == (1, 0, 1, 0)
    assert sqs.next_visible_at(URL) == sent_at + timedelta(seconds=30)
    clock.advance(seconds=29)
    assert sqs.receive(URL) == []
    clock.advance(seconds=1)
    message = only(sqs.receive(URL))
    # SentTimestamp is the send, not the end of the delay.
    assert message["Attributes"]["SentTimestamp"] == str(int(sent_at.timestamp() * 1000))


def test_delay_is_capped_at_900_seconds(sqs: SimulatedSqs, clock: FixedClock) -> None:
    sqs.send(URL, {"n": 1}, delay_s=5000)
    assert sqs.next_visible_at(URL) == clock.now() + timedelta(seconds=MAX_DELAY_S)
    sqs.send(URL, {"n": 2}, delay_s=-5)
    assert sqs.visible(URL) == 1


# --- visibility, receive count, receipt handles ---------------------------------------------------------------


def test_a_received_message_is_in_flight_for_the_visibility_timeout_then_returns(
    sqs: SimulatedSqs, clock: FixedClock
) -> None:
    sqs.send(URL, {"n": 1})
    first = only(sqs.receive(URL))
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    assert (sqs.visible(URL), sqs.in_flight(URL), sqs.depth(URL)) == (0, 1, 1)
    clock.advance(seconds=VISIBILITY_S - 1)
    assert sqs.receive(URL) == []
    clock.advance(seconds=1)
    second = only(sqs.receive(URL))
    assert second["MessageId"] == first["MessageId"]
    assert second["ReceiptHandle"] != first["ReceiptHandle"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    assert (
        second["Attributes"]["ApproximateFirstReceiveTimestamp"]
        == first["Attributes"]["ApproximateFirstReceiveTimestamp"]
    )
    assert second["Attributes"]["SentTimestamp"] == first["Attributes"]["SentTimestamp"]


def test_change_visibility_counts_from_the_call(sqs: SimulatedSqs, clock: FixedClock) -> None:
    sqs.send(URL, {"n": 1})
    handle = only(sqs.receive(URL))["ReceiptHandle"]
    clock.advance(seconds=15)
    sqs.change_visibility(URL, handle, 10)
    assert sqs.next_visible_at(URL) == clock.now() + timedelta(seconds=10)
    clock.advance(seconds=10)
    assert sqs.visible(URL) == 1  # 25 s after the receive, not 15 + 360 or 360 + 10


def test_change_visibility_zero_makes_it_visible_at_once_and_then_not_in_flight(sqs: SimulatedSqs) -> None:
    sqs.send(URL, {"n": 1})
    handle = only(sqs.receive(URL))["ReceiptHandle"]
    sqs.change_visibility(URL, handle, 0)
    assert sqs.visible(URL) == 1
    with pytest.raises(MessageNotInflight):
        sqs.change_visibility(URL, handle, 60)


def test_change_visibility_after_the_timeout_ran_out_is_refused(sqs: SimulatedSqs, clock: FixedClock) -> None:
    sqs.send(URL, {"n": 1})
    handle = only(sqs.receive(URL))["ReceiptHandle"]
    clock.advance(seconds=VISIBILITY_S)
    with pytest.raises(MessageNotInflight):
        sqs.change_visibility(URL, handle, 60)


def test_a_stale_or_made_up_receipt_handle_cannot_change_visibility(sqs: SimulatedSqs, clock: FixedClock) -> None:
    sqs.send(URL, {"n": 1})
    old = only(sqs.receive(URL))["ReceiptHandle"]
    clock.advance(seconds=VISIBILITY_S)
    new = only(sqs.receive(URL))["ReceiptHandle"]
    with pytest.raises(ReceiptHandleIsInvalid):
        sqs.change_visibility(URL, old, 60)
    with pytest.raises(ReceiptHandleIsInvalid):
        sqs.change_visibility(URL, "AQEBmadeup", 60)
    with pytest.raises(ReceiptHandleIsInvalid):
        sqs.change_visibility(DLQ, new, 60)  # a handle belongs to its queue
    sqs.change_visibility(URL, new, 60)


def test_visibility_cannot_reach_past_12_hours_after_the_receive(sqs: SimulatedSqs, clock: FixedClock) -> None:
    sqs.send(URL, {"n": 1})
    handle = only(sqs.receive(URL))["ReceiptHandle"]
    sqs.change_visibility(URL, handle, 43_200)  # exactly 12 hours from the receive: allowed
    clock.advance(seconds=10)
    with pytest.raises(InvalidParameterValue):
        sqs.change_visibility(URL, handle, 43_200)
    sqs.change_visibility(URL, handle, 43_190)


# --- delete ------------------------------------------------------------------------------------------------------


def test_delete_with_the_latest_handle_removes_the_message_even_after_the_timeout(
    sqs: SimulatedSqs, clock: FixedClock
) -> None:
    sqs.send(URL, {"n": 1})
    handle = only(sqs.receive(URL))["ReceiptHandle"]
    clock.advance(seconds=VISIBILITY_S + 60)
    sqs.delete(URL, handle)
    assert sqs.depth(URL) == 0
    sqs.delete(URL, handle)  # deleting again succeeds, like SQS


def test_delete_with_a_stale_handle_succeeds_but_leaves_the_message(sqs: SimulatedSqs, clock: FixedClock) -> None:
    sqs.send(URL, {"n": 1})
    old = only(sqs.receive(URL))["ReceiptHandle"]
    clock.advance(seconds=VISIBILITY_S)
    new = only(sqs.receive(URL))["ReceiptHandle"]
    sqs.delete(URL, old)
    assert sqs.depth(URL) == 1
    assert sqs.stale_deletes(URL) == 1
    with pytest.raises(ReceiptHandleIsInvalid):
        sqs.delete(URL, "AQEBmadeup")
    assert sqs.delete_batch(URL, [new, "AQEBmadeup"]) == ["AQEBmadeup"]
    assert sqs.depth(URL) == 0


# --- redrive and retention ---------------------------------------------------------------------------------------


def test_redrive_happens_on_the_receive_after_max_receive_count(sqs: SimulatedSqs, clock: FixedClock) -> None:
    sqs.send(URL, {"poison": True})
    handles = []
    for attempt in range(1, MAX_RECEIVES + 1):
        message = only(sqs.receive(URL))
        assert message["Attributes"]["ApproximateReceiveCount"] == str(attempt)
        handles.append(message["ReceiptHandle"])
        clock.advance(seconds=VISIBILITY_S)
    # The fifth timeout has lapsed: the message is visible again, still in the source queue.
    assert (sqs.visible(URL), sqs.dlq_depth(URL)) == (1, 0)
    assert sqs.receive(URL) == []
    assert (sqs.depth(URL), sqs.dlq_depth(URL), sqs.moved_to_dlq(URL)) == (0, 1, 1)
    assert sqs.messages(DLQ) == [{"poison": True}]
    with pytest.raises(ReceiptHandleIsInvalid):
        sqs.change_visibility(URL, handles[-1], 60)
    moved = only(sqs.receive(DLQ))
    assert moved["MessageId"] == only(sqs.peek(DLQ)).message_id


def test_a_message_deleted_on_its_last_allowed_receive_never_reaches_the_dlq(
    sqs: SimulatedSqs, clock: FixedClock
) -> None:
    sqs.send(URL, {"n": 1})
    for _ in range(MAX_RECEIVES - 1):
        only(sqs.receive(URL))
        clock.advance(seconds=VISIBILITY_S)
    sqs.delete(URL, only(sqs.receive(URL))["ReceiptHandle"])
    assert (sqs.depth(URL), sqs.dlq_depth(URL)) == (0, 0)


def test_retention_counts_from_the_original_send_even_in_the_dlq(clock: FixedClock) -> None:
    sim = SimulatedSqs(clock)
    sim.create_queue("dlq", 30, retention_s=600)
    sim.create_queue("main", 60, 1, "dlq", retention_s=300)
    sim.send("main", {"n": 1})
    only(sim.receive("main"))
    clock.advance(seconds=120)
    assert sim.receive("main") == []  # moved to the DLQ 120 s after the send
    assert sim.depth("dlq") == 1
    clock.advance(seconds=480)  # 600 s after the send, 480 s after the move
    assert (sim.depth("dlq"), sim.expired("dlq")) == (0, 1)
    sim.send("main", {"n": 2})
    clock.advance(seconds=300)
    assert (sim.depth("main"), sim.expired("main")) == (0, 1)


# --- order, counters, duplicates -------------------------------------------------------------------------------


def test_receive_order_is_random_but_reproducible_from_the_seed(clock: FixedClock) -> None:
    def order(seed: int) -> list[int]:
        sim = SimulatedSqs(clock, random.Random(seed))
        sim.create_queue("q", 30)
        sim.send_batch("q", [{"n": n} for n in range(10)])
        return [json.loads(m["Body"])["n"] for m in sim.receive("q")]

    assert order(1) == order(1)
    assert sorted(order(1)) == list(range(10))
    assert len({tuple(order(seed)) for seed in range(5)}) > 1


def test_request_counters_count_api_calls_as_billed(sqs: SimulatedSqs) -> None:
    sqs.send_batch(URL, [{"n": n} for n in range(25)])  # 3 SendMessageBatch calls
    sqs.send(URL, {"n": 25})
    received = sqs.receive(URL) + sqs.receive(URL, 10)
    sqs.change_visibility(URL, received[0]["ReceiptHandle"], 0)
    sqs.delete_batch(URL, [m["ReceiptHandle"] for m in received[1:]])  # 19 handles: 2 calls
    assert sqs.requests_for(URL) == {"send": 4, "receive": 2, "change_visibility": 1, "delete": 2}
    assert sqs.requests["send"] == 4
    assert sqs.depth(URL) == 26 - 19


def test_an_injected_duplicate_is_a_separate_copy_with_the_same_message_id(sqs: SimulatedSqs) -> None:
    sqs.send(URL, {"n": 1})
    first = only(sqs.receive(URL))
    assert sqs.duplicate(URL, first["MessageId"]) == first["MessageId"]
    second = only(sqs.receive(URL))  # the original is still in flight; the copy is visible
    assert second["MessageId"] == first["MessageId"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "1"
    sqs.delete(URL, first["ReceiptHandle"])
    assert sqs.depth(URL) == 1


# --- Lambda -------------------------------------------------------------------------------------------------------


def test_the_lambda_event_has_the_shape_of_the_sample_event(sqs: SimulatedSqs) -> None:
    sample = json.loads((EVENTS / "sqs_dispatch.json").read_text())["Records"][0]
    sqs.send(URL, {"job_id": "0123456789abcdef0123456789abcdef"})
    event = sqs.lambda_event(URL, sqs.receive(URL))
    record = only(event["Records"])
    assert record.keys() == sample.keys()
    assert record["attributes"].keys() == sample["attributes"].keys()
    assert {k: record[k] for k in ("eventSource", "eventSourceARN", "awsRegion", "messageAttributes")} == {
        k: sample[k] for k in ("eventSource", "eventSourceARN", "awsRegion", "messageAttributes")
    }
    assert record["body"] == sample["body"]
    # The sample's md5OfBody is a placeholder; ours is the real MD5 of the body, as SQS computes it.
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode(), usedforsecurity=False).hexdigest()
    parsed = next(iter(SQSEvent(event).records))
    assert parsed.attributes.approximate_receive_count == "1"
    assert parsed.json_body == {"job_id": "0123456789abcdef0123456789abcdef"}


def test_a_test_style_queue_url_gets_a_plausible_arn(clock: FixedClock) -> None:
    sim = SimulatedSqs(clock)
    sim.create_queue("q-dispatch", 30)
    sim.send("q-dispatch", {})
    record = only(sim.lambda_event("q-dispatch", sim.receive("q-dispatch"))["Records"])
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:q-dispatch"


def powertools_handler(backoff: dict[str, int] | None = None, sqs: SimulatedSqs | None = None) -> Any:
    """A handler built like functions/*/app.py: BatchProcessor + process_partial_response.

    Records whose body has "fail" raise; with `backoff`, they first hide themselves like dispatch does."""
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def record_handler(record: SQSRecord) -> None:
        if record.json_body.get("fail"):
            if backoff is not None and sqs is not None:
                sqs.change_visibility(URL, record.receipt_handle, math.ceil(backoff["s"]))
            raise RuntimeError("record failed")

    def handler(event: dict[str, Any], context: Any) -> Any:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )

    return handler


def test_partial_batch_failure_deletes_only_the_successes(sqs: SimulatedSqs, clock: FixedClock) -> None:
    sqs.send_batch(URL, [{"n": 0}, {"n": 1, "fail": True}, {"n": 2}, {"n": 3, "fail": True}])
    result = sqs.deliver(URL, powertools_handler(), batch_size=4)
    assert len(result.received) == 4
    assert (len(result.deleted), len(result.failed), result.raised) == (2, 2, None)
    assert result.response == {"batchItemFailures": [{"itemIdentifier": i} for i in result.failed]}
    assert sorted(m["n"] for m in sqs.messages(URL)) == [1, 3]
    assert sqs.in_flight(URL) == 2  # Lambda does not release failed records: they wait out the timeout
    clock.advance(seconds=VISIBILITY_S)
    again = sqs.deliver(URL, powertools_handler(), batch_size=4)
    assert sorted(again.received) == sorted(result.failed)


def test_a_record_that_hides_itself_returns_after_its_own_backoff(sqs: SimulatedSqs, clock: FixedClock) -> None:
    sqs.send(URL, {"fail": True})
    handler = powertools_handler({"s": 20}, sqs)
    assert len(sqs.deliver(URL, handler).failed) == 1
    assert sqs.next_visible_at(URL) == clock.now() + timedelta(seconds=20)
    clock.advance(seconds=20)
    assert len(sqs.deliver(URL, handler).received) == 1


def test_a_raising_handler_gets_the_whole_batch_redelivered(sqs: SimulatedSqs, clock: FixedClock) -> None:
    sqs.send_batch(URL, [{"n": 0}, {"n": 1}])

    def crash(event: dict[str, Any], context: Any) -> Any:
        raise TimeoutError("task timed out")

    result = sqs.deliver(URL, crash)
    assert isinstance(result.raised, TimeoutError)
    assert (len(result.received), result.deleted, len(result.failed)) == (2, [], 2)
    assert (sqs.depth(URL), sqs.in_flight(URL)) == (2, 2)
    clock.advance(seconds=VISIBILITY_S)
    assert len(sqs.deliver(URL, powertools_handler()).deleted) == 2
    assert sqs.depth(URL) == 0


def test_powertools_raising_on_an_entirely_failed_batch_deletes_nothing(sqs: SimulatedSqs) -> None:
    processor = BatchProcessor(event_type=EventType.SQS)  # raise_on_entire_batch_failure defaults to True

    def handler(event: dict[str, Any], context: Any) -> Any:
        return process_partial_response(event=event, record_handler=_fail, processor=processor, context=context)

    sqs.send(URL, {"n": 0})
    result = sqs.deliver(URL, handler)
    assert result.raised is not None
    assert sqs.depth(URL) == 1


def _fail(record: SQSRecord) -> None:
    raise RuntimeError("nope")


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]},
        {"batchItemFailures": [{"wrongKey": "x"}]},
        "ok",
    ],
)
def test_an_invalid_failure_report_fails_the_whole_batch(sqs: SimulatedSqs, response: Any) -> None:
    sqs.send_batch(URL, [{"n": 0}, {"n": 1}])
    result = sqs.deliver(URL, lambda event, context: response)
    assert (result.deleted, len(result.failed)) == ([], 2)


@pytest.mark.parametrize("response", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}])
def test_an_empty_failure_report_is_complete_success(sqs: SimulatedSqs, response: Any) -> None:
    sqs.send_batch(URL, [{"n": 0}, {"n": 1}])
    assert len(sqs.deliver(URL, lambda event, context: response).deleted) == 2
    assert sqs.depth(URL) == 0


def test_an_empty_queue_invokes_nothing(sqs: SimulatedSqs) -> None:
    calls: list[Any] = []
    result = sqs.deliver(URL, lambda event, context: calls.append(event))
    assert (result.invoked, calls, sqs.requests_for(URL)["receive"]) == (False, [], 1)


def test_batch_size_above_ten_takes_several_receives(sqs: SimulatedSqs) -> None:
    sqs.send_batch(URL, [{"n": n} for n in range(25)])
    result = sqs.deliver(URL, lambda event, context: None, batch_size=25)
    assert (len(result.deleted), sqs.requests_for(URL)["receive"], sqs.requests_for(URL)["delete"]) == (25, 3, 3)


# --- a small state machine: the simulation never loses or invents a message ----------------------------------


class Conservation(RuleBasedStateMachine):
    """Random sends, polls with flaky handlers and clock jumps; every message sent is stored somewhere,
    deleted by a success, or expired, and none is received more than maxReceiveCount times from the source."""

    @initialize(seed=st.integers(0, 2**16))
    def start(self, seed: int) -> None:
        self.clock = FixedClock()
        self.sqs = SimulatedSqs(self.clock, random.Random(seed))
        self.sqs.create_queue("dlq", 30)
        self.sqs.create_queue("q", 60, 3, "dlq", retention_s=3600)
        self.sent = 0
        self.deleted = 0

    @rule(n=st.integers(1, 12), delay=st.integers(0, 120))
    def send(self, n: int, delay: int) -> None:
        for i in range(n):
            self.sqs.send("q", {"i": self.sent + i}, delay_s=delay)
        self.sent += n

    @rule(outcome=st.sampled_from(["ok", "some fail", "all fail", "crash"]), batch=st.integers(1, 10))
    def poll(self, outcome: str, batch: int) -> None:
        def handler(event: dict[str, Any], context: Any) -> Any:
            for record in event["Records"]:
                count = int(record["attributes"]["ApproximateReceiveCount"])
                assert count <= 3, "received past maxReceiveCount from the source queue"
            if outcome == "crash":
                raise RuntimeError("crash")
            keep = {"ok": 0, "some fail": 2, "all fail": 1}[outcome]
            ids = [r["messageId"] for i, r in enumerate(event["Records"]) if keep and i % keep == 0]
            return {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}

        result = self.sqs.deliver("q", handler, batch_size=batch)
        assert not isinstance(result.raised, AssertionError), result.raised
        self.deleted += len(result.deleted)

    @precondition(lambda self: self.sqs.next_visible_at("q") is not None)
    @rule()
    def wait_for_next(self) -> None:
        target = self.sqs.next_visible_at("q")
        assert target is not None
        self.clock.current = max(self.clock.current, target)

    @rule(seconds=st.integers(1, 900))
    def wait(self, seconds: int) -> None:
        self.clock.advance(seconds=seconds)

    @invariant()
    def nothing_lost(self) -> None:
        stored = self.sqs.depth("q") + self.sqs.depth("dlq")
        expired = self.sqs.expired("q") + self.sqs.expired("dlq")
        assert stored + self.deleted + expired == self.sent
        assert self.sqs.depth("q") == self.sqs.visible("q") + self.sqs.delayed("q") + self.sqs.in_flight("q")


TestConservation = Conservation.TestCase
TestConservation.settings = settings(max_examples=40, stateful_step_count=40, deadline=None, database=None)

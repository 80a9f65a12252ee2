"""Lambda's SQS event source mappings: each queue polled and fed to its function in real SQS batch events.

As many pollers per queue as the function may run at once. A batch item the function reports failed
(`batchItemFailures`), or a whole batch whose invocation failed, stays undeleted: SQS delivers it again after the
visibility timeout. Crash faults (`crashes.py`) make a function die before or after its handler.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.local.aws_gate.identities import LOCAL_SECRET, LocalIdentities
from infra.local.log import log
from infra.local.queues.crashes import CrashFaults
from infra.local.template import QueueSource

# Lambda's event source mappings long-poll: an idle poller asks SQS three times a minute, not every second (a stack
# of 8 pollers asking each second spent about 4 CPU s a minute doing nothing). Messages still arrive at once: a long
# poll returns as soon as one is there.
LONG_POLL_S = 20


class MappingRefused(ValueError):
    """A mapping CreateEventSourceMapping refuses (InvalidParameterValueException)."""


def check_visibility(source: QueueSource, visibility_timeout_s: int, function_timeout_s: float) -> None:
    """AWS refuses to map a queue to a function that may run longer than the queue hides a batch: SQS would hand
    the batch to a second invocation while the first still runs."""
    if visibility_timeout_s < function_timeout_s:
        raise MappingRefused(
            f"{source.queue} -> {source.function}: Queue visibility timeout: {visibility_timeout_s} seconds is less "
            f"than Function timeout: {function_timeout_s:g} seconds"
        )


class QueuePollers:
    """The pollers of every queue the template maps to a function, polling with that function's role."""

    def __init__(
        self,
        sources: list[QueueSource],
        identities: LocalIdentities,
        invoke: Callable[[str, dict[str, Any]], Any],
        crashes: CrashFaults,
        stop: threading.Event,
        *,
        region: str,
        queue_urls: dict[str, str],
        queue_arn: Callable[[str], str],
        aws_gate_url: str,
    ) -> None:
        self._sources = sources
        self._identities = identities
        self._invoke = invoke
        self._crashes = crashes
        self._stop = stop
        self._region = region
        self._queue_urls = queue_urls
        self._queue_arn = queue_arn
        self._aws_gate_url = aws_gate_url
        self._record_lock = threading.Lock()
        self._batches = threading.Condition()
        self._batches_in_flight = 0

    def start(
        self,
        concurrency: Callable[[str], int],
        spawn: Callable[[str, Callable[[], None]], object],
        timeout_s: Callable[[str], float],
        visibility_timeout_s: Callable[[str], int],
    ) -> None:
        """Create the mappings as CreateEventSourceMapping would (refusing what it refuses), then poll: as many
        pollers per queue as the function may run at once (its MaximumConcurrency, capped locally)."""
        for source in self._sources:
            self._identities.check_event_source(source.function, self._queue_arn(source.queue))
            check_visibility(source, visibility_timeout_s(source.queue), timeout_s(source.function))
            for slot in range(concurrency(source.function)):
                poll = functools.partial(self._poll, source.function, source.queue, source.batch_size)
                spawn(f"poll-{source.queue}-{slot}", poll)

    def _poll(self, function: str, queue: str, batch_size: int) -> None:
        import boto3

        # Lambda's event source mapping polls with the function's role: through the AWS gate, as its own caller.
        sqs = boto3.client(
            "sqs",
            region_name=self._region,
            endpoint_url=self._aws_gate_url,
            aws_access_key_id=self._identities.event_source_key_of(function),
            aws_secret_access_key=LOCAL_SECRET,
        )
        url = self._queue_urls[queue]
        arn = self._queue_arn(queue)
        while not self._stop.is_set():
            try:
                received = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=batch_size, WaitTimeSeconds=LONG_POLL_S, AttributeNames=["All"]
                ).get("Messages", [])
            except Exception:
                if self._stop.is_set():
                    return
                time.sleep(0.5)
                continue
            if not received or self._stop.is_set():
                continue  # stopping: the batch stays undeleted, as one received by a mapping being deleted
            with self._batches:
                self._batches_in_flight += 1
            try:
                self._handle(sqs, function, queue, url, arn, received)
            finally:
                with self._batches:
                    self._batches_in_flight -= 1
                    self._batches.notify_all()

    def wait_for_batches(self, timeout_s: float) -> None:
        """Until no poller is handling a batch: stopping waits for those, not for the pollers' empty long polls."""
        with self._batches:
            self._batches.wait_for(lambda: self._batches_in_flight == 0, timeout=timeout_s)

    def _handle(self, sqs: Any, function: str, queue: str, url: str, arn: str, received: list[dict[str, Any]]) -> None:
        """Invoke `function` on one received batch and delete what it did not report failed."""
        self._record_messages(queue, received)
        event = {"Records": [self._sqs_record(m, arn) for m in received]}
        crash = self._crashes.draw()
        if crash == "before":
            self._crashed(function, crash, len(received))
            return
        try:
            response = self._invoke(function, event) or {}
            failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        except Exception:
            traceback.print_exc()
            failed = {m["MessageId"] for m in received}
        if crash == "after":
            self._crashed(function, crash, len(received))
            return
        done = [m for m in received if m["MessageId"] not in failed]
        if done:
            try:
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
            except Exception:
                traceback.print_exc()  # undeleted: SQS delivers the batch again, as it would on AWS

    def _record_messages(self, queue: str, received: list[dict[str, Any]]) -> None:
        """With LOCAL_RECORD_MESSAGES=<file>, every message a function receives is appended there (JSON lines):
        tests read what travelled through the queues (e.g. that no face embedding ever did)."""
        target = os.environ.get("LOCAL_RECORD_MESSAGES")
        if not target:
            return
        with self._record_lock, Path(target).open("a") as out:
            for message in received:
                out.write(json.dumps({"queue": queue, "body": message.get("Body", "")}) + "\n")

    def _crashed(self, function: str, point: str, messages: int) -> None:
        # The batch stays undeleted: SQS hands it out again once the visibility timeout runs out.
        log(
            f"injected crash: {function} died {point} its handler; its {messages} message(s) come back "
            "when the queue's visibility timeout ends"
        )

    def _sqs_record(self, message: dict[str, Any], arn: str) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": self._region,
        }

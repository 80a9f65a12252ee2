"""Queue on SQS."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

MAX_DELAY_S = 900  # SQS's limit for DelaySeconds and a sensible cap for visibility back-off


class SqsQueue:
    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self._client_factory = client_factory
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def send(self, queue_url: str, body: Mapping[str, Any], delay_s: int = 0) -> None:
        self.client.send_message(
            QueueUrl=queue_url, MessageBody=json.dumps(body), DelaySeconds=max(0, min(MAX_DELAY_S, delay_s))
        )

    def send_batch(self, queue_url: str, bodies: Sequence[Mapping[str, Any]]) -> None:
        for start in range(0, len(bodies), 10):
            entries = [
                {"Id": str(i), "MessageBody": json.dumps(body)} for i, body in enumerate(bodies[start : start + 10])
            ]
            response = self.client.send_message_batch(QueueUrl=queue_url, Entries=entries)
            if response.get("Failed"):
                failed = {entry["Id"] for entry in response["Failed"]}
                for entry in entries:
                    if entry["Id"] in failed:
                        self.client.send_message(QueueUrl=queue_url, MessageBody=entry["MessageBody"])

    def change_visibility(self, queue_url: str, receipt_handle: str, timeout_s: int) -> None:
        self.client.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, min(43_200, timeout_s))
        )

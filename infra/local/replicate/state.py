"""What the Replicate emulator keeps of each prediction: its API object, its fault plan, its run and its webhooks."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from infra.local.replicate.faults import FaultPlan
from infra.local.replicate.schema import MODEL, WEBHOOK_EVENTS
from infra.local.replicate.webhooks import Webhook
from infra.local.replicate.wire import JSONDict, iso, random_id


@dataclass
class Scheduled:
    """A prediction's run as the capacity model placed it, in emulated time."""

    started: datetime | None = None
    ended: datetime | None = None
    # Whether its create response is out (set by `begin`, one step delay after the create). Until then its start
    # waits, even on an idle instance: Replicate always answers a create with `starting`.
    shown: bool = False


@dataclass
class Prediction:
    data: JSONDict
    plan: FaultPlan
    seed: int
    done: threading.Event = field(default_factory=threading.Event)
    started: float | None = None  # time.monotonic() when processing began, for metrics.predict_time
    reference: bytes | None = None  # kept so evicted outputs can be rendered again on request
    held_start: Webhook | None = None  # the `start` webhook held back when webhooks are reordered
    outbox: deque[Webhook] = field(default_factory=deque)
    sending: bool = False
    capacity: Scheduled | None = None  # set when the capacity model, not the step delay, decides its run

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def status(self) -> str:
        return str(self.data["status"])

    def events(self) -> list[str]:
        if not self.data.get("webhook"):
            return []
        return list(self.data.get("webhook_events_filter") or WEBHOOK_EVENTS)


def prediction_object(
    version: str, payload: JSONDict, deployment: str | None, created_at: datetime, base_url: str
) -> JSONDict:
    """A new prediction as Replicate's API shows it: `starting`, with the create request's input and webhook."""
    data: JSONDict = {
        "id": random_id(),
        "model": MODEL,
        "version": version,
        "input": payload["input"],
        "logs": "",
        "output": None,
        "data_removed": False,
        "error": None,
        "status": "starting",
        "created_at": iso(created_at),
        "started_at": None,
        "completed_at": None,
        "metrics": {},
        "source": "api",
    }
    data["urls"] = _urls(base_url, data["id"])
    if deployment is not None:
        data["deployment"] = deployment  # Replicate's name for the deployment that created a prediction
    for key in ("webhook", "webhook_events_filter"):
        if payload.get(key) is not None:
            data[key] = payload[key]
    return data


def _urls(base_url: str, prediction_id: str) -> dict[str, str]:
    get_url = f"{base_url}/v1/predictions/{prediction_id}"
    return {
        "get": get_url,
        "cancel": f"{get_url}/cancel",
        # Replicate's own web page and streaming host, in their real shapes: clients read both keys, but
        # PhotoMaker's outputs are files, never streamed, so nothing local has to answer there.
        "web": f"https://replicate.com/p/{prediction_id}",
        "stream": f"https://stream.replicate.com/v1/files/{prediction_id}",
    }

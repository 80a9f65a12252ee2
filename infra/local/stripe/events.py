"""`/v1/events`: every event the emulator made, delivered or not, as Stripe's API lists them."""

from __future__ import annotations

import copy

from infra.local.emulators.loopback import Reply
from infra.local.stripe.errors import missing
from infra.local.stripe.lists import list_page
from infra.local.stripe.routing import Request
from infra.local.stripe.state import StripeState
from infra.local.stripe.wire import json_reply


class Events:
    """The events on the emulator's state, read through the API."""

    def __init__(self, state: StripeState) -> None:
        self._state = state

    def list_events(self, request: Request) -> Reply:
        with self._state.lock:
            events = [copy.deepcopy(event.data) for event in self._state.events.values()]
        kind = request.params.get("type")
        if isinstance(kind, str):
            prefix = kind.removesuffix("*")
            events = [e for e in events if (e["type"].startswith(prefix) if kind.endswith("*") else e["type"] == kind)]
        return json_reply(200, list_page(events, request.params, "/v1/events"))

    def get_event(self, request: Request) -> Reply:
        with self._state.lock:
            event = self._state.events.get(request.ids["id"])
            if event is None:
                raise missing("event", request.ids["id"], "id")
            return json_reply(200, copy.deepcopy(event.data))

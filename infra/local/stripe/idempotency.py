"""Stripe's `Idempotency-Key`: a POST's first response kept for 24 hours and replayed to a retry with the same key.

A retry with other parameters, or on another endpoint, is refused (`idempotency_error`); one that arrives while the
first is still running gets a 409. A request that failed validation before the endpoint ran keeps nothing.
"""

from __future__ import annotations

import time
from typing import Final

from infra.local.emulators.loopback import Reply
from infra.local.stripe.errors import StripeError
from infra.local.stripe.state import Saved, StripeState
from infra.local.stripe.wire import JSONDict

MAX_IDEMPOTENCY_KEY: Final = 255
_IDEMPOTENCY_TTL_S: Final = 24 * 60 * 60


class IdempotencyKeys:
    """The keys of one API key, kept in the emulator's state."""

    def __init__(self, state: StripeState, api_key: str) -> None:
        self._state = state
        self._api_key = api_key

    def claim(
        self, key: str, endpoint: str, params: JSONDict, request_id: str
    ) -> tuple[Saved | None, StripeError | None]:
        """(the saved first request to replay, or None to run this one; or the error refusing the key)."""
        now = time.monotonic()
        with self._state.lock:
            slot = self._state.idempotency.get((self._api_key, key))
            if slot is not None and now - slot.created > _IDEMPOTENCY_TTL_S:
                slot = None  # pruned after 24 hours: the key is new again
            if slot is None:
                self._state.idempotency[(self._api_key, key)] = Saved(endpoint, params, now, request_id)
                return None, None
            if slot.endpoint != endpoint:
                message = (
                    "Keys for idempotent requests can only be used for the same endpoint they were first used for "
                    f"('{slot.endpoint}' vs '{endpoint}'). Try using a key other than '{key}' if you meant to "
                    "execute a different request."
                )
                return None, StripeError(400, message, kind="idempotency_error")
            if slot.params != params:
                message = (
                    "Keys for idempotent requests can only be used with the same parameters they were first used "
                    f"with. Try using a key other than '{key}' if you meant to execute a different request."
                )
                return None, StripeError(400, message, kind="idempotency_error")
            if slot.reply is None:
                message = (
                    "There is currently another in-progress request using this Idempotent Key (that probably "
                    f"means you submitted twice, and the other request is still going through): {key}. "
                    "Please try again later."
                )
                return None, StripeError(409, message, kind="idempotency_error")
            return slot, None

    def settle(self, key: str, request_id: str, reply: Reply, keep: bool) -> None:
        """The first request with `key` (`request_id`) finished: keep its reply, or forget the key."""
        with self._state.lock:
            slot = self._state.idempotency.get((self._api_key, key))
            if slot is not None and slot.request_id == request_id:
                if keep:
                    slot.reply = reply
                else:  # failed validation before the endpoint ran: Stripe keeps nothing for the key
                    del self._state.idempotency[(self._api_key, key)]

"""The test hooks under `/_emulator/` (no API key): what the emulator holds, and ways to steer it.

`GET events|refunds|sessions|webhook`, `PUT webhook`, `POST sessions/{id}/pay` (JSON `{"email", "promotion_code"}`),
`POST events/{id}/resend`, `DELETE state`, and `GET|PUT|DELETE faults` (`{"drop_webhooks": true}`: every delivery
lost).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from infra.local.emulators.loopback import Reply
from infra.local.stripe.errors import CheckoutRefused, missing
from infra.local.stripe.payments import Payments
from infra.local.stripe.routing import Request, api_error
from infra.local.stripe.wire import JSONDict, json_reply

if TYPE_CHECKING:
    from infra.local.stripe.emulator import StripeEmulator


class EmulatorHooks:
    """The emulator's own test API (`StripeEmulator`'s methods), over HTTP."""

    def __init__(self, emulator: StripeEmulator, payments: Payments) -> None:
        self._emulator = emulator
        self._payments = payments

    def events(self, _request: Request) -> Reply:
        return json_reply(200, self._emulator.events())

    def refunds(self, _request: Request) -> Reply:
        return json_reply(200, self._emulator.refunds())

    def sessions(self, _request: Request) -> Reply:
        return json_reply(200, self._emulator.sessions())

    def resend(self, request: Request) -> Reply:
        try:
            return json_reply(202, self._emulator.resend(request.ids["id"]))
        except KeyError:
            return api_error(missing("event", request.ids["id"], "id"), "")

    def pay(self, request: Request) -> Reply:
        try:
            payload = self._json_body(request)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return json_reply(400, {"error": {"type": "invalid_request_error", "message": str(exc)}})
        email, code = payload.get("email"), payload.get("promotion_code")
        if not isinstance(email, str) or not (code is None or isinstance(code, str)):
            message = 'Expected {"email": "...", "promotion_code": "..." or null}.'
            return json_reply(400, {"error": {"type": "invalid_request_error", "message": message}})
        try:
            return json_reply(200, self._payments.pay(request.ids["id"], email, code))
        except CheckoutRefused as refused:
            error: JSONDict = {"type": "invalid_request_error", "message": refused.message}
            if refused.code:
                error["param"] = refused.code
            return json_reply(refused.status, {"error": error})

    def get_webhook(self, _request: Request) -> Reply:
        return json_reply(200, {"url": self._emulator.webhook_url, "secret": self._emulator.webhook_secret})

    def put_webhook(self, request: Request) -> Reply:
        try:
            payload = self._json_body(request)
            url = payload.get("url")
            if url is not None and not isinstance(url, str):
                raise ValueError("url must be a string or null")
            self._emulator.webhook_url = url
        except ValueError as exc:
            return json_reply(400, {"error": {"type": "invalid_request_error", "message": str(exc)}})
        return self.get_webhook(request)

    def get_faults(self, _request: Request) -> Reply:
        return json_reply(200, self._emulator.faults.view())

    def delete_faults(self, _request: Request) -> Reply:
        return json_reply(200, self._emulator.faults.reset())

    def put_faults(self, request: Request) -> Reply:
        try:
            return json_reply(200, self._emulator.faults.update(self._json_body(request)))
        except ValueError as exc:
            return json_reply(400, {"error": {"type": "invalid_request_error", "message": str(exc)}})

    def reset(self, _request: Request) -> Reply:
        self._emulator.reset()
        return json_reply(200, {"reset": True})

    @staticmethod
    def _json_body(request: Request) -> JSONDict:
        payload = json.loads(request.body or b"{}")
        if not isinstance(payload, dict):
            raise ValueError("expected a JSON object")
        return payload

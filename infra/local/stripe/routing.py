"""How a request reaches its handler: the route it matches, and for Stripe's API the key, idempotency and headers.

A route's kind says what it takes: "api" (`/v1/...`) needs the API key, honours `Idempotency-Key` and answers
in Stripe's error envelope with `Request-Id` and `Stripe-Version`; "page" (the hosted checkout) and "hook"
(`/_emulator/...`) take neither key nor idempotency.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urlsplit

from infra.local.emulators.loopback import Reply
from infra.local.stripe.errors import StripeError
from infra.local.stripe.idempotency import MAX_IDEMPOTENCY_KEY, IdempotencyKeys
from infra.local.stripe.params import decode_form
from infra.local.stripe.state import StripeState
from infra.local.stripe.wire import API_VERSION, JSONDict, json_reply, random_id


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Message
    params: JSONDict  # the form body of a POST, the query string of a GET
    ids: dict[str, str]  # from the route's pattern
    request_id: str
    idempotency_key: str | None
    body: bytes = b""


Handler = Callable[[Request], Reply]
Route = tuple[str, re.Pattern[str], Handler, str]


def compile_routes(routes: list[tuple[str, str, Handler, str]]) -> list[Route]:
    """(method, path pattern, handler, kind) with each path matched whole, a trailing slash allowed."""
    return [(method, re.compile(rf"{path}/?"), handler, kind) for method, path, handler, kind in routes]


def api_error(error: StripeError, request_id: str) -> Reply:
    headers: tuple[tuple[str, str], ...] = (("Request-Id", request_id), ("Stripe-Should-Retry", "false"))
    if error.status == 409:
        headers = (("Request-Id", request_id),)  # the library retries a 409 on its own
    return json_reply(error.status, error.envelope(request_id), headers=headers)


class Router:
    """Matches each request to its route and runs the handler as Stripe's API (or the page, or a hook) would."""

    def __init__(self, routes: list[Route], api_key: str, state: StripeState) -> None:
        self._routes = routes
        self._api_key = api_key
        self._keys = IdempotencyKeys(state, api_key)

    def handle(self, method: str, target: str, headers: Message, body: bytes) -> Reply:
        parts = urlsplit(target)
        request_id = random_id("req_", 14)
        allowed: list[str] = []
        for route_method, pattern, handler, kind in self._routes:
            match = pattern.fullmatch(parts.path)
            if match is None:
                continue
            if route_method != method:
                allowed.append(route_method)
                continue
            if kind != "api":
                return self._plain(handler, method, parts.path, headers, body, parts.query, match.groupdict())
            return self._api(handler, method, parts.path, headers, body, parts.query, match.groupdict(), request_id)
        if parts.path.startswith("/v1/") or allowed:
            message = f"Unrecognized request URL ({method}: {parts.path}). Please see https://stripe.com/docs."
            return api_error(StripeError(404, message), request_id)
        return json_reply(404, {"error": {"type": "invalid_request_error", "message": "Not found."}})

    def _plain(
        self, handler: Handler, method: str, path: str, headers: Message, body: bytes, query: str, ids: dict[str, str]
    ) -> Reply:
        raw = body.decode("utf-8", "replace") if method == "POST" else query
        params = decode_form(raw) if "json" not in (headers.get("Content-Type") or "") else {}
        return handler(Request(method, path, headers, params, ids, "", None, body))

    def _api(
        self,
        handler: Handler,
        method: str,
        path: str,
        headers: Message,
        body: bytes,
        query: str,
        ids: dict[str, str],
        request_id: str,
    ) -> Reply:
        auth_error = self._authenticate(headers.get("Authorization"))
        if auth_error is not None:
            return api_error(auth_error, request_id)
        try:
            params = decode_form(body.decode() if method == "POST" else query)
        except UnicodeDecodeError:
            return api_error(StripeError(400, "Invalid request body: not UTF-8."), request_id)
        key = (headers.get("Idempotency-Key") or "").strip() or None
        if method != "POST" or key is None:
            return self._execute(handler, Request(method, path, headers, params, ids, request_id, key))
        if len(key) > MAX_IDEMPOTENCY_KEY:
            message = f"Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY} characters long."
            return api_error(StripeError(400, message, param="Idempotency-Key"), request_id)
        saved, refusal = self._keys.claim(key, f"{method} {path}", params, request_id)
        if refusal is not None:
            return api_error(refusal, request_id)
        if saved is not None:
            assert saved.reply is not None
            replayed = (("Idempotent-Replayed", "true"), ("Original-Request", saved.request_id))
            return Reply(saved.reply.status, saved.reply.body, saved.reply.content_type, saved.reply.headers + replayed)
        reply, keep = self._execute_saving(handler, Request(method, path, headers, params, ids, request_id, key))
        reply = Reply(reply.status, reply.body, reply.content_type, (*reply.headers, ("Idempotency-Key", key)))
        self._keys.settle(key, request_id, reply, keep)
        return reply

    def _execute(self, handler: Handler, request: Request) -> Reply:
        return self._execute_saving(handler, request)[0]

    def _execute_saving(self, handler: Handler, request: Request) -> tuple[Reply, bool]:
        try:
            reply = handler(request)
        except StripeError as error:
            return api_error(error, request.request_id), error.saved
        headers = (("Request-Id", request.request_id), ("Stripe-Version", self._version(request.headers)))
        return Reply(reply.status, reply.body, reply.content_type, reply.headers + headers), True

    @staticmethod
    def _version(headers: Message) -> str:
        return str(headers.get("Stripe-Version") or API_VERSION)

    def _authenticate(self, header: str | None) -> StripeError | None:
        scheme, _, credential = (header or "").strip().partition(" ")
        if not header:
            message = (
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
            )
            return StripeError(401, message)
        key = credential.strip()
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(key, validate=True).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                key = ""
        elif scheme.lower() != "bearer":
            key = ""
        if key and hmac.compare_digest(key.encode(), self._api_key.encode()):
            return None
        shown = f"{key[:8]}{'*' * max(len(key) - 12, 0)}{key[-4:]}" if len(key) > 12 else key
        return StripeError(401, f"Invalid API Key provided: {shown}")

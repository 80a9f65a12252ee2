"""A local stand-in for Stripe's REST API: Checkout Sessions, a hosted checkout page, refunds and signed webhooks.

It speaks the subset of `https://api.stripe.com/v1` the payments adapter uses, so the official `stripe` library works
against it unchanged: form-encoded requests (`line_items[0][price]=…`), Stripe's object shapes and error envelope,
`Idempotency-Key` honoured (replayed with `Idempotent-Replayed: true`, refused with `idempotency_error` when the
parameters differ). It is seeded with one product and its $12.90 price, and a $3-off coupon behind the promotion
code SAVE3. A session's `url` is the emulator's own hosted page, where a person (or a script) enters an email and a
promotion code and pays; the emulator then signs `checkout.session.completed` as Stripe does
(`Stripe-Signature: t=…,v1=HMAC-SHA256(secret, "t.body")`) and POSTs it to the webhook URL, retrying on failure.
Open sessions expire by themselves when the injected clock passes their `expires_at`.

The hosted page `GET /c/pay/{session_id}` posts a form back to the same URL; scripts can post it directly:

    email=buyer@example.com            required on "pay"
    promotion_code=SAVE3               optional; case-insensitive, as on Stripe
    action=pay | apply                 "apply" only re-renders the page with the code's discount (default: pay)

A paid form answers 303 to `success_url` (`{CHECKOUT_SESSION_ID}` replaced); a refused one answers 4xx with the page
saying why (400 invalid email or code, 404 unknown session, 409 already paid, 410 expired).

Test hooks live under `/_emulator/` (no API key): `GET events|refunds|sessions|webhook`, `PUT webhook`,
`POST sessions/{id}/pay` (JSON `{"email", "promotion_code"}`), `POST events/{id}/resend`, `DELETE state`, and
`GET|PUT|DELETE faults` (`{"drop_webhooks": true}`: every delivery lost; infra/local/stripe_lists.py). Lists take
`created[gt|gte|lt|lte]` as Stripe's do; refunds can be made directly (`POST /v1/refunds`), as the dashboard does.

    python -m infra.local.stripe_emulator --port 8789
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import httpx

from infra.local.emulators.cli import cli_parser, parse_cli
from infra.local.emulators.loopback import LoopbackEmulator, Reply, utc_now
from infra.local.stripe_lists import ListParamError, WebhookFaults, created_filter

log = logging.getLogger("stripe_emulator")

# The API version stripe-python 16.1.0 pins (`stripe.api_version`); events are rendered at it.
API_VERSION: Final = "2026-10-28.endive"
DEFAULT_API_KEY: Final = "sk_test_local_emulator"  # the well-known key of a loopback-only fake
DEFAULT_PRICE_ID: Final = "price_portrait_32"
PRODUCT_ID: Final = "prod_portrait_32"
PRODUCT_NAME: Final = "Portrait Studio — 32 AI headshots"
UNIT_AMOUNT: Final = 1290
CURRENCY: Final = "usd"
COUPON_ID: Final = "coupon_save3"
PROMOTION_CODE: Final = "SAVE3"
PROMOTION_CODE_ID: Final = "promo_save3"
AMOUNT_OFF: Final = 300
# What the webhook endpoint is subscribed to; other events are recorded (`GET /v1/events`) but not delivered.
DEFAULT_WEBHOOK_EVENTS: Final = ("checkout.session.completed", "checkout.session.expired")

_ID_ALPHABET: Final = string.ascii_letters + string.digits
_MAX_BODY_BYTES: Final = 1024 * 1024
_MIN_EXPIRY_S: Final = 30 * 60
_MAX_EXPIRY_S: Final = 24 * 60 * 60
_IDEMPOTENCY_TTL_S: Final = 24 * 60 * 60
_MAX_IDEMPOTENCY_KEY: Final = 255
_WEBHOOK_ATTEMPTS: Final = 4
_WORKERS: Final = 3
_EMAIL_RE: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_KEY_RE: Final = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_DOCS: Final = "https://docs.stripe.com/error-codes"

JSONDict = dict[str, Any]


# --------------------------------------------------------------------------- helpers


def _random_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def new_webhook_secret() -> str:
    return "whsec_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(32))


def sign_payload(secret: str, timestamp: int, payload: bytes) -> str:
    """The `Stripe-Signature` header Stripe sends: `t=<unix>,v1=<hex HMAC-SHA256(secret, "t.payload")>`."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def decode_form(raw: str) -> JSONDict:
    """Stripe's form encoding (`a[b]=1`, `a[0][c]=2`, `a[]=3`) back into nested dicts and lists."""
    root: JSONDict = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        match = _KEY_RE.match(key)
        parts = [key] if match is None else [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        last = parts[-1] if parts[-1] != "" else str(len(node))
        node[last] = value
    decoded: JSONDict = _listify(root)
    return decoded


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


class _StripeError(Exception):
    """An API error in Stripe's envelope. `saved`: kept for idempotent replay (endpoint execution had begun)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        saved: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.param = param
        self.saved = saved

    def envelope(self, request_id: str | None = None) -> JSONDict:
        error: JSONDict = {"message": self.message, "type": self.kind}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"{_DOCS}#{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        if request_id is not None:
            error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        return {"error": error}


def _missing(kind: str, object_id: str, param: str, status: int = 404) -> _StripeError:
    return _StripeError(status, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def _param_missing(param: str) -> _StripeError:
    return _StripeError(400, f"Missing required param: {param}.", code="parameter_missing", param=param)


def _unknown_params(params: JSONDict, allowed: frozenset[str], prefix: str = "") -> None:
    for name in params:
        if name not in allowed:
            full = f"{prefix}[{name}]" if prefix else name
            raise _StripeError(400, f"Received unknown parameter: {full}", code="parameter_unknown", param=full)


def _string(params: JSONDict, name: str, max_length: int = 5000) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _StripeError(400, f"Invalid string: {name}", code="parameter_invalid_string", param=name)
    if len(value) > max_length:
        message = f"Invalid string: {value[:20]}...; must be at most {max_length} characters"
        raise _StripeError(400, message, code="parameter_invalid_string", param=name)
    return value


def _integer(value: Any, param: str, *, positive: bool = False) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?\d{1,18}", value.strip()):
        raise _StripeError(400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=param)
    number = int(value)
    if positive and number <= 0:
        raise _StripeError(400, "Invalid positive integer", code="parameter_invalid_integer", param=param)
    return number


def _boolean(value: Any, param: str) -> bool:
    if value not in ("true", "false"):
        raise _StripeError(400, f"Invalid boolean: {value}", param=param)
    return bool(value == "true")


def _metadata(params: JSONDict) -> dict[str, str]:
    value = params.get("metadata")
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise _StripeError(400, "Invalid object", param="metadata")
    if len(value) > 50:
        raise _StripeError(400, "Metadata can have at most 50 keys.", param="metadata")
    clean: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str):
            raise _StripeError(400, "Invalid string", param=f"metadata[{key}]")
        if len(key) > 40 or len(item) > 500:
            message = "Metadata keys can be at most 40 characters and values at most 500 characters."
            raise _StripeError(400, message, param=f"metadata[{key}]")
        if item != "":  # an empty value unsets a key
            clean[key] = item
    return clean


def _created(items: list[JSONDict], params: JSONDict) -> list[JSONDict]:
    try:
        return created_filter(items, params)
    except ListParamError as exc:
        raise _StripeError(400, str(exc), param=exc.param) from None


def _list_page(items: list[JSONDict], params: JSONDict, url: str) -> JSONDict:
    """One page of a Stripe list, newest first, honouring `limit` and `starting_after`/`ending_before`."""
    limit = _integer(params.get("limit", "10"), "limit")
    if not 1 <= limit <= 100:
        raise _StripeError(400, f"This value must be between 1 and 100 (it currently is {limit}).", param="limit")
    # Newest first; `items` come oldest first, so ties on `created` (the same second) keep newest first too.
    ranked = sorted(enumerate(items), key=lambda pair: (pair[1]["created"], pair[0]), reverse=True)
    ordered = [item for _, item in ranked]
    ids = [item["id"] for item in ordered]
    if params.get("starting_after") is not None:
        cursor = str(params["starting_after"])
        if cursor not in ids:
            raise _missing("object", cursor, "starting_after", status=400)
        ordered = ordered[ids.index(cursor) + 1 :]
    elif params.get("ending_before") is not None:
        cursor = str(params["ending_before"])
        if cursor not in ids:
            raise _missing("object", cursor, "ending_before", status=400)
        ordered = ordered[: ids.index(cursor)][-limit:]
    return {"object": "list", "data": ordered[:limit], "has_more": len(ordered) > limit, "url": url}


# --------------------------------------------------------------------------- state


@dataclass
class _Event:
    data: JSONDict
    body: bytes  # exactly what is signed and sent, the same bytes on every attempt and resend
    subscribed: bool
    status: str = "pending"  # pending | delivered | failed | not_sent (no endpoint, or not subscribed)
    attempts: list[JSONDict] = field(default_factory=list)
    cycle: int = 0  # a resend starts a new cycle; retries of an older one stop

    def view(self) -> JSONDict:
        delivery = {"status": self.status, "attempts": copy.deepcopy(self.attempts)}
        return {"event": copy.deepcopy(self.data), "delivery": delivery}


@dataclass
class _Saved:
    """An idempotency key's first request and, once it finished, its response."""

    endpoint: str
    params: JSONDict
    created: float
    request_id: str
    reply: Reply | None = None  # None while the first request is still executing


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    headers: Message
    params: JSONDict  # the form body of a POST, the query string of a GET
    ids: dict[str, str]  # from the route's pattern
    request_id: str
    idempotency_key: str | None
    body: bytes = b""


def _json_reply(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, json.dumps(payload, indent=2).encode(), headers=headers)


def _html_reply(status: int, page: str) -> Reply:
    return Reply(status, page.encode(), content_type="text/html; charset=utf-8")


class _CheckoutRefused(Exception):
    """The hosted page refuses a form (or the test hook a pay): the status and what the page says."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


Handler = Callable[[_Request], Reply]

_SESSION_PARAMS: Final = frozenset(
    {
        "mode",
        "line_items",
        "allow_promotion_codes",
        "client_reference_id",
        "metadata",
        "success_url",
        "cancel_url",
        "expires_at",
        "customer_email",
        "customer_creation",
        "payment_method_types",
        "payment_intent_data",
        "locale",
        "submit_type",
        "billing_address_collection",
        "phone_number_collection",
        "ui_mode",
        "expand",
    }
)
_LINE_ITEM_PARAMS: Final = frozenset({"price", "quantity"})
_REFUND_PARAMS: Final = frozenset({"payment_intent", "charge", "amount", "metadata", "reason", "expand"})
_REFUND_REASONS: Final = ("duplicate", "fraudulent", "requested_by_customer")


class StripeEmulator(LoopbackEmulator):
    """Stripe's Checkout, refunds and webhooks on loopback, seeded with the product's price and the SAVE3 code."""

    server_name = "stripe-emulator"
    title = "Stripe emulator"
    max_body_bytes = _MAX_BODY_BYTES
    logger = log

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        clock: Callable[[], datetime] | None = None,
        price_id: str = DEFAULT_PRICE_ID,
        webhook_events: tuple[str, ...] = DEFAULT_WEBHOOK_EVENTS,
        webhook_backoff_s: float = 0.25,
        sweep_interval_s: float = 1.0,
    ) -> None:
        super().__init__(host, port, _WORKERS)
        self._api_key = api_key
        self._webhook_url = webhook_url
        self.webhook_secret = webhook_secret or new_webhook_secret()
        self._clock = clock or utc_now
        self.price_id = price_id
        self._webhook_events = frozenset(webhook_events)
        self._backoff_s = webhook_backoff_s
        self._sweep_interval_s = sweep_interval_s
        self._lock = threading.Lock()
        self._sessions: dict[str, JSONDict] = {}
        self._line_items: dict[str, list[JSONDict]] = {}
        self._payment_intents: dict[str, JSONDict] = {}
        self._refunds: dict[str, JSONDict] = {}
        self._events: dict[str, _Event] = {}
        self._idempotency: dict[tuple[str, str], _Saved] = {}
        self._product: JSONDict = {}
        self._price: JSONDict = {}
        self._coupon: JSONDict = {}
        self._promotion_code: JSONDict = {}
        self.faults = WebhookFaults()
        self._seed()
        self._routes: list[tuple[str, re.Pattern[str], Handler, str]] = self._route_table()

    # ----------------------------------------------------------------------- lifecycle

    def _started(self) -> None:
        self._runner.call_later(self._sweep_interval_s, self._sweep)

    def _error_reply(self, status: int, message: str) -> Reply:
        kind = "invalid_request_error" if status < 500 else "api_error"
        return _json_reply(status, {"error": {"type": kind, "message": message}})

    # ----------------------------------------------------------------------- inspection and test hooks

    @property
    def webhook_url(self) -> str | None:
        with self._lock:
            return self._webhook_url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("the webhook URL must be http(s)://…")
        with self._lock:
            self._webhook_url = url

    def sessions(self) -> list[JSONDict]:
        self._expire_due()
        with self._lock:
            return [copy.deepcopy(session) for session in self._sessions.values()]

    def refunds(self) -> list[JSONDict]:
        with self._lock:
            return [copy.deepcopy(refund) for refund in self._refunds.values()]

    def events(self) -> list[JSONDict]:
        """Every event, oldest first: `{"event": <the event>, "delivery": {"status", "attempts": [...]}}`."""
        self._expire_due()
        with self._lock:
            return [event.view() for event in self._events.values()]

    def pay(self, session_id: str, email: str, promotion_code: str | None = None) -> JSONDict:
        """Pay an open session as the hosted page does; raises LookupError/ValueError when the page would refuse."""
        self._expire_due()
        try:
            session = self._pay(session_id, email, promotion_code)
        except _CheckoutRefused as refused:
            raise (LookupError if refused.status == 404 else ValueError)(refused.message) from None
        return session

    def resend(self, event_id: str) -> JSONDict:
        """Deliver an event again, with the same id and body (a fresh signature); KeyError if unknown."""
        with self._lock:
            event = self._events[event_id]
            event.cycle += 1
            event.status = "pending"
            cycle = event.cycle
        self._runner.submit(lambda: self._attempt(event_id, cycle, 1))
        return {"id": event_id, "status": "pending"}

    def reset(self) -> None:
        """Forget sessions, payments, refunds, events and idempotency keys; the seeds stay (redemptions zeroed)."""
        with self._lock:
            for table in (self._sessions, self._line_items, self._payment_intents, self._refunds, self._events):
                table.clear()
            self._idempotency.clear()
            self._seed()
        self.faults.reset()

    def _seed(self) -> None:
        created = int(self._clock().timestamp())
        self._product = {
            "id": PRODUCT_ID,
            "object": "product",
            "active": True,
            "created": created,
            "default_price": self.price_id,
            "description": "32 professional 1024×1024 headshots in four styles.",
            "images": [],
            "livemode": False,
            "marketing_features": [],
            "metadata": {},
            "name": PRODUCT_NAME,
            "package_dimensions": None,
            "shippable": None,
            "statement_descriptor": None,
            "tax_code": None,
            "type": "service",
            "unit_label": None,
            "updated": created,
            "url": None,
        }
        self._price = {
            "id": self.price_id,
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            "created": created,
            "currency": CURRENCY,
            "custom_unit_amount": None,
            "livemode": False,
            "lookup_key": None,
            "metadata": {},
            "nickname": None,
            "product": PRODUCT_ID,
            "recurring": None,
            "tax_behavior": "unspecified",
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "one_time",
            "unit_amount": UNIT_AMOUNT,
            "unit_amount_decimal": str(UNIT_AMOUNT),
        }
        self._coupon = {
            "id": COUPON_ID,
            "object": "coupon",
            "amount_off": AMOUNT_OFF,
            "created": created,
            "currency": CURRENCY,
            "duration": "once",
            "duration_in_months": None,
            "livemode": False,
            "max_redemptions": None,
            "metadata": {},
            "name": "$3 off",
            "percent_off": None,
            "redeem_by": None,
            "times_redeemed": 0,
            "valid": True,
        }
        self._promotion_code = {
            "id": PROMOTION_CODE_ID,
            "object": "promotion_code",
            "active": True,
            "code": PROMOTION_CODE,
            "created": created,
            "customer": None,
            "expires_at": None,
            "livemode": False,
            "max_redemptions": None,
            "metadata": {},
            "promotion": {"coupon": COUPON_ID, "type": "coupon"},
            "restrictions": {
                "first_time_transaction": False,
                "minimum_amount": None,
                "minimum_amount_currency": None,
            },
            "times_redeemed": 0,
        }

    # ----------------------------------------------------------------------- HTTP routing

    def _route_table(self) -> list[tuple[str, re.Pattern[str], Handler, str]]:
        """(method, path, handler, kind): kind "api" needs the key and honours idempotency; "page"/"hook" do not."""
        oid = r"(?P<id>[A-Za-z0-9_]+)"
        routes: list[tuple[str, str, Handler, str]] = [
            ("POST", r"/v1/checkout/sessions", self._create_session, "api"),
            ("GET", r"/v1/checkout/sessions", self._list_sessions, "api"),
            ("GET", rf"/v1/checkout/sessions/{oid}", self._get_session, "api"),
            ("POST", rf"/v1/checkout/sessions/{oid}/expire", self._expire_session, "api"),
            ("GET", rf"/v1/checkout/sessions/{oid}/line_items", self._get_line_items, "api"),
            ("POST", r"/v1/refunds", self._create_refund, "api"),
            ("GET", r"/v1/refunds", self._list_refunds, "api"),
            ("GET", rf"/v1/refunds/{oid}", self._get_refund, "api"),
            ("GET", rf"/v1/payment_intents/{oid}", self._get_payment_intent, "api"),
            ("GET", rf"/v1/prices/{oid}", self._get_price, "api"),
            ("GET", rf"/v1/products/{oid}", self._get_product, "api"),
            ("GET", rf"/v1/coupons/{oid}", self._get_coupon, "api"),
            ("GET", r"/v1/promotion_codes", self._list_promotion_codes, "api"),
            ("GET", rf"/v1/promotion_codes/{oid}", self._get_promotion_code, "api"),
            ("GET", r"/v1/events", self._list_events, "api"),
            ("GET", rf"/v1/events/{oid}", self._get_event, "api"),
            ("GET", rf"/c/pay/{oid}", self._page, "page"),
            ("POST", rf"/c/pay/{oid}", self._page_submit, "page"),
            ("GET", r"/_emulator/events", self._hook_events, "hook"),
            ("POST", rf"/_emulator/events/{oid}/resend", self._hook_resend, "hook"),
            ("GET", r"/_emulator/refunds", self._hook_refunds, "hook"),
            ("GET", r"/_emulator/sessions", self._hook_sessions, "hook"),
            ("POST", rf"/_emulator/sessions/{oid}/pay", self._hook_pay, "hook"),
            ("GET", r"/_emulator/webhook", self._hook_get_webhook, "hook"),
            ("GET", r"/_emulator/faults", lambda _r: _json_reply(200, self.faults.view()), "hook"),
            ("PUT", r"/_emulator/faults", self._hook_put_faults, "hook"),
            ("DELETE", r"/_emulator/faults", lambda _r: _json_reply(200, self.faults.reset()), "hook"),
            ("PUT", r"/_emulator/webhook", self._hook_put_webhook, "hook"),
            ("DELETE", r"/_emulator/state", self._hook_reset, "hook"),
        ]
        return [(method, re.compile(rf"{path}/?"), handler, kind) for method, path, handler, kind in routes]

    def handle(self, method: str, target: str, headers: Message, body: bytes) -> Reply:
        self._expire_due()
        parts = urlsplit(target)
        request_id = _random_id("req_", 14)
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
            return self._api_error(_StripeError(404, message), request_id)
        return _json_reply(404, {"error": {"type": "invalid_request_error", "message": "Not found."}})

    def _plain(
        self, handler: Handler, method: str, path: str, headers: Message, body: bytes, query: str, ids: dict[str, str]
    ) -> Reply:
        raw = body.decode("utf-8", "replace") if method == "POST" else query
        params = decode_form(raw) if "json" not in (headers.get("Content-Type") or "") else {}
        return handler(_Request(method, path, headers, params, ids, "", None, body))

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
            return self._api_error(auth_error, request_id)
        try:
            params = decode_form(body.decode() if method == "POST" else query)
        except UnicodeDecodeError:
            return self._api_error(_StripeError(400, "Invalid request body: not UTF-8."), request_id)
        key = (headers.get("Idempotency-Key") or "").strip() or None
        if method != "POST" or key is None:
            return self._execute(handler, _Request(method, path, headers, params, ids, request_id, key))
        if len(key) > _MAX_IDEMPOTENCY_KEY:
            message = f"Idempotency-Key must be at most {_MAX_IDEMPOTENCY_KEY} characters long."
            return self._api_error(_StripeError(400, message, param="Idempotency-Key"), request_id)
        saved, refusal = self._claim_key(key, f"{method} {path}", params, request_id)
        if refusal is not None:
            return self._api_error(refusal, request_id)
        if saved is not None:
            assert saved.reply is not None
            replayed = (("Idempotent-Replayed", "true"), ("Original-Request", saved.request_id))
            return Reply(saved.reply.status, saved.reply.body, saved.reply.content_type, saved.reply.headers + replayed)
        reply, keep = self._execute_saving(handler, _Request(method, path, headers, params, ids, request_id, key))
        reply = Reply(reply.status, reply.body, reply.content_type, (*reply.headers, ("Idempotency-Key", key)))
        with self._lock:
            slot = self._idempotency.get((self._api_key, key))
            if slot is not None and slot.request_id == request_id:
                if keep:
                    slot.reply = reply
                else:  # failed validation before the endpoint ran: Stripe keeps nothing for the key
                    del self._idempotency[(self._api_key, key)]
        return reply

    def _claim_key(
        self, key: str, endpoint: str, params: JSONDict, request_id: str
    ) -> tuple[_Saved | None, _StripeError | None]:
        """(the saved first request to replay, or None to run this one; or the error refusing the key)."""
        now = time.monotonic()
        with self._lock:
            slot = self._idempotency.get((self._api_key, key))
            if slot is not None and now - slot.created > _IDEMPOTENCY_TTL_S:
                slot = None  # pruned after 24 hours: the key is new again
            if slot is None:
                self._idempotency[(self._api_key, key)] = _Saved(endpoint, params, now, request_id)
                return None, None
            if slot.endpoint != endpoint:
                message = (
                    "Keys for idempotent requests can only be used for the same endpoint they were first used for "
                    f"('{slot.endpoint}' vs '{endpoint}'). Try using a key other than '{key}' if you meant to "
                    "execute a different request."
                )
                return None, _StripeError(400, message, kind="idempotency_error")
            if slot.params != params:
                message = (
                    "Keys for idempotent requests can only be used with the same parameters they were first used "
                    f"with. Try using a key other than '{key}' if you meant to execute a different request."
                )
                return None, _StripeError(400, message, kind="idempotency_error")
            if slot.reply is None:
                message = (
                    "There is currently another in-progress request using this Idempotent Key (that probably "
                    f"means you submitted twice, and the other request is still going through): {key}. "
                    "Please try again later."
                )
                return None, _StripeError(409, message, kind="idempotency_error")
            return slot, None

    def _execute(self, handler: Handler, request: _Request) -> Reply:
        return self._execute_saving(handler, request)[0]

    def _execute_saving(self, handler: Handler, request: _Request) -> tuple[Reply, bool]:
        try:
            reply = handler(request)
        except _StripeError as error:
            return self._api_error(error, request.request_id), error.saved
        headers = (("Request-Id", request.request_id), ("Stripe-Version", self._version(request.headers)))
        return Reply(reply.status, reply.body, reply.content_type, reply.headers + headers), True

    def _api_error(self, error: _StripeError, request_id: str) -> Reply:
        headers: tuple[tuple[str, str], ...] = (("Request-Id", request_id), ("Stripe-Should-Retry", "false"))
        if error.status == 409:
            headers = (("Request-Id", request_id),)  # the library retries a 409 on its own
        return _json_reply(error.status, error.envelope(request_id), headers=headers)

    @staticmethod
    def _version(headers: Message) -> str:
        return str(headers.get("Stripe-Version") or API_VERSION)

    def _authenticate(self, header: str | None) -> _StripeError | None:
        scheme, _, credential = (header or "").strip().partition(" ")
        if not header:
            message = (
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
            )
            return _StripeError(401, message)
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
        return _StripeError(401, f"Invalid API Key provided: {shown}")

    # ----------------------------------------------------------------------- checkout sessions

    def _create_session(self, request: _Request) -> Reply:
        params = request.params
        _unknown_params(params, _SESSION_PARAMS)
        mode = _string(params, "mode")
        if mode is None:
            raise _param_missing("mode")
        if mode != "payment":
            message = f"The emulator only supports mode=payment (got '{mode}')."
            raise _StripeError(400, message, param="mode")
        items = self._line_items_param(params.get("line_items"))
        success_url = self._url_param(params, "success_url")
        cancel_url = self._url_param(params, "cancel_url")
        allow_codes = None
        if params.get("allow_promotion_codes") is not None:
            allow_codes = _boolean(params["allow_promotion_codes"], "allow_promotion_codes")
        client_reference_id = _string(params, "client_reference_id", max_length=200)
        customer_email = _string(params, "customer_email", max_length=800)
        metadata = _metadata(params)
        now = int(self._clock().timestamp())
        expires_at = now + _MAX_EXPIRY_S
        if params.get("expires_at") is not None:
            expires_at = _integer(params["expires_at"], "expires_at")
            if expires_at < now + _MIN_EXPIRY_S:
                message = "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation."
                raise _StripeError(400, message, code="parameter_invalid_integer", param="expires_at")
            if expires_at > now + _MAX_EXPIRY_S:
                message = "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation."
                raise _StripeError(400, message, code="parameter_invalid_integer", param="expires_at")
        subtotal = sum(UNIT_AMOUNT * item["quantity"] for item in items)
        session_id = _random_id("cs_test_a1", 56)
        session: JSONDict = {
            "id": session_id,
            "object": "checkout.session",
            "adaptive_pricing": {"enabled": False},
            "after_expiration": None,
            "allow_promotion_codes": allow_codes,
            "amount_subtotal": subtotal,
            "amount_total": subtotal,
            "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
            "billing_address_collection": None,
            "cancel_url": cancel_url,
            "client_reference_id": client_reference_id,
            "client_secret": None,
            "consent": None,
            "consent_collection": None,
            "created": now,
            "currency": CURRENCY,
            "custom_fields": [],
            "custom_text": {
                "after_submit": None,
                "shipping_address": None,
                "submit": None,
                "terms_of_service_acceptance": None,
            },
            "customer": None,
            "customer_creation": "if_required",
            "customer_details": None,
            "customer_email": customer_email,
            "discounts": [],
            "expires_at": expires_at,
            "invoice": None,
            "invoice_creation": {"enabled": False, "invoice_data": None},
            "livemode": False,
            "locale": _string(params, "locale"),
            "metadata": metadata,
            "mode": mode,
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": "if_required",
            "payment_method_options": {},
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "phone_number_collection": {"enabled": False},
            "recovered_from": None,
            "setup_intent": None,
            "shipping_address_collection": None,
            "shipping_cost": None,
            "shipping_options": [],
            "status": "open",
            "submit_type": None,
            "subscription": None,
            "success_url": success_url,
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted",
            "url": f"{self.url}/c/pay/{session_id}",
        }
        with self._lock:
            self._sessions[session_id] = session
            self._line_items[session_id] = items
            return _json_reply(200, copy.deepcopy(session))

    def _line_items_param(self, value: Any) -> list[JSONDict]:
        if value is None or value == "":
            raise _StripeError(400, "Missing required param: line_items.", code="parameter_missing", param="line_items")
        if not isinstance(value, list):
            raise _StripeError(400, "Invalid array", param="line_items")
        items: list[JSONDict] = []
        for n, item in enumerate(value):
            prefix = f"line_items[{n}]"
            if not isinstance(item, dict):
                raise _StripeError(400, "Invalid object", param=prefix)
            _unknown_params(item, _LINE_ITEM_PARAMS, prefix)
            price = item.get("price")
            if not isinstance(price, str) or not price:
                raise _param_missing(f"{prefix}[price]")
            if price != self.price_id:
                raise _missing("price", price, f"{prefix}[price]", status=400)
            if "quantity" not in item:
                message = f"Quantity is required. Add `quantity` to `{prefix}`."
                raise _StripeError(400, message, code="parameter_missing", param=f"{prefix}[quantity]")
            quantity = _integer(item["quantity"], f"{prefix}[quantity]", positive=True)
            items.append({"price": price, "quantity": quantity})
        return items

    @staticmethod
    def _url_param(params: JSONDict, name: str) -> str | None:
        value = _string(params, name)
        if value is None:
            return None
        split = urlsplit(value)
        if split.scheme not in ("http", "https") or not split.netloc:
            raise _StripeError(400, "Not a valid URL", code="url_invalid", param=name)
        return value

    def _session(self, session_id: str) -> JSONDict:
        session = self._sessions.get(session_id)
        if session is None:
            raise _missing("checkout.session", session_id, "session")
        return session

    def _get_session(self, request: _Request) -> Reply:
        with self._lock:
            return _json_reply(200, copy.deepcopy(self._session(request.ids["id"])))

    def _list_sessions(self, request: _Request) -> Reply:
        with self._lock:
            sessions = list(self._sessions.values())
            for name in ("payment_intent", "status", "customer_details"):
                wanted = request.params.get(name)
                if isinstance(wanted, str):
                    sessions = [session for session in sessions if session.get(name) == wanted]
            sessions = _created(sessions, request.params)
            page = _list_page(copy.deepcopy(sessions), request.params, "/v1/checkout/sessions")
        return _json_reply(200, page)

    def _get_line_items(self, request: _Request) -> Reply:
        with self._lock:
            session = self._session(request.ids["id"])
            items = []
            for n, item in enumerate(self._line_items[session["id"]]):
                amount = UNIT_AMOUNT * item["quantity"]
                discount = session["total_details"]["amount_discount"] if n == 0 else 0
                items.append(
                    {
                        "id": f"li_{session['id'][-20:]}{n}",
                        "object": "item",
                        "amount_discount": discount,
                        "amount_subtotal": amount,
                        "amount_tax": 0,
                        "amount_total": amount - discount,
                        "created": session["created"] + n,
                        "currency": CURRENCY,
                        "description": PRODUCT_NAME,
                        "price": copy.deepcopy(self._price),
                        "quantity": item["quantity"],
                    }
                )
        return _json_reply(200, _list_page(items, request.params, f"/v1/checkout/sessions/{session['id']}/line_items"))

    def _expire_session(self, request: _Request) -> Reply:
        with self._lock:
            session = self._session(request.ids["id"])
            if session["status"] != "open":
                message = (
                    f'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a '
                    f'status of "{session["status"]}".'
                )
                raise _StripeError(400, message, saved=True)
            event = self._expire_locked(session, request.request_id, request.idempotency_key)
            snapshot = copy.deepcopy(session)
        self._dispatch(event)
        return _json_reply(200, snapshot)

    def _expire_locked(self, session: JSONDict, request_id: str | None, key: str | None) -> _Event:
        session["status"] = "expired"
        session["url"] = None
        return self._event_locked("checkout.session.expired", session, request_id, key)

    def _expire_due(self) -> None:
        now = int(self._clock().timestamp())
        with self._lock:
            due = [s for s in self._sessions.values() if s["status"] == "open" and s["expires_at"] <= now]
            events = [self._expire_locked(session, None, None) for session in due]
        for event in events:
            log.info("checkout session %s expired", event.data["data"]["object"]["id"])
            self._dispatch(event)

    def _sweep(self) -> None:
        try:
            self._expire_due()
        finally:
            self._runner.call_later(self._sweep_interval_s, self._sweep)

    # ----------------------------------------------------------------------- paying (hosted page and test hook)

    def _find_promotion_code_locked(self, code: str) -> JSONDict | None:
        promo = self._promotion_code
        if code.strip().upper() != promo["code"].upper() or not promo["active"] or not self._coupon["valid"]:
            return None
        return promo

    def _quote_locked(self, session: JSONDict, code: str | None) -> tuple[int, int, JSONDict | None]:
        """(subtotal, discount, the promotion code) for a session with `code` entered; refuses a bad code."""
        subtotal = int(session["amount_subtotal"])
        if not code or not code.strip():
            return subtotal, 0, None
        if not session["allow_promotion_codes"]:
            raise _CheckoutRefused(400, "Promotion codes are not accepted for this payment.", "promotion_code")
        promo = self._find_promotion_code_locked(code)
        if promo is None:
            raise _CheckoutRefused(400, "This code is invalid.", "promotion_code")
        return subtotal, min(int(self._coupon["amount_off"]), subtotal), promo

    def _open_session_locked(self, session_id: str) -> JSONDict:
        session = self._sessions.get(session_id)
        if session is None:
            raise _CheckoutRefused(404, "This checkout session does not exist.", "session")
        if session["status"] == "expired":
            raise _CheckoutRefused(410, "This checkout session has expired. Return to the site to start again.", "")
        if session["status"] == "complete":
            raise _CheckoutRefused(409, "This checkout session has already been paid.", "")
        return session

    def _pay(self, session_id: str, email: str | None, code: str | None) -> JSONDict:
        with self._lock:
            session = self._open_session_locked(session_id)
            email = (email or "").strip()
            if not _EMAIL_RE.match(email):
                raise _CheckoutRefused(400, "Enter a valid email address.", "email")
            subtotal, discount, promo = self._quote_locked(session, code)
            total = subtotal - discount
            now = int(self._clock().timestamp())
            payment_intent: str | None = None
            if total > 0:
                payment_intent = self._payment_intent_locked(total, now)
            if promo is not None:
                promo["times_redeemed"] += 1
                self._coupon["times_redeemed"] += 1
                session["discounts"] = [{"coupon": None, "promotion_code": promo["id"]}]
            session.update(
                status="complete",
                payment_status="paid" if total > 0 else "no_payment_required",
                payment_intent=payment_intent,
                amount_total=total,
                total_details={"amount_discount": discount, "amount_shipping": 0, "amount_tax": 0},
                customer_details={
                    "address": None,
                    "business_name": None,
                    "email": email,
                    "individual_name": None,
                    "name": None,
                    "phone": None,
                    "tax_exempt": "none",
                    "tax_ids": [],
                },
                url=None,
            )
            event = self._event_locked("checkout.session.completed", session, None, None)
            snapshot = copy.deepcopy(session)
        log.info("checkout session %s paid: %s (%s)", session_id, _money(total), payment_intent)
        self._dispatch(event)
        return snapshot

    def _payment_intent_locked(self, amount: int, now: int) -> str:
        intent_id = _random_id("pi_3")
        self._payment_intents[intent_id] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": amount,
            "capture_method": "automatic_async",
            "client_secret": f"{intent_id}_secret_{_random_id('', 25)}",
            "confirmation_method": "automatic",
            "created": now,
            "currency": CURRENCY,
            "customer": None,
            "description": None,
            "last_payment_error": None,
            "latest_charge": _random_id("ch_3"),
            "livemode": False,
            "metadata": {},
            "payment_method": _random_id("pm_1"),
            "payment_method_types": ["card"],
            "status": "succeeded",
        }
        return intent_id

    # ----------------------------------------------------------------------- hosted checkout page

    def _page(self, request: _Request) -> Reply:
        session_id = request.ids["id"]
        with self._lock:
            try:
                session = copy.deepcopy(self._open_session_locked(session_id))
            except _CheckoutRefused as refused:
                return _html_reply(refused.status, _error_page(refused.message))
        return _html_reply(200, self._checkout_page(session, email="", code="", discount=0, message=None))

    def _page_submit(self, request: _Request) -> Reply:
        session_id = request.ids["id"]
        form = request.params
        email = form.get("email") if isinstance(form.get("email"), str) else ""
        code = form.get("promotion_code") if isinstance(form.get("promotion_code"), str) else ""
        assert isinstance(email, str)
        assert isinstance(code, str)
        with self._lock:
            try:
                session = copy.deepcopy(self._open_session_locked(session_id))
            except _CheckoutRefused as refused:
                return _html_reply(refused.status, _error_page(refused.message))
        if form.get("action") == "apply":
            with self._lock:
                try:
                    _, discount, _promo = self._quote_locked(session, code)
                except _CheckoutRefused as refused:
                    page = self._checkout_page(session, email, code, 0, refused.message, refused.code)
                    return _html_reply(refused.status, page)
            return _html_reply(200, self._checkout_page(session, email, code, discount, None))
        try:
            paid = self._pay(session_id, email, code)
        except _CheckoutRefused as refused:
            if refused.status in (404, 409, 410):
                return _html_reply(refused.status, _error_page(refused.message))
            discount = 0
            if refused.code != "promotion_code":
                with self._lock, contextlib.suppress(_CheckoutRefused):
                    discount = self._quote_locked(session, code)[1]
            page = self._checkout_page(session, email, code, discount, refused.message, refused.code)
            return _html_reply(refused.status, page)
        success_url = paid["success_url"]
        if not success_url:
            return _html_reply(200, _done_page(paid))
        location = str(success_url).replace("{CHECKOUT_SESSION_ID}", paid["id"])
        return Reply(303, b"", content_type="text/html; charset=utf-8", headers=(("Location", location),))

    def _checkout_page(
        self, session: JSONDict, email: str, code: str, discount: int, message: str | None, problem: str = ""
    ) -> str:
        esc = html.escape
        quantity = sum(item["quantity"] for item in self._line_items.get(session["id"], [])) or 1
        subtotal = int(session["amount_subtotal"])
        total = subtotal - discount
        rows = [f"<tr><th scope='row'>{esc(PRODUCT_NAME)} × {quantity}</th><td>{_money(subtotal)}</td></tr>"]
        if discount:
            rows.append(
                f"<tr><th scope='row'>Discount ({esc(code.strip().upper())})</th><td>−{_money(discount)}</td></tr>"
            )
        rows.append(f"<tr><th scope='row'>Total due</th><td><strong>{_money(total)}</strong></td></tr>")
        alert = f'<p role="alert" id="problem" class="error">{esc(message)}</p>' if message else ""
        described = ' aria-invalid="true" aria-describedby="problem"'
        promo_field = ""
        if session["allow_promotion_codes"]:
            promo_field = (
                '<p><label for="promotion_code">Promotion code</label> '
                f'<input id="promotion_code" name="promotion_code" value="{esc(code)}" autocomplete="off"'
                f"{described if problem == 'promotion_code' else ''}> "
                '<button type="submit" name="action" value="apply" formnovalidate>Apply</button></p>'
            )
        cancel = session.get("cancel_url")
        cancel_link = f'<p><a href="{esc(cancel)}">Cancel and return</a></p>' if cancel else ""
        body = (
            f"<h1>Pay Portrait Studio</h1>\n{alert}\n"
            f'<table aria-label="Order summary"><tbody>{"".join(rows)}</tbody></table>\n'
            f'<form method="post" action="/c/pay/{esc(session["id"])}">\n'
            '<p><label for="email">Email</label> '
            f'<input id="email" name="email" type="email" autocomplete="email" required value="{esc(email)}"'
            f"{described if problem == 'email' else ''}></p>\n"
            f"{promo_field}\n"
            "<p><small>Test mode: no card is charged.</small></p>\n"
            f'<p><button type="submit" name="action" value="pay">Pay {_money(total)}</button></p>\n'
            f"</form>\n{cancel_link}"
        )
        return _layout("Checkout — Portrait Studio", body)

    # ----------------------------------------------------------------------- refunds and payment intents

    def _create_refund(self, request: _Request) -> Reply:
        params = request.params
        _unknown_params(params, _REFUND_PARAMS)
        intent_id = _string(params, "payment_intent")
        charge_id = _string(params, "charge")
        metadata = _metadata(params)
        reason = _string(params, "reason")
        if reason is not None and reason not in _REFUND_REASONS:
            message = f"Invalid reason: must be one of {', '.join(_REFUND_REASONS)}"
            raise _StripeError(400, message, param="reason")
        amount = _integer(params["amount"], "amount", positive=True) if params.get("amount") is not None else None
        with self._lock:
            intent = self._intent_for_refund_locked(intent_id, charge_id)
            refunded = self._refunded_locked(intent["id"])
            remaining = int(intent["amount_received"]) - refunded
            if remaining <= 0:
                message = f"Charge {intent['latest_charge']} has already been refunded."
                raise _StripeError(400, message, code="charge_already_refunded", saved=True)
            if amount is None:
                amount = remaining
            if amount > remaining:
                message = (
                    f"Refund amount ({_money(amount)}) is greater than unrefunded amount on charge "
                    f"({_money(remaining)})"
                )
                raise _StripeError(400, message, code="amount_too_large", param="amount", saved=True)
            refund_id = _random_id("re_3")
            refund: JSONDict = {
                "id": refund_id,
                "object": "refund",
                "amount": amount,
                "balance_transaction": _random_id("txn_3"),
                "charge": intent["latest_charge"],
                "created": int(self._clock().timestamp()),
                "currency": intent["currency"],
                "destination_details": {"card": {"reference_status": "pending", "type": "refund"}, "type": "card"},
                "metadata": metadata,
                "payment_intent": intent["id"],
                "reason": reason,
                "receipt_number": None,
                "source_transfer_reversal": None,
                "status": "succeeded",
                "transfer_reversal": None,
            }
            self._refunds[refund_id] = refund
            event = self._event_locked("refund.created", refund, request.request_id, request.idempotency_key)
            snapshot = copy.deepcopy(refund)
        log.info("refund %s of %s on %s", refund_id, _money(amount), intent["id"])
        self._dispatch(event)
        return _json_reply(200, snapshot)

    def _intent_for_refund_locked(self, intent_id: str | None, charge_id: str | None) -> JSONDict:
        if intent_id is None and charge_id is None:
            message = "One of the following params should be provided for this request: payment_intent or charge."
            raise _StripeError(400, message, code="parameter_missing")
        if intent_id is not None:
            intent = self._payment_intents.get(intent_id)
            if intent is None:
                raise _missing("payment_intent", intent_id, "payment_intent", status=400)
            if charge_id is not None and intent["latest_charge"] != charge_id:
                raise _StripeError(400, "The charge does not belong to this payment_intent.", param="charge")
            return intent
        for intent in self._payment_intents.values():
            if intent["latest_charge"] == charge_id:
                return intent
        raise _missing("charge", str(charge_id), "charge", status=400)

    def _refunded_locked(self, intent_id: str) -> int:
        return sum(int(r["amount"]) for r in self._refunds.values() if r["payment_intent"] == intent_id)

    def _list_refunds(self, request: _Request) -> Reply:
        with self._lock:
            refunds = list(self._refunds.values())
            for name in ("payment_intent", "charge"):
                wanted = request.params.get(name)
                if isinstance(wanted, str):
                    refunds = [refund for refund in refunds if refund[name] == wanted]
            refunds = _created(refunds, request.params)
            page = _list_page(copy.deepcopy(refunds), request.params, "/v1/refunds")
        return _json_reply(200, page)

    def _get_refund(self, request: _Request) -> Reply:
        with self._lock:
            refund = self._refunds.get(request.ids["id"])
            if refund is None:
                raise _missing("refund", request.ids["id"], "id")
            return _json_reply(200, copy.deepcopy(refund))

    def _get_payment_intent(self, request: _Request) -> Reply:
        with self._lock:
            intent = self._payment_intents.get(request.ids["id"])
            if intent is None:
                raise _missing("payment_intent", request.ids["id"], "intent")
            return _json_reply(200, copy.deepcopy(intent))

    # ----------------------------------------------------------------------- seeded catalogue

    def _get_price(self, request: _Request) -> Reply:
        if request.ids["id"] != self.price_id:
            raise _missing("price", request.ids["id"], "price")
        with self._lock:
            return _json_reply(200, copy.deepcopy(self._price))

    def _get_product(self, request: _Request) -> Reply:
        if request.ids["id"] != PRODUCT_ID:
            raise _missing("product", request.ids["id"], "id")
        with self._lock:
            return _json_reply(200, copy.deepcopy(self._product))

    def _get_coupon(self, request: _Request) -> Reply:
        if request.ids["id"] != COUPON_ID:
            raise _missing("coupon", request.ids["id"], "coupon")
        with self._lock:
            return _json_reply(200, copy.deepcopy(self._coupon))

    def _get_promotion_code(self, request: _Request) -> Reply:
        if request.ids["id"] != PROMOTION_CODE_ID:
            raise _missing("promotion_code", request.ids["id"], "promotion_code")
        with self._lock:
            return _json_reply(200, copy.deepcopy(self._promotion_code))

    def _list_promotion_codes(self, request: _Request) -> Reply:
        params = request.params
        with self._lock:
            promo = copy.deepcopy(self._promotion_code)
        matches = [promo]
        code = params.get("code")
        if isinstance(code, str) and code != promo["code"]:  # the API's `code` filter is case-sensitive
            matches = []
        if "active" in params and _boolean(params["active"], "active") != promo["active"]:
            matches = []
        if isinstance(params.get("coupon"), str) and params["coupon"] != COUPON_ID:
            matches = []
        return _json_reply(200, _list_page(matches, params, "/v1/promotion_codes"))

    # ----------------------------------------------------------------------- events and webhooks

    def _event_locked(self, kind: str, obj: JSONDict, request_id: str | None, key: str | None) -> _Event:
        url = self._webhook_url
        subscribed = kind in self._webhook_events
        data: JSONDict = {
            "id": _random_id("evt_1"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(self._clock().timestamp()),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 1 if subscribed and url else 0,
            "request": {"id": request_id, "idempotency_key": key},
            "type": kind,
        }
        event = _Event(data, json.dumps(data, indent=2).encode(), subscribed)
        if not (subscribed and url):
            event.status = "not_sent"
        self._events[data["id"]] = event
        return event

    def _dispatch(self, event: _Event) -> None:
        if event.status == "pending":
            event_id, cycle = event.data["id"], event.cycle
            self._runner.submit(lambda: self._attempt(event_id, cycle, 1))

    def _attempt(self, event_id: str, cycle: int, attempt: int) -> None:
        """One delivery attempt; on a non-2xx answer or a connection error, the next after a backoff."""
        with self._lock:
            event = self._events.get(event_id)
            url = self._webhook_url
            if event is None or event.cycle != cycle:
                return
            if url is None:
                event.status = "not_sent"
                return
        assert self._http is not None
        if self.faults.take_drop():  # every attempt lost, as when our endpoint is unreachable for Stripe's 3 days
            with self._lock:
                if event.cycle == cycle:
                    event.attempts.append({"attempt": attempt, "url": url, "status_code": None, "error": "dropped"})
                    event.status = "failed"
            log.info("event %s (%s) dropped (fault)", event_id, event.data["type"])
            return
        timestamp = int(self._clock().timestamp())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign_payload(self.webhook_secret, timestamp, event.body),
        }
        record: JSONDict = {"attempt": attempt, "url": url, "timestamp": timestamp, "status_code": None, "error": None}
        try:
            response = self._http.post(url, content=event.body, headers=headers)
            record["status_code"] = response.status_code
        except httpx.HTTPError as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
        ok = record["status_code"] is not None and 200 <= record["status_code"] < 300
        kind = event.data["type"]
        with self._lock:
            if event.cycle != cycle:
                return
            event.attempts.append(record)
            if ok:
                event.status = "delivered"
            elif attempt >= _WEBHOOK_ATTEMPTS:
                event.status = "failed"
        if ok:
            log.debug("event %s (%s) delivered", event_id, kind)
            return
        outcome = record["error"] or f"HTTP {record['status_code']}"
        if attempt >= _WEBHOOK_ATTEMPTS:
            log.warning("event %s (%s) gave up after %d attempts: %s", event_id, kind, attempt, outcome)
            return
        delay = self._backoff_s * 2 ** (attempt - 1)
        log.info("event %s (%s) attempt %d failed (%s); retrying in %.2fs", event_id, kind, attempt, outcome, delay)
        self._runner.call_later(delay, lambda: self._attempt(event_id, cycle, attempt + 1))

    def _list_events(self, request: _Request) -> Reply:
        with self._lock:
            events = [copy.deepcopy(event.data) for event in self._events.values()]
        kind = request.params.get("type")
        if isinstance(kind, str):
            prefix = kind.removesuffix("*")
            events = [e for e in events if (e["type"].startswith(prefix) if kind.endswith("*") else e["type"] == kind)]
        return _json_reply(200, _list_page(events, request.params, "/v1/events"))

    def _get_event(self, request: _Request) -> Reply:
        with self._lock:
            event = self._events.get(request.ids["id"])
            if event is None:
                raise _missing("event", request.ids["id"], "id")
            return _json_reply(200, copy.deepcopy(event.data))

    # ----------------------------------------------------------------------- /_emulator hooks

    def _hook_events(self, _request: _Request) -> Reply:
        return _json_reply(200, self.events())

    def _hook_refunds(self, _request: _Request) -> Reply:
        return _json_reply(200, self.refunds())

    def _hook_sessions(self, _request: _Request) -> Reply:
        return _json_reply(200, self.sessions())

    def _hook_resend(self, request: _Request) -> Reply:
        try:
            return _json_reply(202, self.resend(request.ids["id"]))
        except KeyError:
            return self._api_error(_missing("event", request.ids["id"], "id"), "")

    def _hook_pay(self, request: _Request) -> Reply:
        try:
            payload = self._json_body(request)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return _json_reply(400, {"error": {"type": "invalid_request_error", "message": str(exc)}})
        email, code = payload.get("email"), payload.get("promotion_code")
        if not isinstance(email, str) or not (code is None or isinstance(code, str)):
            message = 'Expected {"email": "...", "promotion_code": "..." or null}.'
            return _json_reply(400, {"error": {"type": "invalid_request_error", "message": message}})
        try:
            return _json_reply(200, self._pay(request.ids["id"], email, code))
        except _CheckoutRefused as refused:
            error: JSONDict = {"type": "invalid_request_error", "message": refused.message}
            if refused.code:
                error["param"] = refused.code
            return _json_reply(refused.status, {"error": error})

    def _hook_get_webhook(self, _request: _Request) -> Reply:
        return _json_reply(200, {"url": self.webhook_url, "secret": self.webhook_secret})

    def _hook_put_webhook(self, request: _Request) -> Reply:
        try:
            payload = self._json_body(request)
            url = payload.get("url")
            if url is not None and not isinstance(url, str):
                raise ValueError("url must be a string or null")
            self.webhook_url = url
        except ValueError as exc:
            return _json_reply(400, {"error": {"type": "invalid_request_error", "message": str(exc)}})
        return self._hook_get_webhook(request)

    def _hook_put_faults(self, request: _Request) -> Reply:
        try:
            return _json_reply(200, self.faults.update(self._json_body(request)))
        except ValueError as exc:
            return _json_reply(400, {"error": {"type": "invalid_request_error", "message": str(exc)}})

    def _hook_reset(self, _request: _Request) -> Reply:
        self.reset()
        return _json_reply(200, {"reset": True})

    @staticmethod
    def _json_body(request: _Request) -> JSONDict:
        payload = json.loads(request.body or b"{}")
        if not isinstance(payload, dict):
            raise ValueError("expected a JSON object")
        return payload


# --------------------------------------------------------------------------- pages


def _layout(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        "<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem}"
        "table{width:100%;border-collapse:collapse;margin:1rem 0}th{text-align:left;font-weight:normal}"
        "td{text-align:right}.error{color:#a00;font-weight:bold}</style>\n"
        f"</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _error_page(message: str) -> str:
    return _layout(
        "Checkout unavailable — Portrait Studio", f"<h1>Checkout unavailable</h1>\n<p>{html.escape(message)}</p>"
    )


def _done_page(session: JSONDict) -> str:
    total = _money(int(session["amount_total"]))
    return _layout("Paid — Portrait Studio", f"<h1>Thank you</h1>\n<p>Payment of {total} complete.</p>")


# --------------------------------------------------------------------------- CLI


def main() -> None:
    parser = cli_parser("Local Stripe emulator (Checkout, refunds, signed webhooks).", port=8789)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--webhook-url", default=None, help="where events are POSTed; none when omitted")
    parser.add_argument("--price-id", default=DEFAULT_PRICE_ID)
    args = parse_cli(parser)
    emulator = StripeEmulator(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        price_id=args.price_id,
    )
    emulator.start()
    print(
        f"Stripe emulator on {emulator.url}\napi key: {args.api_key}\nprice: {emulator.price_id}\n"
        f"webhook secret: {emulator.webhook_secret}\nwebhook url: {emulator.webhook_url}",
        flush=True,
    )
    emulator.serve_until_interrupted()


if __name__ == "__main__":
    main()

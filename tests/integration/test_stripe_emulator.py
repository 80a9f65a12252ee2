"""The local Stripe emulator, driven by the official `stripe` library; webhooks checked with `stripe.Webhook`."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import stripe

from infra.local.stripe.emulator import StripeEmulator
from infra.local.stripe.params import decode_form
from infra.local.stripe.seeds import COUPON_ID, DEFAULT_PRICE_ID, PROMOTION_CODE_ID
from infra.local.stripe.webhooks import sign_payload
from infra.local.stripe.wire import API_VERSION
from tests.integration.emulators import Delivery, Receiver

pytestmark = pytest.mark.integration

API_KEY = "sk_test_emulator_tests"
SECRET = "whsec_test_secret_for_the_emulator"
SUCCESS_URL = "https://studio.test/jobs/j1/paid?session={CHECKOUT_SESSION_ID}"
CANCEL_URL = "https://studio.test/jobs/j1"
HOOK = "stripe"  # the receiver's tag for the webhook endpoint


class Clock:
    """The injected clock: starts at real time (webhook signatures are checked against it), moves on request."""

    def __init__(self) -> None:
        self.current = datetime.now(UTC).replace(microsecond=0)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


# --------------------------------------------------------------------------- the webhook receiver (conftest.py)


def _verified(delivery: Delivery) -> stripe.Event:
    return stripe.Webhook.construct_event(delivery.body.decode(), delivery.headers["stripe-signature"], SECRET)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_emulator(
    clock: Clock, receiver: Receiver, start_emulator: Callable[[StripeEmulator], StripeEmulator]
) -> Callable[..., StripeEmulator]:
    def make(**kwargs: Any) -> StripeEmulator:
        options: dict[str, Any] = {
            "api_key": API_KEY,
            "webhook_url": receiver.url(HOOK),
            "webhook_secret": SECRET,
            "clock": clock.now,
            "webhook_backoff_s": 0.02,
        }
        return start_emulator(StripeEmulator(**{**options, **kwargs}))

    return make


@pytest.fixture
def emulator(make_emulator: Callable[..., StripeEmulator]) -> StripeEmulator:
    return make_emulator()


@pytest.fixture
def client(emulator: StripeEmulator) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": emulator.url}, max_network_retries=0)


def _session_params(clock: Clock, job_id: str = "j1", **overrides: Any) -> dict[str, Any]:
    return {
        "mode": "payment",
        "line_items": [{"price": DEFAULT_PRICE_ID, "quantity": 1}],
        "allow_promotion_codes": True,
        "client_reference_id": job_id,
        "metadata": {"job_id": job_id},
        "success_url": SUCCESS_URL,
        "cancel_url": CANCEL_URL,
        "expires_at": int(clock.now().timestamp()) + 3600,
        **overrides,
    }


def _create(client: stripe.StripeClient, clock: Clock, key: str | None = None, **overrides: Any) -> Any:
    options: dict[str, Any] = {"idempotency_key": key} if key else {}
    return client.v1.checkout.sessions.create(params=_session_params(clock, **overrides), options=options)  # type: ignore[arg-type]


def _pay(emulator: StripeEmulator, session_id: str, code: str | None = None) -> httpx.Response:
    form = {"email": "ada@example.com", "promotion_code": code or "", "action": "pay"}
    return httpx.post(f"{emulator.url}/c/pay/{session_id}", data=form)


def _paid(client: stripe.StripeClient, emulator: StripeEmulator, clock: Clock, code: str | None = None) -> Any:
    session = _create(client, clock)
    assert _pay(emulator, session.id, code).status_code == 303
    return client.v1.checkout.sessions.retrieve(session.id)


def _text(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


# --------------------------------------------------------------------------- checkout, end to end


def test_a_session_is_created_paid_on_the_hosted_page_and_the_signed_event_verifies(
    emulator: StripeEmulator, client: stripe.StripeClient, clock: Clock, receiver: Receiver
) -> None:
    session = _create(client, clock, key="checkout-j1")
    assert session.id.startswith("cs_test_")
    assert session.object == "checkout.session"
    assert session.url == f"{emulator.url}/c/pay/{session.id}"
    assert (session.status, session.payment_status, session.mode) == ("open", "unpaid", "payment")
    assert (session.amount_subtotal, session.amount_total, session.currency) == (1290, 1290, "usd")
    assert session.total_details.to_dict() == {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0}
    assert session.client_reference_id == "j1"
    assert session.metadata.to_dict() == {"job_id": "j1"}
    assert session.expires_at == int(clock.now().timestamp()) + 3600
    assert session.created == int(clock.now().timestamp())
    assert session.livemode is False
    assert session.success_url == SUCCESS_URL
    assert session.cancel_url == CANCEL_URL
    assert session.payment_intent is None
    assert session.customer_details is None
    assert session.discounts == []
    assert session.allow_promotion_codes is True

    page = httpx.get(session.url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    text = _text(page.text)
    assert "Portrait Studio — 32 AI headshots" in text
    assert "$12.90" in text
    assert "Pay $12.90" in text
    assert f'href="{CANCEL_URL}"' in page.text
    assert re.search(r'<label for="email">Email</label>\s*<input id="email" name="email" type="email"', page.text)
    assert 'name="promotion_code"' in page.text

    invalid = httpx.post(session.url, data={"email": "", "promotion_code": "SAVE30", "action": "apply"})
    assert invalid.status_code == 400
    assert "This code is invalid." in _text(invalid.text)
    assert 'role="alert"' in invalid.text
    assert "Pay $12.90" in _text(invalid.text)

    applied = httpx.post(session.url, data={"email": "", "promotion_code": "save3", "action": "apply"})
    assert applied.status_code == 200
    text = _text(applied.text)
    assert "$12.90" in text
    assert "−$3.00" in text
    assert "Pay $9.90" in text

    paid = _pay(emulator, session.id, "SAVE3")
    assert paid.status_code == 303
    assert paid.headers["location"] == SUCCESS_URL.replace("{CHECKOUT_SESSION_ID}", session.id)

    done = client.v1.checkout.sessions.retrieve(session.id)
    assert (done.status, done.payment_status) == ("complete", "paid")
    assert done.payment_intent.startswith("pi_")
    assert (done.amount_subtotal, done.amount_total) == (1290, 990)
    assert done.total_details.amount_discount == 300
    assert [d.to_dict() for d in done.discounts] == [{"coupon": None, "promotion_code": PROMOTION_CODE_ID}]
    assert done.customer_details.email == "ada@example.com"
    assert done.customer_details.name is None
    assert done.url is None

    [delivery] = receiver.wait_for(HOOK, 1)
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", delivery.headers["stripe-signature"])
    assert delivery.headers["content-type"].startswith("application/json")
    event = _verified(delivery)
    assert event.id.startswith("evt_")
    assert event.object == "event"
    assert event.type == "checkout.session.completed"
    assert event.api_version == stripe.api_version == API_VERSION
    assert event.livemode is False
    assert event.pending_webhooks == 1
    assert event.created == int(clock.now().timestamp())
    assert event.request.to_dict() == {"id": None, "idempotency_key": None}
    sent = event.data.object
    assert sent.id == session.id
    assert (sent.status, sent.payment_status, sent.amount_total) == ("complete", "paid", 990)
    assert sent.metadata.job_id == "j1"
    assert sent.payment_intent == done.payment_intent

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(delivery.body.decode(), delivery.headers["stripe-signature"], "whsec_other")

    hooks = httpx.get(f"{emulator.url}/_emulator/events").json()
    assert [(h["event"]["id"], h["delivery"]["status"]) for h in hooks] == [(event.id, "delivered")]
    assert hooks[0]["delivery"]["attempts"][0]["status_code"] == 200


def test_the_signature_is_stripes_hmac_of_timestamp_and_body(emulator: StripeEmulator, clock: Clock) -> None:
    body = b'{"id": "evt_1"}'
    header = sign_payload(SECRET, 1700000000, body)
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    now = int(clock.now().timestamp())
    assert stripe.Webhook.construct_event(body.decode(), sign_payload(SECRET, now, body), SECRET).id == "evt_1"


def test_paying_without_a_code_charges_the_full_price_and_a_paid_session_cannot_be_paid_again(
    emulator: StripeEmulator, client: stripe.StripeClient, clock: Clock, receiver: Receiver
) -> None:
    session = _create(client, clock)
    no_email = httpx.post(session.url, data={"email": "", "action": "pay"})
    assert no_email.status_code == 400
    assert "Enter a valid email address." in _text(no_email.text)
    bad_code = httpx.post(session.url, data={"email": "ada@example.com", "promotion_code": "NOPE"})
    assert bad_code.status_code == 400
    assert "This code is invalid." in _text(bad_code.text)
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"

    assert httpx.post(session.url, data={"email": "ada@example.com"}).status_code == 303  # action defaults to pay
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert (done.amount_total, done.total_details.amount_discount, done.discounts) == (1290, 0, [])

    again = _pay(emulator, session.id)
    assert again.status_code == 409
    assert "already been paid" in _text(again.text)
    assert httpx.get(f"{emulator.url}/c/pay/{session.id}").status_code == 409
    assert httpx.get(f"{emulator.url}/c/pay/cs_test_unknown").status_code == 404
    assert len(receiver.wait_for(HOOK, 1)) == 1


def test_promotion_codes_are_refused_where_the_session_does_not_allow_them(
    emulator: StripeEmulator, client: stripe.StripeClient, clock: Clock
) -> None:
    session = _create(client, clock, allow_promotion_codes=False)
    assert 'name="promotion_code"' not in httpx.get(session.url).text
    refused = _pay(emulator, session.id, "SAVE3")
    assert refused.status_code == 400
    assert "not accepted" in _text(refused.text)


def test_the_seeded_price_and_promotion_code_are_served(client: stripe.StripeClient) -> None:
    price = client.v1.prices.retrieve(DEFAULT_PRICE_ID)
    assert (price.object, price.unit_amount, price.currency, price.type, price.active) == (
        "price",
        1290,
        "usd",
        "one_time",
        True,
    )
    product = client.v1.products.retrieve(price.product)
    assert product.name == "Portrait Studio — 32 AI headshots"

    codes = client.v1.promotion_codes.list(params={"code": "SAVE3"})
    [promo] = codes.data
    assert (promo.id, promo.code, promo.active, promo.object) == (PROMOTION_CODE_ID, "SAVE3", True, "promotion_code")
    assert promo.promotion.coupon == COUPON_ID
    coupon = client.v1.coupons.retrieve(COUPON_ID)
    assert (coupon.amount_off, coupon.currency, coupon.percent_off, coupon.valid) == (300, "usd", None, True)
    assert client.v1.promotion_codes.list(params={"code": "OTHER"}).data == []

    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.prices.retrieve("price_other")
    assert (missing.value.code, missing.value.http_status) == ("resource_missing", 404)


def test_a_custom_price_id(make_emulator: Callable[..., StripeEmulator], clock: Clock) -> None:
    emulator = make_emulator(price_id="price_custom")
    client = stripe.StripeClient(API_KEY, base_addresses={"api": emulator.url}, max_network_retries=0)
    assert emulator.price_id == "price_custom"
    session = _create(client, clock, line_items=[{"price": "price_custom", "quantity": 2}])
    assert session.amount_total == 2580
    with pytest.raises(stripe.InvalidRequestError) as missing:
        _create(client, clock)
    assert (missing.value.code, missing.value.param) == ("resource_missing", "line_items[0][price]")


def test_module_level_api_base_works_too(
    emulator: StripeEmulator, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stripe, "api_key", API_KEY)
    monkeypatch.setattr(stripe, "api_base", emulator.url)
    session = stripe.checkout.Session.create(**_session_params(clock))
    assert stripe.checkout.Session.retrieve(session.id).amount_total == 1290


# --------------------------------------------------------------------------- idempotency


def test_the_same_key_and_parameters_replay_the_first_response(
    emulator: StripeEmulator, client: stripe.StripeClient, clock: Clock
) -> None:
    first = _create(client, clock, key="checkout-j1")
    second = _create(client, clock, key="checkout-j1")
    assert second.id == first.id
    assert second.to_dict() == first.to_dict()
    assert first.last_response.headers.get("Idempotent-Replayed") is None
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert second.last_response.headers["Original-Request"] == first.last_response.request_id
    assert second.last_response.idempotency_key == "checkout-j1"
    assert len(emulator.sessions()) == 1

    with pytest.raises(stripe.IdempotencyError) as mismatch:
        _create(client, clock, key="checkout-j1", client_reference_id="j2", metadata={"job_id": "j2"})
    assert mismatch.value.http_status == 400
    assert mismatch.value.error.type == "idempotency_error"
    assert "same parameters" in str(mismatch.value.user_message)

    with pytest.raises(stripe.IdempotencyError):  # another endpoint
        client.v1.refunds.create(params={"payment_intent": "pi_x"}, options={"idempotency_key": "checkout-j1"})
    assert _create(client, clock, key="checkout-j2").id != first.id


def test_a_request_refused_by_validation_keeps_no_result_for_its_key(client: stripe.StripeClient, clock: Clock) -> None:
    with pytest.raises(stripe.InvalidRequestError):
        _create(client, clock, key="k", expires_at=int(clock.now().timestamp()) + 60)
    with pytest.raises(stripe.InvalidRequestError) as again:
        _create(client, clock, key="k", expires_at=int(clock.now().timestamp()) + 60)
    assert again.value.headers is not None
    assert "Idempotent-Replayed" not in again.value.headers


def test_refunds_replay_by_key_and_never_exceed_what_was_paid(
    emulator: StripeEmulator, client: stripe.StripeClient, clock: Clock
) -> None:
    session = _paid(client, emulator, clock, "SAVE3")  # 990 paid
    intent = session.payment_intent
    params = {"payment_intent": intent, "amount": 400, "metadata": {"job_id": "j1", "reason": "partial"}}
    refund = client.v1.refunds.create(params=params, options={"idempotency_key": "refund-j1-1"})  # type: ignore[arg-type]
    assert refund.id.startswith("re_")
    assert (refund.object, refund.amount, refund.currency, refund.status) == ("refund", 400, "usd", "succeeded")
    assert refund.payment_intent == intent
    assert refund.metadata.to_dict() == {"job_id": "j1", "reason": "partial"}
    assert refund.created == int(clock.now().timestamp())
    replay = client.v1.refunds.create(params=params, options={"idempotency_key": "refund-j1-1"})  # type: ignore[arg-type]
    assert replay.id == refund.id
    assert replay.last_response.headers["Idempotent-Replayed"] == "true"

    with pytest.raises(stripe.InvalidRequestError) as too_large:
        client.v1.refunds.create(params={"payment_intent": intent, "amount": 591})
    assert (too_large.value.code, too_large.value.param, too_large.value.http_status) == (
        "amount_too_large",
        "amount",
        400,
    )
    assert "($5.90)" in str(too_large.value.user_message)

    rest = client.v1.refunds.create(params={"payment_intent": intent})  # no amount: whatever is left
    assert rest.amount == 590
    with pytest.raises(stripe.InvalidRequestError) as refunded:
        client.v1.refunds.create(params={"payment_intent": intent, "amount": 1})
    assert refunded.value.code == "charge_already_refunded"

    listed = client.v1.refunds.list(params={"payment_intent": intent})
    assert [r.id for r in listed.data] == [rest.id, refund.id]  # newest first
    assert sum(r.amount for r in listed.data) == 990
    hooks = httpx.get(f"{emulator.url}/_emulator/refunds").json()
    assert sorted(r["id"] for r in hooks) == sorted([refund.id, rest.id])

    with pytest.raises(stripe.InvalidRequestError) as zero:
        client.v1.refunds.create(params={"payment_intent": intent, "amount": 0})
    assert zero.value.param == "amount"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.refunds.create(params={"payment_intent": "pi_unknown", "amount": 100})
    assert (unknown.value.code, unknown.value.param) == ("resource_missing", "payment_intent")


# --------------------------------------------------------------------------- expiry


def test_expiring_an_open_session_sends_its_event_and_a_second_expire_is_refused(
    emulator: StripeEmulator, client: stripe.StripeClient, clock: Clock, receiver: Receiver
) -> None:
    session = _create(client, clock)
    expired = client.v1.checkout.sessions.expire(session.id, options={"idempotency_key": "expire-j1"})
    assert (expired.status, expired.payment_status, expired.url) == ("expired", "unpaid", None)

    [delivery] = receiver.wait_for(HOOK, 1)
    event = _verified(delivery)
    assert event.type == "checkout.session.expired"
    assert event.data.object.id == session.id
    assert event.request.idempotency_key == "expire-j1"
    assert event.request.id == expired.last_response.request_id

    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.checkout.sessions.expire(session.id)
    assert again.value.http_status == 400
    assert 'status of "expired"' in str(again.value.user_message)

    page = _pay(emulator, session.id)
    assert page.status_code == 410
    assert "expired" in _text(page.text)

    paid = _paid(client, emulator, clock)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(paid.id)


def test_sessions_expire_when_the_clock_passes_expires_at(
    make_emulator: Callable[..., StripeEmulator], clock: Clock, receiver: Receiver
) -> None:
    emulator = make_emulator(sweep_interval_s=0.05)
    client = stripe.StripeClient(API_KEY, base_addresses={"api": emulator.url}, max_network_retries=0)
    soon = _create(client, clock, expires_at=int(clock.now().timestamp()) + 1800)
    later = _create(client, clock)  # +1 h
    default = _create(client, clock, expires_at=None)
    assert default.expires_at == int(clock.now().timestamp()) + 24 * 3600

    clock.advance(1799)
    assert client.v1.checkout.sessions.retrieve(soon.id).status == "open"
    clock.advance(1)  # no request: the periodic sweep notices
    [delivery] = receiver.wait_for(HOOK, 1)
    event = _verified(delivery)
    assert (event.type, event.data.object.id, event.data.object.status) == (
        "checkout.session.expired",
        soon.id,
        "expired",
    )
    assert event.request.to_dict() == {"id": None, "idempotency_key": None}
    assert client.v1.checkout.sessions.retrieve(later.id).status == "open"

    clock.advance(1800)
    assert client.v1.checkout.sessions.retrieve(later.id).status == "expired"
    assert len(receiver.wait_for(HOOK, 2)) == 2
    assert httpx.post(f"{emulator.url}/c/pay/{later.id}", data={"email": "ada@example.com"}).status_code == 410


def test_expires_at_must_be_30_minutes_to_24_hours_ahead(client: stripe.StripeClient, clock: Clock) -> None:
    now = int(clock.now().timestamp())
    for expires_at in (now + 1799, now + 24 * 3600 + 1):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            _create(client, clock, expires_at=expires_at)
        assert refused.value.param == "expires_at"
    assert _create(client, clock, expires_at=now + 1800).status == "open"
    assert _create(client, clock, expires_at=now + 24 * 3600).status == "open"


# --------------------------------------------------------------------------- errors


def test_a_bad_or_missing_key_is_an_authentication_error(emulator: StripeEmulator, clock: Clock) -> None:
    wrong = stripe.StripeClient("sk_test_wrong_key_123456", base_addresses={"api": emulator.url})
    with pytest.raises(stripe.AuthenticationError) as refused:
        wrong.v1.checkout.sessions.retrieve("cs_test_x")
    assert refused.value.http_status == 401
    assert "Invalid API Key provided" in str(refused.value.user_message)
    response = httpx.get(f"{emulator.url}/v1/checkout/sessions/cs_test_x")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"  # as Stripe answers; 401 makes it auth
    basic = httpx.get(f"{emulator.url}/v1/prices/{DEFAULT_PRICE_ID}", auth=(API_KEY, ""))
    assert basic.status_code == 200


def test_errors_come_in_stripes_envelope(client: stripe.StripeClient, clock: Clock, emulator: StripeEmulator) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.checkout.sessions.retrieve("cs_test_unknown")
    error = missing.value
    assert (error.http_status, error.code, error.param) == (404, "resource_missing", "session")
    assert error.user_message == "No such checkout.session: 'cs_test_unknown'"
    assert error.error.type == "invalid_request_error"
    assert error.request_id is not None
    assert error.request_id.startswith("req_")

    with pytest.raises(stripe.InvalidRequestError) as unknown:
        _create(client, clock, colour="blue")
    assert (unknown.value.code, unknown.value.param) == ("parameter_unknown", "colour")
    with pytest.raises(stripe.InvalidRequestError) as no_items:
        _create(client, clock, line_items=None)
    assert (no_items.value.code, no_items.value.param) == ("parameter_missing", "line_items")
    with pytest.raises(stripe.InvalidRequestError) as bad_quantity:
        _create(client, clock, line_items=[{"price": DEFAULT_PRICE_ID, "quantity": 0}])
    assert bad_quantity.value.param == "line_items[0][quantity]"
    with pytest.raises(stripe.InvalidRequestError) as bad_url:
        _create(client, clock, success_url="not a url")
    assert (bad_url.value.code, bad_url.value.param) == ("url_invalid", "success_url")

    route = httpx.get(f"{emulator.url}/v1/customers", auth=(API_KEY, ""))
    assert route.status_code == 404
    assert route.json()["error"]["message"].startswith("Unrecognized request URL (GET: /v1/customers)")


# --------------------------------------------------------------------------- webhook delivery


def test_failed_deliveries_are_retried_with_backoff(
    emulator: StripeEmulator, client: stripe.StripeClient, clock: Clock, receiver: Receiver
) -> None:
    receiver.errors[HOOK] = [500, 400]
    _paid(client, emulator, clock)
    deliveries = receiver.wait_for(HOOK, 3)
    assert len(deliveries) == 3
    assert len({d.body for d in deliveries}) == 1  # the same event, re-signed each time
    assert len({_verified(d).id for d in deliveries}) == 1
    deadline = time.monotonic() + 5
    while (hook := emulator.events()[0])["delivery"]["status"] != "delivered":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert [a["status_code"] for a in hook["delivery"]["attempts"]] == [500, 400, 200]


def test_delivery_gives_up_after_a_few_attempts(
    make_emulator: Callable[..., StripeEmulator], clock: Clock, receiver: Receiver
) -> None:
    emulator = make_emulator(webhook_url="http://127.0.0.1:9/nothing-listens-here")
    client = stripe.StripeClient(API_KEY, base_addresses={"api": emulator.url}, max_network_retries=0)
    _paid(client, emulator, clock)
    deadline = time.monotonic() + 5
    while (hook := emulator.events()[0])["delivery"]["status"] == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert hook["delivery"]["status"] == "failed"
    attempts = hook["delivery"]["attempts"]
    assert len(attempts) == 4
    assert all(a["status_code"] is None and a["error"] for a in attempts)


def test_an_event_can_be_resent_with_the_same_id(
    emulator: StripeEmulator, client: stripe.StripeClient, clock: Clock, receiver: Receiver
) -> None:
    _paid(client, emulator, clock)
    [first] = receiver.wait_for(HOOK, 1)
    event_id = _verified(first).id
    clock.advance(5)
    resent = httpx.post(f"{emulator.url}/_emulator/events/{event_id}/resend")
    assert resent.status_code == 202
    deliveries = receiver.wait_for(HOOK, 2)
    assert [_verified(d).id for d in deliveries] == [event_id, event_id]
    assert deliveries[0].body == deliveries[1].body
    assert deliveries[0].headers["stripe-signature"] != deliveries[1].headers["stripe-signature"]
    assert httpx.post(f"{emulator.url}/_emulator/events/evt_unknown/resend").status_code == 404


def test_the_webhook_url_can_be_changed_or_absent(
    make_emulator: Callable[..., StripeEmulator], clock: Clock, receiver: Receiver
) -> None:
    emulator = make_emulator(webhook_url=None)
    client = stripe.StripeClient(API_KEY, base_addresses={"api": emulator.url}, max_network_retries=0)
    _paid(client, emulator, clock)
    [unsent] = emulator.events()
    assert unsent["delivery"]["status"] == "not_sent"
    assert unsent["event"]["pending_webhooks"] == 0

    answer = httpx.put(f"{emulator.url}/_emulator/webhook", json={"url": receiver.url(HOOK)})
    assert answer.json() == {"url": receiver.url(HOOK), "secret": SECRET}
    assert emulator.webhook_url == receiver.url(HOOK)
    _paid(client, emulator, clock)
    [delivery] = receiver.wait_for(HOOK, 1)
    assert _verified(delivery).type == "checkout.session.completed"
    assert httpx.put(f"{emulator.url}/_emulator/webhook", json={"url": "ftp://x"}).status_code == 400


# --------------------------------------------------------------------------- test hooks


def test_the_pay_hook_pays_like_the_form_and_reset_keeps_the_seeds(
    emulator: StripeEmulator, client: stripe.StripeClient, clock: Clock, receiver: Receiver
) -> None:
    session = _create(client, clock)
    hook = f"{emulator.url}/_emulator/sessions/{session.id}/pay"
    refused = httpx.post(hook, json={"email": "ada@example.com", "promotion_code": "WRONG"})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "promotion_code"
    paid = httpx.post(hook, json={"email": "ada@example.com", "promotion_code": "SAVE3"})
    assert paid.status_code == 200
    assert (paid.json()["status"], paid.json()["amount_total"]) == ("complete", 990)
    assert httpx.post(hook, json={"email": "ada@example.com"}).status_code == 409
    assert _verified(receiver.wait_for(HOOK, 1)[0]).data.object.id == session.id
    assert client.v1.promotion_codes.retrieve(PROMOTION_CODE_ID).times_redeemed == 1

    sessions = httpx.get(f"{emulator.url}/_emulator/sessions").json()
    assert [s["id"] for s in sessions] == [session.id]
    assert httpx.delete(f"{emulator.url}/_emulator/state").status_code == 200
    assert httpx.get(f"{emulator.url}/_emulator/sessions").json() == []
    assert httpx.get(f"{emulator.url}/_emulator/events").json() == []
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.retrieve(session.id)
    assert client.v1.prices.retrieve(DEFAULT_PRICE_ID).unit_amount == 1290
    assert client.v1.promotion_codes.retrieve(PROMOTION_CODE_ID).times_redeemed == 0
    assert _create(client, clock, key="checkout-j1").id != session.id  # idempotency keys forgotten too

    assert emulator.pay(_create(client, clock).id, "bob@example.com")["amount_total"] == 1290
    with pytest.raises(LookupError):
        emulator.pay("cs_test_unknown", "bob@example.com")


def test_line_items_and_event_listing(emulator: StripeEmulator, client: stripe.StripeClient, clock: Clock) -> None:
    session = _paid(client, emulator, clock, "SAVE3")
    [item] = client.v1.checkout.sessions.line_items.list(session.id).data
    assert (item.quantity, item.amount_subtotal, item.amount_discount, item.amount_total) == (1, 1290, 300, 990)
    assert item.price.id == DEFAULT_PRICE_ID
    intent = client.v1.payment_intents.retrieve(session.payment_intent)
    assert (intent.amount, intent.status) == (990, "succeeded")
    events = client.v1.events.list(params={"type": "checkout.session.completed"})
    assert [e.data.object.id for e in events.data] == [session.id]


def test_form_decoding_handles_stripes_nested_keys() -> None:
    raw = (
        "mode=payment&line_items[0][price]=price_a&line_items[0][quantity]=1&line_items[1][price]=price_b"
        "&metadata[job_id]=j1&expand[]=a&expand[]=b&success_url=https%3A%2F%2Fx%2F%3Fs%3D%7BCHECKOUT_SESSION_ID%7D"
    )
    assert decode_form(raw) == {
        "mode": "payment",
        "line_items": [{"price": "price_a", "quantity": "1"}, {"price": "price_b"}],
        "metadata": {"job_id": "j1"},
        "expand": ["a", "b"],
        "success_url": "https://x/?s={CHECKOUT_SESSION_ID}",
    }
    assert json.loads(json.dumps(decode_form(""))) == {}

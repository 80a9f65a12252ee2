"""Standard Webhooks verification, as Replicate signs: every malformed request is a 401, never a crash."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from portrait_studio.errors import WebhookRejected
from portrait_studio.services.webhooks import WebhookVerifier, sign
from tests.fakes import FixedClock

SECRET = "whsec_" + base64.b64encode(b"a 32 byte secret for the tests!!").decode()
BODY = json.dumps({"id": "p1", "status": "succeeded", "output": ["https://x/0.png"]}).encode()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))


@pytest.fixture
def verifier(clock: FixedClock) -> WebhookVerifier:
    return WebhookVerifier(lambda: SECRET, clock, tolerance_s=300, max_body_bytes=1_048_576)


def headers(clock: FixedClock, body: bytes = BODY, msg_id: str = "msg_1", shift_s: int = 0) -> dict[str, str]:
    moment = clock.now() + timedelta(seconds=shift_s)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(SECRET).sign(msg_id, moment, body.decode()),
    }


def test_signatures_made_by_standardwebhooks_are_accepted(verifier: WebhookVerifier, clock: FixedClock) -> None:
    verified = verifier.verify(headers(clock), BODY)
    assert verified.payload["id"] == "p1"
    assert verified.webhook_id == "msg_1"


def test_our_signer_matches_the_library(clock: FixedClock) -> None:
    moment = clock.now()
    assert sign(SECRET, "msg_9", int(moment.timestamp()), BODY) == Webhook(SECRET).sign("msg_9", moment, BODY.decode())


def test_one_good_signature_among_several_is_enough(verifier: WebhookVerifier, clock: FixedClock) -> None:
    good = headers(clock)
    good["webhook-signature"] = "v1,bm90IGl0 v2,whatever " + good["webhook-signature"]
    assert verifier.verify(good, BODY).payload["status"] == "succeeded"


def test_header_names_are_case_insensitive(verifier: WebhookVerifier, clock: FixedClock) -> None:
    upper = {k.upper(): v for k, v in headers(clock).items()}
    assert verifier.verify(upper, BODY)


@pytest.mark.parametrize("shift_s", [-301, 301, -86_400])
def test_stale_or_future_timestamps_are_rejected(verifier: WebhookVerifier, clock: FixedClock, shift_s: int) -> None:
    with pytest.raises(WebhookRejected, match="tolerance"):
        verifier.verify(headers(clock, shift_s=shift_s), BODY)


def test_a_replay_with_another_body_is_rejected(verifier: WebhookVerifier, clock: FixedClock) -> None:
    signed = headers(clock)
    forged = BODY.replace(b"succeeded", b"failed")
    with pytest.raises(WebhookRejected, match="signature"):
        verifier.verify(signed, forged)


def test_a_signature_made_with_another_secret_is_rejected(verifier: WebhookVerifier, clock: FixedClock) -> None:
    other = "whsec_" + base64.b64encode(b"another secret of thirty-two by!").decode()
    moment = clock.now()
    forged = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(other).sign("msg_1", moment, BODY.decode()),
    }
    with pytest.raises(WebhookRejected):
        verifier.verify(forged, BODY)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda h: h.pop("webhook-id"),
        lambda h: h.pop("webhook-timestamp"),
        lambda h: h.pop("webhook-signature"),
        lambda h: h.update({"webhook-timestamp": "12:00"}),
        lambda h: h.update({"webhook-timestamp": "9" * 40}),
        lambda h: h.update({"webhook-signature": "v1,***not base64***"}),
        lambda h: h.update({"webhook-signature": "v1,"}),
        lambda h: h.update({"webhook-signature": "garbage"}),
        lambda h: h.update({"webhook-id": "x" * 1000}),
        lambda h: h.update({"webhook-id": "msg\n1"}),
    ],
)
def test_malformed_headers_are_rejected_not_crashed_on(
    verifier: WebhookVerifier, clock: FixedClock, mangle: object
) -> None:
    h = headers(clock)
    mangle(h)  # type: ignore[operator]
    with pytest.raises(WebhookRejected):
        verifier.verify(h, BODY)


def test_oversized_and_non_utf8_bodies_are_rejected(verifier: WebhookVerifier, clock: FixedClock) -> None:
    big = b'{"id": "' + b"x" * 1_048_576 + b'"}'
    with pytest.raises(WebhookRejected, match="too large"):
        verifier.verify(headers(clock, body=big.decode().encode()), big)
    latin = b'{"id": "caf\xe9"}'
    moment = clock.now()
    h = {
        "webhook-id": "msg_2",
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": sign(SECRET, "msg_2", int(moment.timestamp()), latin),
    }
    with pytest.raises(WebhookRejected, match="not JSON"):
        verifier.verify(h, latin)


def test_a_json_array_body_is_rejected(verifier: WebhookVerifier, clock: FixedClock) -> None:
    body = b"[1, 2]"
    with pytest.raises(WebhookRejected, match="object"):
        verifier.verify(headers(clock, body=body), body)

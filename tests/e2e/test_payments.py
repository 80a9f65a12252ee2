"""Pay before we spend, end to end: the local stack with its Stripe and Replicate emulators, over HTTP only.

The Stripe emulator's lists (events, refunds) and the Replicate emulator's prediction list are the witnesses:
what a real Stripe dashboard and Replicate account would show.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest

from infra.local.client import PortraitClient
from tests.e2e.conftest import GOOD, objects_under, predictions

pytestmark = pytest.mark.e2e


def stripe(stack: dict[str, Any], path: str) -> Any:
    response = httpx.get(f"{stack['stripe_url']}{path}", timeout=10)
    response.raise_for_status()
    return response.json()


def accepted_job(client: PortraitClient, **options: Any) -> tuple[Any, dict[str, Any]]:
    job = client.create_job(GOOD, **options)
    client.upload_all(job, GOOD)
    client.submit(job).raise_for_status()
    view = client.wait_for(job, ("awaiting_payment", "collecting"), timeout_s=120)
    assert view["status"] == "awaiting_payment", view
    # The page's next look opens the checkout when the look that saw the photos accepted came in while
    # they were still being checked; the page polls, so does this.
    deadline = time.monotonic() + 10
    while view["checkout_url"] is None and time.monotonic() < deadline:
        time.sleep(0.25)
        view = client.get(job).json()
    assert view["checkout_url"], view
    return job, view


def created_for(stack: dict[str, Any], job_id: str) -> list[dict[str, Any]]:
    return [p for p in predictions(stack) if f"job={job_id}" in (p.get("webhook") or "")]


def signed(secret: str, body: bytes, at: int | None = None) -> str:
    t = int(time.time()) if at is None else at
    v1 = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={v1}"


def test_pay_with_a_promotion_code_then_get_at_least_30_headshots(
    stack: dict[str, Any], client: PortraitClient
) -> None:
    price = client.http.get("/price").json()
    assert (price["amount"], price["currency"], price["images"]) == (1290, "usd", 32)
    job, waiting = accepted_job(client)
    assert waiting["checkout_url"].startswith(stack["stripe_url"])
    assert created_for(stack, job.job_id) == []  # photos checked for free; nothing generated yet
    client.pay(job, promotion_code="SAVE3")
    view = client.wait_for(job, ("ready", "partial", "failed"), timeout_s=180)
    assert view["status"] == "ready" and view["images_done"] >= 30
    assert view["payment"]["amount_total"] == 990 and view["payment"]["amount_discount"] == 300
    assert view["refund"] is None and view["checkout_url"] is None
    sessions = [s for s in stripe(stack, "/_emulator/sessions") if s["client_reference_id"] == job.job_id]
    assert [(s["status"], s["payment_status"], s["amount_total"]) for s in sessions] == [("complete", "paid", 990)]


def test_an_unpaid_job_never_generates_and_an_expired_one_leaves_nothing(
    stack: dict[str, Any], client: PortraitClient
) -> None:
    job, waiting = accepted_job(client)
    time.sleep(3)  # reconciler runs every second here: still no prediction without a payment
    assert created_for(stack, job.job_id) == []
    assert objects_under(stack, job.job_id)  # the checked photos wait for the payment
    session_id = waiting["checkout_url"].rsplit("/", 1)[-1]
    headers = {"Authorization": "Bearer sk_test_local_emulator"}
    expired = httpx.post(f"{stack['stripe_url']}/v1/checkout/sessions/{session_id}/expire", headers=headers)
    assert expired.status_code == 200
    deadline = time.monotonic() + 30
    while client.get(job).status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert client.get(job).status_code == 404
    assert objects_under(stack, job.job_id) == []
    assert created_for(stack, job.job_id) == []


def test_forged_stale_and_malformed_stripe_webhooks_are_refused(stack: dict[str, Any], client: PortraitClient) -> None:
    job, waiting = accepted_job(client)
    session_id = waiting["checkout_url"].rsplit("/", 1)[-1]
    secret = stripe(stack, "/_emulator/webhook")["secret"]
    session = {
        "id": session_id,
        "object": "checkout.session",
        "client_reference_id": job.job_id,
        "status": "complete",
        "payment_status": "paid",
        "payment_intent": "pi_forged",
        "amount_total": 1,
        "amount_subtotal": 1290,
        "currency": "usd",
        "expires_at": int(time.time()) + 600,
    }
    event = {"id": "evt_forged", "object": "event", "type": "checkout.session.completed", "data": {"object": session}}
    body = json.dumps(event).encode()
    url = f"{stack['api_url']}/webhooks/stripe"
    attempts = {
        "forged": signed("whsec_not_the_secret", body),
        "stale": signed(secret, body, at=int(time.time()) - 3600),
        "missing": None,
    }
    for name, signature in attempts.items():
        headers = {"Content-Type": "application/json"} | ({"Stripe-Signature": signature} if signature else {})
        response = httpx.post(url, content=body, headers=headers)
        assert response.status_code == 400, name
        assert response.json()["error"]["code"] == "invalid_payment_webhook"
    malformed = b'{"id": "evt_x", "type": '
    response = httpx.post(url, content=malformed, headers={"Stripe-Signature": signed(secret, malformed)})
    assert response.status_code == 400
    assert client.get(job).json()["status"] == "awaiting_payment"
    assert created_for(stack, job.job_id) == []


def test_a_failed_job_is_refunded_in_full_exactly_once(
    stack: dict[str, Any], client: PortraitClient, faults: Any
) -> None:
    faults({"fail_rate": 1.0})  # every prediction fails: the job ends with nothing
    job, _ = accepted_job(client, styles=["corporate"])
    client.pay(job)
    view = client.wait_for(job, ("ready", "partial", "failed"), timeout_s=240)
    assert view["status"] == "failed"
    deadline = time.monotonic() + 30
    while view["refund"] is None or view["refund"]["status"] != "refunded":
        assert time.monotonic() < deadline, view["refund"]
        time.sleep(0.5)
        view = client.get(job).json()
    assert (view["refund"]["amount"], view["refund"]["reason"]) == (1290, "failed")
    time.sleep(3)  # the reconciler keeps running: still one refund
    refunds = [r for r in stripe(stack, "/_emulator/refunds") if r["metadata"].get("job_id") == job.job_id]
    assert [r["amount"] for r in refunds] == [1290]

"""The Stripe emulator's lists as the ledger reads them (`created[gte]`, `limit`, `starting_after`, `has_more`, the
official library's auto-paging), refunds made directly as the dashboard does, and dropped webhook deliveries."""

from __future__ import annotations

import time

import httpx
import pytest
import stripe

from infra.local.stripe.emulator import StripeEmulator
from tests.integration import test_stripe_emulator as base
from tests.integration.emulators import Receiver
from tests.integration.test_stripe_emulator import API_KEY, HOOK, Clock, _create, _paid

# The emulator's fixtures, shared with its main tests.
clock, make_emulator, emulator, client = base.clock, base.make_emulator, base.emulator, base.client
pytestmark = pytest.mark.integration


def test_sessions_list_by_created_and_page_like_stripe(
    emulator: StripeEmulator, client: stripe.StripeClient, clock: Clock
) -> None:
    early = _create(client, clock, job_id="early")
    clock.advance(3600)
    since = int(clock.now().timestamp())
    later = [_create(client, clock, job_id=f"j{i}") for i in range(5)]
    first = client.v1.checkout.sessions.list(params={"created": {"gte": since}, "limit": 2})
    assert len(first.data) == 2 and first.has_more
    second = client.v1.checkout.sessions.list(
        params={"created": {"gte": since}, "limit": 2, "starting_after": first.data[-1].id}
    )
    assert second.has_more and not {s.id for s in second.data} & {s.id for s in first.data}
    every = list(client.v1.checkout.sessions.list(params={"created": {"gte": since}, "limit": 2}).auto_paging_iter())
    assert sorted(s.id for s in every) == sorted(s.id for s in later) and early.id not in {s.id for s in every}
    assert {s.client_reference_id for s in every} == {f"j{i}" for i in range(5)}
    before = client.v1.checkout.sessions.list(params={"created": {"lt": since}})
    assert [s.id for s in before.data] == [early.id]
    with pytest.raises(stripe.InvalidRequestError) as bad:
        client.v1.checkout.sessions.list(params={"created": {"after": since}})  # type: ignore[typeddict-unknown-key]
    assert bad.value.param == "created[after]"


def test_a_refund_made_directly_is_listed_without_our_metadata(
    emulator: StripeEmulator, client: stripe.StripeClient, clock: Clock
) -> None:
    session = _paid(client, emulator, clock)
    since = int(clock.now().timestamp())
    # The dashboard: the secret key, the payment, an amount; no idempotency key, no metadata of ours.
    by_hand = httpx.post(
        f"{emulator.url}/v1/refunds",
        data={"payment_intent": session.payment_intent, "amount": "500"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert by_hand.status_code == 200, by_hand.text
    listed = client.v1.refunds.list(params={"created": {"gte": since}})
    assert [(r.id, r.amount, r.payment_intent) for r in listed.data] == [
        (by_hand.json()["id"], 500, session.payment_intent)
    ]
    assert listed.data[0].metadata.to_dict() == {} and not listed.has_more
    assert client.v1.refunds.list(params={"created": {"gt": since}}).data == []


def test_dropped_webhooks_are_never_delivered_until_the_fault_is_cleared(
    emulator: StripeEmulator, client: stripe.StripeClient, clock: Clock, receiver: Receiver
) -> None:
    faults = httpx.put(f"{emulator.url}/_emulator/faults", json={"drop_webhooks": True})
    assert faults.json() == {"drop_webhooks": True, "dropped": 0}
    session = _paid(client, emulator, clock)
    deadline = time.monotonic() + 5
    while (hook := emulator.events()[0])["delivery"]["status"] == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert hook["delivery"]["status"] == "failed" and not [d for d in receiver.deliveries if d.tag == HOOK]
    assert httpx.get(f"{emulator.url}/_emulator/faults").json()["dropped"] >= 1
    # The session itself says it was paid: what a reconciler or a ledger asks.
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"
    assert httpx.put(f"{emulator.url}/_emulator/faults", json={"drop_webhook": True}).status_code == 400
    assert httpx.delete(f"{emulator.url}/_emulator/faults").json() == {"drop_webhooks": False, "dropped": 0}
    httpx.post(f"{emulator.url}/_emulator/events/{hook['event']['id']}/resend")
    assert len(receiver.wait_for(HOOK, 1)) == 1


def test_the_payments_adapter_reads_what_the_ledger_needs(
    emulator: StripeEmulator, client: stripe.StripeClient, clock: Clock
) -> None:
    from portrait_studio.adapters.stripe_payments import StripePayments

    adapter = StripePayments(lambda: API_KEY, lambda: "whsec_unused", api_url=emulator.url)
    since = clock.now()
    paid = _paid(client, emulator, clock)
    ours = adapter.refund(paid.payment_intent, 300, "refund:j1", "j1")
    by_hand = client.v1.refunds.create(params={"payment_intent": paid.payment_intent, "amount": 200})
    (session,) = adapter.list_checkouts(since)
    assert (session.session_id, session.payment_status, session.amount_total) == (paid.id, "paid", 1290)
    refunds = {r.refund_id: r for r in adapter.list_refunds_since(since)}
    assert (refunds[ours].key, refunds[ours].job_id, refunds[ours].amount) == ("refund:j1", "j1", 300)
    assert (refunds[by_hand.id].key, refunds[by_hand.id].job_id) == (None, None)
    assert [r.refund_id for r in adapter.list_refunds(paid.payment_intent)] == [by_hand.id, ours]
    found = adapter.checkout_of_payment(paid.payment_intent)
    assert found is not None and found.session_id == paid.id
    assert adapter.checkout_of_payment("pi_unknown") is None

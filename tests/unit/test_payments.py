"""Paying before we spend, with fakes that behave like Stripe (sessions, idempotency keys, refund limits)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from portrait_studio import keys
from portrait_studio.errors import PaymentWebhookRejected
from portrait_studio.models import Job, JobStatus, Tombstone
from portrait_studio.ports import PaymentEvent
from portrait_studio.services.retention import PrefixNotEmpty
from tests.unit import helpers
from tests.unit.conftest import DISPATCH, World
from tests.unit.helpers import create_job, finish_all, run_queues


def accepted_job(world: World) -> str:
    """A job whose photos normalization accepted: it waits for payment with its checkout open."""
    job_id = helpers.accepted_job(world)
    assert world.payments.open_checkout(job_id)
    return job_id


def job(world: World, job_id: str) -> Job:
    found = world.store.get_job(job_id)
    assert isinstance(found, Job)
    return found


def completed(world: World, job_id: str, discount: int = 0, event_id: str = "evt_1") -> PaymentEvent:
    session = world.stripe.pay(job(world, job_id).checkout_session_id or "", discount=discount)
    return PaymentEvent(event_id, "checkout.session.completed", session)


def test_nothing_is_generated_until_a_verified_payment_and_a_replay_starts_nothing(world: World) -> None:
    job_id = accepted_job(world)
    waiting = job(world, job_id)
    assert waiting.status == JobStatus.AWAITING_PAYMENT and waiting.checkout_url
    assert world.store.list_slots(job_id) == [] and world.queue.take(DISPATCH) == []
    event = completed(world, job_id, discount=300)
    assert world.payments.handle(event) == "started"
    paid = job(world, job_id)
    assert paid.status == JobStatus.GENERATING and paid.checkout_url is None
    assert paid.payment is not None and (paid.payment.amount_total, paid.payment.amount_discount) == (990, 300)
    assert len(world.store.list_slots(job_id)) == 8
    assert world.queue.take(DISPATCH) == [{"job_id": job_id}]
    # Stripe redelivers (or a later event carries the same session): nothing starts twice, nothing is refunded.
    assert world.payments.handle(PaymentEvent("evt_2", event.type, event.session)) == "duplicate"
    assert world.queue.take(DISPATCH) == [] and world.stripe.refunds == []
    assert world.metrics.counts["CheckoutsPaid"] == 1 and world.metrics.counts["PaidCents"] == 990


def test_an_unpaid_completion_starts_nothing(world: World) -> None:
    job_id = accepted_job(world)
    session = world.stripe.sessions[job(world, job_id).checkout_session_id or ""]
    assert world.payments.handle(PaymentEvent("evt_1", "checkout.session.completed", session)) == "not_paid_yet"
    assert job(world, job_id).status == JobStatus.AWAITING_PAYMENT


def test_an_expired_checkout_ends_the_job_and_deletes_its_photos(world: World) -> None:
    job_id = accepted_job(world)
    session = world.stripe.expire(job(world, job_id).checkout_session_id or "")
    assert world.payments.handle(PaymentEvent("evt_1", "checkout.session.expired", session)) == "ended"
    record = world.store.get_job(job_id)
    assert isinstance(record, Tombstone) and record.reason == "checkout_expired"
    assert list(world.blobs.list_keys(keys.job_prefix(job_id))) == []
    assert world.generator.created == []


def test_a_payment_for_a_job_that_is_gone_is_refunded_in_full(world: World) -> None:
    job_id = accepted_job(world)
    session_id = job(world, job_id).checkout_session_id or ""
    world.retention.purge(job_id, "user_request")
    event = PaymentEvent("evt_1", "checkout.session.completed", world.stripe.pay(session_id))
    assert world.payments.handle(event) == "refunded_stray"
    assert [amount for _, amount, _ in world.stripe.refunds] == [1290]
    assert world.generator.created == []


def test_a_second_session_for_one_job_cannot_start_it_twice(world: World) -> None:
    job_id = accepted_job(world)
    spare = world.stripe.create_checkout(job_id, "price", "s", "c", world.clock.now(), "another-key")
    paid_spare = world.stripe.pay(spare.session_id)
    assert world.payments.handle(PaymentEvent("evt_1", "checkout.session.completed", paid_spare)) == "refunded_stray"
    assert job(world, job_id).status == JobStatus.AWAITING_PAYMENT  # only the job's own session pays for it
    assert [amount for _, amount, _ in world.stripe.refunds] == [1290]


def test_a_checkout_stripe_could_not_open_is_opened_by_the_reconciler(world: World) -> None:
    job_id, _ = create_job(world)
    files = world.store.list_files(job_id)
    assert world.generation.lifecycle.submit(job_id, [f.file_id for f in files], 1)
    assert world.generation.lifecycle.await_payment(job_id)
    world.stripe.fail_next = 1
    assert world.payments.reconcile()["checkouts_opened"] == 0  # normalization may be opening it right now
    world.clock.advance(seconds=31)
    assert world.payments.reconcile()["errors"] == 1
    assert job(world, job_id).checkout_url is None
    assert world.payments.reconcile()["checkouts_opened"] == 1
    assert job(world, job_id).checkout_url


def test_a_lost_payment_event_is_found_by_the_reconciler(world: World) -> None:
    job_id = accepted_job(world)
    world.stripe.pay(job(world, job_id).checkout_session_id or "")  # the webhook never arrives
    assert world.payments.reconcile()["payments_found"] == 0  # the webhook normally comes within seconds
    world.clock.advance(seconds=121)
    assert world.payments.reconcile()["payments_found"] == 1
    assert job(world, job_id).status == JobStatus.GENERATING


def test_a_lost_expiry_event_is_found_by_the_reconciler(world: World) -> None:
    job_id = accepted_job(world)
    world.stripe.expire(job(world, job_id).checkout_session_id or "")
    world.clock.advance(seconds=world.settings.checkout_ttl_s + 121)
    assert world.payments.reconcile()["expired"] == 1
    assert isinstance(world.store.get_job(job_id), Tombstone)


def paid_generating_job(world: World) -> str:
    job_id = accepted_job(world)
    assert world.payments.handle(completed(world, job_id)) == "started"
    run_queues(world)
    return job_id


def test_a_failed_job_is_refunded_in_full_once(world: World) -> None:
    job_id = paid_generating_job(world)
    for _ in range(2 * world.settings.max_attempts_per_slot):
        finish_all(world, job_id, status="failed")
        run_queues(world)
    failed = job(world, job_id)
    assert failed.status == JobStatus.FAILED
    assert failed.refund is not None and (failed.refund.amount, failed.refund.reason) == (1290, "failed")
    assert [amount for _, amount, _ in world.stripe.refunds] == [1290]
    world.aftercare.reconcile()
    assert len(world.stripe.refunds) == 1 and world.metrics.counts["RefundedCents"] == 1290


def test_a_partial_job_is_refunded_pro_rata_even_through_a_stripe_outage(world: World) -> None:
    job_id = paid_generating_job(world)
    world.stripe.fail_next = 3  # the refund at finish fails (the library's retries too)
    finish_all(world, job_id, outputs=2)  # 16 of 32; the top-ups bring nothing
    run_queues(world)
    for _ in range(world.settings.max_attempts_per_slot * 3):
        finish_all(world, job_id, outputs=0)
        run_queues(world)
    ended = job(world, job_id)
    assert ended.status == JobStatus.PARTIAL
    images = sum(s.images_collected for s in world.store.list_slots(job_id))
    owed = 1290 * (32 - images) // 32
    assert ended.refund_due == owed
    while world.stripe.fail_next:
        world.aftercare.reconcile()
    world.aftercare.reconcile()
    world.aftercare.reconcile()
    assert [amount for _, amount, _ in world.stripe.refunds] == [owed]
    assert job(world, job_id).refund is not None


def test_a_ready_job_is_not_refunded(world: World) -> None:
    job_id = paid_generating_job(world)
    finish_all(world, job_id)
    run_queues(world)
    assert job(world, job_id).status == JobStatus.READY
    world.aftercare.reconcile()
    assert world.stripe.refunds == []


def test_delete_before_any_headshot_refunds_in_full_and_after_delivery_does_not(world: World) -> None:
    early = paid_generating_job(world)
    assert world.deletion.request(early).finished
    assert [amount for _, amount, _ in world.stripe.refunds] == [1290]
    late = paid_generating_job(world)
    finish_all(world, late)
    run_queues(world)
    assert world.deletion.request(late).finished
    assert len(world.stripe.refunds) == 1


def test_delete_while_awaiting_payment_closes_the_checkout(world: World) -> None:
    job_id = accepted_job(world)
    session_id = job(world, job_id).checkout_session_id or ""
    assert world.deletion.request(job_id).finished
    assert world.stripe.sessions[session_id].status == "expired"


def test_a_webhook_that_does_not_verify_changes_nothing(world: World) -> None:
    job_id = accepted_job(world)
    session_id = job(world, job_id).checkout_session_id or ""
    world.stripe.pay(session_id)
    payload = json.dumps({"id": "evt_1", "type": "checkout.session.completed", "session": session_id}).encode()
    with pytest.raises(PaymentWebhookRejected):
        world.payments.receive(payload, "forged", lambda _key, action: action())
    assert job(world, job_id).status == JobStatus.AWAITING_PAYMENT
    assert world.payments.receive(payload, "valid", lambda _key, action: action()) == "started"


def test_a_late_event_of_a_deleted_jobs_own_payment_is_not_refunded_again(world: World) -> None:
    job_id = paid_generating_job(world)
    finish_all(world, job_id)
    run_queues(world)
    assert job(world, job_id).status == JobStatus.READY
    session_id = job(world, job_id).payment.checkout_session_id  # type: ignore[union-attr]
    assert world.deletion.request(job_id).finished
    # Stripe retries the completion (our answer was lost): the job is gone, but this was its own payment.
    replay = PaymentEvent("evt_9", "checkout.session.completed", world.stripe.sessions[session_id])
    assert world.payments.handle(replay) == "duplicate"
    assert world.stripe.refunds == []


def test_an_expiry_whose_deletion_failed_halfway_is_finished_by_stripes_retry(world: World) -> None:
    job_id = accepted_job(world)
    session = world.stripe.expire(job(world, job_id).checkout_session_id or "")
    world.blobs.put(keys.reference(job_id, "f" * 32), b"a checked photo", "image/jpeg")
    world.blobs.fail_keys = set(world.blobs.list_keys(keys.job_prefix(job_id)))  # the bucket fails the deletes
    with pytest.raises(PrefixNotEmpty):  # the webhook answers 5xx: Stripe retries the event
        world.payments.handle(PaymentEvent("evt_1", "checkout.session.expired", session))
    assert job(world, job_id).status == JobStatus.EXPIRED
    world.blobs.fail_keys = set()
    assert world.payments.handle(PaymentEvent("evt_1", "checkout.session.expired", session)) == "ended"
    assert isinstance(world.store.get_job(job_id), Tombstone)
    assert list(world.blobs.list_keys(keys.job_prefix(job_id))) == []


def test_a_payment_made_just_before_delete_is_refunded_by_the_delete(world: World) -> None:
    job_id = accepted_job(world)
    session_id = job(world, job_id).checkout_session_id or ""
    paid = world.stripe.pay(session_id)  # its completed event is still on the way
    assert world.deletion.request(job_id).finished
    assert [amount for _, amount, _ in world.stripe.refunds] == [1290]
    # The event arrives later: refunded with the same key, so not twice.
    assert world.payments.handle(PaymentEvent("evt_1", "checkout.session.completed", paid)) == "refunded_stray"
    assert len(world.stripe.refunds) == 1


def test_a_free_checkout_starts_the_job_and_owes_no_refund(world: World) -> None:
    job_id = accepted_job(world)
    session_id = job(world, job_id).checkout_session_id or ""
    free = dataclasses.replace(
        world.stripe.pay(session_id, discount=1290),
        payment_status="no_payment_required",
        payment_intent=None,
    )
    assert world.payments.handle(PaymentEvent("evt_1", "checkout.session.completed", free)) == "started"
    for _ in range(2 * world.settings.max_attempts_per_slot):
        finish_all(world, job_id, status="failed")
        run_queues(world)
    assert job(world, job_id).status == JobStatus.FAILED
    world.aftercare.reconcile()
    assert world.stripe.refunds == [] and not job(world, job_id).aftercare_due


def test_a_delete_with_stripe_down_is_recorded_and_refunded_by_the_reconciler(world: World) -> None:
    job_id = paid_generating_job(world)
    world.stripe.fail_next = 1
    receipt = world.deletion.request(job_id)  # the API answers 202 with the receipt
    assert not receipt.finished and world.stripe.refunds == []
    deleting = job(world, job_id)
    assert deleting.status == JobStatus.DELETED and deleting.refund_due == 1290 and deleting.refund is None
    # The job cannot end `ready` any more: its outputs are dropped; the reconciler refunds, then purges.
    finish_all(world, job_id)
    run_queues(world)
    assert world.deletion.finish_interrupted() == 1
    tombstone = world.store.get_job(job_id)
    assert isinstance(tombstone, Tombstone) and tombstone.receipt_id == receipt.receipt_id
    assert tombstone.refund is not None and tombstone.refund.amount == 1290 and tombstone.amount_paid == 1290
    assert [amount for _, amount, _ in world.stripe.refunds] == [1290]


def test_a_delete_whose_refund_record_fails_after_stripe_refunded_is_recorded_next_minute(world: World) -> None:
    """Stripe made the refund, then the write recording it failed: the next run finds it (by listing the payment's
    refunds: the key is in its metadata) and records that one; nothing is refunded twice."""
    job_id = paid_generating_job(world)
    record_refund = world.store.update_job

    def failing(job_id_: str, *args: object, **fields: object) -> bool:
        if "refund" in fields and fields["refund"] is not None:
            raise ConnectionError("the store did not answer")
        return record_refund(job_id_, *args, **fields)  # type: ignore[arg-type]

    world.store.update_job = failing  # type: ignore[method-assign]
    receipt = world.deletion.request(job_id)
    assert not receipt.finished and [a for _, a, _ in world.stripe.refunds] == [1290]
    world.store.update_job = record_refund  # type: ignore[method-assign]
    world.clock.advance(days=2)  # past Stripe's 24 hours: only the listing can find it now
    world.stripe._by_key.clear()
    assert world.deletion.finish_interrupted() == 1
    tombstone = world.store.get_job(job_id)
    assert isinstance(tombstone, Tombstone) and tombstone.refund is not None
    assert tombstone.refund.refund_id == world.stripe.refund_records[0].refund_id
    assert [a for _, a, _ in world.stripe.refunds] == [1290]
    assert world.metrics.counts["RefundsFoundAgain"] == 1


def test_a_retried_delete_answers_the_same_receipt(world: World) -> None:
    job_id = paid_generating_job(world)
    world.stripe.fail_next = 1
    first = world.deletion.request(job_id)
    second = world.deletion.request(job_id)
    assert second.finished and second.receipt_id == first.receipt_id
    assert [a for _, a, _ in world.stripe.refunds] == [1290]


def test_a_failed_jobs_refund_and_its_delete_are_one_refund(world: World) -> None:
    """The aftercare's refund and the DELETE's share the job's one key: deleting a failed job whose refund is
    still owed refunds it once."""
    job_id = paid_generating_job(world)
    for _ in range(2 * world.settings.max_attempts_per_slot):
        finish_all(world, job_id, status="failed")
        run_queues(world)
    assert job(world, job_id).status == JobStatus.FAILED
    assert world.deletion.request(job_id).finished
    world.aftercare.reconcile()
    assert [a for _, a, _ in world.stripe.refunds] == [1290]


def test_a_free_checkout_whose_event_was_lost_is_started_by_the_reconciler(world: World) -> None:
    job_id = accepted_job(world)
    session_id = job(world, job_id).checkout_session_id or ""
    world.stripe.sessions[session_id] = dataclasses.replace(
        world.stripe.pay(session_id, discount=1290), payment_status="no_payment_required", payment_intent=None
    )
    world.clock.advance(seconds=121)
    assert world.payments.reconcile()["payments_found"] == 1
    assert job(world, job_id).status == JobStatus.GENERATING


def test_an_expiry_found_by_the_reconciler_whose_deletion_failed_is_finished_next_minute(world: World) -> None:
    job_id = accepted_job(world)
    world.stripe.expire(job(world, job_id).checkout_session_id or "")  # its event is lost
    world.blobs.put(keys.reference(job_id, "f" * 32), b"a checked photo", "image/jpeg")
    world.blobs.fail_keys = set(world.blobs.list_keys(keys.job_prefix(job_id)))
    world.clock.advance(seconds=121)
    assert world.payments.reconcile()["errors"] == 1  # the bucket failed; the reconciler went on
    world.blobs.fail_keys = set()
    assert world.deletion.finish_interrupted() == 1
    record = world.store.get_job(job_id)
    assert isinstance(record, Tombstone) and record.reason == "checkout_expired"
    assert list(world.blobs.list_keys(keys.job_prefix(job_id))) == []


def test_two_workers_opening_one_checkout_at_once_leave_it_open(world: World) -> None:
    """Normalization and the reconciler both open the job's checkout within one second: Stripe's idempotency
    key gives both the same session, and the one whose record loses must not expire the job's own session."""
    job_id = helpers.accepted_job(world)
    create = world.stripe.create_checkout

    def create_while_the_other_worker_records(*args: Any, **kwargs: Any) -> Any:
        session = create(*args, **kwargs)
        assert world.generation.lifecycle.record_checkout(job_id, session.session_id, session.url, session.expires_at)
        return session

    world.stripe.create_checkout = create_while_the_other_worker_records  # type: ignore[method-assign]
    assert not world.payments.open_checkout(job_id)
    recorded = job(world, job_id).checkout_session_id or ""
    assert world.stripe.sessions[recorded].status == "open"

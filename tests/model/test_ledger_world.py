"""The ledger over the lifecycle model's world (its fakes behave as Stripe and DynamoDB do): whole jobs, then what
support does by hand and what a lost event leaves, matched and repaired once."""

from __future__ import annotations

from datetime import timedelta

from portrait_studio.config import Settings
from portrait_studio.models import JobStatus, Tombstone
from tests.model.world import COLLECT, DISPATCH, NORMALIZE, World

WINDOW = timedelta(hours=72)


def ready_world() -> tuple[World, str]:
    world = World(Settings(dispatch_queue_url=DISPATCH, collect_queue_url=COLLECT, normalize_queue_url=NORMALIZE))
    job_id = world.start_job()
    world.run_to_quiescence()
    job = world.job(job_id)
    assert job is not None and job.status == JobStatus.READY, job
    return world, job_id


def test_a_dashboard_refund_of_a_ready_job_is_recorded_once_and_then_matched() -> None:
    world, job_id = ready_world()
    job = world.job(job_id)
    assert job is not None and job.payment is not None and job.payment.payment_intent
    world.stripe.refund_outside(job.payment.payment_intent, 645)
    first = world.ledger.run(WINDOW)
    assert (first.paid, first.refunded, first.repaired, first.unrepaired) == (1, 1, 1, 0)
    assert [r.amount for r in world.job(job_id).outside_refunds] == [645]  # type: ignore[union-attr]
    second = world.ledger.run(WINDOW)
    assert second.items == []
    # Deleted afterwards: its tombstone keeps the payment and the refund made by hand.
    world.delete(job_id)
    tombstone = world.store.jobs[job_id]
    assert isinstance(tombstone, Tombstone) and [r.amount for r in tombstone.outside_refunds] == [645]
    assert world.ledger.run(WINDOW).items == []


def test_a_second_payment_whose_every_event_was_lost_is_refunded_by_the_ledger_once() -> None:
    world, job_id = ready_world()
    spare = world.stripe.open_spare(job_id)
    world.stripe.pay(spare.session_id)
    world.drop_stripe_event(-1)  # every delivery of it lost: 3 days of 5xx
    report = world.ledger.run(WINDOW)
    assert [(i.kind, i.amount, i.repaired) for i in report.items] == [("stray_payment", 1290, True)]
    assert world.stripe.refunded(world.stripe.sessions[spare.session_id].payment_intent or "") == [1290]
    assert world.ledger.run(WINDOW).items == []


def test_a_delete_whose_refund_record_fails_is_recorded_within_a_reconcile_run() -> None:
    world = World(Settings(dispatch_queue_url=DISPATCH, collect_queue_url=COLLECT, normalize_queue_url=NORMALIZE))
    job_id = world.start_job()  # paid, generating, nothing made yet: a DELETE owes it all
    world.faults.arm("store.update_job", 1, "before")  # the deletion is recorded; the refund's record fails
    assert not world.delete(job_id)  # 202: left to the reconciler
    assert [a for _, a, _ in world.stripe.refunds] == [1290]
    world.advance_clock(world.settings.reconcile_every_s)
    tombstone = world.store.jobs[job_id]
    assert isinstance(tombstone, Tombstone) and tombstone.refund is not None and tombstone.refund.amount == 1290
    assert [a for _, a, _ in world.stripe.refunds] == [1290]
    assert world.ledger.run(WINDOW).unrepaired == 0

"""The daily ledger: Stripe's payments and refunds matched against jobs and tombstones, repaired once."""

from __future__ import annotations

import contextlib
import json
from datetime import timedelta

import pytest

from portrait_studio.models import Job, JobStatus, Tombstone
from portrait_studio.services.ledger import Ledger
from portrait_studio.services.payments import refund_key
from tests.unit.conftest import World
from tests.unit.helpers import finish_all, run_queues
from tests.unit.test_payments import accepted_job, job, paid_generating_job

WINDOW = timedelta(hours=72)


@pytest.fixture
def ledger(world: World) -> Ledger:
    return Ledger(world.store, world.stripe, world.payments, world.clock, world.metrics)


def ready_job(world: World) -> str:
    job_id = paid_generating_job(world)
    finish_all(world, job_id)
    run_queues(world)
    assert job(world, job_id).status == JobStatus.READY
    return job_id


def test_paid_and_started_and_refunded_as_owed_is_matched(world: World, ledger: Ledger) -> None:
    ready_job(world)
    failed = paid_generating_job(world)
    for _ in range(2 * world.settings.max_attempts_per_slot):
        finish_all(world, failed, status="failed")
        run_queues(world)
    accepted_job(world)  # open, unpaid
    report = ledger.run(WINDOW)
    assert (report.sessions, report.paid, report.refunded, report.items) == (3, 2, 1, [])
    assert world.metrics.counts["LedgerMismatches"] == 0


def test_a_refund_made_in_the_dashboard_is_recorded_on_the_job_once(world: World, ledger: Ledger) -> None:
    job_id = ready_job(world)
    intent = job(world, job_id).payment.payment_intent  # type: ignore[union-attr]
    refund_id = world.stripe.refund_outside(intent or "", 500)
    report = ledger.run(WINDOW)
    assert [(i.kind, i.amount, i.repaired) for i in report.items] == [("outside_refund", 500, True)]
    assert [r.refund_id for r in job(world, job_id).outside_refunds] == [refund_id]
    assert world.metrics.counts["LedgerRepaired"] == 1 and world.metrics.counts["LedgerMismatches"] == 0
    assert ledger.run(WINDOW).items == []  # recorded: matched from now on
    assert len(job(world, job_id).outside_refunds) == 1


def test_a_dashboard_refund_of_a_deleted_jobs_payment_is_recorded_on_its_tombstone(
    world: World, ledger: Ledger
) -> None:
    job_id = ready_job(world)
    intent = job(world, job_id).payment.payment_intent  # type: ignore[union-attr]
    assert world.deletion.request(job_id).finished
    world.stripe.refund_outside(intent or "", 1290)
    assert [i.repaired for i in ledger.run(WINDOW).items] == [True]
    tombstone = world.store.get_job(job_id)
    assert isinstance(tombstone, Tombstone) and tombstone.outside_refunds[0].amount == 1290


def test_a_second_payment_whose_events_were_all_lost_is_refunded_once(world: World, ledger: Ledger) -> None:
    job_id = paid_generating_job(world)
    spare = world.stripe.create_checkout(job_id, "price", "s", "c", world.clock.now() + timedelta(hours=1), "tab-2")
    paid = world.stripe.pay(spare.session_id)  # its completed event never arrives
    report = ledger.run(WINDOW)
    assert [(i.kind, i.session_id, i.amount, i.repaired) for i in report.items] == [
        ("stray_payment", spare.session_id, 1290, True)
    ]
    assert [a for pi, a, _ in world.stripe.refunds if pi == paid.payment_intent] == [1290]
    assert ledger.run(WINDOW).items == []  # refunded: matched, never twice
    assert job(world, job_id).status == JobStatus.GENERATING


def test_a_payment_on_its_way_to_start_is_left_to_the_webhook(world: World, ledger: Ledger) -> None:
    job_id = accepted_job(world)
    world.stripe.pay(job(world, job_id).checkout_session_id or "")
    report = ledger.run(WINDOW)
    assert (report.paid, report.items, world.stripe.refunds) == (1, [], [])


def test_a_refund_stripe_made_that_no_record_holds_is_recorded(world: World, ledger: Ledger) -> None:
    job_id = paid_generating_job(world)
    for _ in range(2 * world.settings.max_attempts_per_slot):
        finish_all(world, job_id, status="failed")
        run_queues(world)
    # As if the write recording it had been lost: Stripe holds the refund, the job does not.
    assert world.store.update_job(job_id, refund=None)
    report = ledger.run(WINDOW)
    assert [(i.kind, i.repaired) for i in report.items] == [("refund_unrecorded", True)]
    made = [r for r in world.stripe.refund_records if r.key == refund_key(job_id)]
    assert job(world, job_id).refund.refund_id == made[0].refund_id  # type: ignore[union-attr]
    assert len(world.stripe.refunds) == 1


def test_a_recorded_refund_stripe_does_not_have_is_an_unrepaired_mismatch(world: World, ledger: Ledger) -> None:
    job_id = paid_generating_job(world)
    for _ in range(2 * world.settings.max_attempts_per_slot):
        finish_all(world, job_id, status="failed")
        run_queues(world)
    refund = job(world, job_id).refund
    assert refund is not None
    assert world.store.update_job(job_id, refund=refund.model_copy(update={"refund_id": "re_forged"}))
    report = ledger.run(WINDOW)
    assert [(i.kind, i.repaired) for i in report.items] == [("refund_not_in_stripe", False)]
    assert world.metrics.counts["LedgerMismatches"] == 1


def test_a_job_claiming_a_payment_stripe_does_not_have_is_an_unrepaired_mismatch(world: World, ledger: Ledger) -> None:
    job_id = paid_generating_job(world)
    record = world.store.get_job(job_id)
    assert isinstance(record, Job) and record.payment is not None
    forged = record.payment.model_copy(update={"checkout_session_id": "cs_test_none", "payment_intent": "pi_none"})
    world.stripe.sessions["cs_test_none"] = world.stripe.sessions[record.payment.checkout_session_id]
    assert world.store.update_job(job_id, payment=forged)
    kinds = [(i.kind, i.repaired) for i in ledger.run(WINDOW).items]
    assert ("payment_not_in_stripe", False) in kinds


def test_nothing_personal_in_the_report(world: World, ledger: Ledger) -> None:
    job_id = ready_job(world)
    world.stripe.refund_outside(job(world, job_id).payment.payment_intent or "", 100)  # type: ignore[union-attr]
    assert "@" not in repr(ledger.run(WINDOW).as_dict())


def test_the_template_alarms_on_an_unrepaired_mismatch() -> None:
    from tests.unit.test_template import resources

    alarm = resources("AWS::CloudWatch::Alarm")["LedgerMismatchesAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("PortraitStudio", "LedgerMismatches")
    assert (alarm["ComparisonOperator"], alarm["Threshold"], alarm["Statistic"]) == ("GreaterThanThreshold", 0, "Sum")


def test_the_cli_prints_one_line_per_mismatch_and_exits_1_while_one_is_unrepaired(
    world: World, ledger: Ledger, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from portrait_studio import cli, wiring

    job_id = ready_job(world)
    world.stripe.refund_outside(job(world, job_id).payment.payment_intent or "", 300)  # type: ignore[union-attr]
    monkeypatch.setattr(wiring, "container", lambda: type("C", (), {"ledger": ledger})())
    monkeypatch.setattr(cli, "local_stack_unless_configured", contextlib.nullcontext)
    assert cli.main(["ledger", "--since", "72h"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("repaired") and "outside_refund" in lines[0] and "amount=300" in lines[0]
    assert lines[-1] == "sessions 1 paid 1 refunded 1 mismatches 1 repaired 1"
    # A refund the job records and Stripe does not have: nothing the ledger can repair.
    forged = job(world, job_id).outside_refunds[0].model_copy(update={"refund_id": "re_x", "reason": "deleted"})
    assert world.store.update_job(job_id, refund=forged)
    assert cli.main(["ledger", "--since", "3d", "--json"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert (printed["mismatches"], printed["repaired"], printed["items"][0]["kind"]) == (1, 0, "refund_not_in_stripe")

"""After a job ends: its refund, then exactly one email with the outcome and a private link (issue #15)."""

from __future__ import annotations

import html
import re

import pytest

from portrait_studio.errors import JobNotFound
from portrait_studio.models import Job, JobStatus
from portrait_studio.ports import PaymentEvent
from tests.unit import helpers
from tests.unit.conftest import World
from tests.unit.helpers import finish_all, run_queues

LINK = re.compile(r"http://127\.0\.0\.1:3000/#job=(?P<job>[0-9a-f]+)&token=(?P<token>[A-Za-z0-9_-]+)")


def paid_job(world: World, email: str | None = "ada@example.com") -> tuple[str, str]:
    job_id, token = helpers.create_job(world)
    helpers.accepted_job(world, job_id=job_id)
    assert world.payments.open_checkout(job_id)
    job = world.store.get_job(job_id)
    session = world.stripe.pay(job.checkout_session_id or "", email=email)
    assert world.payments.handle(PaymentEvent("evt_1", "checkout.session.completed", session)) == "started"
    run_queues(world)
    return job_id, token


def current(world: World, job_id: str) -> Job:
    job = world.store.get_job(job_id)
    assert isinstance(job, Job)
    return job


def test_a_ready_job_sends_one_email_whose_link_opens_the_job(world: World) -> None:
    job_id, token = paid_job(world)
    assert current(world, job_id).email == "ada@example.com"
    finish_all(world, job_id)
    run_queues(world)
    assert current(world, job_id).status == JobStatus.READY
    [mail] = world.mail.sent
    assert mail["to"] == "ada@example.com" and mail["subject"] == "Your 32 headshots are ready"
    link = LINK.search(mail["text"])
    assert link and link["job"] == job_id and link["token"] != token
    assert html.escape(link.group(0)) in mail["html"]
    # The emailed link works on its own (another browser, another device) ...
    assert world.jobs.view(job_id, link["token"]).status == JobStatus.READY
    # ... and nothing else of the job is in the mail: no presigned URL, no other token, no photo.
    assert mail["text"].count("http") == 1 and token not in mail["text"] and "X-Amz" not in mail["html"]
    # Done: the address is forgotten; running again (a replay, the reconciler) sends nothing more.
    after = current(world, job_id)
    assert after.email is None and not after.aftercare_due
    world.aftercare.run(job_id)
    world.aftercare.reconcile()
    assert len(world.mail.sent) == 1


def test_a_failed_send_leaves_the_job_ready_and_sends_nothing_twice(world: World) -> None:
    job_id, _ = paid_job(world)
    world.mail.fail_next = 1
    finish_all(world, job_id)
    run_queues(world)
    assert current(world, job_id).status == JobStatus.READY
    assert world.mail.sent == [] and world.metrics.counts["EmailsFailed"] == 1
    world.aftercare.reconcile()
    assert world.mail.sent == [] and current(world, job_id).email is None


def test_a_partial_job_emails_its_refund_after_it_is_made(world: World) -> None:
    job_id, _ = paid_job(world)
    world.stripe.fail_next = 3  # Stripe is down when the job ends: no email before the refund is made
    finish_all(world, job_id, outputs=2)
    run_queues(world)
    for _ in range(world.settings.max_attempts_per_slot * 3):
        finish_all(world, job_id, outputs=0)
        run_queues(world)
    assert current(world, job_id).status == JobStatus.PARTIAL
    assert world.mail.sent == []
    while current(world, job_id).aftercare_due:
        world.aftercare.reconcile()
    [mail] = world.mail.sent
    owed = current(world, job_id).refund
    assert owed is not None and f"${owed.amount / 100:.2f}" in mail["text"]
    assert "of your 32 headshots" in mail["subject"]


def test_no_address_no_email(world: World) -> None:
    job_id, _ = paid_job(world, email=None)
    finish_all(world, job_id)
    run_queues(world)
    assert world.mail.sent == [] and not current(world, job_id).aftercare_due


def test_rotating_the_link_kills_every_earlier_token_at_once(world: World) -> None:
    job_id, token = paid_job(world)
    finish_all(world, job_id)
    run_queues(world)
    emailed = LINK.search(world.mail.sent[0]["text"])
    assert emailed
    rotated = world.jobs.rotate_token(job_id, token)
    assert world.jobs.view(job_id, rotated.token).status == JobStatus.READY
    for dead in (token, emailed["token"]):
        with pytest.raises(JobNotFound):
            world.jobs.view(job_id, dead)
        with pytest.raises(JobNotFound):
            world.jobs.rotate_token(job_id, dead)


def test_delete_forgets_the_address(world: World) -> None:
    job_id, _ = paid_job(world)
    assert world.deletion.request(job_id).finished
    assert "ada@example.com" not in repr(world.store.jobs.get(job_id))

"""Work that needs a grant runs only in the function that holds it (issue 19, item 4), through the real handlers:

- a job dispatch ends (its budget spent when it claims) gets its refund and outcome email from collect: dispatch
  has neither the Stripe key nor ses:SendEmail, and the email, claimed before sending, would never go;
- an orphan prediction the webhook receiver finds is canceled by dispatch: the receiver cannot read the Replicate
  token, so its own cancel failed and the orphan ran, billed, to the end.

Each function runs with a container that has only what its role grants (anything else raises, as IAM would)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.collect import app as collect
from functions.dispatch import app as dispatch
from functions.webhook import app as webhook
from portrait_studio import wiring
from portrait_studio.models import Job, JobStatus
from portrait_studio.ports import PaymentEvent
from tests.fakes import LambdaContext, MemoryIdempotency
from tests.unit import helpers
from tests.unit.conftest import COLLECT, DISPATCH, World
from tests.unit.test_handlers import Secrets, signed

EVENTS = Path(__file__).resolve().parents[2] / "events"


class Denied(Exception):
    """What IAM answers a role without the grant."""


class NotGranted:
    def __init__(self, what: str) -> None:
        self._what = what

    def __getattr__(self, name: str) -> Any:
        raise Denied(f"{self._what}.{name}: not granted to this function")


def as_function(world: World, *, stripe: bool, email: bool, replicate: bool) -> wiring.Container:
    """The world's fakes, minus what the function's role does not grant."""
    return wiring.Container(
        settings=world.settings,
        clock=world.clock,
        store=world.store,
        blobs=world.blobs,
        queue=world.queue,
        generator=world.generator if replicate else NotGranted("replicate"),
        downloader=world.downloader,
        metrics=world.metrics,
        idempotency=MemoryIdempotency(),
        payment_provider=world.stripe if stripe else NotGranted("stripe"),
        notifier=world.mail if email else NotGranted("ses"),
        provenance=None,
    )


DISPATCH_ROLE = {"stripe": False, "email": False, "replicate": True}
COLLECT_ROLE = {"stripe": True, "email": True, "replicate": False}
WEBHOOK_ROLE = {"stripe": False, "email": False, "replicate": False}


@pytest.fixture(autouse=True)
def restore() -> Iterator[None]:
    yield
    wiring.use(None)


def sqs(name: str, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    e = json.loads((EVENTS / name).read_text())
    template = e["Records"][0]
    e["Records"] = []
    for i, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record["messageId"], record["body"] = f"m{i}", json.dumps(body)
        e["Records"].append(record)
    return e


def run(world: World, module: Any, queue: str, event_file: str, role: dict[str, bool]) -> None:
    bodies = world.queue.take(queue)
    assert bodies, f"nothing on {queue}"
    wiring.use(as_function(world, **role))
    for body in bodies:  # one at a time: dispatch's batch size is 1
        assert module.lambda_handler(sqs(event_file, [body]), LambdaContext()) == {"batchItemFailures": []}


def test_a_job_dispatch_ends_gets_its_refund_and_email_from_collect(world: World) -> None:
    job_id, _ = helpers.create_job(world)
    helpers.accepted_job(world, job_id=job_id)
    assert world.payments.open_checkout(job_id)
    session = world.stripe.pay(world.store.get_job(job_id).checkout_session_id or "", email="ada@example.com")
    assert world.payments.handle(PaymentEvent("evt_1", "checkout.session.completed", session)) == "started"
    # Every prediction the budget allows was reserved already (e.g. stale claims taken over): no slot can be claimed.
    job = world.store.get_job(job_id)
    assert isinstance(job, Job)
    assert world.store.update_job(job_id, predictions_reserved=job.prediction_budget)

    run(world, dispatch, DISPATCH, "sqs_dispatch.json", DISPATCH_ROLE)  # raises Denied if it touched Stripe/SES
    ended = world.store.get_job(job_id)
    assert isinstance(ended, Job) and ended.status == JobStatus.FAILED and ended.aftercare_due
    assert world.mail.sent == [] and world.stripe.refunds == []

    run(world, collect, COLLECT, "sqs_collect.json", COLLECT_ROLE)
    [mail] = world.mail.sent
    assert mail["to"] == "ada@example.com" and mail["subject"] == "We could not make your headshots"
    assert [amount for _, amount, _ in world.stripe.refunds] == [1290]
    done = world.store.get_job(job_id)
    assert isinstance(done, Job) and not done.aftercare_due and done.refund and done.refund.amount == 1290


def test_an_orphan_the_webhook_finds_is_canceled_by_dispatch(world: World) -> None:
    job_id = helpers.generating_job(world)
    world.generation.dispatch(job_id)
    slot = world.store.list_slots(job_id)[0]
    c = as_function(world, **WEBHOOK_ROLE)
    c.secrets = Secrets()  # type: ignore[misc]  # its one secret: the webhook signing secret
    wiring.use(c)
    stray = {"id": "pstray0001", "status": "processing", "output": None}
    e = signed(stray, job_id, slot.slot)  # from a claim abandoned earlier: a second prediction for the slot
    e["queryStringParameters"]["claim"] = "an-old-claim"
    reply = webhook.lambda_handler(e, LambdaContext())
    assert reply["statusCode"] == 200 and json.loads(reply["body"])["result"] == "orphan"
    assert world.generator.canceled == [] and world.metrics.counts.get("CancelFailed", 0) == 0

    run(world, dispatch, DISPATCH, "sqs_dispatch.json", DISPATCH_ROLE)
    assert world.generator.canceled == ["pstray0001"]  # it stops running (and billing) now
    assert world.store.get_slot(job_id, slot.slot).prediction_id == slot.prediction_id  # the slot's own goes on


def test_an_accepted_jobs_page_gets_its_checkout_from_the_api_not_from_normalization(world: World) -> None:
    """Normalize decodes untrusted images and holds no Stripe key; the page's next look opens the checkout."""
    from functions.api import app as api
    from tests.unit.test_handlers import with_job

    job_id, token = helpers.create_job(world)
    helpers.accepted_job(world, job_id=job_id)  # as normalization leaves it: awaiting payment, no session
    wiring.use(as_function(world, stripe=True, email=False, replicate=True))
    reply = api.lambda_handler(with_job("api_get_job.json", job_id, token), LambdaContext())
    view = json.loads(reply["body"])
    assert reply["statusCode"] == 200 and view["status"] == "awaiting_payment" and view["checkout_url"]
    again = json.loads(api.lambda_handler(with_job("api_get_job.json", job_id, token), LambdaContext())["body"])
    assert again["checkout_url"] == view["checkout_url"] and len(world.stripe.sessions) == 1


def test_stripe_down_the_page_still_answers_and_a_later_look_opens_the_checkout(world: World) -> None:
    from functions.api import app as api
    from tests.unit.test_handlers import with_job

    job_id, token = helpers.create_job(world)
    helpers.accepted_job(world, job_id=job_id)
    wiring.use(as_function(world, stripe=True, email=False, replicate=True))
    world.stripe.fail_next = 1
    reply = api.lambda_handler(with_job("api_get_job.json", job_id, token), LambdaContext())
    assert reply["statusCode"] == 200 and json.loads(reply["body"])["checkout_url"] is None
    later = json.loads(api.lambda_handler(with_job("api_get_job.json", job_id, token), LambdaContext())["body"])
    assert later["checkout_url"]

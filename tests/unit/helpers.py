from __future__ import annotations

from typing import Any

from portrait_studio.api_models import CreateJobRequest, FileSpec
from portrait_studio.messages import CollectMessage, DispatchMessage
from portrait_studio.models import FaceBox, FileStatus, Payment, PhotoQuality, Verdict
from portrait_studio.services.plan import base_plan, prediction_budget
from tests.unit.conftest import COLLECT, DISPATCH, World


def create_job(world: World, n: int = 4, **options: Any) -> tuple[str, str]:
    request = CreateJobRequest(
        files=[FileSpec(name=f"IMG_{i}.HEIC", content_type="image/heic", bytes=1000 + i) for i in range(n)], **options
    )
    created = world.jobs.create(request, "203.0.113.9")
    return created.job_id, created.token


def generating_job(world: World, n: int = 4, job_id: str | None = None, **options: Any) -> str:
    """A job (new, or the given one) whose photos were all accepted, and paid for."""
    job_id = accepted_job(world, n, job_id, **options)
    job = world.store.get_job(job_id)
    plan = base_plan(job, world.settings, world.clock.now())
    budget = prediction_budget(job.styles, world.settings)
    assert world.generation.lifecycle.start_generation(job_id, plan, budget, paid_with_card(world))
    return job_id


def accepted_job(world: World, n: int = 4, job_id: str | None = None, **options: Any) -> str:
    """A job (new, or the given one) whose photos were all accepted, as normalization leaves it: unpaid."""
    if job_id is None:
        job_id, _ = create_job(world, n, **options)
    files = world.store.list_files(job_id)
    assert world.generation.lifecycle.submit(job_id, [f.file_id for f in files], 1)
    for i, f in enumerate(files):
        quality = PhotoQuality(
            width=1024,
            height=1024,
            face=FaceBox(left=300, top=300, width=300 + 10 * i, height=300 + 10 * i),
            face_fraction=0.3 + 0.01 * i,
            sharpness=100.0 + i,
            yaw_hint=(-1) ** i * 0.1 * i,
            phash=f"{i:016x}",
        )
        verdict = Verdict(accepted=True, code="accepted", message="Looks good.")
        world.store.record_verdict(
            job_id, f.model_copy(update={"status": FileStatus.ACCEPTED, "verdict": verdict, "quality": quality})
        )
    assert world.generation.lifecycle.await_payment(job_id)
    return job_id


def paid_with_card(world: World, amount: int = 1290) -> Payment:
    """A payment as a verified `checkout.session.completed` records it."""
    return Payment(
        checkout_session_id="cs_test_helper",
        payment_intent="pi_test_helper",
        amount_subtotal=amount,
        amount_discount=0,
        amount_total=amount,
        currency="usd",
        paid_at=world.clock.now(),
    )


def webhook_body(world: World, prediction_id: str) -> dict[str, Any]:
    remote = world.generator.remote[prediction_id]
    return {
        "id": remote.id,
        "status": remote.status,
        "output": remote.output or None,
        "error": remote.error,
        "metrics": {"predict_time": remote.predict_time} if remote.predict_time else {},
    }


def run_queues(world: World, rounds: int = 10) -> None:
    """Deliver queued dispatch and collect messages until nothing is left (like the pollers)."""
    for _ in range(rounds):
        dispatches = world.queue.take(DISPATCH)
        collects = world.queue.take(COLLECT)
        if not dispatches and not collects:
            return
        for body in dispatches:  # as functions/dispatch/app.py does
            message = DispatchMessage.model_validate(body)
            if message.cancel:
                world.generation.cancel_orphan(message.cancel)
            else:
                world.generation.dispatch(message.job_id, message.slots, message.attempt, message.turn_at)
        for body in collects:  # as functions/collect/app.py does
            collect = CollectMessage.model_validate(body)
            if collect.slot is None:
                world.generation.aftercare(collect.job_id)
            else:
                world.generation.collect(collect.job_id, collect.slot)


def finish_all(world: World, job_id: str, outputs: int = 4, status: str = "succeeded") -> None:
    """Every in-flight prediction completes and its webhook arrives."""
    for slot in world.store.list_slots(job_id):
        if slot.prediction_id and slot.status in ("starting", "processing"):
            world.generator.finish(slot.prediction_id, outputs if status == "succeeded" else 0, status)
            world.generation.record_event(job_id, slot.slot, slot.claim_id, webhook_body(world, slot.prediction_id))

""" "More like this" in the lifecycle model: the API's path after its token check, and the 48 h sweep that can come
while a round runs. Kept beside world.py so the world stays the payment and generation model it was."""

from __future__ import annotations

from portrait_studio.errors import JobStateConflict, ResultNotFound
from portrait_studio.models import Job, Prediction
from tests.model.world import Deleted, InjectedFault, World


def ask_for_more(world: World, job_id: str, pick: int) -> str:
    """POST /jobs/{id}/more for one of the job's headshots (or a number it does not have). Returns what the owner
    saw: `started`, an error code, or `fault` (a 500: the round started whole or not at all)."""
    record = world.store.jobs.get(job_id)
    if not isinstance(record, Job):
        return "job_not_found"  # a tombstone: the API's 404
    results = sorted(f"{s.style}/{n}" for s in world.store.list_slots(job_id) for n in s.results)
    result = results[pick % len(results)] if results and pick < 40 else "corporate/999"
    try:
        world.container.more.start(record, result)
    except InjectedFault:
        return "fault"
    except (JobStateConflict, ResultNotFound) as refused:
        return refused.code
    return "started"


def expire(world: World, job_id: str) -> bool:
    """The 48 h sweep purges a delivered job (its aftercare long done), possibly in the middle of a round."""
    job = world.job(job_id)
    if job is None or job.status.is_tombstone or job.aftercare_due or not (job.status.is_finished or job.delivered_as):
        return False
    world.deleted_as.setdefault(job_id, Deleted(job, base_images(world.store.list_slots(job_id))))
    world.expired.add(job_id)
    try:
        world.retention.purge(job_id, "expired")
    except InjectedFault:
        with world.faults_off():  # the next hourly sweep finishes it, as a DELETE's retry does
            world.retention.purge(job_id, "expired")
    world.deleted.setdefault(job_id, len(world.replicate.records))
    return True


def base_images(slots: list[Prediction]) -> int:
    """Headshots of the paid plan (and its top-ups): what the job's outcome and refund are decided on."""
    return sum(s.images_collected for s in slots if not s.more_round)

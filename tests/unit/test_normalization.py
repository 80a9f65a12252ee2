"""The normalize step with fakes around the real photo checks: verdicts, exactly one move on, no stuck jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from portrait_studio import keys
from portrait_studio.api_models import CreateJobRequest, FileSpec
from portrait_studio.models import JobStatus
from portrait_studio.services.normalization import NormalizationService
from tests.unit.conftest import DISPATCH, NORMALIZE, World

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture
def normalization(world: World) -> NormalizationService:
    w = world
    return NormalizationService(w.settings, w.store, w.blobs, w.queue, w.clock, w.metrics, payments=w.payments)


def submitted_job(world: World, names: list[str]) -> str:
    paths = [SAMPLES / name for name in names]
    request = CreateJobRequest(
        files=[FileSpec(name=p.name, content_type="image/jpeg", bytes=p.stat().st_size) for p in paths]
    )
    created = world.jobs.create(request, "192.0.2.1")
    for ticket, path in zip(created.uploads, paths, strict=True):
        world.blobs.put(keys.upload(created.job_id, ticket.file_id), path.read_bytes(), "image/jpeg")
    world.jobs.submit(created.job_id, created.token)
    return created.job_id


def run_normalize(world: World, normalization: NormalizationService) -> list[str]:
    return [normalization.process(m["job_id"], m["file_id"]) for m in world.queue.take(NORMALIZE)]


def test_photos_get_verdicts_and_the_job_waits_for_payment_once(world: World, normalization: NormalizationService):
    job_id = submitted_job(world, ["person-a-1.jpg", "person-a-2.jpg", "person-a-3.heic", "no-face.jpg"])
    messages = list(world.queue.sent[NORMALIZE])
    assert sorted(run_normalize(world, normalization)) == ["accepted", "accepted", "accepted", "no_face"]
    # Redelivered messages change nothing and open no second checkout; nothing is generated before payment.
    assert {normalization.process(m["job_id"], m["file_id"]) for m in messages} == {"skipped"}
    job = world.store.get_job(job_id)
    assert job.status == JobStatus.AWAITING_PAYMENT and job.checkout_url
    assert len(world.stripe.sessions) == 1 and world.queue.take(DISPATCH) == []
    # Raw uploads are gone; normalized references stay.
    assert list(world.blobs.list_keys(f"jobs/{job_id}/uploads/")) == []
    assert len(list(world.blobs.list_keys(f"jobs/{job_id}/refs/"))) == 3
    qualities = [f.quality for f in world.store.list_files(job_id) if f.quality]
    assert all(q.face_fraction > 0 and q.sharpness > 0 and q.phash for q in qualities)


def test_too_few_usable_photos_send_the_job_back_to_collecting(world: World, normalization: NormalizationService):
    job_id = submitted_job(world, ["person-a-1.jpg", "no-face.jpg", "person-a-1.jpg"])
    assert sorted(run_normalize(world, normalization)) == ["accepted", "duplicate", "no_face"]
    assert world.store.get_job(job_id).status == JobStatus.COLLECTING
    assert world.queue.take(DISPATCH) == []


def test_a_photo_whose_normalization_never_finishes_is_given_up_on(world: World, normalization: NormalizationService):
    job_id = submitted_job(world, ["person-a-1.jpg", "person-a-2.jpg", "person-a-3.heic", "no-face.jpg"])
    messages = world.queue.take(NORMALIZE)
    for message in messages[:3]:
        normalization.process(message["job_id"], message["file_id"])
    # The fourth message crashed its function until it went to the dead-letter queue.
    assert normalization.rescue_stuck() == 0
    world.clock.advance(seconds=world.settings.normalize_stuck_s + 1)
    assert normalization.rescue_stuck() == 1
    codes = sorted(f.verdict.code for f in world.store.list_files(job_id) if f.verdict)
    assert codes.count("processing_failed") == 1
    assert world.store.get_job(job_id).status in (JobStatus.AWAITING_PAYMENT, JobStatus.COLLECTING)

"""The normalize step with fakes around the real photo checks: verdicts, exactly one move on, no stuck jobs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from portrait_studio import keys
from portrait_studio.api_models import CreateJobRequest, FileSpec
from portrait_studio.models import JobStatus
from portrait_studio.services.normalization import NormalizationService
from tests.unit.conftest import DISPATCH, NORMALIZE, World

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
CORPUS = Path(os.environ.get("PORTRAIT_CORPUS") or SAMPLES.parents[1] / "shared" / "corpus")


@pytest.fixture
def normalization(world: World) -> NormalizationService:
    w = world
    return NormalizationService(w.settings, w.store, w.blobs, w.queue, w.clock, w.metrics)


def submitted_job(world: World, names: list[str | Path]) -> str:
    paths = [name if isinstance(name, Path) else SAMPLES / name for name in names]
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
    # Normalization holds no Stripe key: the checkout is opened by the page's next look (GET /jobs/{id}).
    assert job.status == JobStatus.AWAITING_PAYMENT and not job.checkout_url and not world.stripe.sessions
    world.payments.open_checkout_for_page(job_id)
    assert world.store.get_job(job_id).checkout_url
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


def test_a_late_decision_on_a_round_leaves_the_next_round_alone(world: World, normalization: NormalizationService):
    """Two calls can decide the same round: a redelivered message, or two photos finishing together. When the
    slower one writes after the person has added a photo and submitted again, its decision is about a round that
    is over: the new round must stay normalizing and end on its own photos (a full run of the suite saw a paid
    job with three usable photos sent back to collecting, where it stayed)."""
    paths = [SAMPLES / "person-a-1.jpg", SAMPLES / "person-a-2.jpg", SAMPLES / "no-face.jpg"]
    created = world.jobs.create(
        CreateJobRequest(
            files=[FileSpec(name=p.name, content_type="image/jpeg", bytes=p.stat().st_size) for p in paths]
        ),
        "192.0.2.1",
    )
    job_id, token = created.job_id, created.token
    for ticket, path in zip(created.uploads, paths, strict=True):
        world.blobs.put(keys.upload(job_id, ticket.file_id), path.read_bytes(), "image/jpeg")
    world.jobs.submit(job_id, token)
    third = SAMPLES / "person-a-3.heic"

    check = normalization._check_one_person
    late = {"decided": False}

    def slow_check(*args: object) -> object:
        if not late["decided"]:  # the slow caller: while it compares faces, the round ends and a new one starts
            late["decided"] = True
            normalization.advance_if_done(job_id)  # the quick caller decides the round: too few photos
            assert world.store.get_job(job_id).status == JobStatus.COLLECTING
            [ticket] = world.jobs.add_files(
                job_id, token, [FileSpec(name=third.name, content_type="image/heic", bytes=third.stat().st_size)]
            )
            world.blobs.put(keys.upload(job_id, ticket.file_id), third.read_bytes(), "image/heic")
            world.jobs.submit(job_id, token)
        return check(*args)  # type: ignore[arg-type]

    normalization._check_one_person = slow_check  # type: ignore[method-assign]
    assert sorted(run_normalize(world, normalization)) == ["accepted", "accepted", "no_face"]
    job = world.store.get_job(job_id)
    assert (job.status, job.round) == (JobStatus.NORMALIZING, 2)  # the late decision about round 1 wrote nothing

    assert run_normalize(world, normalization) == ["accepted"]
    assert world.store.get_job(job_id).status == JobStatus.AWAITING_PAYMENT


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


def test_a_photo_of_somebody_else_is_refused_and_the_job_goes_on(world: World, normalization: NormalizationService):
    job_id = submitted_job(world, ["person-a-1.jpg", "person-a-2.jpg", "person-a-3.heic", "person-b.png"])
    run_normalize(world, normalization)
    verdicts = {f.name: f.verdict.code for f in world.store.list_files(job_id) if f.verdict}
    assert verdicts == {
        "person-a-1.jpg": "accepted",
        "person-a-2.jpg": "accepted",
        "person-a-3.heic": "accepted",
        "person-b.png": "different_person",
    }
    assert world.store.get_job(job_id).status == JobStatus.AWAITING_PAYMENT
    # Only derived numbers are kept: each accepted photo's distance from the person, closest first for references.
    distances = [f.quality.identity_distance for f in world.store.list_files(job_id) if f.status == "accepted"]
    assert all(d is not None and d < world.settings.identity_same_person_max_distance for d in distances)
    assert len(list(world.blobs.list_keys(f"jobs/{job_id}/refs/"))) == 3


@pytest.mark.skipif(not (CORPUS / "MANIFEST.json").is_file(), reason=f"photo corpus not found at {CORPUS}")
def test_photos_of_three_different_people_are_refused_as_a_whole(world: World, normalization: NormalizationService):
    people = [SAMPLES / "person-a-1.jpg", SAMPLES / "person-b.png", CORPUS / "faces" / "astronaut.png"]
    job_id = submitted_job(world, people)
    assert sorted(run_normalize(world, normalization)) == ["accepted"] * 3
    job = world.store.get_job(job_id)
    assert job.status == JobStatus.COLLECTING and job.intake_problem == "no_single_person"
    assert world.stripe.sessions == {} and world.queue.take(DISPATCH) == []
    # The photos that are not of the person can go (accepted ones too), to be replaced by more of the person.
    others = [f for f in world.store.list_files(job_id) if f.name != "person-a-1.jpg"]
    for f in others:
        world.store.remove_file(job_id, f.file_id)
    assert [f.name for f in world.store.list_files(job_id)] == ["person-a-1.jpg"]

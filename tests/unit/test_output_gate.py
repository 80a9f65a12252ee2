"""The output gate in collect: real photos as references, emulator-style renders as outputs. An output of the
person is kept with its likeness; somebody else's face or no face is dropped, counted and topped up."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.local.replicate.render import OTHER_PERSON_PHOTO, backdrop, load_reference, render_preview
from portrait_studio import keys
from portrait_studio.api_models import CreateJobRequest, FileSpec
from portrait_studio.models import Job, JobStatus
from portrait_studio.ports import PaymentEvent
from portrait_studio.services.jobs import _ranked_results
from portrait_studio.services.normalization import NormalizationService
from tests.unit.conftest import COLLECT, NORMALIZE, World
from tests.unit.helpers import finish_all, run_queues

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
PERSON_A = ["person-a-1.jpg", "person-a-2.jpg", "person-a-3.heic"]


def render(base_photo: bytes | None, index: int) -> bytes:
    base = load_reference(base_photo) if base_photo else backdrop("a portrait", "Photographic", index)
    return render_preview(base, "a portrait of a person img", "Photographic (Default)", 1, index, 4)


@pytest.fixture
def paid_job(world: World) -> str:
    """Person A's three photos through the real normalization and identity check, then paid."""
    paths = [SAMPLES / name for name in PERSON_A]
    specs = [FileSpec(name=p.name, content_type="image/jpeg", bytes=p.stat().st_size) for p in paths]
    created = world.jobs.create(CreateJobRequest(files=specs), "192.0.2.1")
    for ticket, path in zip(created.uploads, paths, strict=True):
        world.blobs.put(keys.upload(created.job_id, ticket.file_id), path.read_bytes(), "image/jpeg")
    world.jobs.submit(created.job_id, created.token)
    w = world
    normalization = NormalizationService(w.settings, w.store, w.blobs, w.queue, w.clock, w.metrics)
    for message in world.queue.take(NORMALIZE):
        normalization.process(message["job_id"], message["file_id"])
    job = world.store.get_job(created.job_id)
    assert isinstance(job, Job) and job.status == JobStatus.AWAITING_PAYMENT
    world.payments.open_checkout_for_page(created.job_id)  # the page's look (GET /jobs/{id}) opens it
    job = world.store.get_job(created.job_id)
    assert isinstance(job, Job)
    session = world.stripe.pay(job.checkout_session_id or "")
    assert world.payments.handle(PaymentEvent("evt_1", "checkout.session.completed", session)) == "started"
    return created.job_id


def test_outputs_of_somebody_else_or_of_nobody_are_dropped_and_topped_up(world: World, paid_job: str) -> None:
    person = (SAMPLES / "person-a-1.jpg").read_bytes()
    world.downloader.by_index = {
        0: render(person, 0),
        1: render(person, 1),
        2: render(OTHER_PERSON_PHOTO.read_bytes(), 2),  # identity drift: a stranger's face
        3: render(None, 3),  # no face at all
    }
    run_queues(world)
    finish_all(world, paid_job)
    run_queues(world)
    slots = [s for s in world.store.list_slots(paid_job) if s.status == "collected"]
    assert slots and all(s.images_collected == 2 for s in slots)
    assert all(s.drops == {"not_like_you": 1, "no_face": 1} for s in slots)
    # Only the person's images are delivered, each with its likeness; the shortfall is topped up.
    assert all(len(s.likeness) == 2 and min(s.likeness) >= 50 for s in slots)
    assert world.metrics.counts["OutputsDropped_not_like_you"] == 8
    assert world.metrics.counts["OutputsDropped_no_face"] == 8
    assert world.metrics.counts["TopUps"] >= 1


def test_results_are_ordered_by_likeness_within_each_style(world: World, paid_job: str) -> None:
    photos = ["person-a-1.jpg", "person-a-2.jpg", "person-a-2.jpg", "person-a-1.jpg"]  # JPEGs: the renderer's input
    world.downloader.by_index = {i: render((SAMPLES / name).read_bytes(), i) for i, name in enumerate(photos)}
    run_queues(world)
    finish_all(world, paid_job)
    run_queues(world)
    job = world.store.get_job(paid_job)
    assert isinstance(job, Job) and job.status == JobStatus.READY
    for ranked in _ranked_results(paid_job, world.store.list_slots(paid_job)).values():
        scores = [r.likeness for r in ranked]
        assert scores == sorted(scores, reverse=True) and [r.rank for r in ranked] == list(range(1, len(ranked) + 1))


def test_one_invocation_reads_the_person_once_per_job_and_forgets_it_after(world: World, paid_job: str) -> None:
    """A batch often holds several of a job's predictions: the references are read once for all of them (less
    work per batch), and the next invocation reads them again (the person is never kept between invocations)."""
    person = (SAMPLES / "person-a-1.jpg").read_bytes()
    world.downloader.by_index = {i: render(person, i) for i in range(4)}
    run_queues(world)  # every prediction created (no collect is queued yet)
    finish_all(world, paid_job)
    collects = world.queue.take(COLLECT)
    assert len(collects) >= 3
    reads: list[str] = []
    read = world.blobs.get

    def counted(key: str, *args: object) -> bytes:
        if key.startswith(keys.reference(paid_job, "").removesuffix(".jpg")):
            reads.append(key)
        return read(key, *args)  # type: ignore[arg-type]

    world.blobs.get = counted  # type: ignore[method-assign]
    with world.generation.one_collect_invocation():
        for body in collects[:2]:
            assert world.generation.collect(body["job_id"], body["slot"]) == 4
    in_one_batch = len(reads)
    assert in_one_batch == 3  # each of the three references once, for both predictions
    with world.generation.one_collect_invocation():
        assert world.generation.collect(collects[2]["job_id"], collects[2]["slot"]) == 4
    assert len(reads) == 2 * in_one_batch  # the next invocation describes the person again


def test_a_job_deleted_while_its_outputs_are_copied_gets_nothing_more_and_keeps_nothing(
    world: World, paid_job: str
) -> None:
    """The owner deletes while collect copies a prediction's four outputs: the output in flight is the last one
    fetched, and what this collect wrote is removed before it ends (DELETE's purge has already run)."""
    person = (SAMPLES / "person-a-1.jpg").read_bytes()
    world.downloader.by_index = {i: render(person, i) for i in range(4)}
    run_queues(world)
    finish_all(world, paid_job)
    first = world.queue.take(COLLECT)[0]
    put = world.blobs.put
    receipts: list[str] = []

    def deleted_after_the_first_result(key: str, *args: object) -> None:
        put(key, *args)  # type: ignore[arg-type]
        if "/results/" in key and not receipts:
            receipts.append(world.deletion.request(paid_job).receipt_id)

    world.blobs.put = deleted_after_the_first_result  # type: ignore[method-assign]
    fetched_before = len(world.downloader.fetched)
    assert world.generation.collect(first["job_id"], first["slot"]) == 0
    assert len(world.downloader.fetched) - fetched_before == 1
    assert list(world.blobs.list_keys(keys.job_prefix(paid_job))) == []


def test_what_a_collect_killed_mid_copy_left_of_a_deleted_job_goes_when_its_message_comes_back(
    world: World, paid_job: str
) -> None:
    """A collect killed (timeout, out of memory) after putting down an output of a job deleted meanwhile never
    removes it; SQS hands its message out again after the visibility timeout, and that collect does."""
    person = (SAMPLES / "person-a-1.jpg").read_bytes()
    world.downloader.by_index = {i: render(person, i) for i in range(4)}
    run_queues(world)
    finish_all(world, paid_job)
    message = world.queue.take(COLLECT)[0]
    style, k = message["slot"].split("#")
    world.deletion.request(paid_job)  # the purge: everything of the job is gone, a tombstone remains
    number = int(k) * world.settings.outputs_per_prediction + 1
    left = [keys.result(paid_job, style, number), keys.crop(paid_job, style, number)]
    for key in left:  # what the killed collect had written after the purge
        world.blobs.put(key, b"written after the purge", "image/png")
    assert sorted(world.blobs.list_keys(keys.job_prefix(paid_job))) == sorted(left)

    fetched_before = len(world.downloader.fetched)

    assert world.generation.collect(message["job_id"], message["slot"]) == 0

    assert list(world.blobs.list_keys(keys.job_prefix(paid_job))) == []
    assert len(world.downloader.fetched) == fetched_before  # and nothing fetched from Replicate for it

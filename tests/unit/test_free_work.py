"""Free work on an unpaid job is bounded: upload places over the job's whole life, and submits (each one a round
of photo checks). Removing a photo gives no place back; racing requests cannot both pass a cap."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from portrait_studio import keys
from portrait_studio.api_models import CreateJobRequest, FileSpec, UploadTicket
from portrait_studio.errors import SubmitLimitReached, UploadLimitReached
from portrait_studio.models import FileStatus, JobStatus, Verdict
from portrait_studio.services.lifecycle import Lifecycle
from tests.unit.conftest import NORMALIZE, World


def specs(n: int) -> list[FileSpec]:
    return [FileSpec(name=f"IMG_{i}.jpg", content_type="image/jpeg", bytes=100) for i in range(n)]


def new_job(world: World, n: int) -> tuple[str, str]:
    created = world.jobs.create(CreateJobRequest(files=specs(n)), "203.0.113.9")
    return created.job_id, created.token


def remove_all(world: World, job_id: str, token: str) -> None:
    for f in world.store.list_files(job_id):
        world.jobs.remove_file(job_id, token, f.file_id)


def upload(world: World, job_id: str) -> None:
    for f in world.store.list_files(job_id):
        if f.status == FileStatus.AWAITING_UPLOAD:
            world.blobs.put(keys.upload(job_id, f.file_id), b"x" * f.declared_bytes, f.content_type)


def refuse_all_and_ask_for_more(world: World, job_id: str) -> None:
    """What normalization does when no photo of the round is usable: every verdict refused, back to collecting."""
    verdict = Verdict(accepted=False, code="no_face", message="We could not find a face in this photo.")
    for f in world.store.list_files(job_id):
        if f.status == FileStatus.QUEUED:
            world.store.record_verdict(job_id, f.model_copy(update={"status": FileStatus.REFUSED, "verdict": verdict}))
    assert Lifecycle(world.store, world.clock).ask_for_more_photos(job_id)


def test_the_21st_photo_is_refused_and_removing_photos_gives_no_place_back(world: World) -> None:
    job_id, token = new_job(world, 10)
    remove_all(world, job_id, token)
    assert len(world.jobs.add_files(job_id, token, specs(10))) == 10  # places 11-20: all granted
    remove_all(world, job_id, token)
    assert world.store.list_files(job_id) == []  # nothing held, yet every place is spent
    with pytest.raises(UploadLimitReached) as refused:
        world.jobs.add_files(job_id, token, specs(1))
    assert refused.value.http_status == 409 and refused.value.code == "upload_limit_reached"
    assert refused.value.details == {"limit": 20, "left": 0}
    assert world.store.get_job(job_id).uploads_granted == 20


def test_a_request_that_would_pass_the_cap_is_refused_whole(world: World) -> None:
    job_id, token = new_job(world, 10)
    remove_all(world, job_id, token)
    assert len(world.jobs.add_files(job_id, token, specs(8))) == 8  # 18 granted
    with pytest.raises(UploadLimitReached, match="2 left"):
        world.jobs.add_files(job_id, token, specs(3))
    assert len(world.jobs.add_files(job_id, token, specs(2))) == 2  # exactly the cap
    assert len(world.store.list_files(job_id)) == 10


def test_the_sixth_submit_is_refused_while_the_first_five_were_checked(world: World) -> None:
    job_id, token = new_job(world, 3)
    for submit in range(1, 6):
        if submit > 1:
            world.jobs.add_files(job_id, token, specs(3))
        upload(world, job_id)
        assert world.jobs.submit(job_id, token).queued_files == 3
        assert world.store.get_job(job_id).round == submit
        refuse_all_and_ask_for_more(world, job_id)
    assert len(world.queue.take(NORMALIZE)) == 15  # five rounds of three photos were checked
    world.jobs.add_files(job_id, token, specs(3))  # 18 of 20 places: uploads are not what stops it
    upload(world, job_id)
    with pytest.raises(SubmitLimitReached) as refused:
        world.jobs.submit(job_id, token)
    assert refused.value.http_status == 409 and refused.value.code == "submit_limit_reached"
    assert world.queue.take(NORMALIZE) == []  # nothing more to check, nothing more spent
    assert world.store.get_job(job_id).status == JobStatus.COLLECTING


def test_the_submit_cap_holds_in_the_write_itself(world: World) -> None:
    """A submit whose read is stale (it saw round 4) still cannot make a sixth round."""
    job_id, _ = new_job(world, 3)
    lifecycle = Lifecycle(world.store, world.clock)
    for submit in range(1, 6):
        ids = [f.file_id for f in world.store.list_files(job_id) if f.status == FileStatus.AWAITING_UPLOAD]
        assert lifecycle.submit(job_id, ids, submit, max_rounds=5)
        refuse_all_and_ask_for_more(world, job_id)
        world.store.add_files(job_id, world.jobs._new_files(specs(3), round=submit + 1), 20)
    ids = [f.file_id for f in world.store.list_files(job_id) if f.status == FileStatus.AWAITING_UPLOAD]
    assert not lifecycle.submit(job_id, ids, 5, max_rounds=5)
    assert world.store.get_job(job_id).status == JobStatus.COLLECTING


def test_two_racing_adds_cannot_both_pass_the_cap(world: World) -> None:
    job_id, token = new_job(world, 10)
    remove_all(world, job_id, token)
    world.jobs.add_files(job_id, token, specs(7))  # 17 of 20 places granted, 7 photos held
    remove_all(world, job_id, token)
    # Both requests read the job (17 granted: room for 3) before either writes.
    both_read = threading.Barrier(2, timeout=5)
    real_add = world.store.add_files

    def add_after_both_read(*args: Any) -> bool:
        both_read.wait()
        return real_add(*args)

    world.store.add_files = add_after_both_read  # type: ignore[method-assign]

    def attempt() -> list[UploadTicket] | UploadLimitReached:
        try:
            return world.jobs.add_files(job_id, token, specs(3))
        except UploadLimitReached as refused:
            return refused

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: attempt(), range(2)))
    assert sorted(type(o).__name__ for o in outcomes) == ["UploadLimitReached", "list"]
    assert world.store.get_job(job_id).uploads_granted == 20
    assert len(world.store.list_files(job_id)) == 3

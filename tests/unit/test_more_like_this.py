"""More like this: four new headshots in a delivered headshot's style and prompt, twice per job, refused clearly
otherwise; the job ends as it was delivered (no second email, no new refund), the zip holds the new ones."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from portrait_studio import keys
from portrait_studio.errors import JobGone, JobNotFinished, MoreLimitReached, ResultNotFound
from portrait_studio.models import Job, JobStatus
from portrait_studio.services.jobs import hash_token
from portrait_studio.services.more import MoreLikeThis
from tests.unit.conftest import DISPATCH, World
from tests.unit.helpers import finish_all, generating_job, run_queues
from tests.unit.test_handlers import call_api, event, installed  # noqa: F401  (installed: the container, autouse)


def more_of(world: World) -> MoreLikeThis:
    return MoreLikeThis(world.settings, world.store, world.blobs, world.queue, world.clock, world.jobs)


def delivered_job(world: World, backdrop: str = "office") -> tuple[str, str]:
    """A paid job whose 32 headshots were delivered; its token."""
    job_id = generating_job(world, backdrop=backdrop)
    world.generation.dispatch(job_id)
    finish_all(world, job_id)
    run_queues(world)
    assert world.store.update_job(job_id, token_hash=hash_token("t"))
    job = world.store.get_job(job_id)
    assert isinstance(job, Job) and job.status == JobStatus.READY
    return job_id, "t"


def a_round(world: World, job_id: str) -> None:
    run_queues(world)
    finish_all(world, job_id)
    run_queues(world)


def test_a_round_makes_four_headshots_like_the_one_chosen_and_the_job_ends_as_delivered(world: World) -> None:
    job_id, token = delivered_job(world)
    emails = len(world.mail.sent)
    chosen = world.jobs.view(job_id, token).styles[1].items[0]
    source = next(s for s in world.store.list_slots(job_id) if s.style == chosen.result.split("/")[0])
    prompts_before = len(world.generator.created)

    started = more_of(world).request(job_id, token, chosen.result)
    assert (started.status, started.round, started.rounds_left, started.images) == ("generating", 1, 1, 4)
    view = world.jobs.view(job_id, token)
    assert view.status == "generating" and view.images_expected == 36 and view.more_rounds_left == 0
    a_round(world, job_id)

    view = world.jobs.view(job_id, token)
    assert view.status == "ready" and view.images_done == 36 and view.more_rounds_left == 1
    new = [i for s in view.styles for i in s.items if i.more]
    assert len(new) == 4 and {i.result.split("/")[0] for i in new} == {source.style}
    (created,) = world.generator.created[prompts_before:]
    book_prompt = world.generator.created[0]["input"]["prompt"]
    assert "office" in created["input"]["prompt"] and "office" in book_prompt
    same_prompt = [
        c for c in world.generator.created[:prompts_before] if c["input"]["prompt"] == created["input"]["prompt"]
    ]
    assert same_prompt and created["input"]["seed"] not in {c["input"]["seed"] for c in same_prompt}
    assert len(world.mail.sent) == emails  # the outcome's email went once, at delivery

    archive = world.jobs.archive(job_id, token)
    assert archive.images == 36
    with zipfile.ZipFile(io.BytesIO(world.blobs.get(keys.archive(job_id, 36)))) as bundle:
        assert len([n for n in bundle.namelist() if n.endswith(".png")]) == 36


def test_two_rounds_per_job_then_409_more_limit_reached(world: World) -> None:
    job_id, token = delivered_job(world)
    result = world.jobs.view(job_id, token).styles[0].items[0].result
    for _ in range(2):
        more_of(world).request(job_id, token, result)
        a_round(world, job_id)
    with pytest.raises(MoreLimitReached) as refused:
        more_of(world).request(job_id, token, result)
    assert refused.value.http_status == 409 and refused.value.code == "more_limit_reached"
    assert world.jobs.view(job_id, token).images_done == 40


def test_a_duplicate_request_while_a_round_runs_is_refused_and_writes_nothing(world: World) -> None:
    job_id, token = delivered_job(world)
    result = world.jobs.view(job_id, token).styles[0].items[0].result
    more_of(world).request(job_id, token, result)
    slots = len(world.store.list_slots(job_id))
    with pytest.raises(JobNotFinished) as refused:
        more_of(world).request(job_id, token, result)
    assert refused.value.http_status == 409 and refused.value.code == "job_not_finished"
    assert len(world.store.list_slots(job_id)) == slots and len(world.queue.take(DISPATCH)) == 1


def test_racing_requests_start_one_round(world: World) -> None:
    """Both read the job ready with no round: the count is checked in the write, so one wins."""
    job_id, token = delivered_job(world)
    result = world.jobs.view(job_id, token).styles[0].items[0].result
    job = world.store.get_job(job_id)
    assert isinstance(job, Job)
    more_of(world).start(job, result)
    a_round(world, job_id)
    with pytest.raises(JobNotFinished):
        more_of(world).start(job, result)  # the stale read: the round was used meanwhile
    current = world.store.get_job(job_id)
    assert isinstance(current, Job) and current.more_rounds == 1


def test_a_job_still_generating_or_unknown_results_are_refused(world: World) -> None:
    job_id = generating_job(world)
    assert world.store.update_job(job_id, token_hash=hash_token("t"))
    with pytest.raises(JobNotFinished) as refused:
        more_of(world).request(job_id, "t", "corporate/1")
    assert refused.value.code == "job_not_finished"
    done_id, token = delivered_job(world)
    with pytest.raises(ResultNotFound):
        more_of(world).request(done_id, token, "corporate/999")


def test_a_job_being_deleted_is_gone(world: World) -> None:
    job_id, token = delivered_job(world)
    result = world.jobs.view(job_id, token).styles[0].items[0].result
    job = world.store.get_job(job_id)
    assert isinstance(job, Job)
    assert world.generation.lifecycle.begin_deletion(job_id, JobStatus.DELETED, "user_request")
    with pytest.raises(JobGone) as refused:
        more_of(world).start(job, result)  # read before the deletion began
    assert refused.value.http_status == 409


def test_a_partial_job_stays_partial_with_its_refund_after_a_round(world: World) -> None:
    job_id = generating_job(world)
    world.generation.dispatch(job_id)
    finish_all(world, job_id, outputs=3)  # 24 of 32
    run_queues(world)
    for _ in range(4):
        finish_all(world, job_id, outputs=0, status="failed")
        run_queues(world)
    job = world.store.get_job(job_id)
    assert isinstance(job, Job)
    if job.status != JobStatus.PARTIAL:
        pytest.skip(f"the fakes topped the job up to {job.status}")
    refund = job.refund
    assert world.store.update_job(job_id, token_hash=hash_token("t"))
    result = world.jobs.view(job_id, "t").styles[0].items[0].result
    more_of(world).request(job_id, "t", result)
    a_round(world, job_id)
    after = world.store.get_job(job_id)
    assert isinstance(after, Job) and after.status == JobStatus.PARTIAL and after.refund == refund


def more_event(job_id: str, token: str, body: object) -> dict[str, object]:
    e = event("api_submit_job.json")
    e["routeKey"] = "POST /jobs/{id}/more"
    e["rawPath"] = f"/jobs/{job_id}/more"
    e["requestContext"]["http"]["path"] = e["rawPath"]
    e["requestContext"]["routeKey"] = e["routeKey"]
    e["pathParameters"] = {"id": job_id}
    e["headers"]["authorization"] = f"Bearer {token}"
    e["body"] = json.dumps(body)
    return e


def test_the_api_answers_202_then_409_with_clear_codes_and_400_for_a_bad_result(world: World) -> None:
    job_id, token = delivered_job(world)
    result = world.jobs.view(job_id, token).styles[0].items[0].result
    status, body, _ = call_api(more_event(job_id, token, {"result": "selfie/1"}))
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    status, body, _ = call_api(more_event(job_id, token, {"result": result}))
    assert status == 202 and body["round"] == 1 and body["images"] == 4
    status, body, _ = call_api(more_event(job_id, token, {"result": result}))
    assert (status, body["error"]["code"]) == (409, "job_not_finished")
    status, body, _ = call_api(more_event(job_id, "wrong", {"result": result}))
    assert (status, body["error"]["code"]) == (404, "job_not_found")

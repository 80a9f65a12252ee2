"""The real adapters against moto: conditional writes, indexes, presigned uploads, queues, retention."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from portrait_studio import keys
from portrait_studio.api_models import CreateJobRequest, FileSpec
from portrait_studio.cli import main as cli_main
from portrait_studio.clock import hour_key
from portrait_studio.models import FileStatus, JobStatus, Payment, Prediction, Tombstone, Verdict
from portrait_studio.services.lifecycle import Lifecycle
from portrait_studio.services.plan import base_plan, new_slot
from tests.integration.conftest import Cloud

pytestmark = pytest.mark.integration


def new_job(cloud: Cloud, n: int = 3) -> tuple[str, str, list[dict[str, Any]]]:
    request = CreateJobRequest(
        files=[FileSpec(name=f"IMG_{i}.jpg", content_type="image/jpeg", bytes=10 + i) for i in range(n)]
    )
    created = cloud.container.jobs.create(request, "198.51.100.7")
    return created.job_id, created.token, [u.model_dump() for u in created.uploads]


def test_presigned_uploads_land_and_submit_queues_one_message_per_photo(cloud: Cloud) -> None:
    job_id, token, uploads = new_job(cloud)
    for i, ticket in enumerate(uploads):
        response = httpx.put(ticket["url"], content=b"x" * (10 + i), headers={"Content-Type": "image/jpeg"})
        assert response.status_code == 200
    submitted = cloud.container.jobs.submit(job_id, token)
    assert submitted.queued_files == 3
    sqs = cloud.container.queue.client  # type: ignore[attr-defined]
    bodies = []
    for _ in range(3):
        got = sqs.receive_message(QueueUrl=cloud.settings.normalize_queue_url, MaxNumberOfMessages=10)
        bodies += [json.loads(m["Body"]) for m in got.get("Messages", [])]
    assert {b["job_id"] for b in bodies} == {job_id} and len(bodies) == 3
    job = cloud.container.store.get_job(job_id)
    assert job.status == JobStatus.NORMALIZING and job.pending_files == 3
    # A second submit cannot queue the files again.
    with pytest.raises(Exception, match="already normalizing"):
        cloud.container.jobs.submit(job_id, token)


def test_a_verdict_counts_once_however_often_the_message_comes(cloud: Cloud) -> None:
    job_id, _, _ = new_job(cloud)
    store = cloud.container.store
    files = store.list_files(job_id)
    assert Lifecycle(store, cloud.clock).submit(job_id, [f.file_id for f in files], 1)
    verdict = Verdict(accepted=False, code="no_face", message="no face")
    refused = files[0].model_copy(update={"status": FileStatus.REFUSED, "verdict": verdict})
    assert store.record_verdict(job_id, refused) == 2
    assert store.record_verdict(job_id, refused) is None
    assert store.get_job(job_id).pending_files == 2
    assert store.update_job(job_id, expect=[JobStatus.COLLECTING], status=JobStatus.GENERATING) is False
    assert store.update_job(job_id, expect=[JobStatus.NORMALIZING], status=JobStatus.GENERATING) is True
    assert store.jobs_generating() == [job_id]


def generating(cloud: Cloud, budget: int = 3) -> tuple[str, list[Prediction]]:
    """A job moved to generating by the lifecycle, its plan of 8 slots written with it."""
    job_id, _, _ = new_job(cloud)
    store, lifecycle = cloud.container.store, Lifecycle(cloud.container.store, cloud.clock)
    assert lifecycle.submit(job_id, [f.file_id for f in store.list_files(job_id)], 1)
    assert lifecycle.await_payment(job_id)
    job = store.get_job(job_id)
    plan = base_plan(job, cloud.settings, cloud.clock.now())
    assert lifecycle.start_generation(job_id, plan, budget, paid(cloud), "buyer@example.com")
    assert not lifecycle.start_generation(job_id, plan, budget, paid(cloud))  # exactly once
    return job_id, plan


def paid(cloud: Cloud) -> Payment:
    return Payment(
        checkout_session_id="cs_test_1",
        payment_intent="pi_test_1",
        amount_subtotal=1290,
        amount_discount=300,
        amount_total=990,
        currency="usd",
        paid_at=cloud.clock.now(),
    )


def test_the_reconcilers_indexes_find_unpaid_jobs_and_finished_jobs_with_aftercare_due(cloud: Cloud) -> None:
    store, lifecycle = cloud.container.store, Lifecycle(cloud.container.store, cloud.clock)
    unpaid, _, _ = new_job(cloud)
    assert lifecycle.submit(unpaid, [f.file_id for f in store.list_files(unpaid)], 1)
    assert lifecycle.await_payment(unpaid)
    assert store.jobs_awaiting_payment() == [unpaid]
    # One checkout per job: the second recorded session loses (the absent attribute is the condition).
    at = cloud.clock.now()
    assert lifecycle.record_checkout(unpaid, "cs_a", "https://checkout.example/a", at)
    assert not lifecycle.record_checkout(unpaid, "cs_b", "https://checkout.example/b", at)
    assert store.get_job(unpaid).checkout_session_id == "cs_a"
    job_id, _ = generating(cloud)
    assert store.get_job(job_id).payment.amount_total == 990
    assert store.jobs_holding_email() == 1
    assert lifecycle.finish(job_id, JobStatus.FAILED, refund_due=990, refund_reason="failed")
    assert store.jobs_in_aftercare() == [job_id] and store.jobs_generating() == []
    assert lifecycle.end_aftercare(job_id) and not lifecycle.end_aftercare(job_id)
    assert store.jobs_in_aftercare() == [] and store.jobs_holding_email() == 0


def test_verdicts_decided_across_photos_land_with_the_jobs_move_or_not_at_all(cloud: Cloud) -> None:
    job_id, _, _ = new_job(cloud)
    store, lifecycle = cloud.container.store, Lifecycle(cloud.container.store, cloud.clock)
    files = store.list_files(job_id)
    assert lifecycle.submit(job_id, [f.file_id for f in files], 1)
    accepted = Verdict(accepted=True, code="accepted", message="ok")
    for f in files:
        store.record_verdict(job_id, f.model_copy(update={"status": FileStatus.ACCEPTED, "verdict": accepted}))
    other = Verdict(accepted=False, code="different_person", message="somebody else")
    refused = store.list_files(job_id)[0].model_copy(update={"status": FileStatus.REFUSED, "verdict": other})
    # A decision made on another round of photos (one that is over) writes nothing: not the move, not the verdict.
    assert not lifecycle.ask_for_more_photos(job_id, [refused], "no_single_person", round=0)
    assert store.get_job(job_id).status == JobStatus.NORMALIZING
    assert {f.verdict.code for f in store.list_files(job_id)} == {"accepted"}
    assert lifecycle.ask_for_more_photos(job_id, [refused], "no_single_person", round=1)
    job = store.get_job(job_id)
    assert job.status == JobStatus.COLLECTING and job.intake_problem == "no_single_person"
    assert {f.file_id: f.verdict.code for f in store.list_files(job_id)}[refused.file_id] == "different_person"
    # Replayed: the file is no longer accepted and the job no longer normalizing, so nothing is written.
    assert not lifecycle.await_payment(job_id, [refused])


def test_generation_starts_with_its_whole_plan_written_in_one_transaction(cloud: Cloud) -> None:
    job_id, plan = generating(cloud)
    store = cloud.container.store
    assert store.jobs_generating() == [job_id]
    assert sorted(s.slot for s in store.list_slots(job_id)) == sorted(s.slot for s in plan)
    assert {s.status for s in store.list_slots(job_id)} == {"planned"}


def test_slot_claims_are_exclusive_within_the_budget_and_impossible_under_a_deleted_job(cloud: Cloud) -> None:
    job_id, plan = generating(cloud, budget=3)
    store, lifecycle = cloud.container.store, Lifecycle(cloud.container.store, cloud.clock)
    first, second, third, fourth = plan[:4]
    assert lifecycle.claim(first)
    assert not lifecycle.claim(first)  # already claimed
    assert lifecycle.claim(second) and lifecycle.claim(third)
    assert not lifecycle.claim(fourth)  # the budget of 3 is spent
    assert store.get_job(job_id).predictions_reserved == 3
    # A throttled create gives its slot and its reservation back.
    assert lifecycle.release(store.get_slot(job_id, third.slot))
    assert store.get_job(job_id).predictions_reserved == 2
    # A stale claim without a prediction may be taken over, reserving again (its prediction may exist);
    # one with a prediction never.
    now = cloud.clock.now()
    assert not lifecycle.reclaim_stale(first, stale_before=now - timedelta(minutes=2))
    assert lifecycle.reclaim_stale(first, stale_before=now + timedelta(seconds=1))
    assert store.get_job(job_id).predictions_reserved == 3
    assert not lifecycle.reclaim_stale(second, stale_before=now + timedelta(seconds=1))  # no budget left
    assert lifecycle.record_created(store.get_slot(job_id, first.slot), "p1")
    assert not lifecycle.reclaim_stale(first, stale_before=now + timedelta(days=1))
    cloud.container.retention.purge(job_id, "user_request")
    assert not lifecycle.claim(plan[5])
    assert [item["kind"] for item in store.items_of(job_id)] == ["tombstone"]  # type: ignore[attr-defined]


def test_only_the_first_of_two_racing_top_ups_adds_slots(cloud: Cloud) -> None:
    job_id, _ = generating(cloud)
    store, lifecycle = cloud.container.store, Lifecycle(cloud.container.store, cloud.clock)
    job = store.get_job(job_id)
    extra = [new_slot(job, "formal", k, 4, cloud.clock.now(), topup=True) for k in (2, 3)]
    assert lifecycle.top_up(job, extra)
    assert not lifecycle.top_up(job, [new_slot(job, "formal", 4, 4, cloud.clock.now(), topup=True)])
    assert store.get_job(job_id).topups_used == 2
    assert len(store.list_slots(job_id)) == 10


def test_the_expiry_index_finds_due_jobs_without_a_scan(cloud: Cloud) -> None:
    job_id, _, _ = new_job(cloud)
    expires = cloud.container.store.get_job(job_id).expires_at
    assert job_id in cloud.container.store.jobs_expiring_in_hour(hour_key(expires))
    cloud.clock.advance(hours=47)
    assert cloud.container.retention.sweep()["purged"] == 0
    cloud.clock.advance(hours=2)
    assert cloud.container.retention.sweep()["purged"] == 1
    assert isinstance(cloud.container.store.get_job(job_id), Tombstone)


class FlakyBatchDeletes:
    """An S3 client whose DeleteObjects reports some keys failed, as R2 may: they must go one by one."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.batches = 0

    def delete_objects(self, **kwargs: Any) -> dict[str, Any]:
        self.batches += 1
        if self.batches == 1:
            raise ClientError({"Error": {"Code": "NotImplemented", "Message": "no batch"}}, "DeleteObjects")
        objects = kwargs["Delete"]["Objects"]
        failing, passing = objects[:7], objects[7:]
        self._client.delete_objects(Bucket=kwargs["Bucket"], Delete={"Objects": passing, "Quiet": True})
        return {"Errors": [{"Key": o["Key"], "Code": "InternalError"} for o in failing]}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_purging_1500_objects_pages_through_them_and_retries_partial_failures(cloud: Cloud) -> None:
    job_id, token, _ = new_job(cloud)
    blobs = cloud.container.blobs
    for n in range(1500):
        cloud.s3.put_object(Bucket=cloud.settings.bucket, Key=f"jobs/{job_id}/results/corporate/{n}.png", Body=b"p")
    flaky = FlakyBatchDeletes(blobs.client)  # type: ignore[attr-defined]
    blobs._client = flaky  # type: ignore[attr-defined]
    tombstone = cloud.container.retention.purge(job_id, "user_request")
    assert tombstone.objects_deleted == 1500
    assert flaky.batches >= 2
    assert list(blobs.list_keys(keys.job_prefix(job_id))) == []
    items = cloud.container.store.items_of(job_id)  # type: ignore[attr-defined]
    assert len(items) == 1 and items[0]["kind"] == "tombstone"
    assert "token_hash" not in items[0] and "name" not in items[0]
    with pytest.raises(Exception, match="No such job"):
        cloud.container.jobs.view(job_id, token)


def test_the_nightly_audit_deletes_orphaned_prefixes(cloud: Cloud) -> None:
    live, _, _ = new_job(cloud)
    cloud.s3.put_object(Bucket=cloud.settings.bucket, Key=f"jobs/{live}/refs/a.jpg", Body=b"j")
    orphan = "ab" * 16
    for n in range(3):
        cloud.s3.put_object(Bucket=cloud.settings.bucket, Key=f"jobs/{orphan}/results/formal/{n}.png", Body=b"p")
    assert cloud.container.retention.audit() == {"orphans": 1}
    assert list(cloud.container.blobs.list_keys(keys.job_prefix(orphan))) == []
    assert list(cloud.container.blobs.list_keys(keys.job_prefix(live))) == [f"jobs/{live}/refs/a.jpg"]


def test_the_retention_report_proves_the_promise(cloud: Cloud, capsys: pytest.CaptureFixture[str]) -> None:
    from portrait_studio import wiring

    new_job(cloud)
    cloud.s3.put_object(Bucket=cloud.settings.bucket, Key="jobs/" + "cd" * 16 + "/refs/x.jpg", Body=b"j")
    wiring.use(cloud.container)
    try:
        cloud.clock.current = cloud.clock.current.replace(year=2030)  # far ahead: every object looks ancient
        assert cli_main(["retention-report"]) == 1
        out = capsys.readouterr().out
        assert "orphaned job prefixes: 1" in out and "older than 49 h: YES" in out
        cloud.container.retention.audit()
        cloud.container.retention.sweep()
        assert cli_main(["retention-report", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["promise_kept"] is True
    finally:
        wiring.use(None)


class LambdaContextStub:
    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def test_an_idempotent_action_runs_once_per_key(cloud: Cloud) -> None:
    runs: list[str] = []

    def action() -> dict[str, Any]:
        runs.append("ran")
        return {"result": f"run {len(runs)}"}

    once = cloud.container.idempotency
    assert once.once("webhook:msg_1", action, LambdaContextStub()) == {"result": "run 1"}
    assert once.once("webhook:msg_1", action, LambdaContextStub()) == {"result": "run 1"}
    assert once.once("webhook:msg_2", action, LambdaContextStub()) == {"result": "run 2"}
    assert runs == ["ran", "ran"]


def test_concurrent_callers_each_get_their_own_turn_in_the_create_line(cloud: Cloud) -> None:
    store, now = cloud.container.store, cloud.clock.now()
    with ThreadPoolExecutor(max_workers=4) as pool:
        turns = list(pool.map(lambda _: store.reserve_turn("test-line", now, 3.0, 1), range(8)))
    offsets = sorted((turn - now).total_seconds() for turn in turns)
    assert offsets == [3.0 * i for i in range(8)]  # one turn each, 3 s apart, none shared
    later = store.reserve_turn("test-line", now + timedelta(hours=1), 3.0, 1)
    assert later == now + timedelta(hours=1)  # after a quiet spell: at once


def test_upload_places_and_submits_are_capped_in_dynamodbs_conditional_writes(cloud: Cloud) -> None:
    job_id, _, _ = new_job(cloud, n=10)
    store, jobs = cloud.container.store, cloud.container.jobs
    assert store.get_job(job_id).uploads_granted == 10

    def files(n: int) -> list[Any]:
        return jobs._new_files([FileSpec(name="a.jpg", content_type="image/jpeg", bytes=10)] * n, round=1)

    assert store.add_files(job_id, files(7), 20)
    # Two racing adds of 3 where 3 places are left: one wins, whatever the interleaving.
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: store.add_files(job_id, files(3), 20), range(2)))
    assert sorted(results) == [False, True]
    assert store.get_job(job_id).uploads_granted == 20 and len(store.list_files(job_id)) == 20
    for f in store.list_files(job_id)[:5]:
        assert store.remove_file(job_id, f.file_id)
    assert not store.add_files(job_id, files(1), 20)  # removing gave no place back
    lifecycle = Lifecycle(store, cloud.clock)
    ids = [f.file_id for f in store.list_files(job_id)]
    assert store.update_job(job_id, round=5)
    assert not lifecycle.submit(job_id, ids, 6, max_rounds=5)
    assert lifecycle.submit(job_id, ids, 5, max_rounds=6)
    assert store.get_job(job_id).status == JobStatus.NORMALIZING

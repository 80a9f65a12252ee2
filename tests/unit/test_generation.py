"""Generation with fakes: slots, idempotent dispatch, rate limits, webhooks, collect, top-ups, reconcile."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from portrait_studio import keys
from portrait_studio.models import JobStatus
from portrait_studio.services.plan import trigger_count
from tests.unit.conftest import COLLECT, DISPATCH, World
from tests.unit.helpers import create_job, finish_all, generating_job, run_queues, webhook_body


def test_dispatch_creates_eight_predictions_of_four_images_across_four_styles(world: World) -> None:
    job_id = generating_job(world, subject="woman")
    result = world.generation.dispatch(job_id)
    assert result.created == 8
    styles = Counter(slot.style for slot in world.store.list_slots(job_id))
    assert styles == {"corporate": 2, "business_casual": 2, "creative": 2, "formal": 2}
    for created in world.generator.created:
        body = created["input"]
        assert body["num_outputs"] == 4
        assert trigger_count(body["prompt"]) == 1 and "woman img" in body["prompt"]
        assert trigger_count(body["negative_prompt"]) == 0
        assert 1 <= sum(1 for k in body if k.startswith("input_image")) <= 4
        assert f"job={job_id}" in created["webhook"]
    assert len({c["input"]["seed"] for c in world.generator.created}) == 8


def test_redelivered_dispatch_creates_no_second_prediction(world: World) -> None:
    job_id = generating_job(world)
    world.generation.dispatch(job_id)
    for slots in (None, [s.slot for s in world.store.list_slots(job_id)]):
        again = world.generation.dispatch(job_id, slots)
        assert again.created == 0
    assert len(world.generator.created) == 8


def test_rate_limited_dispatch_comes_back_as_a_delayed_message_and_finishes_later(world: World) -> None:
    job_id = generating_job(world)
    world.generator.rate_limit_next = 1
    result = world.generation.dispatch(job_id)
    assert (result.created, len(result.deferred), result.wait_s) == (0, 8, 7)
    [deferred] = world.queue.sent[DISPATCH]
    assert deferred["attempt"] == 1 and world.queue.delays[-1] == (DISPATCH, 7)
    assert {s.status for s in world.store.list_slots(job_id)} == {"planned"}
    assert world.store.get_job(job_id).predictions_reserved == 0  # nothing was created, nothing is spent
    run_queues(world)
    assert len(world.generator.created) == 8
    assert len({s.prediction_id for s in world.store.list_slots(job_id)}) == 8


def test_happy_path_ends_ready_with_32_results(world: World) -> None:
    job_id = generating_job(world)
    world.generation.dispatch(job_id)
    finish_all(world, job_id)
    run_queues(world)
    job = world.store.get_job(job_id)
    assert job.status == JobStatus.READY
    assert len(list(world.blobs.list_keys(keys.results_prefix(job_id)))) == 32
    assert job.predict_seconds == pytest.approx(8 * 3.5)


def test_looking_at_a_job_lists_nothing_in_the_bucket(world: World) -> None:
    job_id, token = create_job(world)
    generating_job(world, job_id=job_id)
    world.generation.dispatch(job_id)
    finish_all(world, job_id)
    run_queues(world)
    listings = world.blobs.listings
    view = world.jobs.view(job_id, token)
    assert world.blobs.listings == listings  # the page looks every 2 s: each listing would be a billed R2 call
    shown = [url.split("?")[0].removeprefix("https://bucket.test/") for s in view.styles for url in s.results]
    assert sorted(shown) == sorted(world.blobs.list_keys(keys.results_prefix(job_id)))
    assert view.images_done == 32


def test_subset_of_styles_still_yields_32_images(world: World) -> None:
    job_id = generating_job(world, styles=["corporate", "creative", "formal"])
    world.generation.dispatch(job_id)
    finish_all(world, job_id)
    run_queues(world)
    results = list(world.blobs.list_keys(keys.results_prefix(job_id)))
    assert len(results) == 32
    assert {r.split("/")[3] for r in results} == {"corporate", "creative", "formal"}


def test_nsfw_drops_are_topped_up_to_32(world: World) -> None:
    job_id = generating_job(world)
    world.generation.dispatch(job_id)
    finish_all(world, job_id, outputs=3)  # one image of each prediction filtered
    run_queues(world)
    assert world.store.get_job(job_id).status == JobStatus.GENERATING
    # 24 of 32 landed (a 75% yield), so 8 more need ceil(8 / 0.75 / 4) = 3 full predictions.
    assert world.metrics.counts["TopUps"] == 3
    finish_all(world, job_id, outputs=3)
    run_queues(world)
    job = world.store.get_job(job_id)
    assert job.status == JobStatus.READY
    assert len(list(world.blobs.list_keys(keys.results_prefix(job_id)))) == 33


def test_failed_predictions_are_retried_then_the_job_finishes_with_what_it_has(world: World) -> None:
    job_id = generating_job(world)
    world.generation.dispatch(job_id)
    for _ in range(world.settings.max_attempts_per_slot):
        finish_all(world, job_id, status="failed")
        run_queues(world)
    job = world.store.get_job(job_id)
    # Every slot failed every attempt and the top-ups failed too: the job says why instead of hanging.
    for _ in range(world.settings.max_attempts_per_slot):
        finish_all(world, job_id, status="failed")
        run_queues(world)
    job = world.store.get_job(job_id)
    assert job.status == JobStatus.FAILED
    assert "No headshots" in (job.failure_reason or "")


def test_webhooks_for_unknown_or_finished_predictions_change_nothing(world: World) -> None:
    job_id = generating_job(world)
    world.generation.dispatch(job_id)
    slot = world.store.list_slots(job_id)[0]
    record = world.generation.record_event
    assert record(job_id, slot.slot, slot.claim_id, {"id": "someone-else", "status": "succeeded"}) == "unknown"
    assert record("f" * 32, slot.slot, slot.claim_id, {"id": slot.prediction_id}) == "unknown"
    world.generator.finish(slot.prediction_id, 4)
    body = webhook_body(world, slot.prediction_id)
    assert record(job_id, slot.slot, slot.claim_id, body) == "completed"
    assert record(job_id, slot.slot, slot.claim_id, body) == "noop"
    assert record(job_id, slot.slot, slot.claim_id, {**body, "status": "processing"}) == "noop"
    assert len(world.queue.take(COLLECT)) == 1


def test_a_prediction_whose_create_response_was_lost_is_adopted_by_its_first_webhook(world: World) -> None:
    job_id = generating_job(world)
    world.generator.lose_next_response = True
    world.generation.dispatch(job_id)
    [orphaned] = [s for s in world.store.list_slots(job_id) if s.status == "claimed"]
    created = world.generator.created[0]
    assert f"claim={orphaned.claim_id}" in created["webhook"]
    start = {"id": created["id"], "status": "starting"}
    assert world.generation.record_event(job_id, orphaned.slot, orphaned.claim_id, start) == "noop"
    assert world.store.get_slot(job_id, orphaned.slot).prediction_id == created["id"]
    assert world.generator.canceled == []


def test_a_second_prediction_from_an_abandoned_claim_is_canceled(world: World) -> None:
    job_id = generating_job(world)
    world.generation.dispatch(job_id)
    slot = world.store.list_slots(job_id)[0]
    stray = {"id": "p-stray", "status": "processing"}
    assert world.generation.record_event(job_id, slot.slot, "an-old-claim", stray) == "orphan"
    assert world.generator.canceled == []  # the receiver holds no Replicate token: dispatch cancels it
    run_queues(world)
    assert world.generator.canceled == ["p-stray"]
    assert world.store.get_slot(job_id, slot.slot).prediction_id == slot.prediction_id


def test_reconcile_finishes_predictions_whose_webhook_never_came(world: World) -> None:
    job_id = generating_job(world)
    world.generation.dispatch(job_id)
    for slot in world.store.list_slots(job_id):
        world.generator.finish(slot.prediction_id, 4)  # done at Replicate, but no webhook arrives
    assert world.generation.reconcile()["fetched"] == 0  # within the grace period: wait for webhooks
    world.clock.advance(seconds=world.settings.reconcile_grace_s + 1)
    summary = world.generation.reconcile()
    assert summary["fetched"] == 8
    run_queues(world)
    assert world.store.get_job(job_id).status == JobStatus.READY


def test_a_job_never_stays_generating_past_the_limit(world: World) -> None:
    job_id = generating_job(world)
    world.generation.dispatch(job_id)
    world.clock.advance(seconds=world.settings.max_generating_s + 1)
    world.generation.reconcile()
    job = world.store.get_job(job_id)
    assert job.status == JobStatus.FAILED
    assert len(world.generator.canceled) == 8


def test_results_arriving_after_deletion_are_never_written(world: World) -> None:
    job_id = generating_job(world)
    world.generation.dispatch(job_id)
    finish_all(world, job_id)
    world.retention.purge(job_id, "user_request")
    run_queues(world)
    assert list(world.blobs.list_keys(keys.job_prefix(job_id))) == []


def test_reference_selection_prefers_big_sharp_faces_and_variety(world: World) -> None:
    job_id = generating_job(world, n=6)
    world.generation.dispatch(job_id)
    body = world.generator.created[0]["input"]
    refs = [v for k, v in body.items() if k.startswith("input_image")]
    assert len(refs) == 4
    assert world.clock.now() - world.clock.now() == timedelta(0)


def test_delete_cancels_running_predictions_and_reports_the_cost_of_finished_ones(world: World) -> None:
    job_id = generating_job(world)
    world.generation.dispatch(job_id)
    tombstone = world.retention.purge(job_id, "user_request")
    assert sorted(world.generator.canceled) == sorted(s["id"] for s in world.generator.created)
    assert tombstone.reason == "user_request" and tombstone.receipt_id.startswith("del_")


def test_a_ready_job_reports_its_predict_time_and_estimated_cost(world: World) -> None:
    job_id = generating_job(world)
    world.generation.dispatch(job_id)
    finish_all(world, job_id)
    run_queues(world)
    assert world.metrics.counts["PredictSeconds"] == pytest.approx(28.0)
    assert world.metrics.counts["EstimatedCostUSD"] == pytest.approx(
        round(28.0 * world.settings.price_per_second_usd, 4)
    )


def test_a_generating_job_shows_when_it_should_be_ready(world: World) -> None:
    job_id, token = create_job(world)
    generating_job(world, job_id=job_id)
    before = world.jobs.view(job_id, token).estimated_ready_at
    run = timedelta(seconds=world.settings.expected_predict_s)
    assert before is not None and before >= world.clock.now() + run  # nothing measured yet: the published figure
    world.generation.dispatch(job_id)
    world.clock.advance(seconds=30)
    during = world.jobs.view(job_id, token).estimated_ready_at
    assert during is not None and world.clock.now() < during <= before + timedelta(seconds=30)
    finish_all(world, job_id)
    run_queues(world)
    assert world.jobs.view(job_id, token).estimated_ready_at is None  # ready: nothing to estimate


def test_a_webhook_that_races_the_create_record_is_still_applied(world: World) -> None:
    """The completed webhook comes while dispatch is recording the prediction: it loses the adoption to dispatch's
    own write, and is applied to the slot as dispatch left it (not dropped as unknown)."""
    job_id = generating_job(world)
    world.generation.dispatch(job_id)
    recorded = world.store.list_slots(job_id)[0]
    as_seen_before = recorded.model_copy(update={"prediction_id": None, "status": "claimed"})
    world.generator.finish(recorded.prediction_id, 4)
    body = webhook_body(world, recorded.prediction_id)
    real_get_slot = world.store.get_slot
    reads = iter([as_seen_before])
    world.store.get_slot = lambda j, s: next(reads, None) or real_get_slot(j, s)  # type: ignore[method-assign]
    assert world.generation.record_event(job_id, recorded.slot, recorded.claim_id, body) == "completed"


def test_a_job_may_create_20_predictions_by_default_two_and_a_half_times_its_plan() -> None:
    from portrait_studio.config import Settings
    from portrait_studio.services.plan import plan_size, prediction_budget

    styles = ["corporate", "business_casual", "creative", "formal"]
    assert plan_size(styles, Settings()) == 8
    assert prediction_budget(styles, Settings()) == 20
    assert prediction_budget(styles, Settings(prediction_budget_per_job=12)) == 12

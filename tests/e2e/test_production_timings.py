"""The promise at the template's own timings: the reconciler every minute, its default grace periods and
time limit, nothing shortened. The test moves the local clock (which fires the schedules) instead of waiting.

Each profile runs one job over HTTP, like a real client, and checks what a user would see: `ready` with at
least 30 headshots (or, when every image is filtered, an honest `failed`/`partial` with a reason), within
`max_generating_s` of local time, and no message left in a dead-letter queue.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
import httpx
import pytest

from infra.local.client import PortraitClient, running_stack
from infra.local.replicate.faults import FULL_FAULT_PROFILE
from portrait_studio.config import Settings
from tests.e2e.conftest import GOOD, drained, predictions
from tests.e2e.test_ledger import assert_refunded_once_and_recorded, paid_job_whose_refund_record_fails

# The default prediction budget: 2.5 x the 8-prediction plan (services/plan.py prediction_budget).
BUDGET = 20

pytestmark = pytest.mark.e2e

# Only what a test needs beyond production: many jobs from one address, and the emulator's pace. The queues hide
# a batch for the template's own visibility timeouts, so the functions they feed run with their own Timeouts.
PRODUCTION = {
    "PORTRAIT_CREATE_JOB_RATE_PER_HOUR": "1000",
    "EMULATOR_STEP_DELAY": "0.2",
    "LOCAL_VISIBILITY_TIMEOUT_S": "template",
}
CLOCK_STEP_S = 60  # local seconds moved per tick, while the pipeline only waits for its timers
TICK_S = 0.5  # wall seconds between looks
QUEUE_COUNTS = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


@pytest.fixture(scope="module")
def production_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running_stack(tmp_path_factory.mktemp("production"), env=PRODUCTION) as info:
        yield info


def local_now(client: PortraitClient) -> datetime:
    return datetime.fromisoformat(client.http.get("/_local/clock").json()["now"])


def waiting_only_for_timers(stack: dict[str, Any]) -> bool:
    """Nothing to do but wait: no message in any queue (visible, in flight or delayed), no prediction running.
    Only then is the local clock moved; SQS delays and Replicate's work take the wall time they take."""
    sqs = boto3.client("sqs", region_name=stack["region"], endpoint_url=stack["aws_endpoint_url"])
    for url in stack["queues"].values():
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=QUEUE_COUNTS)["Attributes"]
        if any(int(v) for v in counts.values()):
            return False
    headers = {"Authorization": f"Bearer {stack['replicate_token']}"}
    listed = httpx.get(f"{stack['replicate_url']}/v1/predictions", headers=headers).json()["results"]
    return not any(p["status"] in ("starting", "processing") for p in listed)


def run_to_the_end(
    client: PortraitClient, profile: dict[str, Any], stack: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    """One job from upload to a terminal state, the clock moved while it only waits; (its view, local seconds)."""
    replicate_url = stack["replicate_url"]
    httpx.put(f"{replicate_url}/_emulator/faults", json=profile).raise_for_status()
    try:
        job = client.create_job(GOOD)
        client.upload_all(job, GOOD)
        client.submit(job).raise_for_status()
        client.pay(job)
        submitted = local_now(client)
        limit = Settings().max_generating_s + 3600  # local time; the assertion below is the real bound
        while True:
            view = client.get(job).json()
            if view["status"] in ("ready", "partial", "failed"):
                return view, (local_now(client) - submitted).total_seconds()
            assert (local_now(client) - submitted).total_seconds() < limit, view
            time.sleep(TICK_S)
            if waiting_only_for_timers(stack):
                client.advance_clock(CLOCK_STEP_S)
    finally:
        httpx.delete(f"{replicate_url}/_emulator/faults").raise_for_status()


@pytest.mark.parametrize(
    "profile",
    [
        pytest.param({"rate_limit_first": 5}, id="429x5"),
        pytest.param({"rate_limit_first": 40}, id="429x40"),
        pytest.param({**FULL_FAULT_PROFILE, "seed": 11}, id="full-11"),
        pytest.param({**FULL_FAULT_PROFILE, "seed": 12}, id="full-12"),
    ],
)
def test_every_job_is_ready_with_30_or_more_at_production_timings(
    production_stack: dict[str, Any], profile: dict[str, Any]
) -> None:
    client = PortraitClient(production_stack["api_url"])
    try:
        view, took_s = run_to_the_end(client, profile, production_stack)
    finally:
        client.close()
    made = [p for p in predictions(production_stack) if view["job_id"] in (p.get("webhook") or "")]
    if view["status"] == "partial":
        # Only an honest shortfall: every prediction the budget allows was made (20 % failures and 25 % of all
        # images filtered left a job below 30 about one time in 14 at a budget of 16; the default is now 20).
        assert len(made) == BUDGET and view["failure_reason"], (len(made), view)
    else:
        assert view["status"] == "ready", view
        assert view["images_done"] >= 30, view
    assert len(made) <= BUDGET
    # Normalization takes a little local time before generation starts; the bound is on the whole job here.
    assert took_s <= Settings().max_generating_s, took_s
    drained(production_stack)


def test_when_every_image_is_filtered_the_job_says_so_and_is_never_ready(production_stack: dict[str, Any]) -> None:
    client = PortraitClient(production_stack["api_url"])
    try:
        view, took_s = run_to_the_end(client, {"nsfw_drop_rate": 1.0, "seed": 12}, production_stack)
    finally:
        client.close()
    assert view["status"] in ("partial", "failed"), view
    assert view["images_done"] < 30
    assert view["failure_reason"] and "safety filter" in view["failure_reason"], view
    assert took_s <= Settings().max_generating_s, took_s
    drained(production_stack)


def test_a_delete_left_halfway_is_finished_within_one_reconcile_period(production_stack: dict[str, Any]) -> None:
    """DELETE's promise at the template's schedule (the reconciler every minute), the clock moved: a paid job with
    no headshot, whose refund record fails every SDK try after Stripe refunded, answers 202; one reconcile period
    of local time later it is gone, refunded once, the refund recorded on its tombstone."""
    stack, client = production_stack, PortraitClient(production_stack["api_url"])
    try:
        with paid_job_whose_refund_record_fails(stack, client) as job:
            assert client.delete(job).status_code == 202
            deleted_at = local_now(client)
            client.advance_clock(Settings().reconcile_every_s)  # fires the ReconcileSchedule once
            deadline = time.monotonic() + 60
            while client.get(job).status_code != 404 and time.monotonic() < deadline:
                time.sleep(TICK_S)  # the reconciler's run takes wall time; the local clock is not moved again
            assert client.get(job).status_code == 404
            assert (local_now(client) - deleted_at).total_seconds() < Settings().reconcile_every_s + 60
    finally:
        client.close()
    assert_refunded_once_and_recorded(stack, job.job_id)

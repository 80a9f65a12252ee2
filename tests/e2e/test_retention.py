"""Nothing of the user's outlives 48 hours: a moved clock, then the stack's own schedules do the work."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from infra.local.client import PortraitClient
from tests.e2e.conftest import GOOD, drained, fast_stack, items_of, objects_under

pytestmark = pytest.mark.e2e
HOUR = 3600


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Its own stack: moving the clock here must not expire other modules' jobs."""
    with fast_stack(tmp_path_factory, "retention") as info:
        yield info


def assert_gone(stack: dict[str, Any], client: PortraitClient, job: Any) -> None:
    assert objects_under(stack, job.job_id) == []
    assert_only_a_tombstone(stack, client, job)


def assert_only_a_tombstone(stack: dict[str, Any], client: PortraitClient, job: Any) -> None:
    """The job's records are one tombstone holding no personal data, and its owner gets a 404."""
    items = items_of(stack, job.job_id)
    assert [i["kind"] for i in items] == ["tombstone"]
    assert set(items[0]) <= {
        "pk",
        "sk",
        "kind",
        "ttl",
        "job_id",
        "status",
        "reason",
        "deleted_at",
        "objects_deleted",
        "receipt_id",
        "paid_session",  # Stripe's id of the session that paid: no personal data
        # What money moved (Stripe's ids and integer cents only), for the ledger to match
        "payment_intent",
        "amount_paid",
        "refund",
        "outside_refunds",
    }
    assert client.get(job).status_code == 404


def test_finished_and_unfinished_jobs_are_intact_at_47h_and_gone_at_49h(
    stack: dict[str, Any], client: PortraitClient
) -> None:
    finished = client.create_job(GOOD)
    client.upload_all(finished, GOOD)
    client.submit(finished).raise_for_status()
    client.pay(finished)
    assert client.wait_for(finished, ("ready", "failed"), timeout_s=180)["status"] == "ready"
    uploads_only = client.create_job(GOOD)
    client.upload_all(uploads_only, GOOD)
    # Stuck generating: Replicate rate-limits every prediction, so none is ever created.
    httpx.put(f"{stack['replicate_url']}/_emulator/faults", json={"rate_limit_first": 100_000}).raise_for_status()
    stuck = client.create_job(GOOD)
    client.upload_all(stuck, GOOD)
    client.submit(stuck).raise_for_status()
    client.pay(stuck)
    assert client.wait_for(stuck, ("generating",), timeout_s=120)["status"] == "generating"
    results_before = len(objects_under(stack, finished.job_id))

    client.advance_clock(47 * HOUR)
    assert client.get(finished).json()["status"] == "ready"
    assert len(objects_under(stack, finished.job_id)) == results_before
    assert len(objects_under(stack, uploads_only.job_id)) == 3

    fired = client.advance_clock(2 * HOUR)["fired"]
    assert "ExpirySweepFunction.HourlySweep" in fired
    assert_gone(stack, client, finished)
    assert_gone(stack, client, uploads_only)
    assert_gone(stack, client, stuck)
    httpx.delete(f"{stack['replicate_url']}/_emulator/faults").raise_for_status()


def test_delete_is_immediate_and_idempotent(stack: dict[str, Any], client: PortraitClient) -> None:
    job = client.create_job(GOOD)
    client.upload_all(job, GOOD)
    client.submit(job).raise_for_status()
    client.pay(job)
    client.wait_for(job, ("generating", "ready"), timeout_s=120)
    response = client.delete(job)
    assert response.status_code == 204
    assert response.headers["X-Deletion-Receipt"].startswith("del_")
    assert client.delete(job).status_code == 404
    assert_only_a_tombstone(stack, client, job)
    # At once: the photos, the references and every result stored before the DELETE. Only a collect copying at
    # that moment may still put down the one output it holds (and its square crop): it writes nothing more and
    # removes what it wrote before it ends (docs/privacy.md, "Delete now"). Seen in a loaded CI run. The local
    # stack runs at most two collects at once (LOCAL_MAX_WORKERS_PER_FUNCTION), so at most two such outputs.
    left = objects_under(stack, job.job_id)
    being_copied = [key for key in left if "/results/" in key]
    their_crops = [key for key in left if "/linkedin/" in key]
    assert len(being_copied) <= 2 and len(their_crops) <= 2, left
    assert [key for key in left if "/results/" not in key and "/linkedin/" not in key] == []
    # Webhooks and collect messages still queued find nothing to write to.
    drained(stack)
    assert_gone(stack, client, job)
    time.sleep(2)
    assert objects_under(stack, job.job_id) == []

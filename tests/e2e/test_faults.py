"""Generation always delivers: the emulator injects Replicate's failure modes, one by one and all at once."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from infra.local.client import PortraitClient
from infra.local.replicate.faults import FULL_FAULT_PROFILE
from tests.e2e.conftest import GOOD, predictions

pytestmark = pytest.mark.e2e

PROFILES = {
    "rate_limit": {"rate_limit_first": 5},
    "failures": {"fail_rate": 0.2, "seed": 3},
    "nsfw": {"nsfw_drop_rate": 0.25, "seed": 4},
    "duplicate_webhooks": {"duplicate_webhook_rate": 0.5, "seed": 5},
    "missing_webhooks": {"missing_webhook_rate": 0.3, "seed": 6},
    "late_webhooks": {"webhook_delay_s": 1.5},
    "reordered_webhooks": {"reorder_webhooks": True},
    "everything": {**FULL_FAULT_PROFILE, "seed": 7},
}


def slots_of(stack: dict[str, Any], job_id: str) -> Counter[str]:
    """How many predictions each slot of the job got (a slot is retried only after its prediction ended)."""
    counts: Counter[str] = Counter()
    for prediction in predictions(stack):
        query = parse_qs(urlsplit(prediction.get("webhook") or "").query)
        if query.get("job") == [job_id]:
            counts[query["slot"][0]] += 1
    return counts


@pytest.mark.parametrize("name", list(PROFILES))
def test_jobs_deliver_under_faults(name: str, stack: dict[str, Any], client: PortraitClient, faults: Any) -> None:
    faults(PROFILES[name])
    job = client.create_job(GOOD)
    client.upload_all(job, GOOD)
    client.submit(job).raise_for_status()
    client.pay(job)
    started = time.monotonic()
    view = client.wait_for(job, ("ready", "failed"), timeout_s=240)
    elapsed = time.monotonic() - started
    assert view["status"] == "ready", view
    assert view["images_done"] >= 30, view
    assert elapsed < 240
    per_slot = slots_of(stack, job.job_id)
    live = [p for p in predictions(stack) if job.job_id in (p.get("webhook") or "")]
    # Never two predictions alive for one slot at once: each retry follows a finished, failed prediction.
    for slot, count in per_slot.items():
        outcomes = [p["status"] for p in live if f"slot={slot.replace('#', '%23')}" in p["webhook"]]
        assert outcomes.count("succeeded") <= 1, (slot, outcomes)
        assert count <= 3, (slot, outcomes)

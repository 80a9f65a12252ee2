"""Headshots people make their own, on the local stack: the backdrop choice (and, below, what follows delivery)."""

from __future__ import annotations

from typing import Any

import pytest

from infra.local.client import PortraitClient
from tests.e2e.conftest import GOOD, predictions

pytestmark = pytest.mark.e2e


def test_a_job_with_the_office_backdrop_asks_for_it_in_every_prediction(
    client: PortraitClient, stack: dict[str, Any]
) -> None:
    files = [{"name": p.name, "content_type": "image/jpeg", "bytes": p.stat().st_size} for p in GOOD]
    refused = client.http.post("/jobs", json={"files": files, "backdrop": "beach"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_backdrop"
    assert refused.json()["error"]["details"]["allowed"] == ["studio_grey", "office", "outdoors", "solid"]

    job = client.create_job(GOOD, backdrop="office")
    client.upload_all(job, GOOD)
    client.submit(job).raise_for_status()
    client.pay(job)
    view = client.wait_for(job, ("ready", "partial", "failed"), timeout_s=180)
    assert view["status"] == "ready" and view["backdrop"]["kind"] == "office"
    prompts = [p["input"]["prompt"] for p in predictions(stack) if job.job_id in (p.get("webhook") or "")]
    assert len(prompts) >= 8 and all("office" in p for p in prompts), prompts

"""The global create budget on the local stack: four jobs submitted at once share a line of 20 creates a
minute — no minute holds more, no 429 is needed, every job's first prediction comes before any job's third,
and all four end ready."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from infra.local.client import Job, PortraitClient, running_stack
from tests.e2e.conftest import FAST, GOOD, predictions
from tests.model.test_pacing import most_in_a_minute

pytestmark = pytest.mark.e2e


def start(api_url: str) -> Job:
    client = PortraitClient(api_url)
    try:
        job = client.create_job(GOOD)
        client.upload_all(job, GOOD)
        return job
    finally:
        client.close()


def test_four_jobs_share_twenty_creates_a_minute_fairly(tmp_path_factory: pytest.TempPathFactory) -> None:
    env = {**FAST, "PORTRAIT_CREATES_PER_MINUTE": "20"}
    with running_stack(tmp_path_factory.mktemp("budget"), env=env) as stack:
        client = PortraitClient(stack["api_url"])
        try:
            with ThreadPoolExecutor(max_workers=4) as pool:
                jobs = list(pool.map(lambda _: start(stack["api_url"]), range(4)))
                list(pool.map(lambda job: client.submit(job).raise_for_status(), jobs))
            views = [client.wait_for(job, ("ready", "partial", "failed"), timeout_s=300) for job in jobs]
        finally:
            client.close()
        made = created_in_order(stack, {job.job_id for job in jobs})
    assert all(v["status"] == "ready" and v["images_done"] >= 30 for v in views), views
    assert most_in_a_minute([when for when, _ in made]) <= 20
    order = [job_id for _, job_id in made]
    firsts = [order.index(job.job_id) for job in jobs]
    thirds = [[i for i, j in enumerate(order) if j == job.job_id][2] for job in jobs]
    assert max(firsts) < min(thirds), order


def created_in_order(stack: dict[str, Any], job_ids: set[str]) -> list[tuple[datetime, str]]:
    """(created_at, job) of every prediction of these jobs, oldest first. A 429 creates no prediction, so one
    prediction per create call the emulator accepted."""
    made = []
    for prediction in predictions(stack):
        job_id = parse_qs(urlsplit(prediction.get("webhook") or "").query).get("job", [""])[0]
        if job_id in job_ids:
            made.append((datetime.fromisoformat(prediction["created_at"].replace("Z", "+00:00")), job_id))
    return sorted(made)

"""The global create budget on the local stack: four jobs submitted at once share a line of 20 creates a
minute — no minute holds more, no 429 is needed, no job gets more than two predictions while another waits for its
first (round robin from the moment each job is ready to generate; normalization does not finish all four at
once), and all four end ready."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
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
                list(pool.map(lambda job: client.submit_and_pay(job), jobs))
            waiting_since = when_generating(client, jobs)
            views = [client.wait_for(job, ("ready", "partial", "failed"), timeout_s=300) for job in jobs]
        finally:
            client.close()
        made = created_in_order(stack, {job.job_id for job in jobs})
    assert all(v["status"] == "ready" and v["images_done"] >= 30 for v in views), views
    assert most_in_a_minute([when for when, _ in made]) <= 20
    for job in jobs:
        first = next(when for when, job_id in made if job_id == job.job_id)
        meanwhile = Counter(job_id for when, job_id in made if waiting_since[job.job_id] < when < first)
        # While this job waited for its first turn, nobody else got more than its held turn and one more.
        assert all(count <= 2 for count in meanwhile.values()), (job.job_id, meanwhile, made)


def when_generating(client: PortraitClient, jobs: list[Job], timeout_s: float = 120) -> dict[str, datetime]:
    """When each job was first seen generating (its plan written, its dispatch on the way), on the stack's clock."""
    seen: dict[str, datetime] = {}
    deadline = time.monotonic() + timeout_s
    while len(seen) < len(jobs) and time.monotonic() < deadline:
        for job in jobs:
            if job.job_id not in seen and client.get(job).json()["status"] != "normalizing":
                seen[job.job_id] = datetime.now(UTC)
        time.sleep(0.1)
    assert len(seen) == len(jobs), seen
    return seen


def created_in_order(stack: dict[str, Any], job_ids: set[str]) -> list[tuple[datetime, str]]:
    """(created_at, job) of every prediction of these jobs, oldest first. A 429 creates no prediction, so one
    prediction per create call the emulator accepted."""
    made = []
    for prediction in predictions(stack):
        job_id = parse_qs(urlsplit(prediction.get("webhook") or "").query).get("job", [""])[0]
        if job_id in job_ids:
            made.append((datetime.fromisoformat(prediction["created_at"].replace("Z", "+00:00")), job_id))
    return sorted(made)

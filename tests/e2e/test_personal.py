"""Headshots people make their own, on the local stack: the backdrop choice (and, below, what follows delivery)."""

from __future__ import annotations

import io
import json
import statistics
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from PIL import Image

from infra.local.client import Job, PortraitClient
from tests.e2e.conftest import GOOD, predictions, usage

pytestmark = pytest.mark.e2e


def more(client: PortraitClient, job: Any, result: str) -> httpx.Response:
    return client.http.post(f"/jobs/{job.job_id}/more", headers=client.auth(job.token), json={"result": result})


@dataclass(frozen=True)
class OfficeJob:
    job: Job
    more_while_generating: httpx.Response  # POST /more made right after paying
    view: dict[str, Any]  # the job when its first 32 were delivered
    prompts: list[str]  # every prediction's prompt by then


@pytest.fixture(scope="module")
def office_job(stack: dict[str, Any]) -> Iterator[OfficeJob]:
    """One whole job with the office backdrop, asked for more like this while it generates: both tests' job."""
    client = PortraitClient(stack["api_url"])
    try:
        job = client.create_job(GOOD, backdrop="office")
        client.upload_all(job, GOOD)
        client.submit(job).raise_for_status()
        client.pay(job)
        early = more(client, job, "corporate/1")  # still generating (or not yet started)
        view = client.wait_for(job, ("ready", "partial", "failed"), timeout_s=180)
        prompts = [p["input"]["prompt"] for p in predictions(stack) if job.job_id in (p.get("webhook") or "")]
        yield OfficeJob(job, early, view, prompts)
    finally:
        client.close()


def test_a_job_with_the_office_backdrop_asks_for_it_in_every_prediction(
    client: PortraitClient, office_job: OfficeJob
) -> None:
    files = [{"name": p.name, "content_type": "image/jpeg", "bytes": p.stat().st_size} for p in GOOD]
    refused = client.http.post("/jobs", json={"files": files, "backdrop": "beach"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_backdrop"
    assert refused.json()["error"]["details"]["allowed"] == ["studio_grey", "office", "outdoors", "solid"]

    view, prompts = office_job.view, office_job.prompts
    assert view["status"] == "ready" and view["backdrop"]["kind"] == "office"
    assert len(prompts) >= 8 and all("office" in p for p in prompts), prompts


def test_more_like_this_twice_makes_eight_more_then_409_and_the_zip_holds_them_all(
    client: PortraitClient, stack: dict[str, Any], office_job: OfficeJob
) -> None:
    job, early, view = office_job.job, office_job.more_while_generating, office_job.view
    assert early.status_code == 409 and early.json()["error"]["code"] == "job_not_finished", early.text
    assert view["status"] == "ready" and view["more_rounds_left"] == 2
    chosen = view["styles"][2]["items"][0]
    done = view["images_done"]

    took = []
    for round in (1, 2):
        usage(stack, "DELETE")
        asked = time.monotonic()
        started = more(client, job, chosen["result"])
        assert started.status_code == 202 and started.json()["round"] == round, started.text
        view = client.wait_for(job, ("ready", "partial", "failed"), timeout_s=120)
        took.append(time.monotonic() - asked)
        assert view["status"] == "ready" and view["images_done"] == done + 4 * round
        counted = usage(stack)
        print(f"round {round}: {took[-1]:.1f} s; usage {json.dumps(counted)}")  # shown with -s
    print(f"More like this → 4 results: p50 {statistics.median(took):.1f} s over {len(took)} rounds")

    third = more(client, job, chosen["result"])
    assert third.status_code == 409 and third.json()["error"]["code"] == "more_limit_reached"
    new = [i for s in view["styles"] for i in s["items"] if i["more"]]
    style = chosen["result"].split("/")[0]
    assert len(new) == 8 and {i["result"].split("/")[0] for i in new} == {style}
    assert view["more_rounds_left"] == 0

    archive = client.archive(job)
    assert archive.status_code == 200 and archive.json()["images"] == done + 8 == 40
    with zipfile.ZipFile(io.BytesIO(httpx.get(archive.json()["url"], timeout=60).content)) as bundle:
        names = bundle.namelist()
    headshots = [n for n in names if n.endswith(".png")]
    crops = [n for n in names if n.startswith("linkedin/") and n.endswith(".jpg")]
    assert len(headshots) == 40 and len(crops) == archive.json()["linkedin_crops"] == 40
    crop = httpx.get(new[0]["linkedin_url"], timeout=30)
    assert crop.status_code == 200 and Image.open(io.BytesIO(crop.content)).size == (800, 800)

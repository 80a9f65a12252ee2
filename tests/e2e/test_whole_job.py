"""One ordinary whole job on the local stack, and what a finished job promises, each promise read by its own test.

A whole job costs the stack about 21 CPU seconds (`benchmarks/job_cpu.py`), most of it the identity gate on every
output, and `make test` is CPU-bound: the tests that only read a finished job share this one, paid for once. The
job: three selfies (one HEIC) and a photo with no face, every style, paid with an email address. Tests that change
how a job runs (faults, backdrops, refunds, a moved clock) make their own.
"""

from __future__ import annotations

import hashlib
import html
import io
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

from infra.local.client import Job, PortraitClient
from portrait_studio.services.provenance import MODEL, TRAINED_ALGORITHMIC_MEDIA
from tests.e2e.conftest import GOOD, NO_FACE, drained, items_of, usage
from tests.e2e.test_mail import mail_to, wait_for_mail
from tests.e2e.test_payments import created_for, stripe

pytestmark = pytest.mark.e2e

FILES = [*GOOD, NO_FACE]
ADDRESS = "grace@example.com"
LINK = re.compile(r'href="([^"]+)"')
# Every function one whole job passes through (the reconciler and the sweep run on schedules).
JOB_FUNCTIONS = ("ApiFunction", "NormalizeFunction", "DispatchFunction", "WebhookFunction", "CollectFunction")


@dataclass(frozen=True)
class FinishedJob:
    job: Job
    submitted: int  # POST /submit's status code
    usage_at_start: dict[str, Any]  # the usage counters just after they were reset, before the job
    view: dict[str, Any]  # the job when it finished


@pytest.fixture(scope="module")
def whole_job(stack: dict[str, Any]) -> Iterator[FinishedJob]:
    reset = usage(stack, "DELETE")
    client = PortraitClient(stack["api_url"])
    try:
        job = client.create_job(FILES, subject="person")
        client.upload_all(job, FILES)
        submitted = client.submit(job).status_code
        client.pay(job, email=ADDRESS)
        yield FinishedJob(job, submitted, reset, client.wait_for(job, ("ready", "failed"), timeout_s=180))
    finally:
        client.close()


def completion_event_of(stack: dict[str, Any], job_id: str) -> str:
    (event_id,) = [
        e["event"]["id"]
        for e in stripe(stack, "/_emulator/events")
        if e["event"]["type"] == "checkout.session.completed"
        and e["event"]["data"]["object"]["client_reference_id"] == job_id
    ]
    return str(event_id)


# --- the pipeline ------------------------------------------------------------------------------------
def test_a_whole_job_from_selfies_to_32_distinct_headshots(whole_job: FinishedJob, client: PortraitClient) -> None:
    assert any(p.suffix == ".heic" for p in FILES)
    view = whole_job.view
    assert whole_job.submitted == 202
    assert view["status"] == "ready", view
    verdicts = {f["name"]: (f["accepted"], f["code"]) for f in view["files"]}
    assert verdicts["person-a-3.heic"] == (True, "accepted")
    assert verdicts["no-face.jpg"] == (False, "no_face")
    assert {s["style"]: s["done"] for s in view["styles"]} == {
        "corporate": 8,
        "business_casual": 8,
        "creative": 8,
        "formal": 8,
    }
    digests = set()
    for style in view["styles"]:
        for url in style["results"]:
            response = httpx.get(url, timeout=30)
            assert response.status_code == 200
            image = Image.open(io.BytesIO(response.content))
            assert (image.format, image.size) == ("PNG", (1024, 1024))
            digests.add(hashlib.sha256(response.content).hexdigest())
    assert len(digests) == 32

    archive = client.archive(whole_job.job)
    assert archive.status_code == 200 and archive.json()["images"] == 32
    with zipfile.ZipFile(io.BytesIO(httpx.get(archive.json()["url"], timeout=60).content)) as bundle:
        assert len([n for n in bundle.namelist() if n.endswith(".png")]) == 32


# --- provenance (docs/provenance.md) -----------------------------------------------------------------
def test_every_delivered_headshot_verifies_as_ai_made(whole_job: FinishedJob) -> None:
    c2pa = pytest.importorskip("c2pa")
    view = whole_job.view
    urls = [url for style in view["styles"] for url in style["results"]]
    assert view["status"] == "ready" and urls, view
    for url in urls:
        data = httpx.get(url, timeout=30).content
        reader = c2pa.Reader("image/png", io.BytesIO(data))
        results = reader.get_validation_results() or {}
        # The local stack signs with a test root no viewer trusts: that is the only failure allowed.
        failures = {item["code"] for item in results.get("activeManifest", {}).get("failure", [])}
        assert failures == {"signingCredential.untrusted"}, url
        assert reader.get_validation_state() == "Valid"
        manifest = reader.get_active_manifest()
        assert manifest["claim_generator_info"][0]["name"] == "Portrait Studio"
        (actions,) = [a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions")]
        (action,) = actions["data"]["actions"]
        assert (action["action"], action["digitalSourceType"]) == ("c2pa.created", TRAINED_ALGORITHMIC_MEDIA)
        assert action["softwareAgent"]["name"] == MODEL
        with Image.open(io.BytesIO(data)) as image:
            assert (image.format, image.size) == ("PNG", (1024, 1024))
            assert TRAINED_ALGORITHMIC_MEDIA in str(image.info.get("xmp", ""))
            assert not image.getexif()


# --- usage: what the job would be billed for (`/_local/usage`, priced by benchmarks/fleet.py) ---------------
def test_one_job_is_counted(whole_job: FinishedJob, stack: dict[str, Any]) -> None:
    reset = whole_job.usage_at_start
    assert reset["lambda"]["ApiFunction"]["invocations"] == 0
    assert reset["r2"]["class_a"] == reset["r2"]["class_b"] == 0
    view = whole_job.view
    assert view["status"] == "ready", view
    counted = usage(stack)

    for function in JOB_FUNCTIONS:
        assert counted["lambda"][function]["invocations"] > 0, function
        assert counted["lambda"][function]["gb_seconds"] > 0, function
        # Each function ran in processes of its own, within its MemorySize, and none was killed.
        measured = counted["lambda"][function]
        assert 0 < measured["peak_memory_mb"] < measured["memory_mb"], (function, measured)
        assert measured["timeouts"] == measured["out_of_memory"] == 0, (function, measured)
    print({name: f["peak_memory_mb"] for name, f in counted["lambda"].items()})  # shown with -s
    # The browser's presigned uploads are class A; the functions read photos back (class B).
    assert counted["r2"]["presigned"]["class_a"] >= len(FILES), counted["r2"]
    assert counted["r2"]["class_a"] > len(FILES), counted["r2"]
    assert counted["r2"]["class_b"] > 0, counted["r2"]
    assert counted["r2"]["operations"]["PutObject"] >= len(FILES) + view["images_done"], counted["r2"]
    assert counted["dynamodb"]["write_units"] > 0
    assert counted["dynamodb"]["read_units"] > 0
    assert counted["sqs"]["requests"] > 0
    assert counted["sqs"]["poller"]["requests"] > 0
    assert counted["replicate"]["create"] >= 8


# --- come back later: one email with a private link (docs/privacy.md) --------------------------------------
def test_one_email_whose_private_link_opens_the_job(whole_job: FinishedJob, stack: dict[str, Any]) -> None:
    job, view = whole_job.job, whole_job.view
    assert view["status"] == "ready"
    [mail] = wait_for_mail(stack, ADDRESS)
    assert mail["subject"] == f"Your {view['images_done']} headshots are ready"
    [link] = [html.unescape(href) for href in LINK.findall(mail["html"])]
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}" == stack["api_url"] and not parts.query  # the token only in the fragment
    fragment = parse_qs(parts.fragment)
    assert fragment["job"] == [job.job_id]
    # Another device: only the link.
    elsewhere = PortraitClient(stack["api_url"])
    try:
        assert elsewhere.get(Job(job.job_id, fragment["token"][0], [])).json()["status"] == "ready"
    finally:
        elsewhere.close()
    assert "X-Amz" not in mail["html"] and job.token not in mail["html"]
    # A replayed payment event sends nothing more; the address is forgotten once the email went.
    event_id = completion_event_of(stack, job.job_id)
    httpx.post(f"{stack['stripe_url']}/_emulator/events/{event_id}/resend").raise_for_status()
    time.sleep(2)
    assert len(mail_to(stack, ADDRESS)) == 1
    assert ADDRESS not in repr(items_of(stack, job.job_id))


# --- payments: a replayed completion (docs/payments.md) -----------------------------------------------------
def test_a_replayed_completion_starts_nothing_twice(
    whole_job: FinishedJob, stack: dict[str, Any], client: PortraitClient
) -> None:
    job = whole_job.job
    assert whole_job.view["status"] == "ready"
    first = len(created_for(stack, job.job_id))
    event_id = completion_event_of(stack, job.job_id)
    for _ in range(2):
        httpx.post(f"{stack['stripe_url']}/_emulator/events/{event_id}/resend").raise_for_status()
    time.sleep(2)
    drained(stack)
    assert len(created_for(stack, job.job_id)) == first
    assert client.get(job).json()["status"] == "ready"
    refunds = [r for r in stripe(stack, "/_emulator/refunds") if r["metadata"].get("job_id") == job.job_id]
    assert refunds == []


# --- privacy: logs (docs/privacy.md) -----------------------------------------------------------------------
def test_logs_of_a_whole_job_carry_no_personal_data(
    whole_job: FinishedJob, stack: dict[str, Any], client: PortraitClient
) -> None:
    job, view = whole_job.job, whole_job.view
    assert view["status"] == "ready", view
    client.archive(job)
    wait_for_mail(stack, ADDRESS)  # the outcome email goes right after the outcome
    log = Path(stack["log_path"]).read_text(errors="replace")
    assert ADDRESS not in log and "@example.com" not in log
    assert "#job=" not in log and "token=" not in log  # the emailed private link
    assert job.token not in log
    assert "X-Amz-Signature" not in log and "Signature=" not in log
    for photo in FILES:
        assert photo.name not in log
    assert "GPS" not in log and "exif" not in log.lower()
    assert view["styles"][0]["results"][0] not in log
    assert httpx.get(f"{stack['api_url']}/_local/health").status_code == 200

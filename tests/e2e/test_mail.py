"""Come back later (issue #15): one email per outcome, to the address Stripe Checkout collected, with a private
link that opens the job anywhere (read off the shared finished job in test_whole_job.py); the address is gone
with the job; a mail failure never fails a job."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from infra.local.client import Job, PortraitClient
from tests.e2e.conftest import GOOD, items_of

pytestmark = pytest.mark.e2e


def mail_to(stack: dict[str, Any], address: str) -> list[dict[str, Any]]:
    messages = httpx.get(f"{stack['api_url']}/_local/mail").json()
    return [m for m in messages if address in m["to"]]


def paid_job(client: PortraitClient, email: str) -> Job:
    job = client.create_job(GOOD, styles=["corporate"])
    client.upload_all(job, GOOD)
    client.submit(job).raise_for_status()
    client.pay(job, email=email)
    return job


def wait_for_mail(stack: dict[str, Any], address: str, timeout_s: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while not (found := mail_to(stack, address)) and time.monotonic() < deadline:
        time.sleep(0.25)
    return found


def test_delete_forgets_the_address(stack: dict[str, Any], client: PortraitClient) -> None:
    address = "deleted.early@example.com"
    job = paid_job(client, address)
    client.wait_for(job, ("generating", "ready"), timeout_s=120)
    assert address in repr(items_of(stack, job.job_id))  # kept while the job runs: the email is still to come
    assert client.delete(job).status_code == 204
    assert address not in repr(items_of(stack, job.job_id))


def test_a_failing_mail_send_leaves_the_job_ready(stack: dict[str, Any], client: PortraitClient) -> None:
    address = "bounces@example.com"
    httpx.put(f"{stack['api_url']}/_local/mail", json={"deliver": False}).raise_for_status()
    try:
        job = paid_job(client, address)
        view = client.wait_for(job, ("ready", "partial", "failed"), timeout_s=180)
        time.sleep(2)
    finally:
        httpx.put(f"{stack['api_url']}/_local/mail", json={"deliver": True}).raise_for_status()
    assert view["status"] == "ready" and view["images_done"] >= 30
    assert mail_to(stack, address) == []
    time.sleep(2)  # the reconciler does not try again: at most one attempt per outcome
    assert mail_to(stack, address) == [] and client.get(job).json()["status"] == "ready"
    assert address not in repr(items_of(stack, job.job_id))

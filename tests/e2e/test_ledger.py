"""Every cent accounted for, end to end: the local stack's Stripe emulator holds the money, the operator's
`portrait-studio ledger` (found through `.local/stack.json`, as an operator runs it) matches it to our jobs.

A DELETE whose refund record fails: the AWS gate answers that one DynamoDB write with the service's 500 as many
times as the SDK tries it (`/_local/aws-faults`), after Stripe refunded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.local.client import Job, PortraitClient
from tests.e2e.conftest import items_of, objects_under
from tests.e2e.test_operator_cli import run_cli
from tests.e2e.test_payments import accepted_job, stripe

pytestmark = pytest.mark.e2e


def ledger(stack: dict[str, Any], cwd: Path) -> tuple[int, dict[str, Any]]:
    state = cwd / ".local" / "stack.json"
    if not state.exists():
        state.parent.mkdir(exist_ok=True)
        state.symlink_to(Path(stack["log_path"]).parent / "stack.json")
    done = run_cli("ledger", "--since", "72h", "--json", cwd=cwd)
    assert done.returncode in (0, 1), done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert "@" not in done.stdout  # ids and amounts only
    return done.returncode, report


def session_of(stack: dict[str, Any], job_id: str) -> dict[str, Any]:
    (session,) = [s for s in stripe(stack, "/_emulator/sessions") if s["client_reference_id"] == job_id]
    return session


@dataclass(frozen=True)
class PaidWithoutWebhooks:
    job: Job
    status_after_paying: str  # the job's status right after the checkout page was paid
    view: dict[str, Any]  # the job when it finished
    dropped: int  # the webhooks the Stripe emulator dropped


@pytest.fixture(scope="module")
def paid_without_webhooks(stack: dict[str, Any]) -> PaidWithoutWebhooks:
    """A job paid while Stripe's webhooks were dropped, then finished: the ready job both tests below read."""
    faults = f"{stack['stripe_url']}/_emulator/faults"
    client = PortraitClient(stack["api_url"])
    httpx.put(faults, json={"drop_webhooks": True}).raise_for_status()
    try:
        job, _ = accepted_job(client, styles=["corporate"])
        client.pay(job)
        status_after_paying = client.get(job).json()["status"]
        client.advance_clock(150)  # past the payments reconciler's quiet period: it asks Stripe
        view = client.wait_for(job, ("ready", "partial", "failed"), timeout_s=240)
        dropped = httpx.get(faults).json()["dropped"]
    finally:
        httpx.delete(faults).raise_for_status()
        client.close()
    return PaidWithoutWebhooks(job, status_after_paying, view, dropped)


def test_webhooks_dropped_while_paying_the_job_still_starts_and_the_ledger_matches(
    stack: dict[str, Any], paid_without_webhooks: PaidWithoutWebhooks, tmp_path: Path
) -> None:
    paid = paid_without_webhooks
    assert paid.status_after_paying == "awaiting_payment"  # no event came
    assert paid.view["status"] == "ready" and paid.view["payment"]["amount_total"] == 1290
    assert paid.dropped >= 1
    code, report = ledger(stack, tmp_path)
    assert code == 0, report
    assert report["paid"] >= 1 and (report["mismatches"], report["repaired"]) == (0, 0), report


def test_a_refund_made_directly_against_a_ready_jobs_payment_is_recorded_once(
    stack: dict[str, Any], client: PortraitClient, paid_without_webhooks: PaidWithoutWebhooks, tmp_path: Path
) -> None:
    job = paid_without_webhooks.job
    assert paid_without_webhooks.view["status"] == "ready"
    intent = session_of(stack, job.job_id)["payment_intent"]
    # Support, in the dashboard: the secret key from stack.json, the payment, an amount; nothing of ours.
    by_hand = httpx.post(
        f"{stack['stripe_url']}/v1/refunds",
        data={"payment_intent": intent, "amount": "500"},
        headers={"Authorization": f"Bearer {stack['stripe_secret_key']}"},
    )
    assert by_hand.status_code == 200, by_hand.text
    code, report = ledger(stack, tmp_path)
    assert code == 0, report
    assert (report["mismatches"], report["repaired"]) == (1, 1), report
    (item,) = report["items"]
    assert (item["kind"], item["job_id"], item["amount"], item["repaired"]) == ("outside_refund", job.job_id, 500, True)
    code, again = ledger(stack, tmp_path)  # recorded on the job: matched from now on, never recorded twice
    assert code == 0 and again["mismatches"] == 0, again
    assert client.get(job).json()["status"] == "ready"


@contextmanager
def paid_job_whose_refund_record_fails(stack: dict[str, Any], client: PortraitClient) -> Iterator[Job]:
    """A paid job with no headshot (Replicate refuses every create: a DELETE owes the whole payment back) whose API
    write recording a refund fails every one of the SDK's 6 attempts (1 + 5 retries). Both faults end with it."""
    replicate_faults, aws_faults = f"{stack['replicate_url']}/_emulator/faults", f"{stack['api_url']}/_local/aws-faults"
    httpx.put(replicate_faults, json={"rate_limit_first": 100_000}).raise_for_status()
    try:
        job, _ = accepted_job(client, styles=["corporate"])
        client.pay(job)
        assert client.wait_for(job, ("generating",), timeout_s=120)["status"] == "generating"
        the_write = {"action": "dynamodb:UpdateItem", "function": "ApiFunction", "body_contains": "refund_id"}
        httpx.put(aws_faults, json={"fail": [{**the_write, "times": 6}]}).raise_for_status()
        yield job
    finally:
        httpx.delete(aws_faults).raise_for_status()
        httpx.delete(replicate_faults).raise_for_status()


def assert_refunded_once_and_recorded(stack: dict[str, Any], job_id: str) -> None:
    """Gone, and the whole payment refunded once at Stripe, that refund recorded on the job's tombstone."""
    assert objects_under(stack, job_id) == []
    (tombstone,) = items_of(stack, job_id)
    refunds = httpx.get(f"{stack['stripe_url']}/_emulator/refunds").json()
    mine = [r for r in refunds if r["payment_intent"] == tombstone["payment_intent"]]
    assert [(r["id"], r["amount"]) for r in mine] == [(tombstone["refund"]["refund_id"], 1290)]  # found, not remade


def test_a_delete_whose_refund_record_fails_is_refunded_once_and_recorded_by_the_reconciler(
    stack: dict[str, Any], client: PortraitClient, tmp_path: Path
) -> None:
    with paid_job_whose_refund_record_fails(stack, client) as job:
        response = client.delete(job)
        assert response.status_code == 202, response.text  # recorded; the rest is the reconciler's
        assert response.headers["X-Deletion-Receipt"].startswith("del_")
        assert httpx.get(f"{stack['api_url']}/_local/aws-faults").json()["fail"][0]["fired"] == 6
        # Its owner sees it deleting, unless the reconciler (every second here) has finished it meanwhile: it
        # records the refund with a write of its own, which the API's failing one does not hold up.
        seen = client.get(job)
        assert seen.status_code == 404 or seen.json()["status"] == "deleted", seen.text
        deadline = time.monotonic() + 60
        while client.get(job).status_code != 404 and time.monotonic() < deadline:
            time.sleep(0.5)  # the reconciler runs every second here
        assert client.get(job).status_code == 404
    assert_refunded_once_and_recorded(stack, job.job_id)
    code, report = ledger(stack, tmp_path)
    assert code == 0 and report["mismatches"] == 0, report

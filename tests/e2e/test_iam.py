"""Each function runs with its role as deployed (issue #19): take a grant away from a copy of the template and
the local stack refuses that call as AWS would, records it, and the job goes on as it would deployed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from infra.local.client import PortraitClient, running_stack
from infra.local.template import load_template
from tests.e2e.conftest import FAST
from tests.e2e.test_mail import mail_to, paid_job

pytestmark = pytest.mark.e2e
MAIL_IDENTITY_ARN = "arn:aws:ses:us-east-1:123456789012:identity/portrait-studio.local"


def template_without(action: str, target: Path) -> Path:
    """template.yaml with every policy statement granting `action` removed (long-form intrinsics: valid CFN)."""
    raw = load_template()
    for resource in raw["Resources"].values():
        for policy in (resource.get("Properties") or {}).get("Policies") or []:
            if isinstance(policy, dict) and "Statement" in policy:
                policy["Statement"] = [s for s in policy["Statement"] if s.get("Action") != action]
    target.write_text(yaml.safe_dump(raw, sort_keys=False))
    return target


def denials(stack: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = httpx.get(f"{stack['api_url']}/_local/iam").json()
    return report


def test_the_stack_reports_enforcement_and_no_denials_at_rest(stack: dict[str, Any]) -> None:
    assert denials(stack) == {"enforced": True, "denied": []}


def test_without_ses_send_email_the_email_is_refused_and_recorded_and_the_job_still_ready(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    state = tmp_path_factory.mktemp("no-ses")
    template = template_without("ses:SendEmail", state / "template.yaml")
    address = "no-grant@example.com"
    with running_stack(state, env=FAST, template=template, allow_denials=True) as stack:
        client = PortraitClient(stack["api_url"])
        job = paid_job(client, address)
        view = client.wait_for(job, ("ready", "partial", "failed"), timeout_s=180)
        deadline = time.monotonic() + 30
        while not (refused := denials(stack))["denied"] and time.monotonic() < deadline:
            time.sleep(0.25)
        assert view["status"] == "ready" and view["images_done"] >= 7
        assert refused["enforced"] is True
        assert {(d["action"], d["resource"]) for d in refused["denied"]} == {("ses:SendEmail", MAIL_IDENTITY_ARN)}
        assert {d["function"] for d in refused["denied"]} <= {"CollectFunction", "ReconcileFunction"}
        assert mail_to(stack, address) == []
        # Counted, as the operator's alarm would see it: the metric is flushed when the invocation ends,
        # a moment after the refusal was recorded.
        deadline = time.monotonic() + 30
        while '"EmailsFailed"' not in (log := (state / "stack.log").read_text()) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert '"EmailsFailed"' in log
        assert client.get(job).json()["status"] == "ready"  # and never retried into a failure
        client.close()

"""Every function's IAM grants, as SAM deploys them (the template translated offline), are exactly the "Grants"
table of docs/security.md: a new grant is a visible decision. Plus the rules no table edit may break: no Scan, no
wildcard DynamoDB action, no job put or delete by the internet-facing webhook or the image decoder, no payment key where
untrusted images are decoded, SQS receive on the function's own queue only."""

from __future__ import annotations

import copy
import os
import re
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.unit.test_template import FUNCTIONS, QUEUES, load_cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
ARN_PREFIX = re.compile(r"^arn:\$\{AWS::Partition\}:(\w+):\$\{AWS::Region\}:\$\{AWS::AccountId\}:")
MANAGED = "(managed policy)"


class OfflinePolicyLoader:
    """The translator only needs the ARNs of the AWS managed policies SAM may attach; no IAM call."""

    def load(self) -> dict[str, str]:
        return {
            "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
            "AWSLambdaSQSQueueExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
        }


@cache
def translated() -> dict[str, Any]:
    from samtranslator.translator.transform import transform

    template = load_cfn_yaml((ROOT / "template.yaml").read_text())
    for resource in template["Resources"].values():  # local paths stand in for what `sam package` uploads
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = "s3://bucket/function.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = "s3://bucket/layer.zip"
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "us-east-1"}):  # ARNs keep ${AWS::Region}
        result: dict[str, Any] = transform(copy.deepcopy(template), {}, OfflinePolicyLoader())
    return result


def resource_name(node: Any) -> str:
    """A policy resource as docs/security.md writes it: `JobsTable`, `JobsTable/index/by_active_status`,
    `ssm:parameter/portrait-studio/${Environment}/…`, `ses:identity/${MailIdentity}`, `kms:key/*`."""
    if isinstance(node, str):
        return node
    if "Fn::GetAtt" in node:
        target, attribute = node["Fn::GetAtt"]
        assert attribute == "Arn", node
        return str(target)
    if "Fn::Sub" in node:
        text = node["Fn::Sub"]
        text = re.sub(r"\$\{(\w+)\.Arn\}", r"\1", text)
        return ARN_PREFIX.sub(r"\1:", text)
    if "Fn::If" in node:  # the optional SES configuration set
        condition, value, _ = node["Fn::If"]
        return f"{resource_name(value)} (if {condition})"
    raise AssertionError(f"unexpected resource {node}")


def derived_grants() -> set[tuple[str, str, str]]:
    """(function, action, resource) for every statement of every function's role, and its managed policies."""
    resources = translated()["Resources"]
    grants: set[tuple[str, str, str]] = set()
    for function in FUNCTIONS:
        role_ref = resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]
        role = resources[role_ref]["Properties"]
        for arn in role.get("ManagedPolicyArns", []):
            grants.add((function, MANAGED, str(arn).rsplit("/", 1)[-1]))
        for policy in role.get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                assert st["Effect"] == "Allow"
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                targets = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                for action in actions:
                    for target in targets:
                        grants.add((function, action, resource_name(target)))
    return grants


def readme_grants() -> set[tuple[str, str, str]]:
    """Rows of the grants table in docs/security.md: | Function | Actions | Resource | Why |."""
    text = (ROOT / "docs" / "security.md").read_text()
    section = text.split("\n## Grants\n", 1)[1].split("\n## ", 1)[0]
    grants: set[tuple[str, str, str]] = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("Function", "") or set(cells[0]) <= {"-", " "}:
            continue
        functions, actions, resources, why = cells
        assert why, f"docs/security.md grants: {functions} {actions} {resources} has no reason"
        for function in _cell(functions):
            for action in _cell(actions):
                for resource in _cell(resources):
                    grants.add((function, action, resource))
    return grants


def _cell(text: str) -> list[str]:
    return [item.strip().strip("`").strip() for item in text.split(",") if item.strip()]


def test_the_readme_table_lists_exactly_the_grants_sam_deploys() -> None:
    derived, documented = derived_grants(), readme_grants()
    assert sorted(derived - documented) == [], "granted but not in docs/security.md's table: add a row with why"
    assert sorted(documented - derived) == [], "in docs/security.md's table but not granted: remove the row"


def _of(function: str) -> set[tuple[str, str]]:
    return {(action, resource) for f, action, resource in derived_grants() if f == function}


def test_no_scan_no_wildcards_and_no_crud_policy() -> None:
    for _, action, resource in derived_grants():
        assert action not in ("dynamodb:Scan", "dynamodb:PartiQLSelect"), (action, resource)
        assert "*" not in action, action
        if action.startswith("dynamodb:"):
            assert "*" not in resource, (action, resource)


@pytest.mark.parametrize("function", ["WebhookFunction", "NormalizeFunction"])
def test_the_exposed_functions_never_put_or_delete_job_items(function: str) -> None:
    """The webhook function is on the internet; normalize runs native decoders on attacker bytes."""
    for action, resource in _of(function):
        if resource.startswith("JobsTable"):
            assert action in ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"), (function, action)


def test_the_image_decoder_holds_no_payment_key_and_sends_nothing() -> None:
    grants = _of("NormalizeFunction")
    parameters = {resource for action, resource in grants if action.startswith("ssm:")}
    assert parameters == {
        "ssm:parameter/portrait-studio/${Environment}/r2-access-key-id",
        "ssm:parameter/portrait-studio/${Environment}/r2-secret-access-key",
    }
    assert not {action for action, _ in grants if action.startswith(("sqs:Send", "ses:"))}


def test_sqs_receive_and_delete_only_on_the_functions_own_queue() -> None:
    consumers = {function: queue for queue, function in QUEUES.items()}
    for function, action, resource in derived_grants():
        assert (action, resource) != (MANAGED, "AWSLambdaSQSQueueExecutionRole"), function
        if action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
            assert resource == consumers.get(function), (function, action, resource)
    for function, queue in consumers.items():
        assert ("sqs:ReceiveMessage", queue) in _of(function)


def test_aftercare_and_cancels_run_only_where_their_grants_are() -> None:
    """Item 4: the refund and email need the Stripe key and ses:SendEmail, a cancel needs the Replicate token."""
    stripe = ("ssm:GetParameter", "ssm:parameter/portrait-studio/${Environment}/stripe-secret-key")
    token = ("ssm:GetParameter", "ssm:parameter/portrait-studio/${Environment}/replicate-api-token")
    for function in ("CollectFunction", "ReconcileFunction"):  # aftercare runs here
        assert stripe in _of(function) and ("ses:SendEmail", "ses:identity/${MailIdentity}") in _of(function)
    for function in ("DispatchFunction", "WebhookFunction"):  # they hand it over
        assert stripe not in _of(function)
        assert not any(action == "ses:SendEmail" for action, _ in _of(function))
    assert ("sqs:SendMessage", "CollectQueue") in _of("DispatchFunction")  # a job it ends: aftercare by collect
    assert token not in _of("WebhookFunction") and token in _of("DispatchFunction")
    assert ("sqs:SendMessage", "DispatchQueue") in _of("WebhookFunction")  # an orphan: canceled by dispatch

"""The AWS gate in front of moto: the official client, with a function's keys, gets exactly what that function's
role allows — and AWS's own errors, recorded, for the rest. Roles are the real template's, as SAM translates them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from infra.local.aws_gate.gate import AwsGate, Caller
from infra.local.aws_gate.identities import ADMIN_KEY, LOCAL_SECRET, LocalIdentities
from infra.local.aws_gate.request import AwsRequest
from infra.local.provision import create_queues, create_tables
from infra.local.template import LocalTemplate

pytestmark = pytest.mark.integration

REGION, ACCOUNT = "us-east-1", "123456789012"
MAIL = "portrait-studio.local"


@dataclass
class Gated:
    gate: AwsGate
    identities: LocalIdentities
    table: str
    queues: dict[str, str]
    calls: list[tuple[Caller, AwsRequest, int]]

    def client(self, service: str, key: str) -> Any:
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.gate.url,
            aws_access_key_id=key,
            aws_secret_access_key=LOCAL_SECRET,
        )

    def as_function(self, service: str, function: str) -> Any:
        return self.client(service, self.identities.key_of(function))

    def denied(self) -> list[dict[str, str]]:
        _, _, body = self.gate.route("GET")
        return list(json.loads(body)["denied"])


@pytest.fixture
def gated(moto_url: str) -> Iterator[Gated]:
    prefix = f"gate-{uuid.uuid4().hex[:6]}"
    template = LocalTemplate.read()
    tables = {logical: f"{prefix}-{logical}" for logical in template.tables}
    queues = {logical: f"{moto_url}/{ACCOUNT}/{prefix}-{logical}" for logical in template.queues}
    identities = LocalIdentities(
        None,
        list(template.functions),
        {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "MailIdentity": MAIL, "Environment": "local"},
        names={**tables, **queues},
        arns={
            **{t: f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{n}" for t, n in tables.items()},
            **{q: f"arn:aws:sqs:{REGION}:{ACCOUNT}:{prefix}-{q}" for q in template.queues},
        },
    )
    admin = {"region_name": REGION, "endpoint_url": moto_url}
    create_tables(boto3.client("dynamodb", **admin), template, tables)
    create_queues(
        boto3.client("sqs", **admin), template, prefix, lambda q: f"arn:aws:sqs:{REGION}:{ACCOUNT}:{prefix}-{q}", 30
    )
    ssm = boto3.client("ssm", **admin)
    for name in ("replicate-api-token", "stripe-secret-key"):
        ssm.put_parameter(Name=f"/portrait-studio/local/{name}", Value="secret", Type="SecureString", Overwrite=True)
    boto3.client("sesv2", **admin).create_email_identity(EmailIdentity=MAIL)
    calls: list[tuple[Caller, AwsRequest, int]] = []
    gate = AwsGate(
        moto_url,
        identities.roles,
        identities.callers(),
        lambda: datetime.now(UTC),
        region=REGION,
        account=ACCOUNT,
        on_call=lambda caller, request, _sent, status, _answer: calls.append((caller, request, status)),
    )
    gate.start()
    yield Gated(gate, identities, tables["JobsTable"], queues, calls)
    gate.stop()


def _code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


def test_a_granted_call_goes_through_and_is_counted_as_the_functions(gated: Gated) -> None:
    dynamodb = gated.as_function("dynamodb", "ApiFunction")
    dynamodb.put_item(TableName=gated.table, Item={"pk": {"S": "job#1"}, "sk": {"S": "job"}})
    item = dynamodb.get_item(TableName=gated.table, Key={"pk": {"S": "job#1"}, "sk": {"S": "job"}})
    assert item["Item"]["pk"]["S"] == "job#1"
    assert [(c.function, r.action) for c, r, _ in gated.calls] == [
        ("ApiFunction", "dynamodb:PutItem"),
        ("ApiFunction", "dynamodb:GetItem"),
    ]
    assert gated.denied() == []


def test_a_secret_outside_the_role_is_refused_as_aws_refuses_it_and_recorded(gated: Gated) -> None:
    ssm = gated.as_function("ssm", "WebhookFunction")
    with pytest.raises(ClientError) as refused:
        ssm.get_parameter(Name="/portrait-studio/local/replicate-api-token", WithDecryption=True)
    assert _code(refused.value) == "AccessDeniedException"
    resource = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/portrait-studio/local/replicate-api-token"
    message = str(refused.value)
    assert "ssm:GetParameter" in message and resource in message and "WebhookFunction" in message
    [denial] = gated.denied()
    assert denial["function"] == "WebhookFunction"
    assert (denial["action"], denial["resource"]) == ("ssm:GetParameter", resource)
    assert datetime.fromisoformat(denial["at"]).tzinfo is not None
    assert not gated.calls  # moto never saw it


def test_sqs_refusals_use_sqs_error_code_and_resources_are_checked_not_only_actions(gated: Gated) -> None:
    sqs = gated.as_function("sqs", "CollectFunction")
    dispatch, normalize = gated.queues["DispatchQueue"], gated.queues["NormalizeQueue"]
    sqs.send_message(QueueUrl=dispatch, MessageBody="{}")  # collect may top up dispatch...
    with pytest.raises(ClientError) as refused:
        sqs.send_message(QueueUrl=normalize, MessageBody="{}")  # ...but not queue normalization
    assert _code(refused.value) == "AccessDenied"
    assert [d["resource"] for d in gated.denied()] == [f"arn:aws:sqs:{REGION}:{ACCOUNT}:{normalize.rsplit('/', 1)[1]}"]


def test_email_is_refused_to_a_function_without_ses_and_allowed_to_one_with_it(gated: Gated) -> None:
    message = {
        "FromEmailAddress": f"Portrait Studio <headshots@{MAIL}>",
        "Destination": {"ToAddresses": ["buyer@example.com"]},
        "Content": {"Simple": {"Subject": {"Data": "Ready"}, "Body": {"Text": {"Data": "Your headshots"}}}},
    }
    gated.as_function("sesv2", "CollectFunction").send_email(**message)
    with pytest.raises(ClientError) as refused:
        gated.as_function("sesv2", "ApiFunction").send_email(**message)
    assert _code(refused.value) == "AccessDeniedException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    [denial] = gated.denied()
    assert denial == {
        **denial,
        "action": "ses:SendEmail",
        "resource": f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{MAIL}",
    }


def test_each_item_of_a_transaction_is_authorized_as_its_own_action(gated: Gated) -> None:
    """IAM authorizes TransactWriteItems per item: a Delete inside needs dynamodb:DeleteItem on that table."""
    key = {"pk": {"S": "job#2"}, "sk": {"S": "job"}}
    allowed = gated.as_function("dynamodb", "ApiFunction")
    allowed.transact_write_items(TransactItems=[{"Put": {"TableName": gated.table, "Item": key}}])
    gated.identities.roles.roles["ApiFunction"].statements[:] = [
        s for s in gated.identities.roles.roles["ApiFunction"].statements if "dynamodb:DeleteItem" not in s.actions
    ]
    with pytest.raises(ClientError) as refused:
        allowed.transact_write_items(TransactItems=[{"Delete": {"TableName": gated.table, "Key": key}}])
    assert _code(refused.value) == "AccessDeniedException"
    assert gated.denied()[-1]["action"] == "dynamodb:DeleteItem"


def test_an_index_query_is_authorized_on_the_index_arn(gated: Gated) -> None:
    sweep = gated.as_function("dynamodb", "ExpirySweepFunction")
    sweep.query(
        TableName=gated.table,
        IndexName="by_expiry_hour",
        KeyConditionExpression="expiry_hour = :h",
        ExpressionAttributeValues={":h": {"S": "2026-12-05T18"}},
    )
    assert [r.checks for _, r, _ in gated.calls] == [
        (("dynamodb:Query", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{gated.table}/index/by_expiry_hour"),)
    ]


def test_unknown_keys_are_refused_and_the_admin_key_is_not_a_function(gated: Gated) -> None:
    with pytest.raises(ClientError) as refused:
        gated.client("dynamodb", "AKIAREALKEYFROMALAPTOP").list_tables()
    assert _code(refused.value) == "UnrecognizedClientException"
    gated.client("dynamodb", ADMIN_KEY).list_tables()
    assert gated.denied() == []
    assert [c.kind for c, _, _ in gated.calls] == ["admin"]


def test_an_event_source_polls_with_its_functions_role(gated: Gated) -> None:
    sqs = gated.client("sqs", gated.identities.event_source_key_of("DispatchFunction"))
    sqs.receive_message(QueueUrl=gated.queues["DispatchQueue"], WaitTimeSeconds=0)
    [(caller, request, status)] = gated.calls
    assert (caller.kind, caller.function, request.action, status) == (
        "event_source",
        "DispatchFunction",
        "sqs:ReceiveMessage",
        200,
    )


def test_a_fault_fails_only_the_chosen_write_as_the_service_does_and_the_sdk_retries_it(gated: Gated) -> None:
    fault = {"action": "dynamodb:PutItem", "function": "ApiFunction", "body_contains": "refund_id", "times": 2}
    status, _, _ = gated.gate.route("PUT", "/_local/aws-faults", json.dumps({"fail": [fault]}).encode())
    assert status == 200
    dynamodb = gated.as_function("dynamodb", "ApiFunction")
    other = {"pk": {"S": "job#2"}, "sk": {"S": "job"}}
    dynamodb.put_item(TableName=gated.table, Item=other)  # not the chosen write: through
    chosen = {**other, "refund": {"M": {"refund_id": {"S": "re_1"}}}}
    dynamodb.put_item(TableName=gated.table, Item=chosen)  # failed twice, then the SDK's third try went through
    _, _, listed = gated.gate.route("GET", "/_local/aws-faults")
    assert json.loads(listed)["fail"][0] | {"left": 0, "fired": 2} == json.loads(listed)["fail"][0]
    status, _, _ = gated.gate.route(
        "PUT", "/_local/aws-faults", json.dumps({"fail": [{**fault, "times": 99}]}).encode()
    )
    with pytest.raises(ClientError) as failed:  # more failures than the SDK's tries: the code sees the 500
        dynamodb.put_item(TableName=gated.table, Item=chosen)
    assert _code(failed.value) == "InternalServerError"
    assert gated.denied() == []
    bad, _, _ = gated.gate.route("PUT", "/_local/aws-faults", b'{"fail": [{"action": "UpdateItem"}]}')
    assert bad == 400

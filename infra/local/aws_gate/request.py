"""What one AWS API request asks IAM for: its service, operation, and each (action, resource) to authorize.

Read from the wire as the functions' boto3 sends it: the SigV4 credential scope names the caller's access key
and the service; JSON-protocol services (DynamoDB, SQS, SSM) name the operation in `X-Amz-Target`; REST ones
(SESv2) by method and path, matched against botocore's own service model. Resources follow IAM's service
authorization reference: a DynamoDB index is `table/T/index/I`; a transaction is authorized per item, as the
item's own action (`TransactWriteItems` with a Put needs `dynamodb:PutItem` on that table); an SES send needs
`ses:SendEmail` on the sending identity and on the configuration set it names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

CREDENTIAL = re.compile(r"Credential=(?P<key>[^/,\s]+)/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")
JSON_SERVICES = {"DynamoDB_20120810": "dynamodb", "AmazonSQS": "sqs", "AmazonSSM": "ssm", "TrentService": "kms"}
REST_SERVICES = {"ses": "sesv2"}  # signing name → botocore service model for REST-protocol services


@dataclass(frozen=True)
class AwsRequest:
    access_key: str | None
    service: str  # IAM's action prefix: dynamodb, sqs, ssm, ses, ...
    operation: str
    checks: tuple[tuple[str, str], ...]  # (action, resource) pairs, each must be allowed

    @property
    def action(self) -> str:
        return f"{self.service}:{self.operation}"


def read_request(
    method: str, target: str, headers: Mapping[str, str], body: bytes, region: str, account: str
) -> AwsRequest:
    found = CREDENTIAL.search(headers.get("authorization", ""))
    key = found["key"] if found else None
    signed_service = found["service"] if found else ""
    amz_target = headers.get("x-amz-target", "")
    payload = _json(body)
    if amz_target:
        prefix, _, operation = amz_target.partition(".")
        service = JSON_SERVICES.get(prefix, signed_service or prefix.lower())
    elif signed_service == "sqs" or "Action=" in body.decode("latin-1")[:200]:
        form = dict(parse_qsl(body.decode("latin-1")))  # the query protocol (older SDKs)
        service, operation, payload = signed_service or "sqs", form.get("Action", ""), form
    else:
        service = signed_service
        operation = _rest_operation(REST_SERVICES.get(service, service), method, urlsplit(target).path)
    arn = _Arns(region, account)
    checks = _checks(service, operation, payload, urlsplit(target).path, arn)
    return AwsRequest(key, service, operation, tuple(checks))


class _Arns:
    def __init__(self, region: str, account: str) -> None:
        self.region, self.account = region, account

    def __call__(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"


# IAM has no action of its own for SQS's batch calls: each is authorized as the single-message action.
SQS_BATCH_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def _checks(service: str, operation: str, payload: Mapping[str, Any], path: str, arn: _Arns) -> list[tuple[str, str]]:
    action = f"{service}:{SQS_BATCH_ACTIONS.get(operation, operation) if service == 'sqs' else operation}"
    if service == "dynamodb":
        return _dynamodb_checks(operation, payload, arn)
    if service == "sqs":
        if "QueueUrl" in payload:
            return [(action, arn("sqs", str(payload["QueueUrl"]).rstrip("/").rsplit("/", 1)[-1]))]
        if "QueueName" in payload:
            return [(action, arn("sqs", str(payload["QueueName"])))]
        return [(action, "*")]
    if service == "ssm":
        names = payload.get("Names") or ([payload["Name"]] if "Name" in payload else [])
        if "Path" in payload:
            names = [payload["Path"]]
        return [(action, arn("ssm", "parameter/" + str(n).lstrip("/"))) for n in names] or [(action, "*")]
    if service == "ses" and operation == "SendEmail":
        return _ses_send_checks(action, payload, arn)
    return [(action, "*")]


def _dynamodb_checks(operation: str, payload: Mapping[str, Any], arn: _Arns) -> list[tuple[str, str]]:
    def table(name: str, index: str | None = None) -> str:
        return arn("dynamodb", f"table/{name}" + (f"/index/{index}" if index else ""))

    if operation in ("TransactWriteItems", "TransactGetItems"):
        kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "Get": "GetItem"}
        kinds["ConditionCheck"] = "ConditionCheckItem"
        checks = []
        for item in payload.get("TransactItems", []):
            for kind, spec in item.items():
                checks.append((f"dynamodb:{kinds.get(kind, kind)}", table(spec.get("TableName", ""))))
        return checks
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return [(f"dynamodb:{operation}", table(name)) for name in payload.get("RequestItems", {})]
    if "TableName" in payload:
        return [(f"dynamodb:{operation}", table(payload["TableName"], payload.get("IndexName")))]
    return [(f"dynamodb:{operation}", "*")]


def _ses_send_checks(action: str, payload: Mapping[str, Any], arn: _Arns) -> list[tuple[str, str]]:
    sender = parseaddr(str(payload.get("FromEmailAddress", "")))[1]
    domain = sender.rpartition("@")[2]
    checks = [(action, arn("ses", f"identity/{domain or sender}"))]
    if payload.get("ConfigurationSetName"):
        checks.append((action, arn("ses", f"configuration-set/{payload['ConfigurationSetName']}")))
    return checks


@cache
def _rest_routes(model_name: str) -> list[tuple[str, re.Pattern[str], str]]:
    import botocore.session

    try:
        model = botocore.session.get_session().get_service_model(model_name)
    except Exception:
        return []
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        uri = http.get("requestUri", "/").split("?")[0]
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(uri).replace(r"\+", ""))
        routes.append((http.get("method", "POST"), re.compile(f"^{pattern}$"), name))
    # The most literal route first: `/v2/email/outbound-emails` before `/v2/email/{x}`.
    routes.sort(key=lambda r: r[1].pattern.count("[^/]+"))
    return routes


def _rest_operation(model_name: str, method: str, path: str) -> str:
    for route_method, pattern, name in _rest_routes(model_name):
        if route_method == method and pattern.match(unquote(path)):
            return name
    return f"Unknown{method.title()}"


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}

"""The template's bucket, tables and queues, created in moto as CloudFormation would create them."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from infra.local.template import ROOT, LocalTemplate


def create_bucket(s3: Any, bucket: str, web_origin: str) -> None:
    """The R2 bucket, with infra/r2/cors.json's rules for the local web origin."""
    s3.create_bucket(Bucket=bucket)
    source = ROOT / "infra/r2/cors.json"
    cors = json.loads(source.read_text()) if source.exists() else None
    if cors:
        rules = cors.get("CORSRules", cors) if isinstance(cors, dict) else cors
        for rule in rules:
            rule["AllowedOrigins"] = [web_origin]
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})


def create_tables(dynamodb: Any, template: LocalTemplate, names: Mapping[str, str]) -> None:
    for logical, props in template.tables.items():
        args: dict[str, Any] = {
            "TableName": names[logical],
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if props.get("GlobalSecondaryIndexes"):
            args["GlobalSecondaryIndexes"] = [
                {k: v for k, v in index.items() if k in ("IndexName", "KeySchema", "Projection")}
                for index in props["GlobalSecondaryIndexes"]
            ]
        dynamodb.create_table(**args)
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(
                TableName=args["TableName"],
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )


def create_queues(
    sqs: Any, template: LocalTemplate, prefix: str, arn_of: Callable[[str], str], visibility_timeout_s: int | None
) -> dict[str, str]:
    """Every queue (dead-letter queues first: the others point at them); their URLs by logical id. Each hides a
    received message for `visibility_timeout_s`, or, when None, for the template's VisibilityTimeout (SQS's
    default, 30 s, where it sets none)."""
    urls = {}
    for logical, props in sorted(template.queues.items(), key=lambda item: "RedrivePolicy" in item[1]):
        visibility = visibility_timeout_s if visibility_timeout_s is not None else props.get("VisibilityTimeout", 30)
        attributes = {"VisibilityTimeout": str(visibility)}
        redrive = props.get("RedrivePolicy")
        if redrive:
            target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": arn_of(target), "maxReceiveCount": int(redrive["maxReceiveCount"])}
            )
        urls[logical] = sqs.create_queue(QueueName=f"{prefix}-{logical}", Attributes=attributes)["QueueUrl"]
    return urls

"""The cloud account, locally: moto behind the AWS (IAM) gate and, standing in for R2, the S3 gate.

The template's bucket, tables, queues and email identity are created in it as CloudFormation would create them,
each function's role and keys are its identities (`aws_gate/identities.py`), and the deploy-time parameters go
to its SSM. The stack's own set-up calls go to moto directly, with the admin key.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from infra.local.account import ACCOUNT, REGION
from infra.local.aws_gate.gate import AwsGate
from infra.local.aws_gate.identities import LocalIdentities, enforced
from infra.local.moto_setup import prepare_moto
from infra.local.ports import moto_server, port_of
from infra.local.provision import create_bucket, create_queues, create_tables
from infra.local.s3_gate.gate import S3Gate
from infra.local.template import LocalTemplate
from infra.local.usage.counters import Usage


class LocalCloud:
    """moto and its two gates on free loopback ports, named as the local stack names its resources."""

    def __init__(
        self, template: LocalTemplate, template_path: Path | None, moto_socket: socket.socket, mail_identity: str
    ) -> None:
        self.template = template
        self._moto_socket = moto_socket  # listening already: moto serves on it once started
        self.mail_identity = mail_identity
        self.aws_url = f"http://127.0.0.1:{port_of(moto_socket)}"
        self.r2_url = self.aws_url
        self.aws_gate_url = ""
        self.prefix = "portrait-studio-local"
        self.bucket = f"{self.prefix}-bucket"
        self.table_names = {logical: f"{self.prefix}-{logical}" for logical in self.template.tables}
        self.identities = LocalIdentities(
            template_path,
            list(self.template.functions),
            {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "MailIdentity": mail_identity, "Environment": "local"},
            names={**self.table_names, **{q: self.queue_url(q) for q in self.template.queues}},
            arns={
                **{t: f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{n}" for t, n in self.table_names.items()},
                **{q: self.queue_arn(q) for q in self.template.queues},
            },
        )
        self.r2_credentials = {"LOCALR2KEY": uuid.uuid4().hex}  # the R2 API token's key pair (R2 is not IAM)
        self.queue_urls: dict[str, str] = {}
        self._moto: Any = None
        self._gate: S3Gate | None = None
        self.aws_gate: AwsGate | None = None

    def queue_url(self, logical: str) -> str:
        return f"{self.aws_url}/{ACCOUNT}/{self.prefix}-{logical}"

    def queue_arn(self, logical: str) -> str:
        return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.prefix}-{logical}"

    @staticmethod
    def param(name: str) -> str:
        return f"/portrait-studio/local/{name}"

    def start(self, usage: Usage, now: Callable[[], datetime]) -> None:
        prepare_moto()
        # werkzeug's access log would print every presigned URL, signature included.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._moto = moto_server(self._moto_socket)
        self._moto.start()
        self._moto_socket.close()  # moto serves on a duplicate of it
        # The object store as clients see it: moto behind a gate that checks presigned URLs like R2 does
        # (signature, expiry, signed Content-Type and Content-Length); moto itself checks none of them.
        # Only the R2 key signs requests to it (as R2 knows no AWS role), by header or presigned URL.
        self._gate = S3Gate(
            upstream=self.aws_url,
            credentials=self.r2_credentials,
            header_keys=frozenset(self.r2_credentials),
            on_forward=usage.count_r2,
        )
        self._gate.start()
        self.r2_url = str(self._gate.url)
        self.aws_gate = AwsGate(
            self.aws_url,
            self.identities.roles,
            self.identities.callers(),
            now,
            region=REGION,
            account=ACCOUNT,
            enforced=enforced(),
            on_call=usage.count_aws,
        )
        self.aws_gate.start()
        self.aws_gate_url = self.aws_gate.url

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.aws_url)

    def provision(self, web_origin: str, visibility_timeout_s: int | None) -> None:
        create_bucket(self.client("s3"), self.bucket, web_origin)
        create_tables(self.client("dynamodb"), self.template, self.table_names)
        self.client("sesv2").create_email_identity(EmailIdentity=self.mail_identity)
        self.queue_urls = create_queues(
            self.client("sqs"), self.template, self.prefix, self.queue_arn, visibility_timeout_s
        )

    def visibility_timeout_s(self, queue: str) -> int:
        """The queue's VisibilityTimeout as SQS has it (not as the stack asked for it)."""
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_urls[queue], AttributeNames=["VisibilityTimeout"]
        )["Attributes"]
        return int(attributes["VisibilityTimeout"])

    def put_parameters(self, values: list[tuple[str, str]]) -> None:
        """SSM SecureStrings, as the deploy puts them: (name under `param`, value)."""
        ssm = self.client("ssm")
        for name, value in values:
            ssm.put_parameter(Name=self.param(name), Value=value, Type="SecureString", Overwrite=True)

    def stop(self) -> None:
        if self._gate:
            self._gate.stop()
        if self.aws_gate:
            self.aws_gate.stop()
        if self._moto:
            self._moto.stop()
        else:
            self._moto_socket.close()  # stopped before moto started

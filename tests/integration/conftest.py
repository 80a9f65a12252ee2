"""Integration tier: the real adapters against a moto server (S3 standing in for R2, SQS, DynamoDB, SSM), and the
local emulators (Replicate, Stripe) with a webhook receiver."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
import pytest

from infra.local.emulators.loopback import LoopbackEmulator
from infra.local.moto_setup import prepare_moto
from infra.local.ports import listening_socket, moto_server, port_of
from infra.local.replicate.emulator import ReplicateEmulator
from infra.local.template import LocalTemplate
from portrait_studio import wiring
from portrait_studio.config import Settings
from tests.fakes import FixedClock
from tests.integration.emulators import REPLICATE_TOKEN, Receiver, serving

REGION = "us-east-1"
EmulatorT = TypeVar("EmulatorT", bound=LoopbackEmulator)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    prepare_moto()  # moto as the local stack's cloud runs it (DynamoDB requests atomic, as in AWS)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    sock = listening_socket()
    url = f"http://127.0.0.1:{port_of(sock)}"
    server = moto_server(sock)
    server.start()
    sock.close()  # moto serves on a duplicate of it
    yield url
    server.stop()


@dataclass
class Cloud:
    settings: Settings
    clock: FixedClock
    container: wiring.Container
    s3: Any
    table: Any


@pytest.fixture
def cloud(moto_url: str) -> Cloud:
    """Fresh resources (named after the test) created from template.yaml, and a container wired to them."""
    suffix = uuid.uuid4().hex[:8]
    template = LocalTemplate.read()
    dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_url)
    props = template.tables["JobsTable"]
    table_name = f"jobs-{suffix}"
    dynamodb.create_table(
        TableName=table_name,
        KeySchema=props["KeySchema"],
        AttributeDefinitions=props["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[
            {k: v for k, v in index.items() if k in ("IndexName", "KeySchema", "Projection")}
            for index in props["GlobalSecondaryIndexes"]
        ],
    )
    idempotency = template.tables["IdempotencyTable"]
    dynamodb.create_table(
        TableName=f"idempotency-{suffix}",
        KeySchema=idempotency["KeySchema"],
        AttributeDefinitions=idempotency["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
    )
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_url)
    bucket = f"bucket-{suffix}"
    s3.create_bucket(Bucket=bucket)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=moto_url)
    queues = {name: sqs.create_queue(QueueName=f"{name}-{suffix}")["QueueUrl"] for name in ("n", "d", "c")}
    settings = Settings(
        aws_endpoint_url=moto_url,
        r2_endpoint_url=moto_url,
        r2_region=REGION,
        bucket=bucket,
        table_name=table_name,
        idempotency_table_name=f"idempotency-{suffix}",
        normalize_queue_url=queues["n"],
        dispatch_queue_url=queues["d"],
        collect_queue_url=queues["c"],
    )
    clock = FixedClock()
    container = wiring.Container(settings=settings, clock=clock)
    table = boto3.resource("dynamodb", region_name=REGION, endpoint_url=moto_url).Table(table_name)
    return Cloud(settings, clock, container, s3, table)


# --------------------------------------------------------------------------- the emulators' tests


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback (tests/integration/emulators.py)."""
    receiver = Receiver()
    with serving(receiver.handler()) as base:
        receiver.base = base
        yield receiver


@pytest.fixture
def start_emulator() -> Iterator[Callable[[EmulatorT], EmulatorT]]:
    """Starts an emulator for the test and stops it when the test ends."""
    started: list[LoopbackEmulator] = []

    def start(emulator: EmulatorT) -> EmulatorT:
        emulator.start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def make_replicate(
    start_emulator: Callable[[ReplicateEmulator], ReplicateEmulator],
) -> Callable[..., ReplicateEmulator]:
    """Started Replicate emulators taking REPLICATE_TOKEN, stepping every 0.05 s unless `step_delay_s` says so."""

    def make(**kwargs: Any) -> ReplicateEmulator:
        return start_emulator(ReplicateEmulator(api_token=REPLICATE_TOKEN, **{"step_delay_s": 0.05, **kwargs}))

    return make

"""Headshots that look like the person, end to end (docs/photos-and-identity.md "How we check it's you").

One person per job at intake; every output judged against the person's references (drops topped up); results
ordered by likeness; and the face embeddings behind all of it never leave the invocation that computed them:
a whole job's table items, queue messages, bucket objects and logs hold no run of 128 numbers.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from infra.local.client import Job, PortraitClient, running_stack
from tests.e2e.conftest import FAST, GOOD, SAMPLES, items_of, objects_under, predictions

pytestmark = pytest.mark.e2e
PERSON_B = SAMPLES / "person-b.png"
CORPUS = Path(os.environ.get("PORTRAIT_CORPUS") or SAMPLES.parents[1] / "shared" / "corpus")
# A kept headshot is within identity_output_max_distance of the consensus: likeness 50 or more.
MIN_LIKENESS = 50


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A stack of its own that records every queue message its functions receive."""
    state = tmp_path_factory.mktemp("identity")
    messages = state / "messages.jsonl"
    with running_stack(state, env={**FAST, "LOCAL_RECORD_MESSAGES": str(messages)}) as info:
        info |= {"log_path": state / "stack.log", "messages_path": messages}
        yield info


@pytest.fixture
def client(recorded: dict[str, Any]) -> Iterator[PortraitClient]:
    api = PortraitClient(recorded["api_url"])
    yield api
    api.close()


@pytest.fixture
def faults(recorded: dict[str, Any]) -> Iterator[Any]:
    url = f"{recorded['replicate_url']}/_emulator/faults"
    yield lambda profile: httpx.put(url, json=profile).raise_for_status()
    httpx.delete(url).raise_for_status()


def delivered(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for style in view["styles"] for item in style["items"]]


@dataclass(frozen=True)
class FinishedJob:
    job: Job
    waiting: dict[str, Any]  # the job when its checkout opened
    view: dict[str, Any]  # the job when it finished


@pytest.fixture(scope="module")
def somebody_else_among_them(recorded: dict[str, Any]) -> FinishedJob:
    """One whole job from three selfies and a photo of somebody else, paid and finished: what two tests read."""
    files = [*GOOD, PERSON_B]
    client = PortraitClient(recorded["api_url"])
    try:
        job = client.create_job(files)
        client.upload_all(job, files)
        client.submit(job).raise_for_status()
        waiting = client.pay(job)
        return FinishedJob(job, waiting, client.wait_for(job, ("ready", "partial", "failed"), timeout_s=240))
    finally:
        client.close()


def test_a_photo_of_somebody_else_is_refused_and_the_job_is_ready(somebody_else_among_them: FinishedJob) -> None:
    waiting, view = somebody_else_among_them.waiting, somebody_else_among_them.view
    codes = {f["name"]: f["code"] for f in waiting["files"]}
    assert codes == {p.name: "accepted" for p in GOOD} | {PERSON_B.name: "different_person"}
    assert view["status"] == "ready" and view["images_done"] >= 30
    for style in view["styles"]:
        scores = [item["likeness"] for item in style["items"]]
        assert scores == sorted(scores, reverse=True), style["style"]  # the most like you first
        assert [item["url"] for item in style["items"]] == style["results"]
        assert [item["closest"] for item in style["items"]][:2] == [True, True]
    assert min(item["likeness"] for item in delivered(view)) >= MIN_LIKENESS


@pytest.mark.skipif(not (CORPUS / "MANIFEST.json").is_file(), reason=f"photo corpus not found at {CORPUS}")
def test_photos_of_three_different_people_are_refused_before_payment(
    recorded: dict[str, Any], client: PortraitClient
) -> None:
    files = [GOOD[0], PERSON_B, CORPUS / "faces" / "astronaut.png"]
    job = client.create_job(files)
    client.upload_all(job, files)
    client.submit(job).raise_for_status()
    view = client.wait_for(job, ("collecting", "awaiting_payment"), timeout_s=120)
    assert view["status"] == "collecting"
    assert view["intake_error"]["code"] == "no_single_person"
    assert "different people" in view["message"]
    assert view["checkout_url"] is None
    assert not [p for p in predictions(recorded) if f"job={job.job_id}" in (p.get("webhook") or "")]


def test_outputs_of_somebody_else_or_nobody_are_dropped_and_topped_up(
    recorded: dict[str, Any], client: PortraitClient, faults: Any
) -> None:
    faults({"identity_drift_rate": 0.3, "faceless_rate": 0.2, "seed": 7})
    job = client.create_job(GOOD)
    client.upload_all(job, GOOD)
    client.submit(job).raise_for_status()
    client.pay(job)
    view = client.wait_for(job, ("ready", "partial", "failed"), timeout_s=300)
    assert view["status"] == "ready" and view["images_done"] >= 30, view.get("failure_reason")
    made = [p for p in predictions(recorded) if f"job={job.job_id}" in (p.get("webhook") or "")]
    outputs = sum(len(p.get("output") or []) for p in made if p["status"] == "succeeded")
    assert len(made) > 8 and outputs > view["images_done"]  # drops happened and were topped up
    assert min(item["likeness"] for item in delivered(view)) >= MIN_LIKENESS


# --- embeddings stay in memory ---------------------------------------------------------------------
NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
NUMBER_RUN = re.compile(rf"(?:{NUMBER}[\s,;\]\[]+){{127}}{NUMBER}")


def float_runs(data: bytes, run: int = 128) -> bool:
    """A run of `run` float32 or float64 values that could be a face descriptor (finite, |x| in [1e-4, 1),
    most of them: dlib's descriptors are small signed numbers). Random image bytes never make one."""
    for size, code in ((4, "f"), (8, "d")):
        for offset in range(size):
            usable = (len(data) - offset) // size
            if usable < run:
                continue
            values = struct.unpack_from(f"<{usable}{code}", data, offset)
            streak = 0
            for value in values:
                streak = streak + 1 if 1e-4 <= abs(value) < 1.0 else 0
                if streak >= run:
                    return True
    return False


def test_the_scanners_find_an_embedding_wherever_it_would_hide() -> None:
    descriptor = [(-1) ** i * (0.01 + i / 1000) for i in range(128)]
    assert NUMBER_RUN.search(json.dumps({"face": descriptor}))
    assert NUMBER_RUN.search(" ".join(f"{v:.6f}" for v in descriptor))
    assert float_runs(b"PNG..." + struct.pack("<128f", *descriptor) + b"...")
    assert float_runs(b"x" + struct.pack("<128d", *descriptor))
    assert not NUMBER_RUN.search(json.dumps(descriptor[:127]))


def test_no_face_embedding_is_stored_queued_or_logged(
    recorded: dict[str, Any], somebody_else_among_them: FinishedJob
) -> None:
    job = somebody_else_among_them.job
    assert somebody_else_among_them.view["status"] == "ready"
    texts = {
        "table items": json.dumps(items_of(recorded, job.job_id), default=str),
        "queue messages": Path(recorded["messages_path"]).read_text(),
        "logs": Path(recorded["log_path"]).read_text(errors="replace"),
    }
    assert job.job_id in texts["queue messages"]  # the recorder saw this job's messages
    for where, text in texts.items():
        assert not NUMBER_RUN.search(text), f"a run of 128 numbers in the {where}"
    s3 = boto3.client("s3", region_name=recorded["region"], endpoint_url=recorded["aws_endpoint_url"])
    keys = objects_under(recorded, job.job_id)
    assert keys
    for key in keys:
        body = s3.get_object(Bucket=recorded["bucket"], Key=key)["Body"].read()
        assert not NUMBER_RUN.search(body.decode("latin-1")), key
        assert not float_runs(body), key

"""The handlers, driven by the shared sample events in events/, with in-memory fakes behind them."""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from functions.api import app as api
from functions.dispatch import app as dispatch
from functions.expiry_sweep import app as sweep
from functions.normalize import app as normalize
from functions.reconcile import app as reconcile
from functions.webhook import app as webhook
from portrait_studio import wiring
from tests.fakes import LambdaContext as Context
from tests.fakes import MemoryIdempotency
from tests.unit.conftest import World
from tests.unit.helpers import generating_job

EVENTS = Path(__file__).resolve().parents[2] / "events"
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


class Secrets:
    def get(self, name: str) -> str:
        return SECRET


def event(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((EVENTS / name).read_text()))


@pytest.fixture(autouse=True)
def installed(world: World) -> Iterator[World]:
    container = wiring.Container(
        settings=world.settings,
        clock=world.clock,
        store=world.store,
        blobs=world.blobs,
        queue=world.queue,
        generator=world.generator,
        downloader=world.downloader,
        metrics=world.metrics,
        secrets=Secrets(),
        idempotency=MemoryIdempotency(),
    )
    wiring.use(container)
    yield world
    wiring.use(None)


def call_api(e: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = api.lambda_handler(e, Context())
    body = json.loads(response["body"]) if response.get("body") else {}
    return response["statusCode"], body, response.get("headers", {})


def create(files: list[dict[str, Any]] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    e = event("api_create_job.json")
    if files is not None:
        e["body"] = json.dumps({"files": files})
    return call_api(e)


def with_job(name: str, job_id: str, token: str | None) -> dict[str, Any]:
    e = event(name)
    default = "0123456789abcdef0123456789abcdef"
    e["rawPath"] = e["rawPath"].replace(default, job_id)
    e["requestContext"]["http"]["path"] = e["rawPath"]
    e["pathParameters"] = {"id": job_id}
    e["headers"].pop("authorization", None)
    if token is not None:
        e["headers"]["authorization"] = f"Bearer {token}"
    return e


def test_create_job_returns_presigned_uploads_and_a_token() -> None:
    status, body, headers = create()
    assert status == 201
    assert len(body["token"]) >= 32 and len(body["job_id"]) == 32
    assert [u["method"] for u in body["uploads"]] == ["PUT"] * 3
    assert body["uploads"][0]["headers"] == {"Content-Type": "image/heic", "Content-Length": "2182707"}
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("files", "status", "code"),
    [
        ([{"name": "a.jpg", "content_type": "image/jpeg", "bytes": 10}] * 2, 400, "file_count_out_of_range"),
        ([{"name": "a.jpg", "content_type": "image/jpeg", "bytes": 10}] * 11, 400, "file_count_out_of_range"),
        ([{"name": "a.gif", "content_type": "image/gif", "bytes": 10}] * 3, 400, "unsupported_content_type"),
        ([{"name": "a.jpg", "content_type": "image/jpeg", "bytes": 31 * 1024 * 1024}] * 3, 413, "file_too_large"),
        ([{"name": "a.jpg", "content_type": "image/jpeg"}] * 3, 400, "invalid_request"),
    ],
)
def test_bad_job_requests_get_json_errors_with_stable_codes(
    files: list[dict[str, Any]], status: int, code: str
) -> None:
    got_status, body, _ = create(files)
    assert (got_status, body["error"]["code"]) == (status, code)
    assert body["error"]["message"] and "Traceback" not in json.dumps(body)


def test_wrong_missing_and_other_jobs_tokens_all_look_like_an_unknown_job() -> None:
    _, first, _ = create()
    _, second, _ = create()
    answers = [
        call_api(with_job("api_get_job.json", first["job_id"], "wrong")),
        call_api(with_job("api_get_job.json", first["job_id"], None)),
        call_api(with_job("api_get_job.json", first["job_id"], second["token"])),
        call_api(with_job("api_get_job.json", "f" * 32, first["token"])),
        call_api(with_job("api_delete_job.json", first["job_id"], "wrong")),
        call_api(with_job("api_submit_job.json", first["job_id"], "wrong")),
        call_api(routed(with_job("api_get_job.json", first["job_id"], second["token"]), "GET", "archive")),
        call_api(routed(with_job("api_submit_job.json", first["job_id"], None), "POST", "files")),
        call_api(routed(with_job("api_delete_job.json", first["job_id"], "wrong"), "DELETE", "files/" + "a" * 16)),
    ]
    assert {(s, b["error"]["code"]) for s, b, _ in answers} == {(404, "job_not_found")}
    status, body, _ = call_api(with_job("api_get_job.json", first["job_id"], first["token"]))
    assert status == 200 and body["status"] == "collecting"


def routed(e: dict[str, Any], method: str, suffix: str) -> dict[str, Any]:
    """The same job's event, sent to another of its routes."""
    e["rawPath"] = e["requestContext"]["http"]["path"] = e["rawPath"].split("/submit")[0] + "/" + suffix
    e["requestContext"]["http"]["method"] = method
    if suffix == "files":
        e["body"] = json.dumps({"files": [{"name": "a.jpg", "content_type": "image/jpeg", "bytes": 10}]})
    return e


def test_submit_before_the_uploads_arrived_is_refused() -> None:
    _, job, _ = create()
    status, body, _ = call_api(with_job("api_submit_job.json", job["job_id"], job["token"]))
    assert status == 409 and body["error"]["code"] == "uploads_incomplete"
    assert len(body["error"]["details"]["missing"]) == 3


def test_delete_answers_204_with_a_receipt_and_then_404(installed: World) -> None:
    _, job, _ = create()
    response = api.lambda_handler(with_job("api_delete_job.json", job["job_id"], job["token"]), Context())
    assert response["statusCode"] == 204
    assert response["headers"]["X-Deletion-Receipt"].startswith("del_")
    status, _, _ = call_api(with_job("api_get_job.json", job["job_id"], job["token"]))
    assert status == 404


def signed(body: dict[str, Any], job_id: str, slot: str) -> dict[str, Any]:
    e = event("webhook_replicate.json")
    raw = json.dumps(body)
    msg_id = f"msg_{time.time_ns()}"
    now = int(installed_clock_now().timestamp())
    from datetime import UTC, datetime

    signature = Webhook(SECRET).sign(msg_id, datetime.fromtimestamp(now, UTC), raw)
    e["body"] = raw
    e["headers"].update({"webhook-id": msg_id, "webhook-timestamp": str(now), "webhook-signature": signature})
    e["queryStringParameters"] = {"job": job_id, "slot": slot}
    return e


def installed_clock_now() -> Any:
    return wiring.container().clock.now()


def test_webhook_with_a_forged_signature_is_401_and_a_real_one_is_applied(installed: World) -> None:
    response = webhook.lambda_handler(event("webhook_replicate.json"), Context())
    assert response["statusCode"] == 401
    assert json.loads(response["body"])["error"]["code"] == "invalid_webhook"
    job_id = generating_job(installed)
    installed.generation.dispatch(job_id)
    slot = installed.store.list_slots(job_id)[0]
    body = {"id": slot.prediction_id, "status": "succeeded", "output": ["https://x/0.png"], "metrics": {}}
    response = webhook.lambda_handler(signed(body, job_id, slot.slot), Context())
    assert response["statusCode"] == 200 and json.loads(response["body"])["result"] == "completed"
    unknown = webhook.lambda_handler(signed({"id": "nope", "status": "succeeded"}, job_id, slot.slot), Context())
    assert unknown["statusCode"] == 200 and json.loads(unknown["body"])["result"] == "unknown"


def test_a_replayed_webhook_id_gets_the_first_answer_and_changes_nothing(installed: World) -> None:
    job_id = generating_job(installed)
    installed.generation.dispatch(job_id)
    slot = installed.store.list_slots(job_id)[0]
    installed.generator.finish(slot.prediction_id, 4)
    body = {
        "id": slot.prediction_id,
        "status": "succeeded",
        "output": installed.generator.remote[slot.prediction_id].output,
    }
    e = signed(body, job_id, slot.slot)
    assert json.loads(webhook.lambda_handler(e, Context())["body"])["result"] == "completed"
    assert json.loads(webhook.lambda_handler(copy.deepcopy(e), Context())["body"])["result"] == "completed"
    assert len(installed.queue.take("q-collect")) == 1


def test_a_malformed_message_is_dropped_without_failing_the_batch() -> None:
    e = event("sqs_normalize.json")
    e["Records"][0]["body"] = "{not json"
    assert normalize.lambda_handler(e, Context()) == {"batchItemFailures": []}


def test_rate_limited_dispatch_succeeds_and_sends_itself_again_after_the_named_wait(installed: World) -> None:
    job_id = generating_job(installed)
    installed.generator.rate_limit_next = 1
    e = event("sqs_dispatch.json")
    e["Records"][0]["body"] = json.dumps({"job_id": job_id})
    # The message is done (no receive spent towards the dead-letter queue); a delayed one comes back.
    assert dispatch.lambda_handler(e, Context()) == {"batchItemFailures": []}
    [again] = installed.queue.take("q-dispatch")
    assert again["attempt"] == 1 and installed.queue.delays[-1] == ("q-dispatch", 7)
    e["Records"][0]["body"] = json.dumps(again)
    assert dispatch.lambda_handler(e, Context()) == {"batchItemFailures": []}
    assert len(installed.generator.created) == 8


def test_scheduled_functions_run_on_their_events() -> None:
    assert set(reconcile.lambda_handler(event("schedule_reconcile.json"), Context())) >= {"jobs", "fetched"}
    assert "due" in sweep.lambda_handler(event("schedule_expiry_sweep.json"), Context())
    assert "orphans" in sweep.lambda_handler(event("schedule_nightly_audit.json"), Context())


def test_a_photo_that_never_arrived_can_be_removed_while_collecting(installed: World) -> None:
    _, job, _ = create()
    file_id = job["uploads"][0]["file_id"]
    e = with_job("api_delete_job.json", job["job_id"], job["token"])
    e["rawPath"] = e["requestContext"]["http"]["path"] = f"/jobs/{job['job_id']}/files/{file_id}"
    e["routeKey"] = "DELETE /jobs/{id}/files/{file_id}"
    assert api.lambda_handler(e, Context())["statusCode"] == 204
    _, body, _ = call_api(with_job("api_get_job.json", job["job_id"], job["token"]))
    assert [f["file_id"] for f in body["files"]] == [u["file_id"] for u in job["uploads"][1:]]
    again = api.lambda_handler(e, Context())
    assert again["statusCode"] == 409
    assert json.loads(again["body"])["error"]["code"] == "job_state_conflict"

"""The local Replicate emulator, driven by the official `replicate` client and checked with `standardwebhooks`."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from PIL import Image, ImageDraw
from replicate.client import Client
from replicate.exceptions import ReplicateError
from replicate.prediction import Prediction
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from infra.local.replicate.emulator import ReplicateEmulator
from infra.local.replicate.model import NSFW_ERROR
from portrait_studio.adapters.replicate_http import ReplicateHttpGenerator
from portrait_studio.errors import GeneratorRateLimited
from tests.integration.emulators import PHOTOMAKER_VERSION as VERSION
from tests.integration.emulators import REPLICATE_TOKEN as TOKEN
from tests.integration.emulators import Delivery, Receiver, replicate_client, serving

pytestmark = pytest.mark.integration

PROMPT = "a professional headshot of a woman img, studio lighting"
EVENTS = ["start", "completed"]

# A prediction as Replicate's API returns it. Derived from `schemas_prediction_response` in Replicate's OpenAPI
# document (https://api.replicate.com/openapi.json): its required fields, property types and status enum, and
# `urls` with `get`, `cancel` and `web` required there. Tighter than that document where the live API is:
# `stream` is required too (every prediction of a streaming-capable version carries it), `started_at` and
# `completed_at` are null until reached, and `webhook`/`webhook_events_filter` echo the request. No other
# property is allowed, so a misspelt key fails. `format: uri` goes unchecked without rfc3987, hence patterns.
_TIME = {"type": "string", "format": "date-time"}
_URL = {"type": "string", "pattern": "^https?://[^/]+/"}
PREDICTION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["id", "model", "version", "input", "output", "data_removed", "error", "status", "created_at", "urls"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": "^[a-z0-9]+$"},
        "model": {"type": "string", "pattern": "^[^/]+/[^/]+$"},
        "version": {"type": "string"},
        "input": {"type": "object"},
        "output": {},
        "logs": {"type": "string"},
        "error": {"type": ["string", "null"]},
        "status": {"enum": ["starting", "processing", "succeeded", "failed", "canceled", "aborted"]},
        "source": {"enum": ["web", "api"]},
        "data_removed": {"type": "boolean"},
        "created_at": _TIME,
        "started_at": {"anyOf": [_TIME, {"type": "null"}]},
        "completed_at": {"anyOf": [_TIME, {"type": "null"}]},
        "deadline": _TIME,
        "deployment": {"type": "string"},
        "metrics": {
            "type": "object",
            "properties": {"predict_time": {"type": "number"}, "total_time": {"type": "number"}},
        },
        "urls": {
            "type": "object",
            "required": ["get", "cancel", "web", "stream"],
            "additionalProperties": False,
            "properties": {
                "get": _URL,
                "cancel": _URL,
                "web": {"type": "string", "pattern": "^https://replicate\\.com/p/[a-z0-9]+$"},
                "stream": {"type": "string", "pattern": "^https://[^/]+/"},
            },
        },
        "webhook": _URL,
        "webhook_events_filter": {"type": "array", "items": {"enum": ["start", "output", "logs", "completed"]}},
    },
}


# --------------------------------------------------------------------------- loopback helpers


def _reference_jpeg() -> bytes:
    image = Image.new("RGB", (900, 600), (180, 150, 120))
    draw = ImageDraw.Draw(image)
    draw.ellipse((300, 100, 600, 500), fill=(220, 180, 150))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def reference_url() -> Iterator[str]:
    jpeg = _reference_jpeg()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path.startswith("/ref.jpg")
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(jpeg) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(jpeg)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        yield f"{url}/ref.jpg?X-Amz-Signature=abc"


@pytest.fixture
def emulator(make_replicate: Callable[..., ReplicateEmulator]) -> ReplicateEmulator:
    return make_replicate()


def _client(emulator: ReplicateEmulator) -> Client:
    return replicate_client(emulator, poll_interval_s=0.05)


@pytest.fixture
def client(emulator: ReplicateEmulator) -> Client:
    return _client(emulator)


@pytest.fixture
def faults(emulator: ReplicateEmulator) -> Callable[[dict[str, Any]], None]:
    def put(profile: dict[str, Any]) -> None:
        response = httpx.put(f"{emulator.url}/_emulator/faults", json=profile)
        assert response.status_code == 200, response.text

    return put


# --------------------------------------------------------------------------- helpers


def _input(reference_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "prompt": PROMPT,
        "input_image": reference_url,
        "negative_prompt": "lowres, bad anatomy",
        "style_name": "Photographic (Default)",
        "num_steps": 20,
        "style_strength_ratio": 20,
        "guidance_scale": 5,
        "num_outputs": 1,
        **overrides,
    }


def _create(client: Client, receiver: Receiver, tag: str, model_input: dict[str, Any]) -> Prediction:
    prediction: Prediction = client.predictions.create(
        version=VERSION, input=model_input, webhook=receiver.url(tag), webhook_events_filter=EVENTS
    )
    return prediction


def _finished(client: Client, prediction: Prediction, timeout_s: float = 10.0) -> Prediction:
    deadline = time.monotonic() + timeout_s
    while prediction.status not in ("succeeded", "failed", "canceled"):
        assert time.monotonic() < deadline, f"prediction stuck in {prediction.status}"
        time.sleep(client.poll_interval)
        prediction.reload()
    return prediction


def _verify(secret: str, delivery: Delivery) -> dict[str, Any]:
    verified: dict[str, Any] = Webhook(secret).verify(delivery.body, delivery.headers)
    return verified


def _statuses(deliveries: list[Delivery]) -> list[str]:
    return [d.payload["status"] for d in deliveries]


# --------------------------------------------------------------------------- the happy path


def test_official_client_runs_a_prediction_and_webhooks_verify(
    emulator: ReplicateEmulator, client: Client, receiver: Receiver, reference_url: str
) -> None:
    created = _create(client, receiver, "happy", _input(reference_url, num_outputs=4, seed=42))
    assert created.status == "starting"
    assert created.model == "tencentarc/photomaker"
    assert created.version == VERSION
    assert created.output is None
    assert created.created_at is not None
    assert created.created_at.endswith("Z")
    assert created.urls == {
        "get": f"{emulator.url}/v1/predictions/{created.id}",
        "cancel": f"{emulator.url}/v1/predictions/{created.id}/cancel",
        "web": f"https://replicate.com/p/{created.id}",
        "stream": f"https://stream.replicate.com/v1/files/{created.id}",
    }
    assert len(created.id) == 26
    assert created.id.isalnum()
    assert created.id.islower()

    done = _finished(client, created)
    assert done.status == "succeeded"
    assert done.error is None
    assert done.started_at is not None
    assert done.completed_at is not None
    assert done.metrics is not None
    assert done.metrics["predict_time"] > 0
    assert done.output == [f"{emulator.url}/files/{done.id}/{n}.png" for n in range(4)]
    assert "Using seed: 42" in (done.logs or "")

    pixels = set()
    for url in done.output:
        response = httpx.get(url)  # no token: like replicate.delivery URLs
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(response.content)) as image:
            assert image.format == "PNG"
            assert image.size == (1024, 1024)
            assert image.mode == "RGB"
            pixels.add(hashlib.sha256(image.tobytes()).hexdigest())
    assert len(pixels) == 4

    deliveries = receiver.wait_for("happy", 2)
    assert _statuses(deliveries) == ["processing", "succeeded"]
    secret = client.webhooks.default.secret().key
    assert secret == emulator.webhook_secret
    assert secret.startswith("whsec_")
    for delivery in deliveries:
        assert delivery.headers["content-type"] == "application/json"
        assert delivery.headers["webhook-id"].startswith("msg_")
        assert _verify(secret, delivery)["id"] == done.id
    assert deliveries[0].headers["webhook-id"] != deliveries[1].headers["webhook-id"]
    assert deliveries[1].payload["output"] == done.output
    assert deliveries[1].payload["webhook"] == receiver.url("happy")

    tampered = Delivery("happy", deliveries[1].headers, deliveries[1].body.replace(b"succeeded", b"failed"))
    with pytest.raises(WebhookVerificationError):
        _verify(secret, tampered)

    listed = client.predictions.list()
    assert [p.id for p in listed.results] == [done.id]
    assert emulator.predictions()[0]["status"] == "succeeded"


def test_cancel_sends_the_completed_webhook(
    make_replicate: Callable[..., ReplicateEmulator], receiver: Receiver, reference_url: str
) -> None:
    emulator = make_replicate(step_delay_s=1.0)  # slow enough that the cancel surely lands first
    client = _client(emulator)
    prediction = _create(client, receiver, "cancel", _input(reference_url))

    prediction.cancel()

    assert prediction.status == "canceled"
    assert prediction.completed_at is not None
    assert client.predictions.get(prediction.id).status == "canceled"
    [delivery] = receiver.wait_for("cancel", 1)
    assert _verify(emulator.webhook_secret, delivery)["status"] == "canceled"
    again = client.predictions.cancel(prediction.id)  # cancelling a finished prediction changes nothing
    assert again.status == "canceled"
    assert again.completed_at == prediction.completed_at


def _schema_errors(prediction: Any) -> list[str]:
    validator = Draft202012Validator(PREDICTION_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(prediction)]


def test_every_prediction_object_matches_replicates_schema(
    make_replicate: Callable[..., ReplicateEmulator], receiver: Receiver, reference_url: str
) -> None:
    Draft202012Validator.check_schema(PREDICTION_SCHEMA)
    emulator = make_replicate(step_delay_s=0.3)  # slow enough to see `starting` and `processing`
    seen: list[dict[str, Any]] = []

    def checked(response: httpx.Response, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.text
        prediction: dict[str, Any] = response.json()
        assert _schema_errors(prediction) == []
        seen.append(prediction)
        return prediction

    def until(prediction: dict[str, Any], status: str) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while prediction["status"] != status:
            assert time.monotonic() < deadline, f"prediction stuck in {prediction['status']}"
            time.sleep(0.05)
            prediction = checked(http.get(prediction["urls"]["get"]), 200)  # its own link is the API's
        return prediction

    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as http:

        def create(**extra: Any) -> dict[str, Any]:
            body = {"version": VERSION, "input": _input(reference_url), **extra}
            return checked(http.post(f"{emulator.url}/v1/predictions", json=body), 201)

        created = create(webhook=receiver.url("schema"), webhook_events_filter=EVENTS)
        assert created["urls"]["get"] == f"{emulator.url}/v1/predictions/{created['id']}"
        assert created["urls"]["cancel"] == f"{created['urls']['get']}/cancel"
        done = until(created, "succeeded")
        assert {"starting", "processing", "succeeded"} <= {p["status"] for p in seen}

        canceled = checked(http.post(create()["urls"]["cancel"]), 200)
        assert canceled["status"] == "canceled"
        emulator.set_faults({"fail_rate": 1})
        failed = until(create(), "failed")
        assert failed["error"]

        listed = http.get(f"{emulator.url}/v1/predictions")
    assert listed.status_code == 200
    results = listed.json()["results"]
    assert [p["id"] for p in results] == [failed["id"], canceled["id"], done["id"]]
    for prediction in results:
        assert _schema_errors(prediction) == []
    for delivery in receiver.wait_for("schema", 2):  # webhooks carry the same object
        assert _schema_errors(delivery.payload) == []
    without_stream = {**done, "urls": {k: v for k, v in done["urls"].items() if k != "stream"}}
    assert _schema_errors(without_stream) == ["urls: 'stream' is a required property"]


def test_prefer_wait_answers_with_the_finished_prediction(emulator: ReplicateEmulator, reference_url: str) -> None:
    response = httpx.post(
        f"{emulator.url}/v1/predictions",
        headers={"Authorization": f"Bearer {TOKEN}", "Prefer": "wait=5"},
        json={"version": f"tencentarc/photomaker:{VERSION}", "input": _input(reference_url, num_outputs=2)},
    )
    assert response.status_code == 201
    assert response.json()["status"] == "succeeded"
    assert len(response.json()["output"]) == 2


def test_unreachable_reference_still_gives_a_labelled_grey_preview(client: Client, receiver: Receiver) -> None:
    prediction = _create(client, receiver, "grey", _input("http://127.0.0.1:9/gone.jpg"))
    done = _finished(client, prediction)
    assert done.status == "succeeded"
    assert done.output
    response = httpx.get(done.output[0])
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (1024, 1024)
        assert image.getpixel((512, 700)) != (128, 128, 128)  # tinted, not the bare canvas


# --------------------------------------------------------------------------- deployments

DEPLOYMENT = "portrait-studio/photomaker"


def test_official_client_runs_a_prediction_on_a_deployment(
    emulator: ReplicateEmulator, client: Client, receiver: Receiver, reference_url: str
) -> None:
    deployment = client.deployments.get(DEPLOYMENT)
    assert (deployment.owner, deployment.name) == ("portrait-studio", "photomaker")
    assert deployment.current_release is not None
    assert deployment.current_release.model == "tencentarc/photomaker"
    assert deployment.current_release.version == VERSION
    assert deployment.current_release.configuration.hardware == "gpu-a40-large"
    assert client.deployments.get(DEPLOYMENT).current_release == deployment.current_release  # one release, kept

    created = deployment.predictions.create(
        input=_input(reference_url, num_outputs=2), webhook=receiver.url("deployed"), webhook_events_filter=EVENTS
    )
    assert created.status == "starting"
    assert created.version == VERSION  # the release's version: the request named none
    done = _finished(client, created)
    assert done.status == "succeeded"
    assert len(done.output or []) == 2

    deliveries = receiver.wait_for("deployed", 2)
    assert _statuses(deliveries) == ["processing", "succeeded"]
    for delivery in deliveries:
        payload = _verify(client.webhooks.default.secret().key, delivery)
        assert (payload["id"], payload["deployment"]) == (done.id, DEPLOYMENT)
        assert _schema_errors(payload) == []
    raw = httpx.get(done.urls["get"], headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert raw["deployment"] == DEPLOYMENT

    # The namespace form, without getting the deployment first, takes the same endpoint.
    other = client.deployments.predictions.create("acme/other-name", input=_input(reference_url))
    assert [p["deployment"] for p in emulator.predictions()] == [DEPLOYMENT, "acme/other-name"]
    assert _finished(client, other).status == "succeeded"


def test_deployment_creates_check_auth_input_webhook_and_rate_limit_like_model_creates(
    emulator: ReplicateEmulator, client: Client, reference_url: str
) -> None:
    url = f"{emulator.url}/v1/deployments/{DEPLOYMENT}/predictions"
    assert httpx.post(url, json={"input": _input(reference_url)}).status_code == 401
    assert httpx.get(f"{emulator.url}/v1/deployments/{DEPLOYMENT}").status_code == 401
    headers = {"Authorization": f"Bearer {TOKEN}"}
    bad_input = httpx.post(url, headers=headers, json={"input": _input(reference_url, prompt="a headshot")})
    assert bad_input.status_code == 422
    assert {f["field"] for f in bad_input.json()["invalid_fields"]} == {"input.prompt"}
    bad_hook = httpx.post(url, headers=headers, json={"input": _input(reference_url), "webhook": "ftp://x/y"})
    assert bad_hook.status_code == 422
    assert {f["field"] for f in bad_hook.json()["invalid_fields"]} == {"webhook"}
    assert httpx.get(f"{emulator.url}/v1/deployments/{DEPLOYMENT}/extra", headers=headers).status_code == 404
    assert emulator.predictions() == []

    emulator.set_faults({"rate_limit_first": 1})
    with pytest.raises(ReplicateError) as raised:
        client.deployments.predictions.create(DEPLOYMENT, input=_input(reference_url))
    assert raised.value.status == 429
    assert client.deployments.predictions.create(DEPLOYMENT, input=_input(reference_url)).status == "starting"


def test_our_adapter_creates_through_the_configured_deployment(
    emulator: ReplicateEmulator, receiver: Receiver, reference_url: str
) -> None:
    deployed = ReplicateHttpGenerator(emulator.url, lambda: TOKEN, deployment=DEPLOYMENT)
    pinned = ReplicateHttpGenerator(emulator.url, lambda: TOKEN)
    other_version = "0" * 64  # ignored on a deployment: its release decides
    first = deployed.create(other_version, _input(reference_url), receiver.url("ours"), EVENTS)
    second = pinned.create(VERSION, _input(reference_url), receiver.url("ours"), EVENTS)
    by_id = {p["id"]: p for p in emulator.predictions()}
    assert (by_id[first.id]["deployment"], by_id[first.id]["version"]) == (DEPLOYMENT, VERSION)
    assert "deployment" not in by_id[second.id]
    assert [d.payload["deployment"] for d in receiver.wait_for("ours", 4) if d.payload["id"] == first.id] == [
        DEPLOYMENT,
        DEPLOYMENT,
    ]

    emulator.set_faults({"rate_limit_first": 1})
    with pytest.raises(GeneratorRateLimited) as raised:  # the same 429 handling as model-version creates
        deployed.create(VERSION, _input(reference_url), receiver.url("ours"), EVENTS)
    assert raised.value.retry_after_s == 1.0


# --------------------------------------------------------------------------- errors Replicate would give


def test_bad_or_missing_token_is_401(emulator: ReplicateEmulator) -> None:
    expected = {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = httpx.get(f"{emulator.url}/v1/predictions", headers=headers)
        assert response.status_code == 401
        assert response.json() == expected
    with pytest.raises(ReplicateError) as raised:
        Client(api_token="wrong", base_url=emulator.url).predictions.get("abc")
    assert raised.value.status == 401
    ok = httpx.get(f"{emulator.url}/v1/predictions", headers={"Authorization": f"Token {TOKEN}"})
    assert ok.status_code == 200
    assert ok.json() == {"previous": None, "next": None, "results": []}


def test_invalid_input_is_422_with_invalid_fields(
    emulator: ReplicateEmulator, client: Client, reference_url: str
) -> None:
    with pytest.raises(ReplicateError) as raised:
        client.predictions.create(version=VERSION, input=_input(reference_url, prompt="a headshot", num_outputs=5))
    assert raised.value.status == 422
    assert raised.value.title == "Input validation failed"

    response = httpx.post(
        f"{emulator.url}/v1/predictions",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={"version": VERSION, "input": {"prompt": "img img", "style_name": "Nope", "guidance_scale": "5"}},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["title"] == "Input validation failed"
    assert body["status"] == 422
    fields = {(f["field"], f["type"]) for f in body["invalid_fields"]}
    assert fields == {
        ("input", "required"),
        ("input.prompt", "trigger_word"),
        ("input.style_name", "enum"),
        ("input.guidance_scale", "invalid_type"),
    }
    assert "input_image is required" in body["detail"]

    unknown = httpx.post(
        f"{emulator.url}/v1/predictions",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={"version": "photomaker-latest", "input": _input(reference_url)},
    )
    assert unknown.status_code == 422
    assert emulator.predictions() == []


def test_unknown_prediction_is_404(emulator: ReplicateEmulator, client: Client) -> None:
    with pytest.raises(ReplicateError) as raised:
        client.predictions.get("doesnotexist")
    assert raised.value.status == 404
    response = httpx.get(f"{emulator.url}/files/doesnotexist/0.png")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "status": 404}


# --------------------------------------------------------------------------- faults


def test_rate_limit_first_answers_429_then_succeeds(
    emulator: ReplicateEmulator,
    client: Client,
    faults: Callable[[dict[str, Any]], None],
    reference_url: str,
) -> None:
    faults({"rate_limit_first": 2})
    response = httpx.post(
        f"{emulator.url}/v1/predictions",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={"version": VERSION, "input": _input(reference_url)},
    )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.json() == {
        "title": "Request was throttled",
        "detail": "Request was throttled. Expected available in 1 second.",
        "status": 429,
    }
    with pytest.raises(ReplicateError) as raised:  # the client never retries a POST by itself
        client.predictions.create(version=VERSION, input=_input(reference_url))
    assert raised.value.status == 429

    assert client.predictions.create(version=VERSION, input=_input(reference_url)).status == "starting"
    assert emulator.set_faults({})["rate_limit_first"] == 0


def test_fail_rate_one_fails_the_prediction(
    client: Client, faults: Callable[[dict[str, Any]], None], reference_url: str
) -> None:
    faults({"fail_rate": 1})
    done = _finished(client, client.predictions.create(version=VERSION, input=_input(reference_url)))
    assert done.status == "failed"
    assert done.error
    assert done.output is None


def test_nsfw_drop_rate_one_fails_with_the_nsfw_error(
    client: Client, faults: Callable[[dict[str, Any]], None], reference_url: str
) -> None:
    faults({"nsfw_drop_rate": 1})
    done = _finished(client, client.predictions.create(version=VERSION, input=_input(reference_url, num_outputs=3)))
    assert done.status == "failed"
    assert done.error == NSFW_ERROR
    assert done.output is None


def test_partial_nsfw_drops_return_fewer_outputs(
    client: Client, faults: Callable[[dict[str, Any]], None], reference_url: str
) -> None:
    faults({"nsfw_drop_rate": 0.5, "seed": 7})
    counts = []
    for _ in range(3):
        prediction = client.predictions.create(version=VERSION, input=_input(reference_url, num_outputs=4))
        counts.append(prediction.id)
    finished = [_finished(client, client.predictions.get(pid)) for pid in counts]
    sizes = [len(p.output or []) for p in finished if p.status == "succeeded"]
    assert any(0 < n < 4 for n in sizes), sizes


def test_missing_webhook_rate_one_skips_completed_but_get_succeeds(
    emulator: ReplicateEmulator,
    client: Client,
    receiver: Receiver,
    faults: Callable[[dict[str, Any]], None],
    reference_url: str,
) -> None:
    faults({"missing_webhook_rate": 1})
    done = _finished(client, _create(client, receiver, "missing", _input(reference_url)))
    assert done.status == "succeeded"
    time.sleep(0.3)  # give a (wrongly) sent completed webhook time to arrive
    assert _statuses(receiver.of("missing")) == ["processing"]


def test_duplicate_webhooks_share_one_webhook_id(
    emulator: ReplicateEmulator,
    client: Client,
    receiver: Receiver,
    faults: Callable[[dict[str, Any]], None],
    reference_url: str,
) -> None:
    faults({"duplicate_webhook_rate": 1})
    _create(client, receiver, "dup", _input(reference_url))
    deliveries = receiver.wait_for("dup", 4)
    assert _statuses(deliveries) == ["processing", "processing", "succeeded", "succeeded"]
    start_a, start_b, done_a, done_b = deliveries
    assert start_a.headers["webhook-id"] == start_b.headers["webhook-id"]
    assert start_a.body == start_b.body
    assert done_a.headers["webhook-id"] == done_b.headers["webhook-id"]
    assert done_a.body == done_b.body
    assert start_a.headers["webhook-id"] != done_a.headers["webhook-id"]
    for delivery in deliveries:
        _verify(emulator.webhook_secret, delivery)


def test_reorder_delivers_completed_before_start(
    client: Client, receiver: Receiver, faults: Callable[[dict[str, Any]], None], reference_url: str
) -> None:
    faults({"reorder_webhooks": True, "webhook_delay_s": 0.05})
    _create(client, receiver, "reorder", _input(reference_url))
    assert _statuses(receiver.wait_for("reorder", 2)) == ["succeeded", "processing"]


def test_failed_deliveries_are_retried_but_4xx_is_final(
    emulator: ReplicateEmulator, client: Client, receiver: Receiver, reference_url: str
) -> None:
    receiver.errors["retry"] = [503, 500]
    receiver.errors["gone"] = [410, 410]
    client.predictions.create(
        version=VERSION, input=_input(reference_url), webhook=receiver.url("retry"), webhook_events_filter=["start"]
    )
    client.predictions.create(
        version=VERSION, input=_input(reference_url), webhook=receiver.url("gone"), webhook_events_filter=["start"]
    )
    retried = receiver.wait_for("retry", 3)
    assert len({d.headers["webhook-id"] for d in retried}) == 1
    for delivery in retried:
        _verify(emulator.webhook_secret, delivery)
    time.sleep(0.5)  # past the first backoff: a retry of the 410 would have arrived
    assert len(receiver.of("gone")) == 1


def test_fault_profile_http_api_validates_and_resets(emulator: ReplicateEmulator) -> None:
    url = f"{emulator.url}/_emulator/faults"
    zero = httpx.get(url).json()
    assert zero == {
        "rate_limit_first": 0,
        "fail_rate": 0.0,
        "nsfw_drop_rate": 0.0,
        "identity_drift_rate": 0.0,
        "faceless_rate": 0.0,
        "duplicate_webhook_rate": 0.0,
        "missing_webhook_rate": 0.0,
        "webhook_delay_s": 0.0,
        "reorder_webhooks": False,
        "seed": None,
    }
    changed = httpx.put(url, json={"fail_rate": 0.25, "reorder_webhooks": True, "seed": 3})
    assert changed.status_code == 200
    assert changed.json() == {**zero, "fail_rate": 0.25, "reorder_webhooks": True, "seed": 3}
    assert httpx.put(url, json={"webhook_delay_s": 1}).json()["fail_rate"] == 0.25  # PUT merges given keys

    for bad in ({"fail_rate": 2}, {"fail_rate": True}, {"rate_limit_first": -1}, {"nope": 1}, [1]):
        response = httpx.put(url, json=bad)
        assert response.status_code == 400, bad
    assert httpx.put(url, content=b"{not json").status_code == 400
    with pytest.raises(ValueError, match="nsfw_drop_rate"):
        emulator.set_faults({"nsfw_drop_rate": -0.1})

    assert httpx.delete(url).json() == zero
    assert httpx.get(url).json() == zero


def test_seeded_faults_replay_identically(make_replicate: Callable[..., ReplicateEmulator], reference_url: str) -> None:
    def run() -> list[tuple[str, int]]:
        emulator = make_replicate(step_delay_s=0.01)
        emulator.set_faults({"fail_rate": 0.5, "nsfw_drop_rate": 0.3, "seed": 11})
        client = _client(emulator)
        ids = [client.predictions.create(version=VERSION, input=_input(reference_url, num_outputs=2)).id]
        ids += [client.predictions.create(version=VERSION, input=_input(reference_url, num_outputs=2)).id]
        ids += [client.predictions.create(version=VERSION, input=_input(reference_url, num_outputs=2)).id]
        done = [_finished(client, client.predictions.get(pid)) for pid in ids]
        return [(p.status, len(p.output or [])) for p in done]

    assert run() == run()


def test_injected_clock_drives_timestamps(
    make_replicate: Callable[..., ReplicateEmulator], receiver: Receiver, reference_url: str
) -> None:
    frozen = datetime(2020, 1, 1, tzinfo=UTC)
    emulator = make_replicate(clock=lambda: frozen)
    client = _client(emulator)
    done = _finished(client, _create(client, receiver, "clock", _input(reference_url)))
    assert done.created_at == "2020-01-01T00:00:00.000000Z"
    assert done.completed_at == "2020-01-01T00:00:00.000000Z"
    delivery = receiver.wait_for("clock", 2)[0]
    assert delivery.headers["webhook-timestamp"] == "1577836800"
    with pytest.raises(WebhookVerificationError, match="too old"):
        _verify(emulator.webhook_secret, delivery)


def test_stop_is_prompt_with_predictions_in_flight(
    make_replicate: Callable[..., ReplicateEmulator], receiver: Receiver, reference_url: str
) -> None:
    emulator = make_replicate(step_delay_s=0.5)
    client = _client(emulator)
    for n in range(3):
        _create(client, receiver, f"stop{n}", _input(reference_url))
    started = time.monotonic()
    emulator.stop()
    assert time.monotonic() - started < 3
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{emulator.url}/_emulator/faults")

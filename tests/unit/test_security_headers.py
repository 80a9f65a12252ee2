"""Every reply of the API and webhook functions carries the same security headers, errors included; a 429 says
when to come back (Retry-After, whole seconds)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.webhook import app as webhook
from portrait_studio.http import SECURITY_HEADERS
from tests.fakes import LambdaContext as Context
from tests.unit.conftest import World
from tests.unit.test_handlers import call_api, create, event, installed, with_job

__all__ = ["installed"]  # the fixture that wires the handlers to the world's fakes

JPEG = {"name": "a.jpg", "content_type": "image/jpeg", "bytes": 10}


def assert_secured(headers: dict[str, str]) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, name


def routed_to(path: str, method: str = "GET") -> dict[str, Any]:
    e = event("api_get_job.json")
    e["rawPath"] = e["requestContext"]["http"]["path"] = path
    e["requestContext"]["http"]["method"] = method
    return e


def test_success_and_every_kind_of_api_error_carry_the_security_headers(installed: World) -> None:
    status, job, headers = create()
    assert status == 201
    assert_secured(headers)
    replies = {
        "domain 400": create([JPEG] * 2),
        "validation 400": create([{"name": "a.jpg", "content_type": "image/jpeg"}] * 3),
        "413": create([{**JPEG, "bytes": 31 * 1024 * 1024}] * 3),
        "unknown job 404": call_api(with_job("api_get_job.json", job["job_id"], "wrong")),
        "no route 404": call_api(routed_to("/nothing/here")),
        # Powertools answers a known path with another method as an unknown route (there is no 405).
        "wrong method": call_api(routed_to(f"/jobs/{job['job_id']}", "PATCH")),
        "409": call_api(with_job("api_submit_job.json", job["job_id"], job["token"])),
    }
    statuses = {name: status for name, (status, _, _) in replies.items()}
    assert statuses == {
        "domain 400": 400,
        "validation 400": 400,
        "413": 413,
        "unknown job 404": 404,
        "no route 404": 404,
        "wrong method": 404,
        "409": 409,
    }
    for name, (_, body, headers) in replies.items():
        assert body["error"]["code"], name
        assert_secured(headers)
        assert "Retry-After" not in headers


def test_rate_limited_job_creation_is_429_with_retry_after_in_whole_seconds(installed: World) -> None:
    installed.clock.advance(minutes=10, seconds=30)  # 12:10:30: the hour's window ends in 49.5 minutes
    for _ in range(installed.settings.create_job_rate_per_hour):
        assert create()[0] == 201
    status, body, headers = create()
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    assert_secured(headers)
    assert headers["Retry-After"] == str(49 * 60 + 30)


def test_an_unexpected_failure_is_our_json_500_with_the_headers(
    installed: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, job, _ = create()

    def broken(job_id: str) -> None:
        raise RuntimeError("the store fell over")

    monkeypatch.setattr(installed.store, "get_job", broken)
    status, body, headers = call_api(with_job("api_get_job.json", job["job_id"], job["token"]))
    assert (status, body["error"]["code"]) == (500, "internal_error")
    assert "fell over" not in json.dumps(body)
    assert_secured(headers)


def test_webhook_replies_carry_the_headers_too() -> None:
    rejected = webhook.lambda_handler(event("webhook_replicate.json"), Context())
    assert rejected["statusCode"] == 401
    assert_secured(rejected["headers"])
    e = event("webhook_replicate.json")
    e["rawPath"] = e["requestContext"]["http"]["path"] = "/webhooks/other"
    missing = webhook.lambda_handler(e, Context())
    assert missing["statusCode"] == 404 and json.loads(missing["body"])["error"]["code"] == "not_found"
    assert_secured(missing["headers"])


def test_a_reply_that_sets_a_header_itself_keeps_it() -> None:
    from portrait_studio.http import secured

    reply = secured({"statusCode": 200, "headers": {"cache-control": "max-age=60"}})
    assert reply["headers"]["cache-control"] == "max-age=60" and "Cache-Control" not in reply["headers"]
    assert reply["headers"]["X-Frame-Options"] == "DENY"

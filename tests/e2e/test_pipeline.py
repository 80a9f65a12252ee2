"""The pipeline on the local stack as a user's client sees it: refusals, replacements, errors, headers (the
ordinary whole job, selfies to 32 headshots, is test_whole_job.py's)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from infra.local.client import PortraitClient
from tests.e2e.conftest import GOOD, NO_FACE, SAMPLES

pytestmark = pytest.mark.e2e


def test_too_few_usable_photos_go_back_to_collecting_and_can_be_replaced(client: PortraitClient) -> None:
    files = [GOOD[0], GOOD[1], NO_FACE]
    job = client.create_job(files, styles=["corporate"])
    client.upload_all(job, files)
    client.submit(job).raise_for_status()
    client.pay(job)
    view = client.wait_for(job, ("collecting", "ready", "failed"), timeout_s=120)
    assert view["status"] == "collecting"
    assert view["usable_files"] == 2 and "add at least 1 more" in view["message"]
    refused = next(f for f in view["files"] if not f["accepted"])
    assert refused["code"] == "no_face" and refused["hint"]

    more = client.http.post(
        f"/jobs/{job.job_id}/files",
        headers=client.auth(job.token),
        json={"files": [{"name": GOOD[2].name, "content_type": "image/heic", "bytes": GOOD[2].stat().st_size}]},
    )
    assert more.status_code == 201
    assert client.upload(more.json()["uploads"][0], GOOD[2]).status_code == 200
    assert client.submit(job).status_code == 202
    client.pay(job)
    view = client.wait_for(job, ("ready", "failed"), timeout_s=180)
    assert view["status"] == "ready"
    assert [s["style"] for s in view["styles"]] == ["corporate"] and view["images_done"] == 32


def error_of(response: httpx.Response) -> tuple[int, str]:
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"} and body["error"]["message"]
    return response.status_code, body["error"]["code"]


def test_bad_requests_get_json_errors_with_stable_codes(client: PortraitClient) -> None:
    photo = {"name": "a.jpg", "content_type": "image/jpeg", "bytes": 1000}
    assert error_of(client.http.post("/jobs", json={"files": [photo] * 2})) == (400, "file_count_out_of_range")
    assert error_of(client.http.post("/jobs", json={"files": [photo] * 11})) == (400, "file_count_out_of_range")
    gif = {**photo, "content_type": "image/gif"}
    assert error_of(client.http.post("/jobs", json={"files": [gif] * 3})) == (400, "unsupported_content_type")
    assert error_of(client.http.post("/jobs", content=b"{not json")) == (400, "invalid_request")

    job = client.create_job(GOOD)
    assert error_of(client.submit(job)) == (409, "uploads_incomplete")
    for headers in ({"Authorization": "Bearer wrong"}, {}):
        assert error_of(client.http.get(f"/jobs/{job.job_id}", headers=headers)) == (404, "job_not_found")
    assert error_of(client.http.get("/jobs/" + "0" * 32, headers=client.auth(job.token))) == (404, "job_not_found")


def test_an_unpaid_job_has_twenty_upload_places_in_its_whole_life(client: PortraitClient) -> None:
    """Removing a photo gives no place back: 10 at create, 10 added, all removed, and the 21st is refused."""
    photo = {"name": "a.jpg", "content_type": "image/jpeg", "bytes": 1000}
    created = client.http.post("/jobs", json={"files": [photo] * 10})
    assert created.status_code == 201
    job_id, auth = created.json()["job_id"], client.auth(created.json()["token"])
    uploads = created.json()["uploads"]
    for round in range(2):
        for upload in uploads:
            assert client.http.delete(f"/jobs/{job_id}/files/{upload['file_id']}", headers=auth).status_code == 204
        if round == 0:
            added = client.http.post(f"/jobs/{job_id}/files", headers=auth, json={"files": [photo] * 10})
            assert added.status_code == 201
            uploads = added.json()["uploads"]
    refused = client.http.post(f"/jobs/{job_id}/files", headers=auth, json={"files": [photo]})
    assert error_of(refused) == (409, "upload_limit_reached")
    assert refused.headers["X-Content-Type-Options"] == "nosniff"  # error replies carry the security headers


def test_the_page_is_served_with_its_production_headers(client: PortraitClient) -> None:
    page = client.http.get("/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff" and page.headers["Referrer-Policy"] == "no-referrer"
    assert client.http.get("/_headers").status_code == 404  # the host's file, never served


def test_the_upload_url_is_bound_to_the_declared_type_and_size(client: PortraitClient) -> None:
    """The local object store refuses what R2 refuses: the signature covers Content-Type and Content-Length."""
    job = client.create_job(GOOD)
    ticket = job.uploads[0]
    data = GOOD[0].read_bytes()
    wrong_type = httpx.put(ticket["url"], content=data, headers={"Content-Type": "image/png"})
    assert wrong_type.status_code == 403 and b"SignatureDoesNotMatch" in wrong_type.content
    short = httpx.put(ticket["url"], content=data[:-10], headers={"Content-Type": ticket["headers"]["Content-Type"]})
    assert short.status_code == 403
    assert error_of(client.submit(job)) == (409, "uploads_incomplete")
    assert client.upload(ticket, GOOD[0]).status_code == 200


def test_samples_are_what_the_demo_needs() -> None:
    demo = {"person-a-1.jpg", "person-a-2.jpg", "person-a-3.heic", "person-b.png", "no-face.jpg"}
    assert {p.name for p in SAMPLES.iterdir()} >= demo


def test_forged_webhooks_are_refused_over_http(client: PortraitClient) -> None:
    body = b'{"id": "p1", "status": "succeeded"}'
    forged = client.http.post(
        "/webhooks/replicate?job=" + "0" * 32 + "&slot=corporate%230",
        content=body,
        headers={"webhook-id": "msg_x", "webhook-timestamp": "1", "webhook-signature": "v1,Zm9yZ2Vk"},
    )
    assert error_of(forged) == (401, "invalid_webhook")
    assert error_of(client.http.post("/webhooks/replicate", content=b"\xff\xfe")) == (401, "invalid_webhook")

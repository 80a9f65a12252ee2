"""The S3 gate in front of moto refuses presigned uploads that R2 would refuse, and passes everything else through."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from botocore.exceptions import ClientError

from infra.local.s3_gate.gate import S3Gate
from infra.local.s3_gate.sigv4 import verify_presigned
from portrait_studio.adapters.aws import object_store_client
from portrait_studio.adapters.s3_blobs import S3BlobStore
from portrait_studio.config import Settings

pytestmark = pytest.mark.integration

REGION = "us-east-1"
ORIGIN = "http://127.0.0.1:3000"
JPEG = b"\xff\xd8\xff\xe0JPEG!!"  # 10 bytes
EXPIRES_S = 900
TRICKY_KEYS = [
    "uploads/job 1/photo.jpg",
    "uploads/a+b=c&d/IMG (1)!'*~.jpg",
    "uploads/ünïcødé/自拍.heic",
    "uploads/%2F%25/semi;colon,comma:colon@at$dollar.png",
    "uploads//double//slash/",
]


class ShiftedClock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Env:
    gate: S3Gate
    clock: ShiftedClock
    client: Any
    bucket: str
    store: S3BlobStore


@pytest.fixture(scope="module")
def gated(moto_url: str) -> Iterator[Env]:
    # `moto_url` (tests/integration/conftest.py) is a ThreadedMotoServer on a free port, werkzeug's log silenced.
    clock = ShiftedClock()
    gate = S3Gate(moto_url, clock=clock)
    gate.start()
    client = object_store_client(Settings(r2_endpoint_url=gate.url, r2_region=REGION), "testing", "testing")
    bucket = f"gate-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": [ORIGIN],
                    "AllowedMethods": ["PUT", "GET", "HEAD"],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 600,
                }
            ]
        },
    )
    yield Env(gate, clock, client, bucket, S3BlobStore(bucket, lambda: client))
    gate.stop()


@pytest.fixture
def env(gated: Env) -> Env:
    gated.clock.offset = timedelta()
    return gated


def new_key() -> str:
    return f"uploads/{uuid.uuid4().hex}/IMG_0001.jpg"


def error_code(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/xml"
    return response.text.split("<Code>", 1)[1].split("</Code>", 1)[0]


def assert_signature_refused(response: httpx.Response) -> None:
    """S3's answer to a request the signature does not cover: 403 SignatureDoesNotMatch."""
    assert response.status_code == 403
    assert error_code(response) == "SignatureDoesNotMatch"


def put(url: str, data: bytes, content_type: str = "image/jpeg", **headers: str) -> httpx.Response:
    return httpx.put(url, content=data, headers={"Content-Type": content_type, **headers})


def test_the_upload_that_was_signed_lands(env: Env) -> None:
    key = new_key()
    url = env.store.presign_put(key, "image/jpeg", len(JPEG), EXPIRES_S)
    assert urlsplit(url).netloc == urlsplit(env.gate.url).netloc
    assert "X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost" in url
    response = put(url, JPEG)
    assert response.status_code == 200, response.text
    assert response.headers["etag"]
    assert env.store.get(key) == JPEG
    head = env.client.head_object(Bucket=env.bucket, Key=key)
    assert head["ContentType"] == "image/jpeg" and head["ContentLength"] == len(JPEG)


def test_another_content_type_is_refused_and_nothing_is_stored(env: Env) -> None:
    key = new_key()
    url = env.store.presign_put(key, "image/jpeg", len(JPEG), EXPIRES_S)
    response = put(url, JPEG, content_type="image/png")
    assert_signature_refused(response)
    assert "The request signature we calculated does not match the signature you provided." in response.text
    assert env.store.size(key) is None


@pytest.mark.parametrize("size", [len(JPEG) - 1, len(JPEG) + 1, 0])
def test_another_length_is_refused_and_nothing_is_stored(env: Env, size: int) -> None:
    key = new_key()
    url = env.store.presign_put(key, "image/jpeg", len(JPEG), EXPIRES_S)
    response = put(url, b"y" * size)
    assert_signature_refused(response)
    assert env.store.size(key) is None


def test_a_chunked_upload_has_no_signed_length_and_is_refused(env: Env) -> None:
    key = new_key()
    url = env.store.presign_put(key, "image/jpeg", len(JPEG), EXPIRES_S)
    response = httpx.put(url, content=iter([JPEG[:4], JPEG[4:]]), headers={"Content-Type": "image/jpeg"})
    assert "content-length" not in response.request.headers
    assert_signature_refused(response)
    assert env.store.size(key) is None


def test_a_tampered_url_is_refused(env: Env) -> None:
    key = new_key()
    url = env.store.presign_put(key, "image/jpeg", len(JPEG), EXPIRES_S)
    head, signature = url.rsplit("X-Amz-Signature=", 1)
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    tampered = [
        f"{head}X-Amz-Signature={flipped}",
        url.replace(key, key.replace("IMG_0001", "IMG_0002")),  # another key
        url.replace(f"X-Amz-Expires={EXPIRES_S}", "X-Amz-Expires=3600"),  # a longer life
    ]
    for candidate in tampered:
        response = put(candidate, JPEG)
        assert_signature_refused(response)
    # The same URL with another method: a presigned PUT is no GET.
    assert httpx.get(url).status_code == 403
    assert env.store.size(key) is None
    assert env.store.size(key.replace("IMG_0001", "IMG_0002")) is None


def test_an_expired_url_is_refused(env: Env) -> None:
    key = new_key()
    url = env.store.presign_put(key, "image/jpeg", len(JPEG), EXPIRES_S)
    env.clock.offset = timedelta(seconds=EXPIRES_S + 5)
    response = put(url, JPEG)
    assert response.status_code == 403
    assert error_code(response) == "AccessDenied"
    assert "<Message>Request has expired</Message>" in response.text
    assert f"<X-Amz-Expires>{EXPIRES_S}</X-Amz-Expires>" in response.text
    assert env.store.size(key) is None
    env.clock.offset = timedelta(seconds=EXPIRES_S - 30)  # still inside its life
    assert put(url, JPEG).status_code == 200
    assert env.store.get(key) == JPEG


def test_an_unknown_access_key_is_refused(env: Env) -> None:
    stranger = object_store_client(Settings(r2_endpoint_url=env.gate.url, r2_region=REGION), "stranger", "secret")
    key = new_key()
    url = S3BlobStore(env.bucket, lambda: stranger).presign_put(key, "image/jpeg", len(JPEG), EXPIRES_S)
    response = put(url, JPEG)
    assert response.status_code == 403
    assert error_code(response) == "InvalidAccessKeyId"
    assert env.store.size(key) is None


def test_a_wrong_secret_is_refused(env: Env) -> None:
    forger = object_store_client(Settings(r2_endpoint_url=env.gate.url, r2_region=REGION), "testing", "guessed")
    key = new_key()
    url = S3BlobStore(env.bucket, lambda: forger).presign_put(key, "image/jpeg", len(JPEG), EXPIRES_S)
    response = put(url, JPEG)
    assert_signature_refused(response)


def test_a_stripped_signature_is_no_pass(env: Env) -> None:
    key = new_key()
    url = env.store.presign_put(key, "image/jpeg", len(JPEG), EXPIRES_S)
    response = put(url.rsplit("&X-Amz-Signature=", 1)[0], JPEG)
    assert response.status_code == 400
    assert error_code(response) == "AuthorizationQueryParametersError"
    both = put(url, JPEG, Authorization="AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request")
    assert both.status_code == 400
    assert error_code(both) == "InvalidArgument"
    assert env.store.size(key) is None


@pytest.mark.parametrize("key", TRICKY_KEYS)
def test_keys_that_need_encoding_round_trip(env: Env, key: str) -> None:
    url = env.store.presign_put(key, "image/jpeg", len(JPEG), EXPIRES_S)
    assert put(url, JPEG).status_code == 200
    got = httpx.get(env.store.presign_get(key, EXPIRES_S))
    assert got.status_code == 200 and got.content == JPEG


def test_the_canonical_request_matches_botocore_for_tricky_keys_and_headers(env: Env) -> None:
    """No server: every boto3 presigned URL verifies with the headers it signed, and fails with any other."""
    now = datetime.now(UTC)
    for key in TRICKY_KEYS:
        url = urlsplit(env.store.presign_put(key, "image/jpeg; charset=binary", 12345, EXPIRES_S))
        headers = [("Host", url.netloc), ("Content-Type", "image/jpeg;  charset=binary "), ("Content-Length", "12345")]
        args = ("PUT", url.path, url.query)
        assert verify_presigned(*args, headers, env.gate.credentials, now) is None, key
        assert verify_presigned(*args, [*headers, ("content-type", "x")], env.gate.credentials, now) is not None
        wrong_host = [("Host", "127.0.0.1:1"), *headers[1:]]
        assert verify_presigned(*args, wrong_host, env.gate.credentials, now) is not None
        assert verify_presigned("POST", *args[1:], headers, env.gate.credentials, now) is not None


def test_a_presigned_get_works_through_the_gate(env: Env) -> None:
    key = new_key()
    env.store.put(key, JPEG, "image/jpeg")
    url = env.store.presign_get(key, 60)
    got = httpx.get(url)
    assert got.status_code == 200
    assert got.content == JPEG and got.headers["content-type"] == "image/jpeg"
    assert httpx.head(url).status_code == 403  # signed for GET
    env.clock.offset = timedelta(seconds=61)
    assert error_code(httpx.get(url)) == "AccessDenied"


def test_boto3_calls_with_an_authorization_header_pass_through(env: Env) -> None:
    key = new_key()
    env.client.put_object(Bucket=env.bucket, Key=key, Body=JPEG, ContentType="image/jpeg")
    assert key in list(env.store.list_keys(key.rsplit("/", 1)[0]))
    assert env.store.get(key) == JPEG and env.store.size(key) == len(JPEG)
    assert env.store.delete([key]) == []
    assert env.store.size(key) is None
    with pytest.raises(KeyError):
        env.store.get(key)


def test_a_cors_preflight_gets_the_bucket_rules_from_moto(env: Env) -> None:
    url = env.store.presign_put(new_key(), "image/jpeg", len(JPEG), EXPIRES_S)
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type",
    }
    # The browser sends its preflight to the presigned URL itself; it carries no signature of its own.
    for target in (url, url.split("?", 1)[0]):
        response = httpx.options(target, headers=preflight)
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert "PUT" in response.headers["access-control-allow-methods"]
    stranger = httpx.options(url, headers={**preflight, "Origin": "http://evil.example"})
    # moto's refusal, passed through (moto's server layer echoes the origin anyway; the 403 is what counts).
    assert stranger.status_code == 403
    assert error_code(stranger) == "AccessForbidden"


def test_cors_headers_come_with_uploads_and_with_refusals(env: Env) -> None:
    key = new_key()
    url = env.store.presign_put(key, "image/jpeg", len(JPEG), EXPIRES_S)
    refused = put(url, JPEG, content_type="image/png", Origin=ORIGIN)
    assert refused.status_code == 403
    assert refused.headers["access-control-allow-origin"] == ORIGIN  # the browser can read the 403
    accepted = put(url, JPEG, Origin=ORIGIN)
    assert accepted.status_code == 200
    assert accepted.headers["access-control-allow-origin"] == ORIGIN
    assert "etag" in accepted.headers["access-control-expose-headers"].lower()


def test_the_gate_prints_nothing(env: Env, capfd: pytest.CaptureFixture[str]) -> None:
    url = env.store.presign_put(new_key(), "image/jpeg", len(JPEG), EXPIRES_S)
    put(url, JPEG, content_type="text/plain")
    put(url, JPEG)
    signature = url.rsplit("X-Amz-Signature=", 1)[1]
    out, err = capfd.readouterr()
    assert signature not in out + err
    assert "X-Amz-" not in out + err


def test_only_the_r2_key_may_call_the_bucket_when_the_gate_names_it(env: Env) -> None:
    """R2 knows no AWS role: a function the template gives no R2 key signs with its role's key and is refused."""
    env.gate.header_keys = frozenset({"testing"})
    try:
        key = new_key()
        env.client.put_object(Bucket=env.bucket, Key=key, Body=JPEG)
        role_keyed = object_store_client(
            Settings(r2_endpoint_url=env.gate.url, r2_region=REGION), "LOCAL-NormalizeFunction", "local-secret"
        )
        with pytest.raises(ClientError) as refused:
            role_keyed.get_object(Bucket=env.bucket, Key=key)
        assert refused.value.response["Error"]["Code"] == "InvalidAccessKeyId"
        assert env.store.get(key) == JPEG
    finally:
        env.gate.header_keys = None

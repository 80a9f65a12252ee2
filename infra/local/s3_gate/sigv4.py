"""SigV4 query authentication (presigned URLs) as S3 checks it, and the XML error S3 answers when it does not hold.

The checks run in S3's order: parameters (400 `AuthorizationQueryParametersError`), access key (403
`InvalidAccessKeyId`), expiry (403 `AccessDenied` "Request has expired"), signature (403 `SignatureDoesNotMatch`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote_to_bytes
from xml.sax.saxutils import escape

ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_EXPIRES_S = 604_800  # a week, S3's limit for SigV4 presigned URLs
AUTH_QUERY_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)
MISSING_AUTH_PARAMS = (
    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, "
    "X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
)
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your key and signing method."
)


@dataclass(frozen=True)
class Rejection:
    """An S3 error answer: status, `<Code>`, `<Message>` and S3's extra elements, in order."""

    status: int
    code: str
    message: str
    details: Sequence[tuple[str, str]] = field(default_factory=tuple)

    def xml(self, request_id: str, host_id: str) -> bytes:
        elements = [("Code", self.code), ("Message", self.message), *self.details]
        elements += [("RequestId", request_id), ("HostId", host_id)]
        inner = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in elements)
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{inner}</Error>'.encode()


def _uri_encode(raw: str, safe: str) -> str:
    """S3's canonical form of a raw (percent-encoded) URI component: decode once, encode once.

    Every byte but the RFC 3986 unreserved characters (and `safe`) is percent-encoded with upper-case hex,
    whatever the client sent — `%2b`, `+` and `%2B` in a path are all `%2B`; a raw `!` becomes `%21`.
    botocore's presigned URLs are already in this form, so for them it is the identity.
    """
    return quote(unquote_to_bytes(raw), safe=safe)


def _query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """(key, value) pairs of a raw query string in S3's canonical encoding; `a` alone is `("a", "")`."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((_uri_encode(key, "-_.~"), _uri_encode(value, "-_.~")))
    return pairs


def is_presigned(raw_query: str) -> bool:
    """Does the query carry SigV4 query auth? (`X-Amz-Algorithm` alone counts: a stripped signature is no pass.)"""
    return any(key in ("X-Amz-Signature", "X-Amz-Algorithm") for key, _ in _query_pairs(raw_query))


def _trim(value: str) -> str:
    return " ".join(value.split())


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def verify_presigned(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
    credentials: Mapping[str, str],
    now: datetime,
) -> Rejection | None:
    """Check SigV4 query auth as S3 does; None when the request may proceed.

    `raw_path` and `raw_query` are the request target as received (still percent-encoded), `headers` the
    actual request headers (repeats allowed), `now` an aware UTC datetime. The checks run in S3's order:
    parameters (400), access key (403), expiry (403), signature (403).
    """
    pairs = _query_pairs(raw_query)
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in AUTH_QUERY_PARAMS:
            if key in params:
                return Rejection(400, "AuthorizationQueryParametersError", f"{key} is given more than once.")
            params[key] = unquote_to_bytes(value).decode("utf-8", "replace")
    if any(name not in params for name in AUTH_QUERY_PARAMS):
        return Rejection(400, "AuthorizationQueryParametersError", MISSING_AUTH_PARAMS)
    if params["X-Amz-Algorithm"] != ALGORITHM:
        return Rejection(400, "AuthorizationQueryParametersError", f'X-Amz-Algorithm only supports "{ALGORITHM}"')
    scope = params["X-Amz-Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or scope[3] != "s3" or not scope[0]:
        return Rejection(
            400,
            "AuthorizationQueryParametersError",
            "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; "
            'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
        )
    access_key, scope_date, region, service, _ = scope
    amz_date = params["X-Amz-Date"]
    try:
        signed_at = datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return Rejection(
            400,
            "AuthorizationQueryParametersError",
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
        )
    try:
        expires_s = int(params["X-Amz-Expires"])
    except ValueError:
        return Rejection(400, "AuthorizationQueryParametersError", "X-Amz-Expires should be a number")
    if expires_s < 0:
        return Rejection(400, "AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative")
    if expires_s > MAX_EXPIRES_S:
        return Rejection(
            400,
            "AuthorizationQueryParametersError",
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES_S}",
        )
    secret = credentials.get(access_key)
    if secret is None:
        return Rejection(
            403,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            (("AWSAccessKeyId", access_key),),
        )
    expires_at = signed_at + timedelta(seconds=expires_s)
    if now > expires_at:
        return Rejection(
            403,
            "AccessDenied",
            "Request has expired",
            (
                ("X-Amz-Expires", str(expires_s)),
                ("Expires", expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")),
                ("ServerTime", now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
            ),
        )

    # The canonical request, from what actually arrived.
    signed_names = params["X-Amz-SignedHeaders"].split(";")
    actual: dict[str, list[str]] = {}
    for name, value in headers:
        actual.setdefault(name.lower(), []).append(_trim(value))
    canonical_headers = "".join(f"{name}:{','.join(actual.get(name, []))}\n" for name in signed_names)
    canonical_query = "&".join(f"{k}={v}" for k, v in sorted(pairs) if k != "X-Amz-Signature")
    payload_hash = ",".join(actual.get("x-amz-content-sha256", [])) or UNSIGNED_PAYLOAD
    canonical_request = "\n".join(
        (
            method.upper(),
            _uri_encode(raw_path or "/", "/~"),
            canonical_query,
            canonical_headers,
            params["X-Amz-SignedHeaders"],
            payload_hash,
        )
    )
    credential_scope = f"{scope_date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        (ALGORITHM, amz_date, credential_scope, hashlib.sha256(canonical_request.encode()).hexdigest())
    )
    expected = hmac.new(
        signing_key(secret, scope_date, region, service), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
        return Rejection(
            403,
            "SignatureDoesNotMatch",
            SIGNATURE_MISMATCH,
            (
                ("AWSAccessKeyId", access_key),
                ("StringToSign", string_to_sign),
                ("CanonicalRequest", canonical_request),
            ),
        )
    return None

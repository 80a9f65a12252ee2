"""What the gate asks of a request besides a valid presigned signature (`sigv4.py`), each as S3 refuses it."""

from __future__ import annotations

import hashlib
import re

from infra.local.s3_gate.sigv4 import UNSIGNED_PAYLOAD, Rejection

ONE_AUTH_MECHANISM = Rejection(
    400,
    "InvalidArgument",
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature "
    "query string parameter or the Authorization header should be specified",
    (("ArgumentName", "Authorization"),),
)


def check_header_key(authorization: str | None, header_keys: frozenset[str] | None) -> Rejection | None:
    """A header-signed request's key must be one of `header_keys` (None: any key)."""
    if authorization is None or header_keys is None:
        return None
    found = re.search(r"Credential=([^/,\s]+)/", authorization)
    key = found.group(1) if found else ""
    if key in header_keys:
        return None
    return Rejection(
        403,
        "InvalidAccessKeyId",
        "The AWS Access Key Id you provided does not exist in our records.",
        (("AWSAccessKeyId", key),),
    )


def check_payload_hash(claimed: str | None, body: bytes) -> Rejection | None:
    """A presigned request's body must match the `x-amz-content-sha256` it claims, if it claims one."""
    if claimed is None or claimed == UNSIGNED_PAYLOAD or claimed.startswith("STREAMING-"):
        return None
    if hashlib.sha256(body).hexdigest() != claimed.lower():
        return Rejection(
            400,
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
            (
                ("ClientComputedContentSHA256", claimed),
                ("S3ComputedContentSHA256", hashlib.sha256(body).hexdigest()),
            ),
        )
    return None

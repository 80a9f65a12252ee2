"""Helpers for HTTP replies shared by the api and webhook handlers."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel

from portrait_studio.errors import PortraitError

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
}


ERROR_DESCRIPTIONS = {
    400: "The request is not valid (see error.message).",
    404: "No such job, or the token does not match (the two are indistinguishable).",
    409: (
        "The job cannot do that in its current state (job_state_conflict, uploads_incomplete), or has used its"
        " free work: upload_limit_reached (photos over its whole life, removed ones included) or"
        " submit_limit_reached (submits before payment); a new job starts afresh."
    ),
    413: "A photo or the request body is too large.",
    429: "Too many new jobs from this address; try again after Retry-After seconds.",
    503: "The payment provider cannot be reached for a moment; try again shortly.",
}


def documented(
    success: int, model: type[BaseModel] | None, *errors: int, receipt: bool = False, pending: int | None = None
) -> dict[int, Any]:
    """OpenAPI responses of a route: its success (and `pending`: accepted, finished later) and its JSON errors."""
    from portrait_studio.api_models import ErrorBody

    ok: dict[str, Any] = {"description": "Success."}
    if model is not None:
        ok["content"] = {"application/json": {"model": model}}
    if receipt:
        ok["headers"] = {
            "X-Deletion-Receipt": {"description": "The deletion receipt id.", "schema": {"type": "string"}}
        }
    responses: dict[int, Any] = {success: ok}
    if pending is not None:
        responses[pending] = {**ok, "description": "Accepted: recorded, and finished within a minute."}
    for code in errors:
        responses[code] = {
            "description": ERROR_DESCRIPTIONS[code],
            "content": {"application/json": {"model": ErrorBody}},
        }
        if code == 429:
            retry = {"description": "Seconds until a new try can succeed.", "schema": {"type": "integer"}}
            responses[code]["headers"] = {"Retry-After": retry}
    return responses


def bearer_token(headers: Mapping[str, str] | None) -> str | None:
    value = {k.lower(): v for k, v in (headers or {}).items()}.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def json_response(status: int, model: BaseModel) -> Response[Any]:
    """The resolver validates the model against the route's return type and serializes it."""
    return Response(status_code=status, content_type="application/json", body=model)


def error_response(error: PortraitError, status: int | None = None, code: str | None = None) -> Response[Any]:
    body = error.to_body()
    if code:
        body["error"] = {**body["error"], "code": code}  # type: ignore[dict-item]
    headers = {}
    if error.retry_after_s is not None:  # whole seconds, at least 1 (RFC 9110 delay-seconds)
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    status = status or error.http_status
    return Response(status_code=status, content_type="application/json", body=json.dumps(body), headers=headers)


def secured(reply: dict[str, Any]) -> dict[str, Any]:
    """The security headers on a resolver's reply, whatever produced it (route, error mapping, not-found,
    validation): applied to the final API Gateway response, so no path can skip them."""
    headers = reply.get("headers") or {}
    present = {name.lower() for name in headers}
    reply["headers"] = headers | {k: v for k, v in SECURITY_HEADERS.items() if k.lower() not in present}
    return reply

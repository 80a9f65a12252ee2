"""Helpers for HTTP replies shared by the api and webhook handlers."""

from __future__ import annotations

import json
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
    return Response(status_code=status or error.http_status, content_type="application/json", body=json.dumps(body))

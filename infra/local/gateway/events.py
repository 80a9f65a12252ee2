"""A request as the HTTP API's payload v2 event for the template's route it matches, and a function's reply as HTTP."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from infra.local.account import ACCOUNT
from infra.local.template import Route


def match(routes: list[Route], method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    for route in routes:
        found = route.pattern.match(path)
        if found and route.method == method:
            return route, found.groupdict()
    return None, {}


def http_event(
    request: BaseHTTPRequestHandler, route: Route, params: dict[str, str], query: str, body: bytes, port: int
) -> dict[str, Any]:
    """The API Gateway HTTP API (payload v2) event of one request."""
    now = datetime.now(UTC)
    headers = {name.lower(): value for name, value in request.headers.items()}
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    return {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": urlsplit(request.path).path,
        "rawQueryString": query,
        "headers": headers,
        "queryStringParameters": dict(parse_qsl(query)) or None,
        "pathParameters": params or None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "local",
            "domainName": f"127.0.0.1:{port}",
            "domainPrefix": "local",
            "http": {
                "method": route.method,
                "path": urlsplit(request.path).path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.client_address[0],
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": text or None,
        "isBase64Encoded": encoded,
    }


def reply(result: Any) -> tuple[int, dict[str, str], bytes]:
    if not isinstance(result, dict) or "statusCode" not in result:
        return 200, {"Content-Type": "application/json"}, json.dumps(result).encode()
    body = result.get("body") or ""
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(str(v) for v in values)
    return int(result["statusCode"]), headers, payload

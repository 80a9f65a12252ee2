"""The local API Gateway: a request as the HTTP API's v2 event, a function's reply as HTTP, and the web page."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from infra.local.template import ROOT, Route
from infra.local.web_headers import served_headers

ACCOUNT = "123456789012"
WEB_DIR = ROOT / "web"


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


def static(method: str, path: str, api_url: str, r2_url: str) -> tuple[int, dict[str, str], bytes]:
    not_found = b'{"error":{"code":"not_found","message":"No such route."}}'
    if method not in ("GET", "HEAD") or not WEB_DIR.is_dir():
        return 404, {"Content-Type": "application/json"}, not_found
    target = (WEB_DIR / (path.lstrip("/") or "index.html")).resolve()
    if not target.is_file() or WEB_DIR.resolve() not in target.parents or target.name.startswith("_"):
        return 404, {"Content-Type": "application/json"}, not_found  # `_headers` is the host's, not served
    types = {
        ".html": "text/html; charset=utf-8",
        ".css": "text/css",
        ".js": "text/javascript",
        ".svg": "image/svg+xml",
    }
    headers = served_headers(path or "/", api_url, r2_url)  # web/_headers, as production serves it
    headers["Content-Type"] = types.get(target.suffix, "application/octet-stream")
    return 200, headers, target.read_bytes()

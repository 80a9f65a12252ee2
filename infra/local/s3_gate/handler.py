"""One request at the gate: checked as R2 (S3) checks it, then forwarded to moto, or refused with S3's XML error.

A presigned request must verify (`sigv4.py`) and match its `x-amz-content-sha256`; one signed by header must use
a key in `header_keys`; an unsigned one (a CORS preflight) passes. A refusal carries the bucket's CORS headers, so
a browser can read it.
"""

from __future__ import annotations

import http.client
import secrets
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from infra.local.s3_gate.body import BodyError, read_body
from infra.local.s3_gate.checks import ONE_AUTH_MECHANISM, check_header_key, check_payload_hash
from infra.local.s3_gate.proxy import exchange, response_headers, upstream_headers
from infra.local.s3_gate.sigv4 import Rejection, is_presigned, verify_presigned

if TYPE_CHECKING:
    from infra.local.s3_gate.gate import S3Gate


class GateHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AmazonS3"
    sys_version = ""
    timeout = 120  # an idle keep-alive connection (or a stalled upload) frees its thread after this
    gate: S3Gate  # set on the per-gate subclass

    def log_message(self, format: str, *args: Any) -> None:
        """No access log, no error log: request lines hold presigned signatures."""

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = do_GET

    # ------------------------------------------------------------------ request

    def _handle(self) -> None:
        raw_path, _, raw_query = self.path.partition("?")
        raw_path = raw_path.partition("#")[0]
        try:
            body = read_body(self.rfile, self.headers)
        except BodyError as exc:
            self.close_connection = True
            self._reject(exc.rejection)
            return
        # A CORS preflight is never authenticated (the browser sends it to the presigned URL, query and all).
        if self.command != "OPTIONS" and is_presigned(raw_query):
            if self.headers.get("Authorization") is not None:
                self._reject(ONE_AUTH_MECHANISM)
                return
            rejection = verify_presigned(
                self.command,
                raw_path,
                raw_query,
                self.headers.items(),
                self.gate.credentials,
                self.gate.now(),
            )
            if rejection is None:
                rejection = check_payload_hash(self.headers.get("x-amz-content-sha256"), body)
            if rejection is not None:
                self._reject(rejection)
                return
        else:
            rejection = check_header_key(self.headers.get("Authorization"), self.gate.header_keys)
            if rejection is not None:
                self._reject(rejection)
                return
        self._forward(body)

    # ------------------------------------------------------------------ forwarding

    def _forward(self, body: bytes) -> None:
        if self.gate.on_forward is not None:
            self.gate.on_forward(self.command, self.path, self.headers)
        try:
            connection, response = exchange(
                self.gate.connect,
                self.command,
                self.path,
                upstream_headers(self.headers, body, self.gate.upstream_netloc),
                body,
            )
        except (OSError, http.client.HTTPException):
            self.close_connection = True
            self._reject(Rejection(502, "BadGateway", "The gate could not reach the object store."))
            return
        try:
            self._relay(response)
        finally:
            response.close()
            connection.close()

    def _relay(self, response: http.client.HTTPResponse) -> None:
        headers = response_headers(response)
        length = response.getheader("Content-Length")
        bodiless = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        if length is None and not bodiless:
            # Chunked or close-delimited upstream: read it all and give the client a length.
            data = response.read()
            headers.append(("Content-Length", str(len(data))))
            self._start_response(response.status, response.reason, headers)
            self.wfile.write(data)
            return
        self._start_response(response.status, response.reason, headers)
        if bodiless:
            return
        while chunk := response.read(1 << 16):
            self.wfile.write(chunk)

    def _start_response(self, status: int, reason: str, headers: Sequence[tuple[str, str]]) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    # ------------------------------------------------------------------ errors

    def _reject(self, rejection: Rejection) -> None:
        request_id = secrets.token_hex(8).upper()
        body = rejection.xml(request_id, secrets.token_urlsafe(24))
        headers = [
            ("x-amz-request-id", request_id),
            ("Date", self.date_time_string()),
            ("Server", self.server_version),
            ("Content-Type", "application/xml"),
            ("Content-Length", str(len(body))),
            *self._cors_headers(),
        ]
        self._start_response(rejection.status, http.client.responses.get(rejection.status, ""), headers)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _cors_headers(self) -> list[tuple[str, str]]:
        """The bucket's CORS answer for this origin and method, so a browser can read the error (as with S3)."""
        origin = self.headers.get("Origin")
        if origin is None or self.command == "OPTIONS":
            return []
        raw_path = self.path.partition("?")[0]
        probe = [
            ("Host", self.headers.get("Host", self.gate.upstream_netloc)),
            ("Origin", origin),
            ("Access-Control-Request-Method", self.command),
            ("Content-Length", "0"),
        ]
        try:
            connection, response = exchange(self.gate.connect, "OPTIONS", raw_path or "/", probe, b"")
        except (OSError, http.client.HTTPException):
            return []
        try:
            response.read()
            if response.status != 200:
                return []
            return [
                (n, v)
                for n, v in response.msg.items()
                if n.lower().startswith("access-control-") or n.lower() == "vary"
            ]
        finally:
            response.close()
            connection.close()

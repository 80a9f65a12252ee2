"""`S3Gate`: the gate's server in front of moto, with the credentials and clock it checks presigned URLs against."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.message import Message
from http.server import ThreadingHTTPServer
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from infra.local.s3_gate.handler import GateHandler

DEFAULT_CREDENTIALS: Mapping[str, str] = MappingProxyType({"testing": "testing"})


class _GateServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Dropped client connections are routine; print nothing (tracebacks could show URLs)."""


class S3Gate:
    """`start()` it, point presigned URLs (and boto3, if you like) at `url`; moto stays behind it."""

    def __init__(
        self,
        upstream: str,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: Mapping[str, str] = DEFAULT_CREDENTIALS,
        clock: Callable[[], datetime] | None = None,
        *,
        upstream_timeout_s: float = 60.0,
        on_forward: Callable[[str, str, Message], None] | None = None,
        header_keys: frozenset[str] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream must be an http(s) URL, got {upstream!r}")
        self.upstream = upstream
        self.upstream_netloc = parts.netloc
        self._upstream_https = parts.scheme == "https"
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or (443 if self._upstream_https else 80)
        self._upstream_timeout_s = upstream_timeout_s
        self.host = host
        self.port = port
        self.credentials: Mapping[str, str] = dict(credentials)
        self.header_keys = header_keys
        self.clock = clock
        # Told the method, raw target and headers of each request forwarded upstream (the local stack counts
        # R2 operations with it); never of a rejected one.
        self.on_forward = on_forward
        self.url = f"http://{self._url_host(host)}:{port}"
        self._server: _GateServer | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def _url_host(host: str) -> str:
        return "127.0.0.1" if host in ("", "0.0.0.0") else host

    def now(self) -> datetime:
        now = self.clock() if self.clock is not None else datetime.now(UTC)
        return now if now.tzinfo is not None else now.replace(tzinfo=UTC)

    def connect(self) -> http.client.HTTPConnection:
        if self._upstream_https:
            return http.client.HTTPSConnection(
                self._upstream_host, self._upstream_port, timeout=self._upstream_timeout_s
            )
        return http.client.HTTPConnection(self._upstream_host, self._upstream_port, timeout=self._upstream_timeout_s)

    def start(self) -> None:
        if self._server is not None:
            return
        handler = type("S3GateHandler", (GateHandler,), {"gate": self})
        self._server = _GateServer((self.host, self.port), handler)
        self.port = int(self._server.server_address[1])
        self.url = f"http://{self._url_host(self.host)}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="s3-gate", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> S3Gate:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""An emulator served over HTTP on loopback: its lifecycle, and the HTTP server and handler every emulator uses.

An emulator subclasses `LoopbackEmulator`: it names itself (threads, `Server` header, log line), caps request bodies,
shapes its own error bodies (`_error_reply`) and answers each request in `handle`; this module reads the body, refuses
what is oversized or arrives after `stop()`, and writes the `Reply`.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self

import httpx

from infra.local.emulators.runner import Runner


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


# --------------------------------------------------------------------------- the emulator's lifecycle


class LoopbackEmulator(ABC):
    """An emulator served over HTTP on loopback; it starts once, and `stop()` (or leaving `with`) ends it."""

    server_name: ClassVar[str]  # "stripe-emulator": its threads' names and, with "/1.0", its `Server` header
    title: ClassVar[str]  # "Stripe emulator", as its log line on start names it
    max_body_bytes: ClassVar[int]
    logger: ClassVar[logging.Logger]

    def __init__(self, host: str, port: int, workers: int) -> None:
        self._host = host
        self._port = port
        self.url = ""
        self._runner = Runner(workers, self.server_name, self.logger)
        self._server: _Server | None = None
        self._server_thread: threading.Thread | None = None
        self._http: httpx.Client | None = None

    @abstractmethod
    def handle(self, method: str, target: str, headers: Message, body: bytes) -> Reply:
        """The reply to one request (`target`: the path and query string)."""

    @abstractmethod
    def _error_reply(self, status: int, message: str) -> Reply:
        """The emulator's error body for a request the plumbing refuses (413, 503) or that failed (500)."""

    def _started(self) -> None:  # noqa: B027 - an optional hook, empty unless overridden
        """Called once the workers run, before the first request is served: background work to begin with."""

    def start(self) -> None:
        if self._server is not None or self.stopped:
            raise RuntimeError("an emulator starts once; create a new one to run again")
        self._http = httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0), trust_env=False)
        server = _Server((self._host, self._port), _RequestHandler)
        server.emulator = self
        self._server = server
        host, port = server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._runner.start()
        self._started()
        self._server_thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"{self.server_name}-http", daemon=True
        )
        self._server_thread.start()
        self.logger.info("%s listening on %s", self.title, self.url)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        self._runner.stop(timeout_s=5.0)
        if self._server_thread is not None:
            self._server_thread.join(2.0)
        if self._http is not None:
            self._http.close()

    @property
    def stopped(self) -> bool:
        return self._runner.stopping.is_set()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def serve_until_interrupted(self) -> None:
        """For a CLI: serve until Ctrl-C, then stop."""
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()


# --------------------------------------------------------------------------- HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: LoopbackEmulator


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections must not pin a thread forever

    def version_string(self) -> str:
        return f"{self.server.emulator.server_name}/1.0 {self.sys_version}"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        emulator = self.server.emulator
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= emulator.max_body_bytes:
            self.close_connection = True
            self._reply(emulator._error_reply(413, "Missing or oversized request body."))
            return
        body = self.rfile.read(length) if length else b""
        if emulator.stopped:  # a kept-alive connection can outlive stop(); do not serve on it
            self.close_connection = True
            self._reply(emulator._error_reply(503, "The emulator has stopped."))
            return
        try:
            reply = emulator.handle(method, self.path, self.headers, body)
        except Exception:
            emulator.logger.exception("emulator request failed: %s %s", method, self.path)
            reply = emulator._error_reply(500, "Internal server error.")
        self._reply(reply)

    def _reply(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        self.server.emulator.logger.debug("%s %s", self.address_string(), format % args)

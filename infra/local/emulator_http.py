"""The plumbing the local emulators (Replicate, Stripe) share: a loopback HTTP server, background work, lifecycle.

An emulator subclasses `LoopbackEmulator`: it names itself (threads, `Server` header, log line), caps request bodies,
shapes its own error bodies (`_error_reply`) and answers each request in `handle`; this module reads the body, refuses
what is oversized or arrives after `stop()`, writes the `Reply`, and runs a timer thread plus a few daemon workers
(`Runner`) so no HTTP thread ever waits on background work such as a webhook delivery.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self

import httpx


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


# --------------------------------------------------------------------------- background work


class Runner:
    """A timer thread plus a few daemon workers, named `<name>-<n>`; a failed task is logged to `log`."""

    def __init__(self, workers: int, name: str, log: logging.Logger) -> None:
        self._workers = workers
        self._name = name
        self._log = log
        self._tasks: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._threads: list[threading.Thread] = []
        self.stopping = threading.Event()

    def start(self) -> None:
        targets = [self._timer_loop] + [self._worker_loop] * self._workers
        for n, target in enumerate(targets):
            thread = threading.Thread(target=target, name=f"{self._name}-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, task: Callable[[], None]) -> None:
        if not self.stopping.is_set():
            self._tasks.put(task)

    def call_later(self, delay_s: float, task: Callable[[], None]) -> None:
        if delay_s <= 0:
            self.submit(task)
            return
        with self._cond:
            heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._seq), task))
            self._cond.notify()

    def stop(self, timeout_s: float) -> None:
        self.stopping.set()
        with self._cond:
            self._cond.notify_all()
        for _ in range(self._workers):
            self._tasks.put(None)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            self._log.warning("threads still busy after stop (daemon, left behind): %s", stuck)

    def _timer_loop(self) -> None:
        while not self.stopping.is_set():
            with self._cond:
                if not self._timers:
                    self._cond.wait()
                    continue
                wait_s = self._timers[0][0] - time.monotonic()
                if wait_s > 0:
                    self._cond.wait(wait_s)
                    continue
                _, _, task = heapq.heappop(self._timers)
            self.submit(task)

    def _worker_loop(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None or self.stopping.is_set():
                return
            try:
                task()
            except Exception:
                self._log.exception("emulator task failed")


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


# --------------------------------------------------------------------------- CLI


def cli_parser(description: str, port: int) -> argparse.ArgumentParser:
    """An emulator CLI's parser, with the options every emulator takes: --host, --port, --webhook-secret."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--webhook-secret", default=None, help="whsec_...; random when omitted")
    return parser


def parse_cli(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The command line's options, with logging set up for a CLI run (INFO, timestamped)."""
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return args


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

"""What the emulator tests share: a loopback HTTP server, a webhook receiver, and Replicate's test token and client.

The fixtures built on these (`receiver`, `start_emulator`, `make_replicate`) live in this folder's conftest.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from replicate.client import Client

from infra.local.replicate.emulator import ReplicateEmulator

REPLICATE_TOKEN = "r8_test_token"
PHOTOMAKER_VERSION = "ddfc2b08d209f9fa8c1eca692712918bd449f695dabb4a958da31802a9570fe4"


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serves `handler` on a free loopback port until the block ends; yields the server's base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def replicate_client(emulator: ReplicateEmulator, poll_interval_s: float) -> Client:
    """The official client, on the emulator with the test token, polling every `poll_interval_s`."""
    client = Client(api_token=REPLICATE_TOKEN, base_url=emulator.url)
    client.poll_interval = poll_interval_s
    return client


# --------------------------------------------------------------------------- the webhook receiver


@dataclass(frozen=True)
class Delivery:
    tag: str
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result


class Receiver:
    """Records every webhook POST under /hooks/<tag>; answers 200, or first the errors planned for the tag."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.errors: dict[str, list[int]] = {}
        self._cond = threading.Condition()
        self.base = ""

    def url(self, tag: str) -> str:
        return f"{self.base}/hooks/{tag}?job=j1&slot=corporate%230"

    def record(self, tag: str, headers: dict[str, str], body: bytes) -> int:
        with self._cond:
            self.deliveries.append(Delivery(tag, headers, body))
            self._cond.notify_all()
            planned = self.errors.get(tag)
            return planned.pop(0) if planned else 200

    def of(self, tag: str) -> list[Delivery]:
        with self._cond:
            return [d for d in self.deliveries if d.tag == tag]

    def wait_for(self, tag: str, count: int, timeout_s: float = 5.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len([d for d in self.deliveries if d.tag == tag]) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        return self.of(tag)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                tag = self.path.split("?")[0].removeprefix("/hooks/")
                status = receiver.record(tag, {k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

"""The local stack's ports are held from the moment they are picked: nothing else on the machine can take one
between the stack naming it in a URL and a server serving on it (a loaded CI run once lost a stack that way)."""

from __future__ import annotations

import errno
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from infra.local.ports import listening_socket, port_of, serve_on
from infra.local.stack import LocalStack


def _bind_fails(port: int) -> bool:
    with socket.socket() as other:
        try:
            other.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
        return False


def test_a_picked_port_stays_taken_until_its_socket_closes() -> None:
    sock = listening_socket()
    port = port_of(sock)
    assert _bind_fails(port)
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # already listening: a client that comes early waits for the server instead of being refused
    sock.close()
    assert not _bind_fails(port)


def test_a_server_handed_the_socket_serves_on_it() -> None:
    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, format: str, *args: object) -> None:
            return

    sock = listening_socket()
    port = port_of(sock)
    server = ThreadingHTTPServer(("127.0.0.1", port), Hello, bind_and_activate=False)
    serve_on(server, sock)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "hello"
    finally:
        server.shutdown()
        server.server_close()


def test_a_stack_holds_its_api_and_aws_ports_from_the_moment_it_names_them(tmp_path: Path) -> None:
    stack = LocalStack(port=0, state_dir=tmp_path)
    aws_port = int(stack.cloud.aws_url.rsplit(":", 1)[1])
    assert _bind_fails(stack.port) and _bind_fails(aws_port)
    stack.stop()  # never started: it lets both go
    assert not _bind_fails(stack.port) and not _bind_fails(aws_port)


def test_a_fixed_port_already_in_use_fails_at_once(tmp_path: Path) -> None:
    taken = listening_socket()
    try:
        with pytest.raises(OSError, match="Address already in use"):
            LocalStack(port=port_of(taken), state_dir=tmp_path)
    finally:
        taken.close()

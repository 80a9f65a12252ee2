"""The local gateway as a caller meets it: a caller that hangs up before a slow reply costs no stack error."""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any

import httpx
import pytest

from infra.local.gateway.server import Gateway
from infra.local.ports import listening_socket, port_of
from infra.local.template import Route


def test_a_caller_gone_before_a_slow_reply_leaves_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    def slow_webhook(function: str, event: dict[str, Any]) -> dict[str, Any]:
        time.sleep(1.0)  # longer than the caller waits, as a webhook under load may take
        return {"statusCode": 200, "body": "{}"}

    sock = listening_socket()
    url = f"http://127.0.0.1:{port_of(sock)}"
    gateway = Gateway(sock, [Route("POST", "/webhooks/replicate", "WebhookFunction")], slow_webhook, {}, url, url)
    threading.Thread(target=gateway.bind().serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", port_of(sock))) as caller:
            caller.sendall(b"POST /webhooks/replicate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            caller.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
        time.sleep(1.5)  # the reply is written to a connection the caller reset
        assert httpx.post(f"{url}/webhooks/replicate", content=b"{}", timeout=5).status_code == 200
    finally:
        gateway.stop()
    assert "Traceback" not in capfd.readouterr().err

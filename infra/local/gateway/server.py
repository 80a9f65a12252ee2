"""`Gateway`: the stack's one HTTP front door, as API Gateway and the web host are in production.

A template route's request becomes its function's payload v2 event (`events.py`); `/_local/...` goes to the local
route of that exact path (the stack's own controls: usage, IAM, faults, clock, mail, health; 404 for any other);
anything else is the web page (`static.py`). A request that fails answers 500 with API Gateway's body.
"""

from __future__ import annotations

import socket
import traceback
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import urlsplit

from infra.local.gateway.events import http_event, match, reply
from infra.local.gateway.static import static
from infra.local.ports import port_of, serve_on
from infra.local.template import Route

Answer = tuple[int, dict[str, str], bytes]
# A `/_local/...` route: (method, path, body) to (status, headers, payload).
LocalRoute = Callable[[str, str, bytes], Answer]
_NO_SUCH_ROUTE: Final = b'{"error":{"code":"not_found","message":"No such route."}}'


class Gateway:
    """Serves the template's routes by invoking their functions, the stack's `/_local/` routes, and the web page."""

    def __init__(
        self,
        listening: socket.socket,
        routes: list[Route],
        invoke: Callable[[str, dict[str, Any]], Any],
        local_routes: Mapping[str, LocalRoute],
        api_url: str,
        r2_url: str,
    ) -> None:
        self._listening = listening
        self.port = port_of(listening)
        self._routes = routes
        self._invoke = invoke
        self._local_routes = dict(local_routes)
        self._api_url = api_url
        self._r2_url = r2_url
        self._server: ThreadingHTTPServer | None = None

    def bind(self) -> ThreadingHTTPServer:
        """The gateway's server on its listening socket, for a thread to `serve_forever`."""
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return  # the functions log; access lines would only add noise (and URLs)

            def _handle(self) -> None:
                gateway.handle_http(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler, bind_and_activate=False)
        serve_on(self._server, self._listening)
        self._server.daemon_threads = True
        return self._server

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def handle_http(self, request: BaseHTTPRequestHandler) -> None:
        split = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        method = request.command.upper()
        try:
            if split.path.startswith("/_local/"):
                status, headers, payload = self._local(method, split.path, body)
            else:
                route, params = match(self._routes, method, split.path)
                if route is None:
                    status, headers, payload = static(method, split.path, self._api_url, self._r2_url)
                else:
                    event = http_event(request, route, params, split.query, body, self.port)
                    status, headers, payload = reply(self._invoke(route.function, event))
        except Exception:
            traceback.print_exc()
            status, headers, payload = 500, {"Content-Type": "application/json"}, b'{"message":"Internal Server Error"}'
        try:
            request.send_response(status)
            for name, value in headers.items():
                request.send_header(name, value)
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            if method != "HEAD":
                request.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The caller hung up before the reply (e.g. a webhook sender's own timeout, under load): API Gateway
            # drops such a reply too, and the sender retries. Not a stack error worth a traceback.
            request.close_connection = True

    def _local(self, method: str, path: str, body: bytes) -> Answer:
        route = self._local_routes.get(path)
        if route is None:
            return 404, {"Content-Type": "application/json"}, _NO_SUCH_ROUTE
        return route(method, path, body)

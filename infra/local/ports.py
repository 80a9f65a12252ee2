"""Loopback ports held from the moment they are picked until a server serves on them.

Picking a free port by binding a probe, closing it and binding the server later races every other process on the
machine: another stack's probe, or any client's outgoing connection, can take the port in between. A loaded CI run
lost a stack that way (EADDRINUSE on the gateway's port, picked seconds before the functions had started). A
listening socket handed to the server leaves no gap.
"""

from __future__ import annotations

import socket
import socketserver
from typing import Any


def listening_socket(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    """A socket listening on host:port (0: a free port, read back with `getsockname()`)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # As http.server's servers do: a stack restarted on a fixed port (`make dev`) gets it back at once.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def serve_on(server: socketserver.TCPServer, sock: socket.socket) -> None:
    """Make `server`, built with `bind_and_activate=False`, serve on the listening `sock` instead of its own."""
    server.socket.close()
    server.socket = sock
    server.server_address = sock.getsockname()


def moto_server(sock: socket.socket) -> Any:
    """moto's threaded server, serving on the listening `sock` (`ThreadedMotoServer` binds a port of its own)."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    class MotoOnSocket(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            # werkzeug serves on a duplicate of the descriptor; the caller closes `sock` once started.
            self._server = make_server(
                "127.0.0.1", port_of(sock), app, True, request_handler=MotoRequestHandler, fd=sock.fileno()
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return MotoOnSocket(ip_address="127.0.0.1", port=port_of(sock), verbose=False)

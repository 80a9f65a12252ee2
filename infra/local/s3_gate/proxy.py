"""Forwarding to the object store: what goes upstream and comes back, without the hop-by-hop headers."""

from __future__ import annotations

import http.client
from collections.abc import Callable, Sequence
from email.message import Message

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",  # the gate has answered `100 Continue` itself and holds the whole body
    }
)


def _hop_by_hop(message: Message) -> set[str]:
    """The headers that stay on this hop: the standard ones, and those the message's Connection header names."""
    dropped = set(HOP_BY_HOP)
    for value in message.get_all("Connection", []):
        dropped |= {token.strip().lower() for token in value.split(",")}
    return dropped


def upstream_headers(received: Message, body: bytes, upstream_netloc: str) -> list[tuple[str, str]]:
    """The request's headers as they go upstream (the body is whole by now, so never chunked)."""
    dropped = _hop_by_hop(received)
    headers = [(name, value) for name, value in received.items() if name.lower() not in dropped]
    if "Transfer-Encoding" in received:
        # The gate decoded the chunked body; moto gets it with a length.
        headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
    if "Host" not in received:
        headers.append(("Host", upstream_netloc))
    return headers


def response_headers(response: http.client.HTTPResponse) -> list[tuple[str, str]]:
    """The upstream answer's headers as they go back to the client."""
    dropped = _hop_by_hop(response.msg)
    return [(n, v) for n, v in response.msg.items() if n.lower() not in dropped]


def exchange(
    connect: Callable[[], http.client.HTTPConnection],
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Send one request upstream on a new connection; the caller closes both the response and the connection."""
    connection = connect()
    try:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders(body if body or method in ("PUT", "POST", "PATCH") else None)
        return connection, connection.getresponse()
    except BaseException:
        connection.close()
        raise

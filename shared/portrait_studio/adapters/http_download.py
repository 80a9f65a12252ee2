"""Downloader of Replicate's output files: only from the allowed origins, no redirects, size-capped while streaming.

An output URL comes from a webhook body or a prediction, so it is checked before any request: its scheme, host
and port must be one of the allowed origins (`https://replicate.delivery`, `https://*.replicate.delivery` for
its subdomains), with no userinfo. A redirect is refused, not followed: it could lead anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from portrait_studio.errors import OutputHostRefused, OutputInvalid

DEFAULT_PORTS = {"https": 443, "http": 80}


class Origin:
    """`scheme://host[:port]`, where a host `*.example.com` stands for the subdomains of example.com (only)."""

    def __init__(self, spec: str) -> None:
        parts = urlsplit(spec.strip())
        host = (parts.hostname or "").lower()
        if parts.scheme not in DEFAULT_PORTS or not host or parts.username or parts.path not in ("", "/"):
            raise ValueError(f"not an origin: {spec!r}")
        self.scheme = parts.scheme
        self.subdomains = host.startswith("*.")
        self.host = host.removeprefix("*.")
        self.port = parts.port or DEFAULT_PORTS[parts.scheme]

    def admits(self, scheme: str, host: str, port: int) -> bool:
        if (scheme, port) != (self.scheme, self.port):
            return False
        return host.endswith("." + self.host) if self.subdomains else host == self.host


def safe_to_log(url: str) -> str:
    """The URL without its query string or fragment (they can carry signatures)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"


class HttpDownloader:
    def __init__(self, origins: Sequence[str], timeout_s: float = 30.0, transport: Any = None) -> None:
        self._origins = [Origin(o) for o in origins]
        self._timeout_s = timeout_s
        self._transport = transport  # tests: an httpx.MockTransport
        self._client: Any = None

    def check(self, url: str) -> None:
        """Raises `OutputHostRefused` unless the URL is on an allowed origin (no request made)."""
        try:
            parts = urlsplit(url)
            port = parts.port or DEFAULT_PORTS.get(parts.scheme, -1)
        except ValueError:  # e.g. a port that is not a number
            raise OutputHostRefused("output URL is not a valid URL") from None
        host = (parts.hostname or "").lower().rstrip(".")
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise OutputHostRefused(f"output URL carries userinfo: {safe_to_log(url)}")
        if not any(o.admits(parts.scheme, host, port) for o in self._origins):
            raise OutputHostRefused(f"output URL not on an allowed origin: {safe_to_log(url)}")

    def fetch(self, url: str, max_bytes: int) -> tuple[bytes, str]:
        import httpx

        self.check(url)
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout_s, follow_redirects=False, transport=self._transport)
        try:
            with self._client.stream("GET", url) as response:
                if response.is_redirect:
                    raise OutputHostRefused(f"output download redirected ({response.status_code}): {safe_to_log(url)}")
                if response.status_code != 200:
                    raise OutputInvalid(f"output download answered {response.status_code}")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise OutputInvalid("output larger than allowed")
                    chunks.append(chunk)
                return b"".join(chunks), response.headers.get("content-type", "")
        except httpx.HTTPError as exc:
            raise OutputInvalid(f"output download failed: {type(exc).__name__}") from exc

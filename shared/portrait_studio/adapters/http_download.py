"""Downloader over HTTPS (Replicate's output URLs), size-capped while streaming."""

from __future__ import annotations

from typing import Any

from portrait_studio.errors import OutputInvalid


class HttpDownloader:
    def __init__(self, timeout_s: float = 30.0) -> None:
        self._timeout_s = timeout_s
        self._client: Any = None

    def fetch(self, url: str, max_bytes: int) -> tuple[bytes, str]:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout_s, follow_redirects=True)
        try:
            with self._client.stream("GET", url) as response:
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

"""The prediction's `input_image`: a data URI decoded, or an http(s) URL fetched, at most 50 MB."""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Final

import httpx

log = logging.getLogger("replicate_emulator")

_MAX_REFERENCE_BYTES: Final = 50 * 1024 * 1024
_REFERENCE_TIMEOUT_S: Final = 10.0


def fetch_reference(url: str) -> bytes | None:
    if url.startswith("data:"):
        return _decode_data_uri(url)
    try:
        with (
            httpx.Client(timeout=_REFERENCE_TIMEOUT_S, trust_env=False, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                log.warning("input_image answered %d; using a grey canvas", response.status_code)
                return None
            return _read_capped(response, _MAX_REFERENCE_BYTES)
    except httpx.HTTPError as exc:
        log.warning("could not fetch input_image (%s); using a grey canvas", exc)
        return None


def _decode_data_uri(uri: str) -> bytes | None:
    header, _, payload = uri.partition(",")
    if not header.endswith(";base64"):
        return None
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        return None


def _read_capped(response: httpx.Response, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            log.warning("input_image is larger than %d bytes; using a grey canvas", limit)
            return None
        chunks.append(chunk)
    return b"".join(chunks)

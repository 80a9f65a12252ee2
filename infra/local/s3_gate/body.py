"""A request's body as the gate reads it: by Content-Length or chunked, whole, within `MAX_BODY_BYTES`."""

from __future__ import annotations

from email.message import Message
from io import BufferedIOBase

from infra.local.s3_gate.sigv4 import Rejection

MAX_BODY_BYTES = 512 * 1024 * 1024  # far above the 30 MB uploads; only guards the gate's memory


class BodyError(Exception):
    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.code)
        self.rejection = rejection


def read_body(rfile: BufferedIOBase, headers: Message) -> bytes:
    """The whole body; BodyError with S3's answer when it is malformed, too large or cut short."""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return _read_chunked(rfile)
    length_header = headers.get("Content-Length")
    if length_header is None:
        return b""
    try:
        length = int(length_header)
    except ValueError:
        raise BodyError(Rejection(400, "BadRequest", "An error occurred when parsing the HTTP request.")) from None
    if length < 0:
        raise BodyError(Rejection(400, "BadRequest", "An error occurred when parsing the HTTP request."))
    if length > MAX_BODY_BYTES:
        raise BodyError(Rejection(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size"))
    return _read_exactly(rfile, length)


def _read_exactly(rfile: BufferedIOBase, length: int) -> bytes:
    chunks: list[bytes] = []
    remaining = length
    try:
        while remaining:
            chunk = rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except (TimeoutError, OSError):
        pass
    if remaining:
        raise BodyError(
            Rejection(
                400,
                "IncompleteBody",
                "You did not provide the number of bytes specified by the Content-Length HTTP header",
            )
        )
    return b"".join(chunks)


def _read_chunked(rfile: BufferedIOBase) -> bytes:
    chunks: list[bytes] = []
    total = 0
    malformed = BodyError(Rejection(400, "BadRequest", "An error occurred when parsing the HTTP request."))
    try:
        while True:
            size_line = rfile.readline(1024)
            size = int(size_line.split(b";", 1)[0].strip() or b"x", 16)
            if size == 0:
                while rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise BodyError(
                    Rejection(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
                )
            chunks.append(_read_exactly(rfile, size))
            rfile.readline(8)
    except (ValueError, TimeoutError, OSError):
        raise malformed from None

"""The frames between the stack and a worker process: a 4-byte big-endian length and that many bytes of JSON."""

from __future__ import annotations

import json
import os
import struct
from typing import Any

FRAME_HEADER = struct.Struct(">I")


def write_message(fd: int, message: dict[str, Any]) -> None:
    write_frame(fd, json.dumps(message).encode())


def write_frame(fd: int, payload: bytes) -> None:
    data = memoryview(FRAME_HEADER.pack(len(payload)) + payload)
    while data:
        data = data[os.write(fd, data) :]


def read_exactly(fd: int, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = os.read(fd, size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def read_message(fd: int) -> dict[str, Any] | None:
    header = read_exactly(fd, FRAME_HEADER.size)
    if header is None:
        return None
    payload = read_exactly(fd, FRAME_HEADER.unpack(header)[0])
    return None if payload is None else json.loads(payload)


def take_frame(buffer: bytearray) -> dict[str, Any] | None:
    """The first whole message in `buffer` (removed from it), or None while it holds only part of one."""
    if len(buffer) < FRAME_HEADER.size:
        return None
    size = FRAME_HEADER.unpack_from(buffer)[0]
    if len(buffer) < FRAME_HEADER.size + size:
        return None
    message: dict[str, Any] = json.loads(bytes(buffer[FRAME_HEADER.size : FRAME_HEADER.size + size]))
    del buffer[: FRAME_HEADER.size + size]
    return message

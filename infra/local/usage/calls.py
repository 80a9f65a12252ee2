"""Calls counted without an estimator: SQS bills per 64 KB of payload; Replicate's prediction calls by kind."""

from __future__ import annotations

import math

SQS_CHUNK_BYTES = 64 * 1024


def sqs_requests(payload_bytes: int) -> int:
    """SQS bills every 64 KB chunk of a call's payload as one request."""
    return max(1, math.ceil(payload_bytes / SQS_CHUNK_BYTES))


def replicate_call(method: str, path: str) -> str | None:
    """`create`, `get` or `cancel` for Replicate's prediction routes; None for anything else."""
    path = path.rstrip("/")
    if method == "POST":
        return "create" if path == "/v1/predictions" else "cancel" if path.endswith("/cancel") else None
    return "get" if method == "GET" and path.startswith("/v1/predictions/") else None

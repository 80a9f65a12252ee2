"""Crash faults for the local stack's queue-driven invocations: a Lambda that dies before or after its handler.

Set with `PUT /_local/faults {"crash_rate": 0.3, "seed": 7}` (local only; never in the template). A crash
`before` the handler is a function that never got to run its code; a crash `after` it is a timeout or an
out-of-memory kill once the handler's side effects happened but its response was lost. Either way the
batch is not deleted and SQS delivers it again after the visibility timeout, as with real Lambda and SQS.
"""

from __future__ import annotations

import json
import random
import threading
from typing import Any, Literal

from infra.local.log import log

CrashPoint = Literal["before", "after"]


def validate_crash_faults(body: Any) -> tuple[float, int | None]:
    """`(crash_rate, seed)` from a request body; ValueError with a message for the caller otherwise."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    unknown = set(body) - {"crash_rate", "seed"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; known: crash_rate, seed")
    rate = body.get("crash_rate")
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise ValueError("crash_rate must be a number from 0 to 1")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError("seed must be a whole number or null")
    return float(rate), seed


class CrashFaults:
    """The current crash rate and how many crashes were injected, shared by every poller thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._rate = 0.0
        self._seed: int | None = None
        self._counts: dict[CrashPoint, int] = {"before": 0, "after": 0}

    def configure(self, rate: float, seed: int | None) -> dict[str, Any]:
        with self._lock:
            self._rate, self._seed = rate, seed
            self._rng.seed(seed)
            return self._state_locked()

    def reset(self) -> dict[str, Any]:
        with self._lock:
            self._rate, self._seed = 0.0, None
            self._rng.seed(None)
            self._counts = {"before": 0, "after": 0}
            return self._state_locked()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return self._state_locked()

    def draw(self) -> CrashPoint | None:
        """Where this invocation crashes, if it does (and count it)."""
        with self._lock:
            if not self._rate or self._rng.random() >= self._rate:
                return None
            point: CrashPoint = "before" if self._rng.random() < 0.5 else "after"
            self._counts[point] += 1
            return point

    def _state_locked(self) -> dict[str, Any]:
        counts: dict[str, int] = {str(point): n for point, n in self._counts.items()}
        counts["total"] = sum(self._counts.values())
        return {"crash_rate": self._rate, "seed": self._seed, "crashes": counts}


def faults_route(crashes: CrashFaults, method: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """`/_local/faults`: GET the crash faults, PUT `{"crash_rate", "seed"}`, DELETE to clear them."""
    json_headers = {"Content-Type": "application/json"}
    if method == "GET":
        return 200, json_headers, json.dumps(crashes.state()).encode()
    if method == "DELETE":
        return 200, json_headers, json.dumps(crashes.reset()).encode()
    if method != "PUT":
        return 405, json_headers, b'{"error":{"code":"method_not_allowed","message":"Use GET, PUT or DELETE."}}'
    try:
        rate, seed = validate_crash_faults(json.loads(body or b"null"))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors too
        error = {"error": {"code": "invalid_request", "message": str(exc)}}
        return 400, json_headers, json.dumps(error).encode()
    log(f"crash faults: crash_rate {rate} seed {seed}")
    return 200, json_headers, json.dumps(crashes.configure(rate, seed)).encode()

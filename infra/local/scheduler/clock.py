"""The stack's clock: one offset every process reads, moved forward by `POST /_local/clock`.

`POST /_local/clock {"advance_seconds": n}` moves it (never back) and fires the schedules that fell due;
`GET /_local/clock` reads it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from portrait_studio.clock import MovableClock


def make_clock(state_dir: Path) -> MovableClock:
    """The stack's clock; the functions' worker processes read its offset from `state_dir`/clock-offset."""
    state_dir.mkdir(parents=True, exist_ok=True)
    # The functions' worker processes read the offset from this file on every `now()`.
    return MovableClock(offset_file=state_dir / "clock-offset")


def clock_route(
    clock: MovableClock, fire_due: Callable[[], list[str]], method: str, body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """`/_local/clock`: GET reads the clock; POST advances it and fires what fell due."""
    json_headers = {"Content-Type": "application/json"}
    if method == "POST":
        try:
            seconds = float(json.loads(body or b"{}").get("advance_seconds", 0))
            if seconds < 0:
                raise ValueError
        except (ValueError, AttributeError, TypeError):
            error = {"error": {"code": "invalid_request", "message": "advance_seconds must be a number ≥ 0"}}
            return 400, json_headers, json.dumps(error).encode()
        now = clock.advance(seconds)
        fired = fire_due()
        return 200, json_headers, json.dumps({"now": now.isoformat(), "fired": fired}).encode()
    if method == "GET":
        return 200, json_headers, json.dumps({"now": clock.now().isoformat()}).encode()
    return 404, json_headers, b'{"error":{"code":"not_found","message":"No such route."}}'

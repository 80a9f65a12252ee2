"""The local stack's own log lines: `[stack] ...` on stderr, beside the functions' output."""

from __future__ import annotations

import sys


def log(message: str) -> None:
    print(f"[stack] {message}", file=sys.stderr, flush=True)

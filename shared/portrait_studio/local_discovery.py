"""Operator commands find a running local stack by themselves, from the `.local/stack.json` it writes.

Only when the environment holds no `PORTRAIT_*` setting: explicit settings always win, untouched.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

STATE_VARIABLE = "PORTRAIT_LOCAL_STATE"  # a stack.json, or the directory holding it


@dataclass(frozen=True)
class LocalStackState:
    path: Path
    api_url: str
    environment: dict[str, str]


def find_local_stack(environ: Mapping[str, str], cwd: Path) -> LocalStackState | None:
    """The running local stack to use, or None when settings are explicit or no live stack is found."""
    if any(name.startswith("PORTRAIT_") and name != STATE_VARIABLE for name in environ):
        return None
    path = _state_file(environ.get(STATE_VARIABLE), cwd)
    if path is None:
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # half-written or gone: the stack is starting or stopping
    environment = state.get("environment") if isinstance(state, dict) else None
    if not isinstance(environment, dict) or not _alive(state.get("pid")):
        return None  # written by an older stack, or left behind by one that was killed
    return LocalStackState(path, str(state.get("api_url", "")), {str(k): str(v) for k, v in environment.items()})


def _state_file(explicit: str | None, cwd: Path) -> Path | None:
    if explicit:
        path = Path(explicit)
        path = path / "stack.json" if path.is_dir() else path
        return path if path.is_file() else None
    for directory in (cwd, *cwd.parents):
        candidate = directory / ".local" / "stack.json"
        if candidate.is_file():
            return candidate
    return None


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process, but alive
        return True
    return True

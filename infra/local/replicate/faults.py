"""The Replicate emulator's fault profile: which faults a run meets, and each prediction's draw of them.

`PUT /_emulator/faults` changes the profile: 429s for the first creates, failed predictions, NSFW-dropped outputs,
outputs showing somebody else or no face at all, and duplicate, missing, late or out-of-order webhooks. Every
random decision for a prediction is drawn when it is created (`FaultPlan`), so a seed replays a run.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any, Final

from infra.local.replicate.schema import WEBHOOK_EVENTS, is_number
from infra.local.replicate.wire import JSONDict

FAULT_DEFAULTS: Final[dict[str, Any]] = {
    "rate_limit_first": 0,
    "fail_rate": 0.0,
    "nsfw_drop_rate": 0.0,
    "identity_drift_rate": 0.0,
    "faceless_rate": 0.0,
    "duplicate_webhook_rate": 0.0,
    "missing_webhook_rate": 0.0,
    "webhook_delay_s": 0.0,
    "reorder_webhooks": False,
    "seed": None,
}

# Every fault at once, as the generation issue's acceptance run and the pipeline benchmark use it.
FULL_FAULT_PROFILE: Final[dict[str, Any]] = {
    "rate_limit_first": 5,
    "fail_rate": 0.2,
    "nsfw_drop_rate": 0.25,
    "duplicate_webhook_rate": 0.5,
    "missing_webhook_rate": 0.3,
    "reorder_webhooks": True,
}
_RATE_KEYS: Final = (
    "fail_rate",
    "nsfw_drop_rate",
    "identity_drift_rate",
    "faceless_rate",
    "duplicate_webhook_rate",
    "missing_webhook_rate",
)


def validate_faults(changes: Any) -> JSONDict:
    """Checked copy of a (partial) fault profile; raises ValueError naming the first bad key."""
    if not isinstance(changes, dict):
        raise ValueError("the fault profile must be a JSON object")
    clean: JSONDict = {}
    for key, value in changes.items():
        if key not in FAULT_DEFAULTS:
            raise ValueError(f"unknown fault {key!r}; known: {', '.join(FAULT_DEFAULTS)}")
        clean[key] = _validate_fault(key, value)
    return clean


def _validate_fault(key: str, value: Any) -> Any:
    if key in _RATE_KEYS:
        if not is_number(value, integer=False) or not 0 <= value <= 1:
            raise ValueError(f"{key} must be a number from 0 to 1")
        return float(value)
    if key == "rate_limit_first":
        if not is_number(value, integer=True) or value < 0:
            raise ValueError("rate_limit_first must be a whole number >= 0")
        return int(value)
    if key == "webhook_delay_s":
        if not is_number(value, integer=False) or not 0 <= value <= 600:
            raise ValueError("webhook_delay_s must be a number of seconds from 0 to 600")
        return float(value)
    if key == "reorder_webhooks":
        if not isinstance(value, bool):
            raise ValueError("reorder_webhooks must be true or false")
        return value
    if value is not None and not is_number(value, integer=True):
        raise ValueError("seed must be a whole number or null")
    return None if value is None else int(value)


@dataclass(frozen=True)
class FaultPlan:
    """Every random fault decision for one prediction, drawn when it is created so a seed replays a run."""

    fail: bool = False
    dropped: frozenset[int] = frozenset()
    drifted: frozenset[int] = frozenset()  # outputs showing somebody else (identity_drift_rate)
    faceless: frozenset[int] = frozenset()  # outputs showing no face at all (faceless_rate); wins over drifted
    duplicated: frozenset[str] = frozenset()
    skip_completed: bool = False
    webhook_delay_s: float = 0.0
    reorder: bool = False


def _draw_plan(rng: random.Random, faults: JSONDict, num_outputs: int, nsfw_filter: bool) -> FaultPlan:
    fail = rng.random() < faults["fail_rate"]
    drops = [rng.random() < faults["nsfw_drop_rate"] for _ in range(num_outputs)]
    duplicated = [e for e in WEBHOOK_EVENTS if rng.random() < faults["duplicate_webhook_rate"]]
    return FaultPlan(
        fail=fail,
        dropped=frozenset(i for i, drop in enumerate(drops) if drop and nsfw_filter),
        duplicated=frozenset(duplicated),
        skip_completed=rng.random() < faults["missing_webhook_rate"],
        webhook_delay_s=faults["webhook_delay_s"],
        reorder=faults["reorder_webhooks"],
        drifted=_draw_outputs(rng, faults["identity_drift_rate"], num_outputs),
        faceless=_draw_outputs(rng, faults["faceless_rate"], num_outputs),
    )


def _draw_outputs(rng: random.Random, rate: float, num_outputs: int) -> frozenset[int]:
    """The outputs a per-output fault hits. Draws nothing while the rate is 0, so a seeded profile without the
    fault replays exactly as it did before the fault existed."""
    if rate <= 0:
        return frozenset()
    return frozenset(n for n in range(num_outputs) if rng.random() < rate)


class FaultProfile:
    """The current fault profile and the random numbers drawn from it, guarded by the emulator's lock."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._faults: JSONDict = dict(FAULT_DEFAULTS)
        self._rng = random.Random()

    def set(self, profile: dict[str, Any]) -> dict[str, Any]:
        """Replace the given keys of the fault profile (ValueError if any is invalid); returns the whole profile."""
        changes = validate_faults(profile)
        with self._lock:
            self._faults.update(changes)
            if "seed" in changes:
                self._rng.seed(changes["seed"])
            return dict(self._faults)

    def reset(self) -> dict[str, Any]:
        with self._lock:
            self._faults = dict(FAULT_DEFAULTS)
            self._rng.seed(None)
            return dict(self._faults)

    def view(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._faults)

    def take_rate_limit(self) -> bool:
        """Whether this create is answered 429 (one of the first `rate_limit_first`, counted down)."""
        with self._lock:
            if self._faults["rate_limit_first"] <= 0:
                return False
            self._faults["rate_limit_first"] -= 1
            return True

    def draw_plan_locked(self, num_outputs: int, nsfw_filter: bool) -> FaultPlan:
        return _draw_plan(self._rng, self._faults, num_outputs, nsfw_filter)

    def draw_seed_locked(self) -> int:
        """A prediction's seed when its input names none."""
        return self._rng.randrange(2**32)

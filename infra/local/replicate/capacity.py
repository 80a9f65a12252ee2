"""Replicate's capacity, modelled: the instances a model runs on, their cold boots, the queue, and run times.

Off by default: predictions then run on the fixed step delay, as fast as ever. `PUT /_emulator/capacity` turns on
a model of the instances Replicate runs a model on, so a prediction waits in `starting` for a free instance (which
may first cold-boot) and runs for as long as PhotoMaker would, in emulated time `time_scale` times faster than real
(`clock.py`; `scheduling.py` plays the model's events out on the predictions).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from infra.local.replicate.schema import is_number
from infra.local.replicate.wire import JSONDict

_CAPACITY_DEFAULTS: Final[dict[str, Any]] = {
    "instances_min": 0,
    "instances_max": None,  # no limit
    "cold_boot_s": 0.0,
    "seconds_per_output": 0.0,  # per 50 steps
    "scale_up_s": 0.0,
    "time_scale": 1.0,
}
# Replicate publishes no idle timeout; a minute keeps an instance for the next prediction of a burst without
# keeping it for the next burst.
IDLE_SHUTDOWN_S: Final = 60.0
DEFAULT_NUM_STEPS: Final = 20  # PhotoMaker's own default, when the input names none
STEPS_PER_RATE: Final = 50  # seconds_per_output is per this many steps
_MAX_INSTANCES: Final = 1000
_MAX_CAPACITY_S: Final = 86_400.0
_MAX_TIME_SCALE: Final = 100_000.0


def validate_capacity(changes: Any, current: JSONDict) -> JSONDict:
    """The capacity profile `current` with the (partial) `changes` applied; raises ValueError naming what is wrong."""
    if not isinstance(changes, dict):
        raise ValueError("the capacity profile must be a JSON object")
    profile = dict(current)
    for key, value in changes.items():
        if key not in _CAPACITY_DEFAULTS:
            raise ValueError(f"unknown capacity setting {key!r}; known: {', '.join(_CAPACITY_DEFAULTS)}")
        profile[key] = _validate_capacity_value(key, value)
    if profile["instances_max"] is not None and profile["instances_min"] > profile["instances_max"]:
        raise ValueError("instances_min must not be more than instances_max")
    return profile


def _validate_capacity_value(key: str, value: Any) -> Any:
    if key == "instances_min":
        if not is_number(value, integer=True) or not 0 <= value <= _MAX_INSTANCES:
            raise ValueError(f"instances_min must be a whole number from 0 to {_MAX_INSTANCES}")
        return int(value)
    if key == "instances_max":
        if value is not None and (not is_number(value, integer=True) or not 1 <= value <= _MAX_INSTANCES):
            raise ValueError(f"instances_max must be a whole number from 1 to {_MAX_INSTANCES}, or null for no limit")
        return None if value is None else int(value)
    if key == "time_scale":
        if not is_number(value, integer=False) or not 0 < value <= _MAX_TIME_SCALE:
            raise ValueError(f"time_scale must be a number above 0, at most {_MAX_TIME_SCALE:g}")
        return float(value)
    if not is_number(value, integer=False) or not 0 <= value <= _MAX_CAPACITY_S:
        raise ValueError(f"{key} must be a number of seconds from 0 to {_MAX_CAPACITY_S:g}")
    return float(value)


@dataclass
class _Instance:
    """One instance of the model; `at` is when its boot ends (booting), when it became idle, or when its run ends."""

    state: str  # "booting", "idle" or "busy"
    at: datetime
    prediction: str | None = None


@dataclass(frozen=True)
class _Waiting:
    prediction: str
    work: float  # num_outputs × num_steps / 50: the run takes this many times seconds_per_output


@dataclass(frozen=True)
class RunEvent:
    kind: str  # "start" or "end" of a prediction's run
    prediction: str
    at: datetime


class CapacityModel:
    """Replicate's instances of one model, as a discrete-event simulation in emulated time.

    Bookkeeping only, without threads or a clock: each call names the instant it happens at, and the model first
    plays out its own events up to then, each at its exact instant, so timestamps do not depend on when a thread
    got to run. Its events:
    - a prediction waits (FIFO) until an instance is idle, then runs for seconds_per_output × num_outputs ×
      num_steps / 50; `instances_min` instances are always up and warm, so they never boot;
    - when more predictions wait than instances are booting, for `scale_up_s` without a break, that many more
      instances start booting (up to `instances_max`) and are ready `cold_boot_s` later;
    - an instance above `instances_min` that has been idle for IDLE_SHUTDOWN_S shuts down.
    Calls answer the runs that started or ended, for the emulator to show on the predictions.
    """

    def __init__(self) -> None:
        self.profile: JSONDict = dict(_CAPACITY_DEFAULTS)
        self._instances: list[_Instance] = []
        self._queue: list[_Waiting] = []
        self._now = datetime.min.replace(tzinfo=UTC)
        self._unmet_since: datetime | None = None  # since when more have waited than instances are booting

    @property
    def active(self) -> bool:
        """Whether new predictions go through the model (any setting changed from its default)."""
        return self.profile != _CAPACITY_DEFAULTS

    def advance(self, now: datetime) -> list[RunEvent]:
        return self._play(now)

    def admit(self, prediction: str, work: float, now: datetime) -> list[RunEvent]:
        events = self._play(now)
        self._queue.append(_Waiting(prediction, work))
        self._settle(events)
        return events

    def cancel(self, prediction: str, now: datetime) -> list[RunEvent]:
        events = self._play(now)
        self._queue = [w for w in self._queue if w.prediction != prediction]
        for instance in self._instances:
            if instance.prediction == prediction:
                self._free(instance)
        self._settle(events)
        return events

    def configure(self, profile: JSONDict, now: datetime) -> list[RunEvent]:
        """Apply a checked profile; a raised minimum comes up warm, as a deployment's always-on instances are."""
        events = self._play(now)
        self.profile = profile
        missing = profile["instances_min"] - len(self._instances)
        self._instances += [_Instance("idle", self._now) for _ in range(missing)]
        for instance in [i for i in self._instances if i.state == "idle"]:
            self._retire_if_over_max(instance)
        self._settle(events)
        return events

    def reset(self, now: datetime) -> list[RunEvent]:
        """Back to the defaults (off). What the model holds ends at once, so nothing lingers at real speed."""
        events = self._play(now)
        for instance in self._instances:
            if instance.prediction is not None:
                events.append(RunEvent("end", instance.prediction, self._now))
        for waiting in self._queue:
            events += [RunEvent(kind, waiting.prediction, self._now) for kind in ("start", "end")]
        self.profile = dict(_CAPACITY_DEFAULTS)
        self._instances, self._queue, self._unmet_since = [], [], None
        return events

    def next_due(self) -> datetime | None:
        dues = [i.at for i in self._instances if i.state != "idle"]
        if self._unmet_since is not None and self._room() > 0:
            dues.append(self._unmet_since + timedelta(seconds=self.profile["scale_up_s"]))
        idle = [i.at for i in self._instances if i.state == "idle"]
        if idle and len(self._instances) > self.profile["instances_min"]:
            dues.append(min(idle) + timedelta(seconds=IDLE_SHUTDOWN_S))
        return min(dues, default=None)

    def view(self) -> JSONDict:
        counts = dict.fromkeys(("booting", "idle", "busy"), 0)
        for instance in self._instances:
            counts[instance.state] += 1
        return {"instances": counts, "queue_length": len(self._queue)}

    def _play(self, until: datetime) -> list[RunEvent]:
        events: list[RunEvent] = []
        while (due := self.next_due()) is not None and due <= until:
            # A due already past (a setting lowered after the fact) happens now: the model's time never goes back.
            self._now = max(self._now, due)
            self._fire(events)
        self._now = max(self._now, until)
        return events

    def _fire(self, events: list[RunEvent]) -> None:
        for instance in list(self._instances):
            if instance.at > self._now or instance.state == "idle":
                continue
            if instance.prediction is not None:
                events.append(RunEvent("end", instance.prediction, instance.at))
            self._free(instance)
        scale_up = timedelta(seconds=self.profile["scale_up_s"])
        if self._unmet_since is not None and self._unmet_since + scale_up <= self._now:
            ready = self._now + timedelta(seconds=self.profile["cold_boot_s"])
            self._instances += [_Instance("booting", ready) for _ in range(min(self._unmet(), self._room()))]
        idle_limit = self._now - timedelta(seconds=IDLE_SHUTDOWN_S)
        for instance in sorted((i for i in self._instances if i.state == "idle"), key=lambda i: i.at):
            if instance.at <= idle_limit and len(self._instances) > self.profile["instances_min"]:
                self._instances.remove(instance)
        self._settle(events)

    def _free(self, instance: _Instance) -> None:
        instance.state, instance.at, instance.prediction = "idle", self._now, None
        self._retire_if_over_max(instance)

    def _retire_if_over_max(self, instance: _Instance) -> None:
        ceiling = self.profile["instances_max"]
        if ceiling is not None and len(self._instances) > ceiling:
            self._instances.remove(instance)

    def _settle(self, events: list[RunEvent]) -> None:
        """Give idle instances to waiting predictions, then note whether demand is left unmet, and since when."""
        idle = sorted((i for i in self._instances if i.state == "idle"), key=lambda i: i.at)
        for instance in idle[: len(self._queue)]:
            waiting = self._queue.pop(0)
            run = timedelta(seconds=self.profile["seconds_per_output"] * waiting.work)
            instance.state, instance.at, instance.prediction = "busy", self._now + run, waiting.prediction
            events.append(RunEvent("start", waiting.prediction, self._now))
        if self._unmet() <= 0:
            self._unmet_since = None
        elif self._unmet_since is None:
            self._unmet_since = self._now

    def _unmet(self) -> int:
        return len(self._queue) - sum(1 for i in self._instances if i.state in ("booting", "idle"))

    def _room(self) -> int:
        ceiling = self.profile["instances_max"]
        return len(self._queue) if ceiling is None else ceiling - len(self._instances)

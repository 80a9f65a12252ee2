"""A local stand-in for Replicate's HTTP API, running PhotoMaker predictions without any model.

It speaks enough of `https://api.replicate.com/v1` for the official `replicate` client (create, get, list,
cancel predictions; get a deployment and create its predictions; the default webhook secret), signs its
webhooks like Replicate (Standard Webhooks), and can inject the faults a real run meets: 429s, failures,
NSFW-dropped outputs, outputs showing somebody else or no face at all, and late, duplicate, out-of-order or missing
webhooks. Outputs are the reference photo, tinted and stamped "LOCAL PREVIEW - not AI output", so nobody can
mistake them for generated headshots.
On request it also models capacity (instances, cold boots, queueing, run times) in emulated time; see
`_CapacityModel` and `_EmulatedClock`.

    python -m infra.local.replicate_emulator --port 8788
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import io
import json
import logging
import math
import random
import re
import secrets
import string
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from functools import lru_cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from PIL import Image, ImageDraw, ImageFont, ImageOps

from infra.local.emulators.cli import cli_parser, parse_cli
from infra.local.emulators.loopback import LoopbackEmulator, Reply, utc_now
from portrait_studio.config import PHOTOMAKER_VERSION

log = logging.getLogger("replicate_emulator")

MODEL: Final = "tencentarc/photomaker"
# Any `owner/name` is a deployment (no list to keep in step with the config), serving PhotoMaker at the pinned
# version on the hardware the README recommends.
DEPLOYMENT_HARDWARE: Final = "gpu-a40-large"
STYLE_NAMES: Final = (
    "(No style)",
    "Cinematic",
    "Disney Charactor",
    "Digital Art",
    "Photographic (Default)",
    "Fantasy art",
    "Neonpunk",
    "Enhance",
    "Comic book",
    "Lowpoly",
    "Line art",
)
DEFAULT_STYLE: Final = "Photographic (Default)"
WEBHOOK_EVENTS: Final = ("start", "output", "logs", "completed")
TERMINAL: Final = frozenset({"succeeded", "failed", "canceled"})
NSFW_ERROR: Final = "All generated images contained NSFW content. Try running it again with a different prompt."
INJECTED_ERROR: Final = "Prediction interrupted; please retry (code: PA)"
OUTPUT_SIZE: Final = 1024
DEFAULT_API_TOKEN: Final = "r8_local_emulator_token"  # noqa: S105 - the well-known token of a loopback-only fake
# The face an output shows under `identity_drift_rate`: a public-domain photo of somebody else (assets/ATTRIBUTION.md),
# found next to this module so the emulator finds it from any working directory.
OTHER_PERSON_PHOTO: Final = Path(__file__).resolve().parent / "assets" / "grace-hopper.jpg"

_ID_ALPHABET: Final = string.ascii_lowercase + string.digits
_VERSION_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_TRIGGER_RE: Final = re.compile(r"\bimg\b", re.IGNORECASE)
_MAX_BODY_BYTES: Final = 50 * 1024 * 1024
_MAX_REFERENCE_BYTES: Final = 50 * 1024 * 1024
_REFERENCE_TIMEOUT_S: Final = 10.0
_WEBHOOK_ATTEMPTS: Final = 4
_WEBHOOK_BACKOFF_S: Final = 0.25
_MAX_PREFER_WAIT_S: Final = 60
_RENDER_CACHE_SIZE: Final = 48
_WORKERS: Final = 6

_FAULT_DEFAULTS: Final[dict[str, Any]] = {
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

JSONDict = dict[str, Any]


# --------------------------------------------------------------------------- helpers


def _iso(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _random_id(length: int = 26) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign_webhook(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value Replicate sends (Standard Webhooks, v1 = HMAC-SHA256)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


# --------------------------------------------------------------------------- input validation


def _invalid(kind: str, field_name: str, description: str) -> JSONDict:
    return {"type": kind, "field": field_name, "description": description}


def _is_number(value: Any, integer: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not integer or isinstance(value, int) or value.is_integer()


def _check_range(name: str, value: Any, low: float, high: float, integer: bool) -> list[JSONDict]:
    field_name = f"input.{name}"
    if not _is_number(value, integer):
        expected = "integer" if integer else "number"
        return [_invalid("invalid_type", field_name, f"Invalid type. Expected: {expected}, given: {_json_type(value)}")]
    if value < low:
        return [_invalid("number_gte", field_name, f"Must be greater than or equal to {low}")]
    if value > high:
        return [_invalid("number_lte", field_name, f"Must be less than or equal to {high}")]
    return []


def _check_type(name: str, value: Any, expected: str) -> list[JSONDict]:
    given = _json_type(value)
    if given == expected:
        return []
    return [_invalid("invalid_type", f"input.{name}", f"Invalid type. Expected: {expected}, given: {given}")]


def _check_uri(name: str, value: Any) -> list[JSONDict]:
    problems = _check_type(name, value, "string")
    if problems:
        return problems
    if not value.startswith(("http://", "https://", "data:")):
        return [_invalid("format", f"input.{name}", "Does not match format 'uri'")]
    return []


def _check_prompt(value: Any) -> list[JSONDict]:
    problems = _check_type("prompt", value, "string")
    if problems:
        return problems
    # PhotoMaker locates the ID embedding at the trigger word and refuses prompts with more than one.
    if len(_TRIGGER_RE.findall(value)) != 1:
        description = "Must contain the trigger word 'img' exactly once, after the class word (e.g. 'a man img')"
        return [_invalid("trigger_word", "input.prompt", description)]
    return []


_RANGES: Final[dict[str, tuple[float, float, bool]]] = {
    "num_outputs": (1, 4, True),
    "num_steps": (1, 100, True),
    "style_strength_ratio": (15, 50, False),
    "guidance_scale": (1, 10, False),
}
_TYPES: Final = {"negative_prompt": "string", "disable_safety_checker": "boolean"}


def validate_input(model_input: Any) -> list[JSONDict]:
    """Replicate-style `invalid_fields` for a PhotoMaker input (empty when valid)."""
    if not isinstance(model_input, dict):
        if model_input is None:
            return [_invalid("required", "(root)", "input is required")]
        return [_invalid("invalid_type", "input", f"Invalid type. Expected: object, given: {_json_type(model_input)}")]
    required = ("input_image", "prompt")
    problems = [_invalid("required", "input", f"{name} is required") for name in required if name not in model_input]
    for name, value in model_input.items():
        problems += _check_field(name, value)
    return problems


def _check_field(name: str, value: Any) -> list[JSONDict]:
    if name == "prompt":
        return _check_prompt(value)
    if name in ("input_image", "input_image2", "input_image3", "input_image4"):
        return _check_uri(name, value)
    if name in _RANGES:
        return _check_range(name, value, *_RANGES[name])
    if name in _TYPES:
        return _check_type(name, value, _TYPES[name])
    if name == "seed":
        if value is None or _is_number(value, integer=True):
            return []
        return _check_type(name, value, "integer")
    if name == "style_name" and value not in STYLE_NAMES:
        choices = ", ".join(f'"{s}"' for s in STYLE_NAMES)
        return [_invalid("enum", "input.style_name", f"input.style_name must be one of the following: {choices}")]
    return []  # Replicate ignores inputs the model does not declare


def _validate_webhook(payload: JSONDict) -> list[JSONDict]:
    problems: list[JSONDict] = []
    webhook = payload.get("webhook")
    if webhook is not None and not (isinstance(webhook, str) and webhook.startswith(("http://", "https://"))):
        problems.append(_invalid("format", "webhook", "Does not match format 'uri'"))
    events = payload.get("webhook_events_filter")
    if events is not None and not (isinstance(events, list) and all(e in WEBHOOK_EVENTS for e in events)):
        choices = ", ".join(f'"{e}"' for e in WEBHOOK_EVENTS)
        problems.append(_invalid("enum", "webhook_events_filter", f"Each item must be one of: {choices}"))
    return problems


def _version_id(value: Any) -> str | None:
    # Replicate also accepts "owner/model:version" in the version field.
    if not isinstance(value, str):
        return None
    version = value.rsplit(":", 1)[-1]
    return version if _VERSION_RE.match(version) else None


# --------------------------------------------------------------------------- fault profile


def validate_faults(changes: Any) -> JSONDict:
    """Checked copy of a (partial) fault profile; raises ValueError naming the first bad key."""
    if not isinstance(changes, dict):
        raise ValueError("the fault profile must be a JSON object")
    clean: JSONDict = {}
    for key, value in changes.items():
        if key not in _FAULT_DEFAULTS:
            raise ValueError(f"unknown fault {key!r}; known: {', '.join(_FAULT_DEFAULTS)}")
        clean[key] = _validate_fault(key, value)
    return clean


def _validate_fault(key: str, value: Any) -> Any:
    if key in _RATE_KEYS:
        if not _is_number(value, integer=False) or not 0 <= value <= 1:
            raise ValueError(f"{key} must be a number from 0 to 1")
        return float(value)
    if key == "rate_limit_first":
        if not _is_number(value, integer=True) or value < 0:
            raise ValueError("rate_limit_first must be a whole number >= 0")
        return int(value)
    if key == "webhook_delay_s":
        if not _is_number(value, integer=False) or not 0 <= value <= 600:
            raise ValueError("webhook_delay_s must be a number of seconds from 0 to 600")
        return float(value)
    if key == "reorder_webhooks":
        if not isinstance(value, bool):
            raise ValueError("reorder_webhooks must be true or false")
        return value
    if value is not None and not _is_number(value, integer=True):
        raise ValueError("seed must be a whole number or null")
    return None if value is None else int(value)


@dataclass(frozen=True)
class _FaultPlan:
    """Every random fault decision for one prediction, drawn when it is created so a seed replays a run."""

    fail: bool = False
    dropped: frozenset[int] = frozenset()
    drifted: frozenset[int] = frozenset()  # outputs showing somebody else (identity_drift_rate)
    faceless: frozenset[int] = frozenset()  # outputs showing no face at all (faceless_rate); wins over drifted
    duplicated: frozenset[str] = frozenset()
    skip_completed: bool = False
    webhook_delay_s: float = 0.0
    reorder: bool = False


def _draw_plan(rng: random.Random, faults: JSONDict, num_outputs: int, nsfw_filter: bool) -> _FaultPlan:
    fail = rng.random() < faults["fail_rate"]
    drops = [rng.random() < faults["nsfw_drop_rate"] for _ in range(num_outputs)]
    duplicated = [e for e in WEBHOOK_EVENTS if rng.random() < faults["duplicate_webhook_rate"]]
    return _FaultPlan(
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


# --------------------------------------------------------------------------- capacity model
#
# Off by default: predictions then run on the fixed step delay, as fast as ever. `PUT /_emulator/capacity` turns on
# a model of the instances Replicate runs a model on, so a prediction waits in `starting` for a free instance (which
# may first cold-boot) and runs for as long as PhotoMaker would, in emulated time `time_scale` times faster than real.

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
_DEFAULT_NUM_STEPS: Final = 20  # PhotoMaker's own default, when the input names none
_STEPS_PER_RATE: Final = 50  # seconds_per_output is per this many steps
_MAX_INSTANCES: Final = 1000
_MAX_CAPACITY_S: Final = 86_400.0
_MAX_TIME_SCALE: Final = 100_000.0
# The longest real wait between two looks at the model: a moved injected clock (the local stack's `/_local/clock`)
# plays out the model's events that fell due within this, not when their real-time wait would have ended.
_CAPACITY_TICK_S: Final = 0.1


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
        if not _is_number(value, integer=True) or not 0 <= value <= _MAX_INSTANCES:
            raise ValueError(f"instances_min must be a whole number from 0 to {_MAX_INSTANCES}")
        return int(value)
    if key == "instances_max":
        if value is not None and (not _is_number(value, integer=True) or not 1 <= value <= _MAX_INSTANCES):
            raise ValueError(f"instances_max must be a whole number from 1 to {_MAX_INSTANCES}, or null for no limit")
        return None if value is None else int(value)
    if key == "time_scale":
        if not _is_number(value, integer=False) or not 0 < value <= _MAX_TIME_SCALE:
            raise ValueError(f"time_scale must be a number above 0, at most {_MAX_TIME_SCALE:g}")
        return float(value)
    if not _is_number(value, integer=False) or not 0 <= value <= _MAX_CAPACITY_S:
        raise ValueError(f"{key} must be a number of seconds from 0 to {_MAX_CAPACITY_S:g}")
    return float(value)


class _EmulatedClock:
    """The emulator's clock: the injected clock plus a lead that grows by `scale - 1` seconds every real second.

    At scale 1 (no capacity model) it reads exactly as the injected clock. At scale 60 it gains a minute every real
    second, so a 73-second run takes 1.2 real seconds and its timestamps still span 73 seconds; created_at,
    started_at and completed_at all come from this one clock, so they stay in order with each other. A moved
    injected clock moves it too. The lead is kept when the scale changes or returns to 1, so time never runs
    backwards; webhook-timestamp headers use the injected clock instead, since receivers check them against theirs.
    """

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._scale = 1.0
        self._lead_s = 0.0
        self._since = time.monotonic()

    @property
    def scale(self) -> float:
        with self._lock:
            return self._scale

    def now(self) -> datetime:
        with self._lock:
            lead_s = self._lead_s + (self._scale - 1) * (time.monotonic() - self._since)
        return self._clock() + timedelta(seconds=lead_s)

    def set_scale(self, scale: float) -> None:
        with self._lock:
            now = time.monotonic()
            self._lead_s += (self._scale - 1) * (now - self._since)
            self._since, self._scale = now, scale


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
class _RunEvent:
    kind: str  # "start" or "end" of a prediction's run
    prediction: str
    at: datetime


class _CapacityModel:
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

    def advance(self, now: datetime) -> list[_RunEvent]:
        return self._play(now)

    def admit(self, prediction: str, work: float, now: datetime) -> list[_RunEvent]:
        events = self._play(now)
        self._queue.append(_Waiting(prediction, work))
        self._settle(events)
        return events

    def cancel(self, prediction: str, now: datetime) -> list[_RunEvent]:
        events = self._play(now)
        self._queue = [w for w in self._queue if w.prediction != prediction]
        for instance in self._instances:
            if instance.prediction == prediction:
                self._free(instance)
        self._settle(events)
        return events

    def configure(self, profile: JSONDict, now: datetime) -> list[_RunEvent]:
        """Apply a checked profile; a raised minimum comes up warm, as a deployment's always-on instances are."""
        events = self._play(now)
        self.profile = profile
        missing = profile["instances_min"] - len(self._instances)
        self._instances += [_Instance("idle", self._now) for _ in range(missing)]
        for instance in [i for i in self._instances if i.state == "idle"]:
            self._retire_if_over_max(instance)
        self._settle(events)
        return events

    def reset(self, now: datetime) -> list[_RunEvent]:
        """Back to the defaults (off). What the model holds ends at once, so nothing lingers at real speed."""
        events = self._play(now)
        for instance in self._instances:
            if instance.prediction is not None:
                events.append(_RunEvent("end", instance.prediction, self._now))
        for waiting in self._queue:
            events += [_RunEvent(kind, waiting.prediction, self._now) for kind in ("start", "end")]
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

    def _play(self, until: datetime) -> list[_RunEvent]:
        events: list[_RunEvent] = []
        while (due := self.next_due()) is not None and due <= until:
            # A due already past (a setting lowered after the fact) happens now: the model's time never goes back.
            self._now = max(self._now, due)
            self._fire(events)
        self._now = max(self._now, until)
        return events

    def _fire(self, events: list[_RunEvent]) -> None:
        for instance in list(self._instances):
            if instance.at > self._now or instance.state == "idle":
                continue
            if instance.prediction is not None:
                events.append(_RunEvent("end", instance.prediction, instance.at))
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

    def _settle(self, events: list[_RunEvent]) -> None:
        """Give idle instances to waiting predictions, then note whether demand is left unmet, and since when."""
        idle = sorted((i for i in self._instances if i.state == "idle"), key=lambda i: i.at)
        for instance in idle[: len(self._queue)]:
            waiting = self._queue.pop(0)
            run = timedelta(seconds=self.profile["seconds_per_output"] * waiting.work)
            instance.state, instance.at, instance.prediction = "busy", self._now + run, waiting.prediction
            events.append(_RunEvent("start", waiting.prediction, self._now))
        if self._unmet() <= 0:
            self._unmet_since = None
        elif self._unmet_since is None:
            self._unmet_since = self._now

    def _unmet(self) -> int:
        return len(self._queue) - sum(1 for i in self._instances if i.state in ("booting", "idle"))

    def _room(self) -> int:
        ceiling = self.profile["instances_max"]
        return len(self._queue) if ceiling is None else ceiling - len(self._instances)


# --------------------------------------------------------------------------- preview images


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except ImportError:  # Pillow built without FreeType: small bitmap font, still legible
        return ImageFont.load_default()


def _load_reference(data: bytes | None) -> Image.Image:
    """The reference photo, upright, cropped to a square and resized to the output size (grey if unusable).

    Tall photos are cropped from near the top, where a selfie's face is, not from the middle."""
    if data:
        try:
            with Image.open(io.BytesIO(data)) as opened:
                opened.draft("RGB", (OUTPUT_SIZE, OUTPUT_SIZE))
                upright = ImageOps.exif_transpose(opened).convert("RGB")
            centering = (0.5, 0.15) if upright.height > upright.width else (0.5, 0.5)
            return ImageOps.fit(upright, (OUTPUT_SIZE, OUTPUT_SIZE), Image.Resampling.BICUBIC, centering=centering)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            log.warning("reference image unreadable (%s); using a grey canvas", exc)
    return Image.new("RGB", (OUTPUT_SIZE, OUTPUT_SIZE), (128, 128, 128))


@lru_cache(maxsize=1)
def _other_person() -> Image.Image:
    """The bundled photo of somebody else, prepared like a reference (never drawn on: blending makes a copy)."""
    return _load_reference(OTHER_PERSON_PHOTO.read_bytes())


def _backdrop(prompt: str, style_name: str, seed: int) -> Image.Image:
    """A plain studio backdrop in the style's tint, lighter towards the bottom: an output with no face in it."""
    red, green, blue = _tint_color(prompt, style_name)
    shade = seed % 48
    dark = (red // 4 + shade, green // 4 + shade, blue // 4 + shade)
    light = (min(255, red // 2 + 120), min(255, green // 2 + 120), min(255, blue // 2 + 120))
    gradient = Image.linear_gradient("L").resize((OUTPUT_SIZE, OUTPUT_SIZE))  # black at the top, white below
    return Image.composite(Image.new("RGB", gradient.size, light), Image.new("RGB", gradient.size, dark), gradient)


def _tint_color(prompt: str, style_name: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{style_name}|{prompt}".encode()).digest()
    return digest[0], digest[1], digest[2]


def _ascii(text: str) -> str:
    # The bundled font covers ASCII only; anything else would render as boxes.
    return text.encode("ascii", "replace").decode()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def _draw_banner(image: Image.Image, caption: str) -> None:
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, OUTPUT_SIZE, 132), fill=(12, 12, 12))
    big, small = _font(56), _font(28)
    x = 24
    # The font has no em dash glyph, so the dash is drawn as a bar between the two halves.
    for part in ("LOCAL PREVIEW", None, "not AI output"):
        if part is None:
            draw.rectangle((x + 12, 48, x + 60, 53), fill=(255, 214, 0))
            x += 72
            continue
        draw.text((x, 18), part, font=big, fill=(255, 214, 0))
        x += int(draw.textlength(part, font=big))
    draw.text((24, 88), _fit(draw, _ascii(caption), small, OUTPUT_SIZE - 48), font=small, fill=(235, 235, 235))


def render_preview(base: Image.Image, prompt: str, style_name: str, seed: int, index: int, total: int) -> bytes:
    """One labelled 1024x1024 RGB PNG; seed and index change both the tint and the caption."""
    color = _tint_color(prompt, style_name)
    image = Image.blend(base, Image.new("RGB", base.size, color), 0.12 + 0.04 * (index % 4))
    # Prompt last: it is the part that gets cut when the caption is too long.
    caption = f"seed {seed} | output {index + 1}/{total} | {style_name} | {prompt}"
    _draw_banner(image, caption)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


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


# --------------------------------------------------------------------------- predictions


@dataclass(frozen=True)
class _Webhook:
    event: str
    url: str
    body: bytes
    msg_id: str
    duplicate: bool


@dataclass
class _Scheduled:
    """A prediction's run as the capacity model placed it, in emulated time."""

    started: datetime | None = None
    ended: datetime | None = None
    # Whether its create response is out (set by `_begin`, one step delay after the create). Until then its start
    # waits, even on an idle instance: Replicate always answers a create with `starting`.
    shown: bool = False


@dataclass
class _Prediction:
    data: JSONDict
    plan: _FaultPlan
    seed: int
    done: threading.Event = field(default_factory=threading.Event)
    started: float | None = None  # time.monotonic() when processing began, for metrics.predict_time
    reference: bytes | None = None  # kept so evicted outputs can be rendered again on request
    held_start: _Webhook | None = None  # the `start` webhook held back when webhooks are reordered
    outbox: deque[_Webhook] = field(default_factory=deque)
    sending: bool = False
    capacity: _Scheduled | None = None  # set when the capacity model, not the step delay, decides its run

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def status(self) -> str:
        return str(self.data["status"])

    def events(self) -> list[str]:
        if not self.data.get("webhook"):
            return []
        return list(self.data.get("webhook_events_filter") or WEBHOOK_EVENTS)


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    headers: Message
    body: bytes
    params: dict[str, str]


def _json_reply(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, _dumps(payload), headers=headers)


_NOT_FOUND: Final = _json_reply(404, {"detail": "Not found.", "status": 404})
_UNAUTHENTICATED: Final = _json_reply(
    401, {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401}
)
_THROTTLED: Final = _json_reply(
    429,
    {
        "title": "Request was throttled",
        "detail": "Request was throttled. Expected available in 1 second.",
        "status": 429,
    },
    headers=(("Retry-After", "1"),),
)

Handler = Callable[[_Request], Reply]


class ReplicateEmulator(LoopbackEmulator):
    """Replicate's prediction API on loopback, with PhotoMaker's input schema and injectable faults."""

    server_name = "replicate-emulator"
    title = "Replicate emulator"
    max_body_bytes = _MAX_BODY_BYTES
    logger = log

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_token: str = DEFAULT_API_TOKEN,
        webhook_secret: str | None = None,
        step_delay_s: float = 0.2,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(host, port, _WORKERS)
        self._token = api_token
        self.webhook_secret = webhook_secret or new_webhook_secret()
        self._step_delay_s = step_delay_s
        self._clock = clock or utc_now
        self._emulated = _EmulatedClock(self._clock)
        self._capacity = _CapacityModel()
        self._capacity_tick_at: float | None = None  # time.monotonic() of the pending look at the model
        self._lock = threading.Lock()
        self._records: dict[str, _Prediction] = {}
        self._faults: JSONDict = dict(_FAULT_DEFAULTS)
        self._rng = random.Random()
        self._renders: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._deployments: dict[str, JSONDict] = {}
        self._routes: list[tuple[str, re.Pattern[str], Handler, bool]] = self._route_table()

    # ----------------------------------------------------------------------- inspection and faults

    def predictions(self) -> list[JSONDict]:
        with self._lock:
            return [copy.deepcopy(record.data) for record in self._records.values()]

    def set_faults(self, profile: dict[str, Any]) -> dict[str, Any]:
        """Replace the given keys of the fault profile (ValueError if any is invalid); returns the whole profile."""
        changes = validate_faults(profile)
        with self._lock:
            self._faults.update(changes)
            if "seed" in changes:
                self._rng.seed(changes["seed"])
            return dict(self._faults)

    def reset_faults(self) -> dict[str, Any]:
        with self._lock:
            self._faults = dict(_FAULT_DEFAULTS)
            self._rng.seed(None)
            return dict(self._faults)

    def faults(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._faults)

    def capacity(self) -> JSONDict:
        """The capacity profile, the instances booting, idle and busy, the queue's length and the emulated time."""
        with self._lock:
            self._publish_locked(self._capacity.advance(self._now()))
            return self._capacity_view_locked()

    def set_capacity(self, profile: dict[str, Any]) -> JSONDict:
        """Replace the given keys of the capacity profile (ValueError if any is invalid); returns `capacity()`."""
        with self._lock:
            changed = validate_capacity(profile, self._capacity.profile)
            self._publish_locked(self._capacity.configure(changed, self._now()))
            self._emulated.set_scale(changed["time_scale"])
            return self._capacity_view_locked()

    def reset_capacity(self) -> JSONDict:
        with self._lock:
            self._publish_locked(self._capacity.reset(self._now()))
            self._emulated.set_scale(1.0)
            return self._capacity_view_locked()

    # ----------------------------------------------------------------------- HTTP routing

    def _route_table(self) -> list[tuple[str, re.Pattern[str], Handler, bool]]:
        pid = r"(?P<pid>[a-z0-9]+)"
        deployment = r"(?P<owner>[A-Za-z0-9][A-Za-z0-9_.-]*)/(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)"
        routes: list[tuple[str, str, Handler, bool]] = [
            ("POST", r"/v1/predictions", self._create, True),
            ("GET", r"/v1/predictions", self._list, True),
            ("GET", rf"/v1/predictions/{pid}", self._get, True),
            ("POST", rf"/v1/predictions/{pid}/cancel", self._cancel, True),
            ("POST", rf"/v1/deployments/{deployment}/predictions", self._create_on_deployment, True),
            ("GET", rf"/v1/deployments/{deployment}", self._get_deployment, True),
            ("GET", r"/v1/webhooks/default/secret", self._secret, True),
            ("GET", rf"/files/{pid}/(?P<n>\d+)\.png", self._file, False),
            ("GET", r"/_emulator/faults", self._get_faults, False),
            ("PUT", r"/_emulator/faults", self._put_faults, False),
            ("DELETE", r"/_emulator/faults", self._delete_faults, False),
            ("GET", r"/_emulator/capacity", self._get_capacity, False),
            ("PUT", r"/_emulator/capacity", self._put_capacity, False),
            ("DELETE", r"/_emulator/capacity", self._delete_capacity, False),
        ]
        return [(method, re.compile(rf"{path}/?"), handler, auth) for method, path, handler, auth in routes]

    def _error_reply(self, status: int, message: str) -> Reply:
        return _json_reply(status, {"detail": message, "status": status})

    def handle(self, method: str, target: str, headers: Message, body: bytes) -> Reply:
        path = urlsplit(target).path
        allowed: list[str] = []
        for route_method, pattern, handler, needs_auth in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if route_method != method:
                allowed.append(route_method)
                continue
            if needs_auth and not self._authorized(headers.get("Authorization")):
                return _UNAUTHENTICATED
            return handler(_Request(method, path, headers, body, match.groupdict()))
        if allowed:
            return _json_reply(405, {"detail": f'Method "{method}" not allowed.', "status": 405})
        return _NOT_FOUND

    def _authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return False
        return hmac.compare_digest(token.strip().encode(), self._token.encode())

    # ----------------------------------------------------------------------- API handlers

    def _create(self, request: _Request, deployment: str | None = None) -> Reply:
        if self._take_rate_limit():
            return _THROTTLED
        try:
            payload = json.loads(request.body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _json_reply(400, {"title": "Invalid JSON", "detail": str(exc), "status": 400})
        if not isinstance(payload, dict):
            return _json_reply(400, {"title": "Invalid JSON", "detail": "Expected a JSON object", "status": 400})
        if deployment is None:
            version = _version_id(payload.get("version"))
        else:  # a deployment runs its current release's version; the request names none
            version = str(self._deployment(deployment)["current_release"]["version"])
        if version is None:
            detail = "The specified version does not exist (or perhaps you don't have permission to use it?)"
            return _json_reply(422, {"title": "Invalid version or not permitted", "detail": detail, "status": 422})
        problems = validate_input(payload.get("input")) + _validate_webhook(payload)
        if problems:
            return _json_reply(422, _validation_error(problems))
        record = self._new_prediction(version, payload, deployment)
        self._runner.call_later(self._step_delay_s, lambda: self._begin(record.id))
        self._prefer_wait(record, request.headers.get("Prefer"))
        return _json_reply(201, self._snapshot(record))

    def _create_on_deployment(self, request: _Request) -> Reply:
        return self._create(request, f"{request.params['owner']}/{request.params['name']}")

    def _get_deployment(self, request: _Request) -> Reply:
        return _json_reply(200, self._deployment(f"{request.params['owner']}/{request.params['name']}"))

    def _get(self, request: _Request) -> Reply:
        record = self._find(request.params["pid"])
        return _NOT_FOUND if record is None else _json_reply(200, self._snapshot(record))

    def _list(self, _request: _Request) -> Reply:
        results = list(reversed(self.predictions()))  # newest first, as Replicate lists them
        return _json_reply(200, {"previous": None, "next": None, "results": results})

    def _cancel(self, request: _Request) -> Reply:
        record = self._find(request.params["pid"])
        if record is None:
            return _NOT_FOUND
        hooks: list[_Webhook] = []
        with self._lock:
            if record.status not in TERMINAL:
                record.data["logs"] += "Prediction canceled.\n"
                hooks = self._complete_locked(record, "canceled", None, None)
            snapshot = copy.deepcopy(record.data)
        self._send(record, hooks)
        return _json_reply(200, snapshot)

    def _secret(self, _request: _Request) -> Reply:
        return _json_reply(200, {"key": self.webhook_secret})

    def _file(self, request: _Request) -> Reply:
        record = self._find(request.params["pid"])
        index = int(request.params["n"])
        if record is None:
            return _NOT_FOUND
        with self._lock:
            wanted = f"{self.url}/files/{record.id}/{index}.png"
            listed = wanted in (record.data.get("output") or [])
            cached = self._renders.get((record.id, index))
        if not listed:
            return _NOT_FOUND
        png = cached if cached is not None else self._render_again(record, index)
        return Reply(200, png, content_type="image/png")

    def _get_faults(self, _request: _Request) -> Reply:
        return _json_reply(200, self.faults())

    def _put_faults(self, request: _Request) -> Reply:
        try:
            profile = self.set_faults(json.loads(request.body or b"{}"))
        except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            return _json_reply(400, {"title": "Invalid fault profile", "detail": str(exc), "status": 400})
        return _json_reply(200, profile)

    def _delete_faults(self, _request: _Request) -> Reply:
        return _json_reply(200, self.reset_faults())

    def _get_capacity(self, _request: _Request) -> Reply:
        return _json_reply(200, self.capacity())

    def _put_capacity(self, request: _Request) -> Reply:
        try:
            view = self.set_capacity(json.loads(request.body or b"{}"))
        except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            return _json_reply(400, {"title": "Invalid capacity profile", "detail": str(exc), "status": 400})
        return _json_reply(200, view)

    def _delete_capacity(self, _request: _Request) -> Reply:
        return _json_reply(200, self.reset_capacity())

    # ----------------------------------------------------------------------- prediction state

    def _take_rate_limit(self) -> bool:
        with self._lock:
            if self._faults["rate_limit_first"] <= 0:
                return False
            self._faults["rate_limit_first"] -= 1
            return True

    def _deployment(self, full_name: str) -> JSONDict:
        """Deployment `owner/name` as Replicate's API shows it; its release 1 dates from when it was first named."""
        owner, name = full_name.split("/")
        with self._lock:
            if full_name not in self._deployments:
                release = {
                    "number": 1,
                    "model": MODEL,
                    "version": PHOTOMAKER_VERSION,
                    "created_at": _iso(self._clock()),
                    "created_by": {"type": "organization", "username": owner, "name": owner, "github_url": None},
                    "configuration": {"hardware": DEPLOYMENT_HARDWARE, "min_instances": 0, "max_instances": 1},
                }
                self._deployments[full_name] = {"owner": owner, "name": name, "current_release": release}
            return copy.deepcopy(self._deployments[full_name])

    def _new_prediction(self, version: str, payload: JSONDict, deployment: str | None = None) -> _Prediction:
        model_input: JSONDict = payload["input"]
        seed = model_input.get("seed")
        data: JSONDict = {
            "id": _random_id(),
            "model": MODEL,
            "version": version,
            "input": model_input,
            "logs": "",
            "output": None,
            "data_removed": False,
            "error": None,
            "status": "starting",
            "created_at": _iso(self._now()),
            "started_at": None,
            "completed_at": None,
            "metrics": {},
            "source": "api",
        }
        data["urls"] = self._urls(data["id"])
        if deployment is not None:
            data["deployment"] = deployment  # Replicate's name for the deployment that created a prediction
        for key in ("webhook", "webhook_events_filter"):
            if payload.get(key) is not None:
                data[key] = payload[key]
        num_outputs = int(model_input.get("num_outputs", 1))
        nsfw_filter = not model_input.get("disable_safety_checker", False)
        with self._lock:
            plan = _draw_plan(self._rng, self._faults, num_outputs, nsfw_filter)
            record = _Prediction(data, plan, int(seed) if seed is not None else self._rng.randrange(2**32))
            self._records[record.id] = record
            if self._capacity.active:
                self._admit_locked(record)
        return record

    def _urls(self, prediction_id: str) -> dict[str, str]:
        get_url = f"{self.url}/v1/predictions/{prediction_id}"
        return {
            "get": get_url,
            "cancel": f"{get_url}/cancel",
            # Replicate's own web page and streaming host, in their real shapes: clients read both keys, but
            # PhotoMaker's outputs are files, never streamed, so nothing local has to answer there.
            "web": f"https://replicate.com/p/{prediction_id}",
            "stream": f"https://stream.replicate.com/v1/files/{prediction_id}",
        }

    def _find(self, prediction_id: str) -> _Prediction | None:
        with self._lock:
            return self._records.get(prediction_id)

    def _snapshot(self, record: _Prediction) -> JSONDict:
        with self._lock:
            return copy.deepcopy(record.data)

    def _prefer_wait(self, record: _Prediction, prefer: str | None) -> None:
        # Replicate's sync mode: `Prefer: wait` or `Prefer: wait=n` holds the response until done or n seconds.
        match = re.fullmatch(r"\s*wait(?:=(\d+))?\s*", prefer or "")
        if match is None:
            return
        deadline = time.monotonic() + min(int(match.group(1) or _MAX_PREFER_WAIT_S), _MAX_PREFER_WAIT_S)
        while time.monotonic() < deadline and not self._runner.stopping.is_set():
            if record.done.wait(0.1):
                return

    def _begin(self, prediction_id: str) -> None:
        record = self._find(prediction_id)
        if record is None:
            return
        with self._lock:
            if record.status != "starting":
                return
            if record.capacity is not None:  # the model decides when it runs; its create response is out now
                record.capacity.shown = True
                self._show_locked(record)
                return
            self._start_locked(record, self._now())
        self._runner.call_later(self._step_delay_s, lambda: self._finish(prediction_id))

    def _start_locked(self, record: _Prediction, started_at: datetime) -> None:
        record.data["status"] = "processing"
        record.data["started_at"] = _iso(started_at)
        record.data["logs"] += f"Using seed: {record.seed}\nLOCAL PREVIEW: no model runs in the emulator.\n"
        record.started = time.monotonic()
        hook = self._webhook_locked(record, "start")
        if hook is not None and record.plan.reorder:
            record.held_start, hook = hook, None
        self._send(record, [hook] if hook else [])

    def _finish(self, prediction_id: str) -> None:
        record = self._find(prediction_id)
        if record is None or record.status != "processing":
            return
        status, output, error = self._run_model(record)
        with self._lock:
            if record.status != "processing":  # canceled while the previews were being drawn
                return
            hooks = self._complete_locked(record, status, output, error)
        self._send(record, hooks)

    def _complete_locked(
        self, record: _Prediction, status: str, output: list[str] | None, error: str | None
    ) -> list[_Webhook]:
        data = record.data
        hooks: list[_Webhook | None] = []
        if output:
            data["output"] = output  # Replicate's `output` event shows the output while still processing
            hooks.append(self._webhook_locked(record, "output"))
        completed_at = self._now()
        scheduled = record.capacity
        if scheduled is not None and scheduled.ended is None:  # canceled before its run ended: its place frees now
            self._publish_locked(self._capacity.cancel(record.id, completed_at))
        if scheduled is not None and scheduled.ended is not None:
            completed_at = scheduled.ended
        data.update(status=status, output=output, error=error, completed_at=_iso(completed_at))
        if scheduled is not None and scheduled.started is not None and record.started is not None:
            # Replicate's predict_time is the run alone, in the model's (emulated) seconds: no queueing, no boot.
            data["metrics"] = {"predict_time": round((completed_at - scheduled.started).total_seconds(), 6)}
        elif record.started is not None:
            data["metrics"] = {"predict_time": round(time.monotonic() - record.started, 6)}
        record.done.set()
        if not record.plan.skip_completed:
            hooks.append(self._webhook_locked(record, "completed"))
        hooks.append(record.held_start)
        record.held_start = None
        return [hook for hook in hooks if hook is not None]

    # ----------------------------------------------------------------------- capacity

    def _now(self) -> datetime:
        """Emulated time: the injected clock, run `time_scale` times faster while the capacity model says so."""
        return self._emulated.now()

    def _capacity_view_locked(self) -> JSONDict:
        return {**self._capacity.profile, **self._capacity.view(), "now": _iso(self._now())}

    def _admit_locked(self, record: _Prediction) -> None:
        model_input = record.data["input"]
        steps = int(model_input.get("num_steps", _DEFAULT_NUM_STEPS))
        work = int(model_input.get("num_outputs", 1)) * steps / _STEPS_PER_RATE
        record.capacity = _Scheduled()
        created_at = datetime.fromisoformat(record.data["created_at"])
        events = self._capacity.admit(record.id, work, created_at)
        self._publish_locked(events + self._capacity.advance(self._now()))

    def _publish_locked(self, events: list[_RunEvent]) -> None:
        for event in events:
            record = self._records.get(event.prediction)
            if record is None or record.capacity is None:
                continue
            if event.kind == "start":
                record.capacity.started = event.at
            else:
                record.capacity.ended = event.at
            self._show_locked(record)
        self._schedule_capacity_tick_locked()

    def _show_locked(self, record: _Prediction) -> None:
        """Show on the prediction what the model decided, once its create response is out."""
        scheduled = record.capacity
        if scheduled is None or not scheduled.shown:
            return
        if record.status == "starting" and scheduled.started is not None:
            self._start_locked(record, scheduled.started)
        if record.status == "processing" and scheduled.ended is not None:
            prediction_id = record.id
            self._runner.submit(lambda: self._finish(prediction_id))

    def _schedule_capacity_tick_locked(self) -> None:
        due = self._capacity.next_due()
        if due is None:
            return
        wait_s = (due - self._now()).total_seconds() / self._emulated.scale
        wait_s = min(max(wait_s, 0.0), _CAPACITY_TICK_S)
        tick_at = time.monotonic() + wait_s
        if self._capacity_tick_at is not None and self._capacity_tick_at <= tick_at:
            return  # an earlier look is on its way, and it schedules the next
        self._capacity_tick_at = tick_at
        self._runner.call_later(wait_s, lambda: self._capacity_tick(tick_at))

    def _capacity_tick(self, tick_at: float) -> None:
        with self._lock:
            if self._capacity_tick_at != tick_at:  # superseded by an earlier look, which keeps the model going
                return
            self._capacity_tick_at = None
            self._publish_locked(self._capacity.advance(self._now()))

    # ----------------------------------------------------------------------- the "model"

    def _run_model(self, record: _Prediction) -> tuple[str, list[str] | None, str | None]:
        plan = record.plan
        if plan.fail:
            self._append_log(record, "Injected failure (emulator fault profile: fail_rate).\n")
            return "failed", None, INJECTED_ERROR
        model_input = record.data["input"]
        total = int(model_input.get("num_outputs", 1))
        kept = [n for n in range(total) if n not in plan.dropped]
        if plan.dropped:
            self._append_log(record, f"NSFW content detected in {len(plan.dropped)} image(s) (emulator fault).\n")
        if not kept:
            return "failed", None, NSFW_ERROR
        if faceless := [n for n in kept if n in plan.faceless]:
            self._append_log(record, f"No face in {len(faceless)} image(s) (emulator fault: faceless_rate).\n")
        if drifted := [n for n in kept if n in plan.drifted and n not in plan.faceless]:
            self._append_log(
                record, f"Somebody else in {len(drifted)} image(s) (emulator fault: identity_drift_rate).\n"
            )
        record.reference = self._fetch_reference(str(model_input["input_image"]))
        base = _load_reference(record.reference)
        for n in kept:
            self._remember_render(record.id, n, self._render(record, base, n))
        return "succeeded", [f"{self.url}/files/{record.id}/{n}.png" for n in kept], None

    def _render(self, record: _Prediction, base: Image.Image, index: int) -> bytes:
        model_input = record.data["input"]
        total = int(model_input.get("num_outputs", 1))
        style = str(model_input.get("style_name", DEFAULT_STYLE))
        prompt = str(model_input["prompt"])
        seed = record.seed + index
        # The faults replace what the output shows; the banner and caption stay as on any other output.
        if index in record.plan.faceless:
            base = _backdrop(prompt, style, seed)
        elif index in record.plan.drifted:
            base = _other_person()
        return render_preview(base, prompt, style, seed, index, total)

    def _render_again(self, record: _Prediction, index: int) -> bytes:
        png = self._render(record, _load_reference(record.reference), index)
        self._remember_render(record.id, index, png)
        return png

    def _remember_render(self, prediction_id: str, index: int, png: bytes) -> None:
        # Bounded: 32 headshots at ~3 MB each would otherwise pin a lot of memory for the whole session.
        with self._lock:
            self._renders[(prediction_id, index)] = png
            self._renders.move_to_end((prediction_id, index))
            while len(self._renders) > _RENDER_CACHE_SIZE:
                self._renders.popitem(last=False)

    def _fetch_reference(self, url: str) -> bytes | None:
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

    def _append_log(self, record: _Prediction, line: str) -> None:
        with self._lock:
            record.data["logs"] += line

    # ----------------------------------------------------------------------- webhooks

    def _webhook_locked(self, record: _Prediction, event: str) -> _Webhook | None:
        if event not in record.events():
            return None
        body = _dumps(record.data)
        msg_id = "msg_" + _random_id(27)
        return _Webhook(event, str(record.data["webhook"]), body, msg_id, event in record.plan.duplicated)

    def _send(self, record: _Prediction, hooks: list[_Webhook]) -> None:
        if hooks:
            # One delay for every webhook of a prediction keeps their order (the timer heap is FIFO on ties).
            self._runner.call_later(record.plan.webhook_delay_s, lambda: self._enqueue(record, hooks))

    def _enqueue(self, record: _Prediction, hooks: list[_Webhook]) -> None:
        with self._lock:
            record.outbox.extend(hooks)
            if record.sending:
                return
            record.sending = True
        self._drain(record)

    def _drain(self, record: _Prediction) -> None:
        while True:
            with self._lock:
                if not record.outbox or self._runner.stopping.is_set():
                    record.sending = False
                    return
                hook = record.outbox.popleft()
            for _ in range(2 if hook.duplicate else 1):
                self._deliver(hook)

    def _deliver(self, hook: _Webhook) -> None:
        """POST one webhook, retrying connection errors and 5xx with backoff as Replicate does; 4xx is final."""
        assert self._http is not None
        for attempt in range(_WEBHOOK_ATTEMPTS):
            if attempt and self._runner.stopping.wait(_WEBHOOK_BACKOFF_S * 2 ** (attempt - 1)):
                return
            timestamp = math.floor(self._clock().timestamp())
            headers = {
                "content-type": "application/json",
                "user-agent": "replicate-emulator/1.0",
                "webhook-id": hook.msg_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign_webhook(self.webhook_secret, hook.msg_id, timestamp, hook.body),
            }
            try:
                response = self._http.post(hook.url, content=hook.body, headers=headers)
            except httpx.HTTPError as exc:
                log.info("webhook %s (%s) attempt %d failed: %s", hook.msg_id, hook.event, attempt + 1, exc)
                continue
            if response.status_code < 500:
                return
            log.info("webhook %s (%s) answered %d", hook.msg_id, hook.event, response.status_code)
        log.warning("webhook %s (%s) gave up after %d attempts", hook.msg_id, hook.event, _WEBHOOK_ATTEMPTS)


def _validation_error(problems: list[JSONDict]) -> JSONDict:
    detail = "".join(f"- {p['field']}: {p['description']}\n" for p in problems)
    return {"title": "Input validation failed", "detail": detail, "status": 422, "invalid_fields": problems}


# --------------------------------------------------------------------------- CLI


def main() -> None:
    parser = cli_parser("Local Replicate emulator (PhotoMaker, labelled previews).", port=8788)
    parser.add_argument("--api-token", default=DEFAULT_API_TOKEN)
    parser.add_argument("--step-delay", type=float, default=0.2, help="seconds per lifecycle step")
    args = parse_cli(parser)
    emulator = ReplicateEmulator(
        host=args.host,
        port=args.port,
        api_token=args.api_token,
        webhook_secret=args.webhook_secret,
        step_delay_s=args.step_delay,
    )
    emulator.start()
    print(f"Replicate emulator on {emulator.url}\nwebhook secret: {emulator.webhook_secret}", flush=True)
    emulator.serve_until_interrupted()


if __name__ == "__main__":
    main()

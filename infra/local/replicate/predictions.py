"""Every prediction's way from `starting` to a terminal status, with the webhooks Replicate sends on the way.

Without the capacity model a prediction starts one step delay after its create and ends one step delay later;
with it, it starts and ends when the model says (`scheduling.py`), each shown once its create response is out.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Final

from infra.local.emulators.runner import Runner
from infra.local.replicate.faults import FaultProfile
from infra.local.replicate.model import PreviewModel
from infra.local.replicate.scheduling import CapacityScheduler
from infra.local.replicate.state import Prediction, prediction_object
from infra.local.replicate.webhooks import Webhook, WebhookSender, webhook_locked
from infra.local.replicate.wire import JSONDict, iso

TERMINAL: Final = frozenset({"succeeded", "failed", "canceled"})
_MAX_PREFER_WAIT_S: Final = 60


class Predictions:
    """The predictions of one emulator, guarded by its lock; `faults` and `capacity` decide how each one runs."""

    def __init__(
        self,
        lock: threading.Lock,
        runner: Runner,
        clock: Callable[[], datetime],
        step_delay_s: float,
        base_url: Callable[[], str],
        webhooks: WebhookSender,
        model: PreviewModel,
    ) -> None:
        self._lock = lock
        self._runner = runner
        self._step_delay_s = step_delay_s
        self._base_url = base_url  # the emulator's URL, known once it started
        self._webhooks = webhooks
        self._model = model
        self._records: dict[str, Prediction] = {}
        self.faults = FaultProfile(lock)
        self.capacity = CapacityScheduler(lock, runner, clock, self._records, self._show_locked)

    def all(self) -> list[JSONDict]:
        with self._lock:
            return [copy.deepcopy(record.data) for record in self._records.values()]

    def create(self, version: str, payload: JSONDict, deployment: str | None = None) -> Prediction:
        """A new prediction, `starting`; it begins one step delay from now."""
        record = self._new(version, payload, deployment)
        self._runner.call_later(self._step_delay_s, lambda: self._begin(record.id))
        return record

    def _new(self, version: str, payload: JSONDict, deployment: str | None) -> Prediction:
        model_input: JSONDict = payload["input"]
        seed = model_input.get("seed")
        data = prediction_object(version, payload, deployment, self.capacity.now(), self._base_url())
        num_outputs = int(model_input.get("num_outputs", 1))
        nsfw_filter = not model_input.get("disable_safety_checker", False)
        with self._lock:
            plan = self.faults.draw_plan_locked(num_outputs, nsfw_filter)
            record = Prediction(data, plan, int(seed) if seed is not None else self.faults.draw_seed_locked())
            self._records[record.id] = record
            if self.capacity.active:
                self.capacity.admit_locked(record)
        return record

    def find(self, prediction_id: str) -> Prediction | None:
        with self._lock:
            return self._records.get(prediction_id)

    def snapshot(self, record: Prediction) -> JSONDict:
        with self._lock:
            return copy.deepcopy(record.data)

    def prefer_wait(self, record: Prediction, prefer: str | None) -> None:
        # Replicate's sync mode: `Prefer: wait` or `Prefer: wait=n` holds the response until done or n seconds.
        match = re.fullmatch(r"\s*wait(?:=(\d+))?\s*", prefer or "")
        if match is None:
            return
        deadline = time.monotonic() + min(int(match.group(1) or _MAX_PREFER_WAIT_S), _MAX_PREFER_WAIT_S)
        while time.monotonic() < deadline and not self._runner.stopping.is_set():
            if record.done.wait(0.1):
                return

    def cancel(self, record: Prediction) -> JSONDict:
        """Cancel a prediction that has not ended yet; answers it as it is then."""
        hooks: list[Webhook] = []
        with self._lock:
            if record.status not in TERMINAL:
                record.data["logs"] += "Prediction canceled.\n"
                hooks = self._complete_locked(record, "canceled", None, None)
            snapshot = copy.deepcopy(record.data)
        self._webhooks.send(record, hooks)
        return snapshot

    # ----------------------------------------------------------------------- the lifecycle

    def _begin(self, prediction_id: str) -> None:
        record = self.find(prediction_id)
        if record is None:
            return
        with self._lock:
            if record.status != "starting":
                return
            if record.capacity is not None:  # the model decides when it runs; its create response is out now
                record.capacity.shown = True
                self._show_locked(record)
                return
            self._start_locked(record, self.capacity.now())
        self._runner.call_later(self._step_delay_s, lambda: self._finish(prediction_id))

    def _start_locked(self, record: Prediction, started_at: datetime) -> None:
        record.data["status"] = "processing"
        record.data["started_at"] = iso(started_at)
        record.data["logs"] += f"Using seed: {record.seed}\nLOCAL PREVIEW: no model runs in the emulator.\n"
        record.started = time.monotonic()
        hook = webhook_locked(record, "start")
        if hook is not None and record.plan.reorder:
            record.held_start, hook = hook, None
        self._webhooks.send(record, [hook] if hook else [])

    def _finish(self, prediction_id: str) -> None:
        record = self.find(prediction_id)
        if record is None or record.status != "processing":
            return
        status, output, error = self._model.run(record, self._base_url())
        with self._lock:
            if record.status != "processing":  # canceled while the previews were being drawn
                return
            hooks = self._complete_locked(record, status, output, error)
        self._webhooks.send(record, hooks)

    def _complete_locked(
        self, record: Prediction, status: str, output: list[str] | None, error: str | None
    ) -> list[Webhook]:
        data = record.data
        hooks: list[Webhook | None] = []
        if output:
            data["output"] = output  # Replicate's `output` event shows the output while still processing
            hooks.append(webhook_locked(record, "output"))
        completed_at = self.capacity.now()
        scheduled = record.capacity
        if scheduled is not None and scheduled.ended is None:  # canceled before its run ended: its place frees now
            self.capacity.cancel_locked(record.id, completed_at)
        if scheduled is not None and scheduled.ended is not None:
            completed_at = scheduled.ended
        data.update(status=status, output=output, error=error, completed_at=iso(completed_at))
        if scheduled is not None and scheduled.started is not None and record.started is not None:
            # Replicate's predict_time is the run alone, in the model's (emulated) seconds: no queueing, no boot.
            data["metrics"] = {"predict_time": round((completed_at - scheduled.started).total_seconds(), 6)}
        elif record.started is not None:
            data["metrics"] = {"predict_time": round(time.monotonic() - record.started, 6)}
        record.done.set()
        if not record.plan.skip_completed:
            hooks.append(webhook_locked(record, "completed"))
        hooks.append(record.held_start)
        record.held_start = None
        return [hook for hook in hooks if hook is not None]

    def _show_locked(self, record: Prediction) -> None:
        """Show on the prediction what the capacity model decided, once its create response is out."""
        scheduled = record.capacity
        if scheduled is None or not scheduled.shown:
            return
        if record.status == "starting" and scheduled.started is not None:
            self._start_locked(record, scheduled.started)
        if record.status == "processing" and scheduled.ended is not None:
            prediction_id = record.id
            self._runner.submit(lambda: self._finish(prediction_id))

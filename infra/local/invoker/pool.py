"""`FunctionPool`: up to `concurrency` warm workers of one function; an invocation beyond that waits for one."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

from infra.local.invoker.process import Worker
from infra.local.invoker.spec import FunctionCrash, FunctionError, FunctionSpec, Observer
from infra.local.log import log


class FunctionPool:
    """Up to `spec.concurrency` warm workers of one function, each running one invocation at a time."""

    def __init__(self, spec: FunctionSpec, clock_file: Path | None = None, observer: Observer | None = None) -> None:
        self.spec = spec
        self._clock_file = clock_file
        self._observer = observer
        self._slots = threading.Semaphore(max(1, spec.concurrency))
        self._lock = threading.Lock()
        self._idle: list[Worker] = []
        self._busy: set[Worker] = set()
        self._stopped = False

    def prewarm(self) -> None:
        """Start one worker ahead of the first invocation (which waits for it rather than starting another)."""
        with self._slots:
            worker = self._take()
            try:
                worker.wait_ready()
            except (FunctionError, FunctionCrash) as exc:
                log(f"{self.spec.name}: could not start: {exc}")
                self._drop(worker)
                return
            self._give_back(worker)

    def invoke(self, event: Any, request_id: str | None = None) -> Any:
        with self._slots:
            worker = self._take()
            try:
                result = worker.invoke(event, request_id or str(uuid.uuid4()))
            except FunctionCrash as crash:
                self._drop(worker)
                if self._observer is not None and crash.kind != "crash":
                    self._observer.killed(self.spec.name, crash.kind)
                raise
            except FunctionError:
                if worker.process.poll() is None:
                    self._give_back(worker)
                else:
                    self._drop(worker)  # its module failed to load: the next invocation starts afresh
                raise
            finally:
                if self._observer is not None and worker.last_peak_mb:
                    self._observer.memory(self.spec.name, worker.last_peak_mb)
            self._give_back(worker)
            return result

    def _take(self) -> Worker:
        with self._lock:
            if self._stopped:
                raise FunctionCrash(f"{self.spec.name}: the local stack is stopping")
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            worker = Worker(self.spec, self._clock_file)  # a cold start
        with self._lock:
            self._busy.add(worker)
        return worker

    def _give_back(self, worker: Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            if self._stopped:
                worker.stop()
            else:
                self._idle.append(worker)

    def _drop(self, worker: Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
        worker.kill()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            idle, self._idle = self._idle, []
            busy = list(self._busy)
        for worker in idle:
            worker.stop()
        for worker in busy:  # an invocation still running when the stack stops dies with it, as in a crash
            worker.kill()

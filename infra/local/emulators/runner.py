"""Background work of an emulator: a timer thread plus a few daemon workers, so no HTTP thread ever waits."""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable


class Runner:
    """A timer thread plus a few daemon workers, named `<name>-<n>`; a failed task is logged to `log`."""

    def __init__(self, workers: int, name: str, log: logging.Logger) -> None:
        self._workers = workers
        self._name = name
        self._log = log
        self._tasks: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._threads: list[threading.Thread] = []
        self.stopping = threading.Event()

    def start(self) -> None:
        targets = [self._timer_loop] + [self._worker_loop] * self._workers
        for n, target in enumerate(targets):
            thread = threading.Thread(target=target, name=f"{self._name}-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, task: Callable[[], None]) -> None:
        if not self.stopping.is_set():
            self._tasks.put(task)

    def call_later(self, delay_s: float, task: Callable[[], None]) -> None:
        if delay_s <= 0:
            self.submit(task)
            return
        with self._cond:
            heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._seq), task))
            self._cond.notify()

    def stop(self, timeout_s: float) -> None:
        self.stopping.set()
        with self._cond:
            self._cond.notify_all()
        for _ in range(self._workers):
            self._tasks.put(None)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            self._log.warning("threads still busy after stop (daemon, left behind): %s", stuck)

    def _timer_loop(self) -> None:
        while not self.stopping.is_set():
            with self._cond:
                if not self._timers:
                    self._cond.wait()
                    continue
                wait_s = self._timers[0][0] - time.monotonic()
                if wait_s > 0:
                    self._cond.wait(wait_s)
                    continue
                _, _, task = heapq.heappop(self._timers)
            self.submit(task)

    def _worker_loop(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None or self.stopping.is_set():
                return
            try:
                task()
            except Exception:
                self._log.exception("emulator task failed")

"""Functions run as Lambda runs them: each in processes of its own, with its Timeout, MemorySize and concurrency.

A `Worker` is one execution environment (a `python -m infra.local.worker` process, see there for the protocol):
one invocation at a time, kept warm between them. A `FunctionPool` holds up to `concurrency` of them per
function; an invocation beyond that waits for a free one (Lambda would throttle past reserved concurrency
with a 429, and an SQS event source would not poll more; waiting is the local stand-in for both).

An invocation past its Timeout, or whose process grows past MemorySize, is killed (SIGKILL), as Lambda does,
and raises `FunctionCrash`: a queue's batch stays undeleted (redelivered), the gateway answers 500. The next
invocation starts a fresh process (a cold start). Peak memory per invocation is the process's VmHWM, reset
before each invocation (Linux `clear_refs`).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from infra.local.template import ROOT
from infra.local.worker import FRAME_HEADER, write_message

POLL_S = 0.025  # how often a running invocation's memory is looked at
INIT_TIMEOUT_S = 60.0  # Lambda allows 10 s; two shared cores importing dlib and boto3 at once need more


def log(message: str) -> None:
    print(f"[stack] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    handler_file: Path
    handler_name: str
    timeout_s: float
    memory_mb: int
    environment: dict[str, str]  # the process's whole environment
    concurrency: int = 1


class FunctionError(Exception):
    """The handler raised (or its module failed to load): Lambda answers the invocation with an error."""

    def __init__(self, function: str, error_type: str, message: str) -> None:
        super().__init__(f"{function}: {error_type}: {message}")
        self.error_type = error_type


class FunctionCrash(Exception):
    """The execution environment died during the invocation: no response."""

    kind = "crash"


class FunctionTimeout(FunctionCrash):
    kind = "timeout"


class FunctionOutOfMemory(FunctionCrash):
    kind = "out_of_memory"


class Observer(Protocol):
    def memory(self, function: str, peak_mb: float) -> None: ...

    def killed(self, function: str, kind: str) -> None: ...


class _Expired(Exception):
    pass


class _OverMemory(Exception):
    pass


class Worker:
    """One execution environment: its process, the two protocol pipes, and its memory as /proc shows it."""

    def __init__(self, spec: FunctionSpec, clock_file: Path | None = None) -> None:
        self.spec = spec
        requests_read, self._requests = os.pipe()
        self._replies, replies_write = os.pipe()
        command = [
            sys.executable,
            "-m",
            "infra.local.worker",
            f"--function={spec.name}",
            f"--handler-file={spec.handler_file}",
            f"--handler-name={spec.handler_name}",
            f"--memory-mb={spec.memory_mb}",
            f"--requests-fd={requests_read}",
            f"--replies-fd={replies_write}",
        ]
        if clock_file is not None:
            command.append(f"--clock-file={clock_file}")
        # The handler's prints and logs go to the stack's stderr, as Lambda's go to CloudWatch.
        self.process = subprocess.Popen(
            command,
            cwd=spec.handler_file.parent if spec.handler_file.parent.is_dir() else ROOT,
            env=spec.environment,
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr.fileno(),
            pass_fds=(requests_read, replies_write),
        )
        os.close(requests_read)
        os.close(replies_write)
        self._buffer = bytearray()
        self._ready = False
        self.last_peak_mb = 0.0

    # --- memory --------------------------------------------------------------------------------------
    def peak_mb(self) -> float:
        """The process's peak resident memory (VmHWM) since the last reset, in MB."""
        try:
            with open(f"/proc/{self.process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except (OSError, ValueError):
            pass
        return 0.0

    def _reset_peak(self) -> None:
        try:
            with open(f"/proc/{self.process.pid}/clear_refs", "w") as clear:
                clear.write("5")  # 5: reset the peak resident set size
        except OSError:
            pass  # not Linux, or the process is gone: the peak then covers its whole life

    # --- invocations -----------------------------------------------------------------------------------
    def wait_ready(self) -> None:
        if self._ready:
            return
        reply = self._guarded(INIT_TIMEOUT_S, "init")
        if "init_error" in reply:
            self.kill()
            error = reply["init_error"]
            raise FunctionError(self.spec.name, f"Runtime.{error['errorType']}", error["errorMessage"])
        self._ready = True

    def invoke(self, event: Any, request_id: str) -> Any:
        self.wait_ready()
        self.last_peak_mb = 0.0
        self._reset_peak()
        try:
            write_message(self._requests, {"event": event, "request_id": request_id, "timeout_s": self.spec.timeout_s})
        except OSError as exc:
            self.kill()
            raise FunctionCrash(f"{self.spec.name}: Runtime exited before the invocation ({exc})") from exc
        reply = self._guarded(self.spec.timeout_s, request_id)
        self.last_peak_mb = self.peak_mb()
        if self.last_peak_mb > self.spec.memory_mb:  # a spike between two looks
            self.kill()
            raise self._out_of_memory(request_id)
        if "error" in reply:
            raise FunctionError(self.spec.name, reply["error"]["errorType"], reply["error"]["errorMessage"])
        return reply["result"]

    def _guarded(self, seconds: float, request_id: str) -> dict[str, Any]:
        """The next reply, killing the process if it takes longer than `seconds` or grows past MemorySize."""
        try:
            return self._receive(seconds)
        except _Expired:
            self.last_peak_mb = self.peak_mb()
            self.kill()
            message = f"{self.spec.name} {request_id} Task timed out after {seconds:.2f} seconds"
            log(message)
            raise FunctionTimeout(message) from None
        except _OverMemory:
            self.kill()
            raise self._out_of_memory(request_id) from None

    def _out_of_memory(self, request_id: str) -> FunctionOutOfMemory:
        self.last_peak_mb = max(self.last_peak_mb, float(self.spec.memory_mb))
        message = (
            f"{self.spec.name} {request_id} Runtime exited with error: signal: killed (Runtime.OutOfMemory: "
            f"more than its {self.spec.memory_mb} MB)"
        )
        log(message)
        return FunctionOutOfMemory(message)

    def _receive(self, seconds: float) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while (message := self._take_frame()) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Expired
            try:
                readable, _, _ = select.select([self._replies], [], [], min(POLL_S, remaining))
                chunk = os.read(self._replies, 1 << 20) if readable else None
            except (OSError, ValueError):  # its pipe was closed under it: the stack is stopping
                raise FunctionCrash(f"{self.spec.name}: stopped during an invocation") from None
            if chunk is not None:
                if not chunk:
                    code = self.process.wait()
                    self.kill()
                    raise FunctionCrash(f"{self.spec.name}: Runtime exited with error: exit status {code}")
                self._buffer += chunk
            elif self.peak_mb() > self.spec.memory_mb:
                raise _OverMemory
        return message

    def _take_frame(self) -> dict[str, Any] | None:
        if len(self._buffer) < FRAME_HEADER.size:
            return None
        size = FRAME_HEADER.unpack_from(self._buffer)[0]
        if len(self._buffer) < FRAME_HEADER.size + size:
            return None
        message: dict[str, Any] = json.loads(bytes(self._buffer[FRAME_HEADER.size : FRAME_HEADER.size + size]))
        del self._buffer[: FRAME_HEADER.size + size]
        return message

    # --- end -------------------------------------------------------------------------------------------
    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._close()

    def stop(self, grace_s: float = 2.0) -> None:
        """Close its requests pipe (it exits when idle); kill it if it does not."""
        self._close()
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def _close(self) -> None:
        for fd in (self._requests, self._replies):
            with contextlib.suppress(OSError):  # closed already
                os.close(fd)
        self._requests = self._replies = -1


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


class LambdaRuntime:
    """Every function's pool; `invoke` as the gateway, the pollers and the scheduler call it."""

    def __init__(
        self, specs: dict[str, FunctionSpec], clock_file: Path | None = None, observer: Observer | None = None
    ) -> None:
        self.pools = {name: FunctionPool(spec, clock_file, observer) for name, spec in specs.items()}

    def prewarm(self) -> None:
        """One worker per function, started in the background so the first request is not a cold start."""
        for pool in self.pools.values():
            threading.Thread(target=pool.prewarm, name=f"prewarm-{pool.spec.name}", daemon=True).start()

    def concurrency(self, function: str) -> int:
        return self.pools[function].spec.concurrency

    def invoke(self, function: str, event: Any) -> Any:
        return self.pools[function].invoke(event)

    def stop(self) -> None:
        for pool in self.pools.values():
            pool.stop()

"""`Worker`: one execution environment as the stack sees it — its process, the protocol pipes, its memory.

An invocation past its Timeout, or whose process grows past MemorySize, is killed (SIGKILL) as Lambda does.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from infra.local.invoker.protocol import take_frame, write_message
from infra.local.invoker.spec import FunctionCrash, FunctionError, FunctionOutOfMemory, FunctionSpec, FunctionTimeout
from infra.local.log import log
from infra.local.template import ROOT

POLL_S = 0.05  # how often a running invocation's memory is looked at (VmHWM keeps a spike between looks)
INIT_TIMEOUT_S = 60.0  # Lambda allows 10 s; two shared cores importing dlib and boto3 at once need more


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
            "infra.local.invoker.worker",
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
        while (message := take_frame(self._buffer)) is None:
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

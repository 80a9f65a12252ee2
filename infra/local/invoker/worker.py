"""One Lambda execution environment of the local stack: a process that loads one function's handler and runs
its invocations one at a time (the parent side is `process.py`).

The protocol travels on two inherited pipes (`--requests-fd`, `--replies-fd`), never on stdout: what the
handler prints or logs goes to stdout/stderr, which the stack passes on to its own stderr, as Lambda's go to
CloudWatch. Each message is a 4-byte big-endian length and that many bytes of JSON:
- worker → parent, once: `{"ready": true}` after the handler module loaded, or `{"init_error": {...}}`;
- parent → worker: `{"event": ..., "request_id": ..., "timeout_s": ...}`;
- worker → parent: `{"result": ...}` or `{"error": {"errorType", "errorMessage"}}`.
The worker exits when the requests pipe closes (the stack stopped, or died).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from infra.local.invoker.protocol import read_message, write_frame, write_message


class LocalContext:
    """Enough of Lambda's context object for Powertools."""

    def __init__(self, function_name: str, memory_mb: int, timeout_s: float, request_id: str) -> None:
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.function_name = function_name
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", f"/aws/lambda/{function_name}")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _error(exc: BaseException) -> dict[str, str]:
    return {"errorType": type(exc).__name__, "errorMessage": str(exc)}


def load_handler(handler_file: Path, handler_name: str) -> Any:
    """Import the handler module by name from its task root, as Lambda's runtime does."""
    sys.path.insert(0, str(handler_file.parent))
    module = importlib.import_module(handler_file.stem)
    return getattr(module, handler_name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A local Lambda execution environment (started by the stack).")
    parser.add_argument("--function", required=True)
    parser.add_argument("--handler-file", type=Path, required=True)
    parser.add_argument("--handler-name", default="lambda_handler")
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--clock-file", type=Path, default=None)
    parser.add_argument("--requests-fd", type=int, required=True)
    parser.add_argument("--replies-fd", type=int, required=True)
    args = parser.parse_args(argv)
    # Lambda's log lines appear as they are written; a pipe would otherwise hold them in a block buffer.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    try:
        from portrait_studio import wiring
        from portrait_studio.clock import SharedOffsetClock, SystemClock
        from portrait_studio.config import Settings

        clock = SharedOffsetClock(args.clock_file) if args.clock_file else SystemClock()
        wiring.use(wiring.Container(settings=Settings(), clock=clock))
        handler = load_handler(args.handler_file, args.handler_name)
    except Exception as exc:
        traceback.print_exc()
        write_message(args.replies_fd, {"init_error": _error(exc)})
        return 1
    write_message(args.replies_fd, {"ready": True})
    while (request := read_message(args.requests_fd)) is not None:
        context = LocalContext(args.function, args.memory_mb, float(request["timeout_s"]), request["request_id"])
        try:
            # A result Lambda could not serialize is the invocation's error too.
            payload = json.dumps({"result": handler(request["event"], context)}).encode()
        except Exception as exc:
            traceback.print_exc()
            payload = json.dumps({"error": _error(exc)}).encode()
        write_frame(args.replies_fd, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())

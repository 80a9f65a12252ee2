"""The local stack runs each function as Lambda does: its own process and environment, Timeout and MemorySize."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from infra.local.invoker.environment import (
    LOCAL_ENDPOINT_VARIABLES,
    all_template_variables,
    function_concurrency,
    function_environment,
    function_spec,
)
from infra.local.invoker.pool import FunctionPool
from infra.local.invoker.spec import FunctionError, FunctionOutOfMemory, FunctionSpec, FunctionTimeout
from infra.local.queues.pollers import MappingRefused, check_visibility
from infra.local.template import ROOT, LocalTemplate
from portrait_studio.clock import MovableClock

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for memory")

HANDLERS = """
import os, time
from portrait_studio import wiring

def environment(event, context):
    return {"environ": dict(os.environ), "pid": os.getpid(), "request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis()}

def sleep(event, context):
    time.sleep(event["seconds"])
    return {"pid": os.getpid()}

def allocate(event, context):
    hog = b"x" * (event["mb"] << 20)  # touched pages: resident, unlike a zeroed bytearray
    return {"pid": os.getpid(), "held": len(hog)}

def fail(event, context):
    raise ValueError("the handler's own error")

def now(event, context):
    return wiring.container().clock.now().isoformat()
"""


class Recorder:
    def __init__(self) -> None:
        self.peaks: list[float] = []
        self.kills: Counter[str] = Counter()

    def memory(self, function: str, peak_mb: float) -> None:
        self.peaks.append(peak_mb)

    def killed(self, function: str, kind: str) -> None:
        self.kills[kind] += 1


@pytest.fixture
def handler_file(tmp_path: Path) -> Path:
    path = tmp_path / "handlers.py"
    path.write_text(HANDLERS)
    return path


def pool(
    handler_file: Path,
    name: str,
    timeout_s: float = 10,
    memory_mb: int = 512,
    concurrency: int = 1,
    clock_file: Path | None = None,
    observer: Recorder | None = None,
) -> FunctionPool:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": f"{ROOT / 'shared'}:{ROOT}", "PORTRAIT_BUCKET": "given"}
    spec = FunctionSpec("TestFunction", handler_file, name, timeout_s, memory_mb, env, concurrency)
    return FunctionPool(spec, clock_file, observer)


# --- the environment, read against the real template ----------------------------------------------------
def _environment(function: str, stack_environ: dict[str, str] | None = None) -> dict[str, str]:
    template = LocalTemplate.read()
    values = {name: f"local-{name}" for name in all_template_variables(template) | set(LOCAL_ENDPOINT_VARIABLES)}
    credentials = {"AWS_ACCESS_KEY_ID": "key-of-" + function, "AWS_SECRET_ACCESS_KEY": "secret"}
    return function_environment(template, function, values, credentials, stack_environ or {"PATH": "/bin"}, "us-east-1")


def test_a_function_gets_only_the_variables_its_template_gives_it() -> None:
    names = ("NormalizeFunction", "CollectFunction", "DispatchFunction")
    normalize, collect, dispatch = (_environment(name) for name in names)
    # The C2PA key is given to collect (and reconcile) only; the webhook URL to dispatch (and reconcile) only.
    assert "PORTRAIT_C2PA_SIGNING_KEY_PARAM" not in normalize
    assert collect["PORTRAIT_C2PA_SIGNING_KEY_PARAM"] == "local-PORTRAIT_C2PA_SIGNING_KEY_PARAM"
    assert "PORTRAIT_WEBHOOK_URL" not in normalize and "PORTRAIT_WEBHOOK_URL" in dispatch
    assert normalize["PORTRAIT_TABLE_NAME"] == "local-PORTRAIT_TABLE_NAME"  # from Globals
    assert normalize["POWERTOOLS_LOG_LEVEL"] == "INFO"  # a literal of the template
    assert normalize["AWS_LAMBDA_FUNCTION_NAME"] == "NormalizeFunction"
    assert normalize["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "4096"
    assert normalize["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert normalize["_HANDLER"] == "app.lambda_handler"
    assert normalize["LAMBDA_TASK_ROOT"].endswith("functions/normalize")
    assert normalize["AWS_ACCESS_KEY_ID"] == "key-of-NormalizeFunction"
    assert "AWS_LAMBDA_FUNCTION_TIMEOUT" not in normalize  # Lambda does not set it


def test_the_stack_environment_passes_test_tunables_but_never_wiring_or_anything_else() -> None:
    stack = {
        "PATH": "/bin",
        "HOME": "/home/dev",
        "AWS_PROFILE": "production",
        "PORTRAIT_RECONCILE_GRACE_S": "2",  # a Settings field no template sets: a test's shortened timing
        "PORTRAIT_C2PA_SIGNING_KEY_PARAM": "/prod/key",  # the template's to give, and it does not give it here
        "PORTRAIT_NOT_A_SETTING": "x",
    }
    normalize = _environment("NormalizeFunction", stack)
    assert normalize["PORTRAIT_RECONCILE_GRACE_S"] == "2"
    for absent in ("HOME", "AWS_PROFILE", "PORTRAIT_C2PA_SIGNING_KEY_PARAM", "PORTRAIT_NOT_A_SETTING"):
        assert absent not in normalize


def test_concurrency_is_the_least_of_maximum_concurrency_reserved_and_the_local_cap() -> None:
    template = LocalTemplate.read()
    assert function_concurrency(template, "DispatchFunction", local_cap=10) == 5  # its ScalingConfig
    assert function_concurrency(template, "NormalizeFunction", local_cap=2) == 2
    template.functions["ApiFunction"] = {**template.functions["ApiFunction"], "ReservedConcurrentExecutions": 1}
    assert function_concurrency(template, "ApiFunction", local_cap=2) == 1


def test_a_queue_function_runs_no_longer_than_its_queue_hides_a_batch() -> None:
    """AWS refuses a mapping whose queue's visibility timeout is shorter than its function's Timeout; the stack,
    whose queues hide a batch for 10 s, shortens those functions' Timeouts to match instead of running them
    longer than SQS would let a batch stay hidden."""
    template = LocalTemplate.read()
    by_function = {source.function: source for source in template.queue_sources}
    normalize = by_function["NormalizeFunction"]

    assert function_spec(template, "NormalizeFunction", {}, 2).timeout_s == 120  # the template's
    assert function_spec(template, "NormalizeFunction", {}, 2, timeout_cap_s=10).timeout_s == 10
    assert function_spec(template, "ApiFunction", {}, 2, timeout_cap_s=900).timeout_s == 15  # never longer
    check_visibility(normalize, 10, 10)
    with pytest.raises(MappingRefused, match="Queue visibility timeout: 10 seconds is less than Function timeout: 120"):
        check_visibility(normalize, 10, 120)
    # Deployed, every mapping is accepted at the template's own settings.
    for source in template.queue_sources:
        visibility = int(template.queues[source.queue]["VisibilityTimeout"])
        check_visibility(source, visibility, function_spec(template, source.function, {}, 2).timeout_s)


# --- the worker processes -------------------------------------------------------------------------------
def test_a_worker_has_exactly_the_environment_it_is_given_and_stays_warm(handler_file: Path) -> None:
    functions = pool(handler_file, "environment")
    try:
        first = functions.invoke({})
        second = functions.invoke({})
    finally:
        functions.stop()
    assert first["pid"] != os.getpid()
    assert first["pid"] == second["pid"]  # warm: one execution environment serves both
    assert first["environ"]["PORTRAIT_BUCKET"] == "given"
    assert not {name for name in first["environ"] if name.startswith(("PORTRAIT_", "AWS_"))} - {"PORTRAIT_BUCKET"}
    assert 0 < first["remaining_ms"] <= 10_000


def test_a_handler_error_fails_the_invocation_and_keeps_the_worker(handler_file: Path) -> None:
    failing = pool(handler_file, "fail")
    try:
        with pytest.raises(FunctionError, match="the handler's own error"):
            failing.invoke({})
        with pytest.raises(FunctionError):
            failing.invoke({})
        assert len(failing._idle) == 1
    finally:
        failing.stop()


def test_an_invocation_past_its_timeout_is_killed_and_the_next_one_starts_a_new_worker(handler_file: Path) -> None:
    recorder = Recorder()
    sleepy = pool(handler_file, "sleep", timeout_s=1, observer=recorder)
    try:
        warm = sleepy.invoke({"seconds": 0})["pid"]
        started = time.monotonic()
        with pytest.raises(FunctionTimeout, match=r"Task timed out after 1\.00 seconds"):
            sleepy.invoke({"seconds": 30})
        assert time.monotonic() - started < 5
        with pytest.raises(ProcessLookupError):
            os.kill(warm, 0)  # the timed-out environment is gone
        assert sleepy.invoke({"seconds": 0})["pid"] != warm  # a cold start
    finally:
        sleepy.stop()
    assert recorder.kills == {"timeout": 1}


def test_an_invocation_over_its_memory_size_is_killed_and_peaks_are_reported(handler_file: Path) -> None:
    recorder = Recorder()
    hungry = pool(handler_file, "allocate", memory_mb=200, observer=recorder)
    try:
        small = hungry.invoke({"mb": 20})
        with pytest.raises(FunctionOutOfMemory, match="Runtime exited with error: signal: killed"):
            hungry.invoke({"mb": 600})
        assert hungry.invoke({"mb": 1})["pid"] != small["pid"]
    finally:
        hungry.stop()
    assert recorder.kills == {"out_of_memory": 1}
    assert 20 < recorder.peaks[0] < 200  # the interpreter plus what the handler held
    assert recorder.peaks[1] == 200  # killed at its limit, as Lambda reports "Max Memory Used"
    assert recorder.peaks[2] < recorder.peaks[0]  # each invocation's own peak, not the process's lifetime


def test_workers_see_the_stack_clock_move_at_once(handler_file: Path, tmp_path: Path) -> None:
    from datetime import datetime

    clock = MovableClock(offset_file=tmp_path / "clock-offset")
    clocked = pool(handler_file, "now", clock_file=tmp_path / "clock-offset")
    try:
        before = datetime.fromisoformat(clocked.invoke({}))
        clock.advance(3 * 3600)
        after = datetime.fromisoformat(clocked.invoke({}))
    finally:
        clocked.stop()
    assert 3 * 3600 <= (after - before).total_seconds() < 3 * 3600 + 30


def test_a_pool_runs_up_to_its_concurrency_at_once(handler_file: Path) -> None:
    sleepy = pool(handler_file, "sleep", concurrency=2)
    results: list[Any] = []
    try:
        sleepy.invoke({"seconds": 0})  # one warm; the second starts cold below
        threads = [threading.Thread(target=lambda: results.append(sleepy.invoke({"seconds": 1.5}))) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sleepy.stop()
    assert len({r["pid"] for r in results}) == 2  # never more environments than its concurrency

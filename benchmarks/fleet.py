"""Fleet benchmark: N concurrent jobs on the local stack under every Replicate fault plus crash faults, at
production timings, and what one job costs on the AWS side.

The stack keeps the production timings (the reconciler's 1-minute schedule and its grace period): rather
than shortening them, the benchmark moves the stack's clock (`POST /_local/clock`, which fires due schedules)
by `--advance` seconds whenever the pipeline sat idle for `--tick` real seconds while jobs are unfinished — no
function ran but the API (the status polls) and the scheduled ones. Moving it at a fixed pace instead would
let simulated time outrun the real work of one process running every function, and time jobs out that are
merely queued. Times are simulated: local-clock time from submit to the first status poll that sees the job
finished (each job is polled every 2 s, as the page does: web/js/progress.js).

Prints jobs ready / partial / failed / stuck, images and Replicate predictions per job, slots that had two
live predictions at once, simulated submit → ready percentiles, the dead-letter queues' depth, the cost of
one job from the stack's counted usage (`GET /_local/usage`) at the public prices below — the benchmark's own
status polls taken out, a browser's (every 2 s of simulated time) priced instead — beside the Replicate
estimate, and goal lines (PASS/FAIL). Exit code 0 — it is a benchmark — unless `--check` and a goal failed.

Run: `make bench` or `python benchmarks/fleet.py [--jobs N | --quick] [--timeout S] [--check]`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "shared"), str(ROOT)]
# The benchmark reads the local stack's queues (moto): its dummy credentials, never real ones.
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")  # noqa: S106

import boto3  # noqa: E402
import httpx  # noqa: E402

from infra.local.client import Job, PortraitClient, running_stack  # noqa: E402
from infra.local.replicate.faults import FULL_FAULT_PROFILE  # noqa: E402
from infra.local.template import LocalTemplate  # noqa: E402
from portrait_studio.config import Settings  # noqa: E402

SELFIES = [ROOT / "samples" / name for name in ("person-a-1.jpg", "person-a-2.jpg", "person-a-3.heic")]
FINISHED = ("ready", "partial", "failed")
POLL_S = 2.0  # web/js/progress.js POLL_MS
SUBMIT_ATTEMPTS = 3
CRASH_RATE = 0.1
IDEAL_PREDICTIONS = 8  # 32 images, 4 per prediction
MAX_PREDICTIONS = 1.7 * IDEAL_PREDICTIONS
MIN_IMAGES = 30
MAX_AWS_USD_PER_JOB = 0.005

# Public prices, USD, us-east-1 where regional (checked against the providers' pages, 2024-2025 prices).
LAMBDA_ARM_GB_S = 0.0000133334  # aws.amazon.com/lambda/pricing: Arm, first 7.5 billion GB-s a month
LAMBDA_REQUEST = 0.20 / 1e6  # aws.amazon.com/lambda/pricing
HTTP_API_REQUEST = 1.00 / 1e6  # aws.amazon.com/api-gateway/pricing: HTTP API, first 300 million a month
DYNAMODB_WRU = 0.625 / 1e6  # aws.amazon.com/dynamodb/pricing/on-demand (after the November 2024 cut)
DYNAMODB_RRU = 0.125 / 1e6  # same page
SQS_REQUEST = 0.40 / 1e6  # aws.amazon.com/sqs/pricing: standard queues, one request per 64 KB chunk
R2_CLASS_A = 4.50 / 1e6  # developers.cloudflare.com/r2/pricing: Standard storage, Class A operations
R2_CLASS_B = 0.36 / 1e6  # same page, Class B operations
# replicate.com/pricing, Nvidia A40 (Large): the price the project's own estimate uses.
REPLICATE_PER_S: float = Settings.model_fields["price_per_second_usd"].default
# Not priced: the template's schedules are EventBridge rules (no charge per scheduled event); SSM standard
# parameters are free and their KMS decrypts are cached; R2 storage for 48 hours is a fraction of a cent.


# --- pure parts (tests/unit/test_fleet_math.py) ---------------------------------------------------------
def aws_cost(usage: Mapping[str, Any], http_functions: Collection[str]) -> dict[str, tuple[float, float]]:
    """(quantity, USD) per line item of a `GET /_local/usage` snapshot. Every call of an HTTP-routed function
    came through API Gateway. The pollers' empty receives are left out: they long-poll for 20 s, as Lambda's
    event-source mappings do, a cost per queue and hour rather than per job."""
    functions = usage["lambda"]
    invocations = sum(f["invocations"] for f in functions.values())
    gb_seconds = sum(f["gb_seconds"] for f in functions.values())
    http = sum(functions[name]["invocations"] for name in http_functions)
    sqs = usage["sqs"]["requests"] + usage["sqs"]["poller"]["requests"]
    dynamodb, r2 = usage["dynamodb"], usage["r2"]
    return {
        "Lambda requests": (invocations, invocations * LAMBDA_REQUEST),
        "Lambda compute (GB-s)": (gb_seconds, gb_seconds * LAMBDA_ARM_GB_S),
        "API Gateway HTTP API requests": (http, http * HTTP_API_REQUEST),
        "DynamoDB write units": (dynamodb["write_units"], dynamodb["write_units"] * DYNAMODB_WRU),
        "DynamoDB read units": (dynamodb["read_units"], dynamodb["read_units"] * DYNAMODB_RRU),
        "SQS requests": (sqs, sqs * SQS_REQUEST),
        "R2 class A operations": (r2["class_a"], r2["class_a"] * R2_CLASS_A),
        "R2 class B operations": (r2["class_b"], r2["class_b"] * R2_CLASS_B),
    }


def total_usd(cost: Mapping[str, tuple[float, float]]) -> float:
    return sum(usd for _, usd in cost.values())


def less_polls(
    cost: Mapping[str, tuple[float, float]], per_poll: Mapping[str, tuple[float, float]], polls: float
) -> dict[str, tuple[float, float]]:
    """`cost` without `polls` status polls of `per_poll` each (never below zero). A poll measured on an idle
    stack is quicker than one made under load, so the Lambda time left in is, if anything, too much."""
    return {
        label: (max(0.0, quantity - polls * per_poll[label][0]), max(0.0, usd - polls * per_poll[label][1]))
        for label, (quantity, usd) in cost.items()
    }


def slot_of(prediction: Mapping[str, Any]) -> tuple[str, str] | None:
    """(job, slot) from the webhook URL the prediction carries (`...?job=...&slot=...`)."""
    query = parse_qs(urlsplit(prediction.get("webhook") or "").query)
    if "job" not in query or "slot" not in query:
        return None
    return query["job"][0], query["slot"][0]


def predictions_per_job(predictions: Iterable[Mapping[str, Any]], job_ids: Collection[str]) -> dict[str, int]:
    counts = dict.fromkeys(job_ids, 0)
    for prediction in predictions:
        slot = slot_of(prediction)
        if slot and slot[0] in counts:
            counts[slot[0]] += 1
    return counts


def doubly_live_slots(predictions: Iterable[Mapping[str, Any]]) -> int:
    """Slots that had two predictions alive at once: [created_at, completed_at) intervals that overlap, canceled
    predictions aside; one that never completed is alive to the end."""
    lives: defaultdict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for prediction in predictions:
        slot = slot_of(prediction)
        if slot is None or prediction.get("status") == "canceled":
            continue
        end = prediction.get("completed_at")
        lives[slot].append((_timestamp(prediction["created_at"]), _timestamp(end) if end else math.inf))
    doubled = 0
    for intervals in lives.values():
        latest_end = -math.inf
        for start, end in sorted(intervals):
            if start < latest_end:
                doubled += 1
                break
            latest_end = max(latest_end, end)
    return doubled


def percentile(values: Collection[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation between jobs); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _s(seconds: float) -> str:
    return "–" if math.isnan(seconds) else f"{seconds:.0f}"


def _timestamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


# --- the run -----------------------------------------------------------------------------------------------
@dataclass
class JobRun:
    job: Job | None = None
    status: str = "not submitted"
    images: int = 0
    submitted_at: datetime | None = None  # local clock
    finished_at: datetime | None = None  # local clock, at the first poll that saw it finished
    polls: int = 0
    reason: str = ""  # why a job ended partial or failed, as the API says
    retries: int = 0
    error: str = ""

    @property
    def simulated_s(self) -> float | None:
        if self.submitted_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.submitted_at).total_seconds()


def local_now(client: PortraitClient) -> datetime:
    response = client.http.get("/_local/clock")
    response.raise_for_status()
    return datetime.fromisoformat(response.json()["now"])


def submit_job(client: PortraitClient, run: JobRun) -> Job:
    """Create, upload, submit. A dropped connection starts the job over, up to SUBMIT_ATTEMPTS times in all:
    in the burst of N jobs' uploads that is the harness's luck, not the pipeline's (the abandoned job's cost
    stays counted)."""
    while True:
        try:
            job = client.create_job(SELFIES)
            client.upload_all(job, SELFIES)
            client.submit(job).raise_for_status()
            client.pay(job)
            return job
        except httpx.TransportError:
            run.retries += 1
            if run.retries == SUBMIT_ATTEMPTS:
                raise


def run_job(run: JobRun, api_url: str, stop: threading.Event) -> None:
    """Create, upload, submit, then poll every POLL_S until the job is finished or `stop` is set."""
    client = PortraitClient(api_url, timeout_s=120)
    try:
        run.job = job = submit_job(client, run)
        run.submitted_at, run.status = local_now(client), "submitted"
        while not stop.wait(POLL_S):
            try:
                response = client.get(job)
            except httpx.HTTPError:
                continue  # a slow answer under load is not the job's fault; the next poll may do
            run.polls += 1
            if response.status_code != 200:
                continue
            view = response.json()
            run.status, run.images = view["status"], int(view["images_done"])
            run.reason = view.get("failure_reason") or ""
            if run.status in FINISHED:
                run.finished_at = local_now(client)
                return
    except httpx.HTTPError as exc:
        run.error = f"{type(exc).__name__}: {exc}"
    finally:
        client.close()


def pipeline_invocations(api_url: str, background: Collection[str]) -> int:
    """Invocations so far of the functions that do a job's work (not `background`)."""
    return sum(f["invocations"] for name, f in usage(api_url)["lambda"].items() if name not in background)


def run_fleet(
    api_url: str, count: int, tick_s: float, advance_s: float, timeout_s: float, background: Collection[str]
) -> tuple[list[JobRun], float]:
    """The jobs, each on its own thread; returns them and how far the clock was moved."""
    runs = [JobRun() for _ in range(count)]
    stop = threading.Event()
    threads = [threading.Thread(target=run_job, args=(run, api_url, stop), daemon=True) for run in runs]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    advanced, worked = 0.0, pipeline_invocations(api_url, background)
    with httpx.Client(base_url=api_url, timeout=300) as http:
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            time.sleep(tick_s)
            before, worked = worked, pipeline_invocations(api_url, background)
            if worked == before and any(run.submitted_at and not run.finished_at for run in runs):
                http.post("/_local/clock", json={"advance_seconds": advance_s}).raise_for_status()
                advanced += advance_s
    stop.set()
    for thread in threads:
        thread.join(timeout=130)
    return runs, advanced


def emulator_predictions(stack: Mapping[str, Any]) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {stack['replicate_token']}"}
    response = httpx.get(f"{stack['replicate_url']}/v1/predictions", headers=headers, timeout=60)
    response.raise_for_status()
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def dead_letters(stack: Mapping[str, Any]) -> int:
    """Messages in the template's dead-letter queues (visible or in flight)."""
    sqs = boto3.client("sqs", region_name=stack["region"], endpoint_url=stack["aws_endpoint_url"])
    total = 0
    for logical, url in stack["queues"].items():
        if "DeadLetter" in logical or logical.endswith("DLQ"):
            names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            total += sum(int(attributes[name]) for name in names)
    return total


def print_lambda_limits(functions: Mapping[str, Mapping[str, Any]]) -> None:
    """Each function's peak memory in one invocation beside its MemorySize, and its kills (as Lambda's)."""
    print(
        f"\n{'function (own process, as deployed)':40} {'MemorySize':>10} {'peak MB':>8} {'of limit':>9} {'kills':>6}"
    )
    print("-" * 76)
    for name, figures in functions.items():
        peak = float(figures.get("peak_memory_mb") or 0)
        kills = int(figures.get("timeouts") or 0) + int(figures.get("out_of_memory") or 0)
        share = f"{peak / figures['memory_mb']:.0%}" if figures.get("invocations") else "-"
        print(f"{name:40} {figures['memory_mb']:>10} {peak:>8.0f} {share:>9} {kills:>6}")


def usage(api_url: str, method: str = "GET") -> dict[str, Any]:
    response = httpx.request(method, f"{api_url}/_local/usage", timeout=60)
    response.raise_for_status()
    counted: dict[str, Any] = response.json()
    return counted


def poll_cost(
    api_url: str, runs: list[JobRun], http_functions: Collection[str], polls: int = 10
) -> dict[str, tuple[float, float]] | None:
    """What one status poll of a finished job costs, per line item, measured alone (the counters reset first)."""
    job = next((run.job for run in runs if run.job and run.status in FINISHED), None)
    if job is None:
        return None
    usage(api_url, "DELETE")
    client = PortraitClient(api_url)
    try:
        for _ in range(polls):
            client.get(job).raise_for_status()
    finally:
        client.close()
    return {label: (q / polls, usd / polls) for label, (q, usd) in aws_cost(usage(api_url), http_functions).items()}


# --- the report --------------------------------------------------------------------------------------------


def run_ledger(state: Path) -> dict[str, Any]:
    """The operator's `portrait-studio ledger --since 72h --json` on this stack, run as an operator runs it (a fresh
    shell, the stack found through `.local/stack.json`). Adds `exit`: 1 while an unrepaired mismatch is left."""
    with tempfile.TemporaryDirectory() as cwd:
        (Path(cwd) / ".local").mkdir()
        (Path(cwd) / ".local" / "stack.json").symlink_to(state / "stack.json")
        command = [str(Path(sys.executable).parent / "portrait-studio"), "ledger", "--since", "72h", "--json"]
        shell = {"PATH": os.environ["PATH"], "HOME": cwd, "PYTHONPATH": str(ROOT / "shared")}
        done = subprocess.run(command, cwd=cwd, env=shell, capture_output=True, text=True, timeout=300)
    if done.returncode not in (0, 1):
        return {"exit": done.returncode, "error": done.stderr.strip()[-300:]}
    report: dict[str, Any] = json.loads(done.stdout)
    return {**report, "exit": done.returncode}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="5 jobs")
    parser.add_argument("--timeout", type=float, default=600.0, help="wall-clock limit, seconds")
    parser.add_argument("--tick", type=float, default=3.0, help="real seconds of idleness before a clock move")
    parser.add_argument("--advance", type=float, default=60.0, help="simulated seconds per clock move")
    parser.add_argument("--seed", type=int, default=1, help="seed of the Replicate and crash faults")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal fails")
    args = parser.parse_args(argv)
    count = 5 if args.quick else args.jobs
    template = LocalTemplate.read()
    http_functions = {route.function for route in template.routes}
    # Production timings: only the per-address job limit is raised, all N jobs come from 127.0.0.1.
    env = {"PORTRAIT_CREATE_JOB_RATE_PER_HOUR": str(max(1000, 10 * count))}
    started = time.monotonic()
    # Denials are counted as a goal below rather than failing the run (the stack enforces IAM either way).
    with tempfile.TemporaryDirectory() as state, running_stack(Path(state), env=env, allow_denials=True) as stack:
        api = stack["api_url"]
        profile = {**FULL_FAULT_PROFILE, "seed": args.seed}
        httpx.put(f"{stack['replicate_url']}/_emulator/faults", json=profile).raise_for_status()
        crashes = httpx.put(f"{api}/_local/faults", json={"crash_rate": CRASH_RATE, "seed": args.seed})
        if crashes.status_code == 404:
            print("warning: this stack has no PUT /_local/faults; running without crash faults", file=sys.stderr)
        else:
            crashes.raise_for_status()
        usage(api, "DELETE")
        # Not the pipeline's work: the function answering the status polls, and the scheduled ones.
        background = {route.function for route in template.routes if route.route_key == "GET /jobs/{id}"}
        background |= {schedule.function for schedule in template.schedules}
        runs, advanced = run_fleet(api, count, args.tick, args.advance, args.timeout, background)
        wall = time.monotonic() - started
        counted = usage(api)
        job_ids = {run.job.job_id for run in runs if run.job}
        mine = [p for p in emulator_predictions(stack) if (slot := slot_of(p)) and slot[0] in job_ids]
        dlq = dead_letters(stack)
        per_poll = poll_cost(api, runs, http_functions)
        iam = httpx.get(f"{api}/_local/iam").json()
        ledger = run_ledger(Path(state))

    statuses = [run.status if run.status in FINISHED else "stuck" for run in runs]
    ready = [run for run in runs if run.status == "ready"]
    images = [run.images for run in runs]
    per_job = predictions_per_job(mine, job_ids)
    mean_predictions = statistics.mean(per_job.values()) if per_job else math.nan
    doubled = doubly_live_slots(mine)
    to_ready = [s for run in ready if (s := run.simulated_s) is not None]
    to_finished = [s for run in runs if (s := run.simulated_s) is not None]
    # The benchmark's own polls follow its wall time, which a loaded laptop stretches: they are taken out, and a
    # browser's polls (every POLL_S over the simulated time) are priced on their own line instead.
    cost = aws_cost(counted, http_functions)
    polls = sum(run.polls for run in runs)
    pipeline = less_polls(cost, per_poll, polls) if per_poll else cost
    browser_polls = statistics.median(to_finished) / POLL_S if per_poll and to_finished else 0.0
    polls_usd = browser_polls * total_usd(per_poll) if per_poll else 0.0
    aws_per_job = total_usd(pipeline) / count + polls_usd
    predict_s = sum(float((p.get("metrics") or {}).get("predict_time") or 0) for p in mine)

    crash_note = f" + crash faults (rate {CRASH_RATE})" if crashes.status_code != 404 else ""
    print(
        f"\nFleet on the local stack: {count} jobs, Replicate's full fault profile (seed {args.seed}){crash_note};\n"
        f"production timings; the clock moved {args.advance:.0f} s after each {args.tick:.0f} s of real time with "
        f"no work done (wall {wall:.0f} s, clock moved {advanced / 60:.0f} min)\n"
    )
    print(f"{'figure':48} {'value':>16} {'goal':>10}")
    print("-" * 76)
    rows = [
        ("jobs ready / partial / failed / stuck", " / ".join(str(statuses.count(s)) for s in (*FINISHED, "stuck")), ""),
        ("images per job: min / median", f"{min(images)} / {statistics.median(images):.0f}", f"≥ {MIN_IMAGES}"),
        (
            f"predictions per job: mean (ideal {IDEAL_PREDICTIONS})",
            f"{mean_predictions:.2f}",
            f"≤ {MAX_PREDICTIONS:.1f}",
        ),
        (
            "  of them succeeded / failed / canceled",
            " / ".join(str(sum(p.get("status") == s for p in mine)) for s in ("succeeded", "failed", "canceled")),
            "",
        ),
        ("slots with two live predictions", str(doubled), "0"),
        (
            "submit → ready, simulated s: p50 / p95",
            f"{_s(percentile(to_ready, 0.5))} / {_s(percentile(to_ready, 0.95))}",
            "",
        ),
        ("dead-letter messages", str(dlq), "0"),
    ]
    for label, value, goal in rows:
        print(f"{label:48} {value:>16} {goal:>10}")
    for reason, jobs in Counter(run.reason for run in runs if run.reason).most_common():
        print(f"  {jobs} × {reason}")

    print(f"\nCost of one job on the AWS side: counted usage ÷ {count} jobs × public prices\n")
    print(f"{'item':48} {'per job':>12} {'USD per job':>14}")
    print("-" * 76)
    for label, (quantity, usd) in pipeline.items():
        print(f"{label:48} {quantity / count:12.1f} {usd / count:14.7f}")
    if per_poll:
        print(f"{'status polls: a browser, every 2 s (simulated)':48} {browser_polls:12.0f} {polls_usd:14.7f}")
    print(f"{'AWS + R2':48} {'':12} {aws_per_job:14.7f}")
    replicate = predict_s * REPLICATE_PER_S / count
    print(f"{f'Replicate: predict_time × ${REPLICATE_PER_S}/s':48} {predict_s / count:10.1f} s {replicate:14.7f}")
    print(
        "\nLambda durations are this machine's wall times (each function in its own process): an upper bound.\n"
        "The emulator's predict_time is its own render time, not PhotoMaker's on an A40.\n"
        f"Not priced: the local pollers' {counted['sqs']['poller']['empty_receives']} empty receives (20 s long polls, "
        "as Lambda's event-source\nmappings make: a cost per queue and hour, not per job)."
    )
    if per_poll:
        print(
            f"Status polls: one costs ${total_usd(per_poll):.7f} (measured alone; R2 class A "
            f"{per_poll['R2 class A operations'][0]:.0f} a poll). The benchmark's own {polls} polls\n"
            f"(every {POLL_S:g} s of real time) are taken out of the lines above; a browser's over the median\n"
            f"simulated submit → finished are priced instead."
        )
    else:
        print(f"No job finished, so no poll could be measured: the lines above include the benchmark's {polls} polls.")

    print_lambda_limits(counted["lambda"])
    if "error" in ledger:
        print(f"\nportrait-studio ledger failed (exit {ledger['exit']}): {ledger['error']}")
    else:
        figures = ", ".join(f"{k} {ledger[k]}" for k in ("sessions", "paid", "refunded", "mismatches", "repaired"))
        print(f"\nportrait-studio ledger --since 72h, after the fleet: {figures} (exit {ledger['exit']})")
        for item in ledger["items"][:10]:
            print(f"  mismatch: {json.dumps(item)}")
    denied = iam["denied"]
    for denial in denied[:10]:
        print(f"IAM denied {denial['function']}: {denial['action']} on {denial['resource']}")
    goals = [
        (
            iam["enforced"] and not denied,
            f"{len(denied)} AWS calls refused by IAM, enforced: {iam['enforced']} (goal 0)",
        ),
        (
            len([run for run in ready if run.images >= MIN_IMAGES]) == count,
            f"{len([run for run in ready if run.images >= MIN_IMAGES])}/{count} jobs ready with ≥ {MIN_IMAGES} images",
        ),
        (
            ledger.get("mismatches") == 0 and ledger["exit"] == 0,
            f"{ledger.get('mismatches', 'no')} ledger mismatches after the fleet (goal 0)",
        ),
        (statuses.count("stuck") == 0, f"{statuses.count('stuck')} jobs stuck (goal 0)"),
        (doubled == 0, f"{doubled} slots with two live predictions (goal 0)"),
        (
            mean_predictions <= MAX_PREDICTIONS,
            f"{mean_predictions:.2f} predictions per job ≤ {MAX_PREDICTIONS:.1f} (1.7 × {IDEAL_PREDICTIONS})",
        ),
        (
            aws_per_job <= MAX_AWS_USD_PER_JOB,
            f"AWS + R2 ${aws_per_job:.5f} per job ≤ ${MAX_AWS_USD_PER_JOB} (status polls ${polls_usd:.5f} of it)",
        ),
    ]
    print()
    for passed, text in goals:
        print(f"{'PASS' if passed else 'FAIL'}  {text}")
    errors = [run.error for run in runs if run.error]
    if errors:
        print(f"\n{len(errors)} job(s) could not be submitted; the first: {errors[0]}")
    retries = sum(run.retries for run in runs)
    if retries:
        print(f"\n{retries} submission(s) started over after a dropped connection")
    return 1 if args.check and not all(passed for passed, _ in goals) else 0


if __name__ == "__main__":
    sys.exit(main())

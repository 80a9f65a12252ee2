"""Pipeline benchmark on the local stack: our own overhead, without model time.

Prints, for a demo job (3 selfies, one HEIC):
- submit → all predictions created (intake, normalization, dispatch);
- last webhook → job ready (collect and finishing);
- under the full fault profile: time to ready and predictions created per job (baseline: the ideal 8);
- the cold import time of each handler module (baseline: a bare `python -c pass`).

Run: `make bench` or `python benchmarks/pipeline.py [--runs N]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "shared"), str(ROOT)]
# The benchmark reads the local stack's table (moto): its dummy credentials, never real ones.
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")  # noqa: S106

import boto3  # noqa: E402
import httpx  # noqa: E402

from infra.local.client import PortraitClient, running_stack  # noqa: E402
from infra.local.replicate.faults import FULL_FAULT_PROFILE  # noqa: E402

SELFIES = [ROOT / "samples" / name for name in ("person-a-1.jpg", "person-a-2.jpg", "person-a-3.heic")]
HANDLERS = ["api", "normalize", "dispatch", "webhook", "collect", "reconcile", "expiry_sweep"]


def parse_time(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def run_job(stack: dict[str, Any], client: PortraitClient) -> dict[str, float]:
    job = client.create_job(SELFIES)
    client.upload_all(job, SELFIES)
    submitted = time.time()
    client.submit(job).raise_for_status()
    client.pay(job)
    view = client.wait_for(job, ("ready", "failed"), timeout_s=600)
    if view["status"] != "ready":
        raise RuntimeError(f"job ended {view['status']}")
    headers = {"Authorization": f"Bearer {stack['replicate_token']}"}
    mine = [
        p
        for p in httpx.get(f"{stack['replicate_url']}/v1/predictions", headers=headers).json()["results"]
        if job.job_id in (p.get("webhook") or "")
    ]
    table = boto3.resource("dynamodb", region_name=stack["region"], endpoint_url=stack["aws_endpoint_url"]).Table(
        stack["table"]
    )
    meta = table.get_item(Key={"pk": f"JOB#{job.job_id}", "sk": "META"})["Item"]
    created = [parse_time(p["created_at"]) for p in mine]
    completed = [parse_time(p.get("completed_at")) for p in mine]
    finished = parse_time(str(meta["finished_at"]))
    assert finished is not None
    return {
        "submit_to_created_s": max(t for t in created if t) - submitted,
        "last_webhook_to_ready_s": finished - max(t for t in completed if t),
        "submit_to_ready_s": finished - submitted,
        "predictions": float(len(mine)),
        "images": float(view["images_done"]),
    }


def import_times(repeats: int = 5) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'shared'}{os.pathsep}{ROOT}", "POWERTOOLS_SERVICE_NAME": "bench"}

    def timed(code: str) -> float:
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    results = {"(bare python)": timed("pass")}
    for name in HANDLERS:
        results[name] = timed(f"import functions.{name}.app")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = {
        "PORTRAIT_RECONCILE_GRACE_S": "2",
        "PORTRAIT_CREATE_JOB_RATE_PER_HOUR": "1000",
        "LOCAL_RECONCILE_EVERY_S": "1",
        "EMULATOR_STEP_DELAY": "0.2",
    }
    clean: list[dict[str, float]] = []
    faulty: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as state, running_stack(Path(state), env=env) as stack:
        client = PortraitClient(stack["api_url"])
        faults_url = f"{stack['replicate_url']}/_emulator/faults"
        for _ in range(args.runs):
            clean.append(run_job(stack, client))
        for seed in range(args.runs):
            httpx.put(faults_url, json={**FULL_FAULT_PROFILE, "seed": seed}).raise_for_status()
            faulty.append(run_job(stack, client))
        httpx.delete(faults_url)
    imports = import_times()

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print(f"\nPipeline on the local stack (median of {args.runs} jobs; emulator step delay 0.2 s)\n")
    print(f"{'figure':44} {'value':>10} {'baseline':>10} {'ratio':>7}")
    print("-" * 74)
    rows = [
        ("submit → all predictions created (s)", med(clean, "submit_to_created_s"), None),
        ("last webhook → ready, our overhead (s)", med(clean, "last_webhook_to_ready_s"), None),
        ("submit → ready, no faults (s)", med(clean, "submit_to_ready_s"), None),
        ("predictions per job, no faults", med(clean, "predictions"), 8.0),
        ("submit → ready, full fault profile (s)", med(faulty, "submit_to_ready_s"), med(clean, "submit_to_ready_s")),
        ("predictions per job, full fault profile", med(faulty, "predictions"), 8.0),
        ("images per job, full fault profile", med(faulty, "images"), 32.0),
    ]
    for label, value, baseline in rows:
        ratio = f"{value / baseline:.2f}" if baseline else ""
        print(f"{label:44} {value:10.2f} {baseline if baseline is not None else '':>10} {ratio:>7}")
    print("\nCold import of each handler module (ms, median of 5 fresh processes; baseline: bare python)\n")
    bare = imports.pop("(bare python)")
    print(f"{'handler':16} {'import ms':>10} {'minus bare':>11}")
    for name, ms in imports.items():
        print(f"{name:16} {ms:10.1f} {ms - bare:11.1f}")
    print(f"{'(bare python)':16} {bare:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

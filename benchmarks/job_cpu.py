"""CPU seconds one whole job costs on the local stack, by process: what bounds `make test`'s wall time.

The suite is CPU-bound on the 2-core machine (its end-to-end and browser tests run about thirty whole jobs), so the
stack's CPU per job, not its latency, decides how long `make test` takes. Prints, per job (median of `--runs`,
3 selfies, one HEIC, no faults): CPU seconds of the stack process (moto, the gates, the Replicate and Stripe
emulators, the scheduler) and of each function's worker processes, against the same figures measured with this
script at commit 9785e4a on the same machine the same day (2026-12-06): before moto wrote plain DynamoDB values without
its shape walk and before the test client looked at a job every second rather than every quarter second. (At c329d79,
before the caption fitting, moto's module list and one reference description per batch: 33.8 CPU s on an earlier
machine, 28.1 at 9785e4a on that one.)

Run: `python benchmarks/job_cpu.py [--runs N]`.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "shared"), str(ROOT)]

from infra.local.client import PortraitClient, running_stack  # noqa: E402

SELFIES = [ROOT / "samples" / name for name in ("person-a-1.jpg", "person-a-2.jpg", "person-a-3.heic")]
TICKS = os.sysconf("SC_CLK_TCK")
# CPU seconds per job at 9785e4a, same script and machine (median of 3 jobs).
BASELINE = {"stack process": 7.3, "CollectFunction": 13.6, "other functions": 2.3, "total": 22.9}


def _cpu_s(pid: int) -> float:
    """The process's CPU seconds, its reaped children's included (a worker killed and waited for lands here)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / TICKS  # utime, stime, cutime, cstime


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def cpu_by_process(stack_pid: int) -> Counter[str]:
    """CPU seconds so far of the stack process and of each function's live workers, by function."""
    seconds: Counter[str] = Counter({"stack process": _cpu_s(stack_pid)})
    for pid in _children(stack_pid):
        try:
            named = re.search(r"--function=(\w+)", Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " "))
            seconds[named.group(1) if named else "stack process"] += _cpu_s(pid)
        except (OSError, AttributeError):
            continue  # exited meanwhile: its time is the stack's reaped-children time
    return seconds


def one_job(client: PortraitClient, stack_pid: int) -> Counter[str]:
    before = cpu_by_process(stack_pid)
    job = client.create_job(SELFIES)
    client.upload_all(job, SELFIES)
    client.submit_and_pay(job)
    view = client.wait_for(job, ("ready", "failed"), timeout_s=600)
    if view["status"] != "ready":
        raise RuntimeError(f"job ended {view['status']}")
    time.sleep(3)  # the outcome's email and the last webhooks
    after = cpu_by_process(stack_pid)
    spent = Counter({name: after[name] - before.get(name, 0.0) for name in after})
    other = sum(v for k, v in spent.items() if k not in ("stack process", "CollectFunction"))
    return Counter(
        {
            "stack process": spent["stack process"],
            "CollectFunction": spent["CollectFunction"],
            "other functions": other,
            "total": sum(spent.values()),
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = {"PORTRAIT_CREATE_JOB_RATE_PER_HOUR": "1000", "LOCAL_RECONCILE_EVERY_S": "1"}
    with tempfile.TemporaryDirectory() as state, running_stack(Path(state), env=env) as stack:
        client = PortraitClient(stack["api_url"])
        time.sleep(5)  # the workers' prewarm is start-up, not the job's
        runs = [one_job(client, int(stack["pid"])) for _ in range(args.runs)]
        client.close()
    print(f"\nCPU seconds per whole job on the local stack (median of {args.runs}; baseline: 9785e4a)\n")
    print(f"{'process':20} {'CPU s':>8} {'baseline':>9} {'ratio':>6}")
    for name, baseline in BASELINE.items():
        value = statistics.median(r[name] for r in runs)
        ratio = f"{value / baseline:.2f}" if baseline else ""
        print(f"{name:20} {value:8.1f} {baseline:9.1f} {ratio:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

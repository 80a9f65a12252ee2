"""What a round of "More like this" takes and costs, on the local stack at its production timings.

    .venv/bin/python benchmarks/more_like_this.py [--jobs 2]

Each job is paid and delivered, then asks for both of its rounds on one headshot. Per round: the time from the
request to 4 new results (wall time here: the emulator's renders are quicker than PhotoMaker's), the AWS calls the
stack counted (priced with benchmarks/fleet.py's public prices, the page's status polls included), and the
Replicate side: predictions created × PhotoMaker's published run time (73 s on an A40, `expected_predict_s`) ×
Replicate's per-second price. Baseline: the paid plan (8 predictions for 32 headshots, the same figures).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet import REPLICATE_PER_S, SELFIES, aws_cost, emulator_predictions, predictions_per_job, total_usd, usage

from infra.local.client import PortraitClient, running_stack
from infra.local.template import LocalTemplate
from portrait_studio.config import Settings

PLAN_PREDICTIONS = 8
PHOTOMAKER_S: float = Settings.model_fields["expected_predict_s"].default


def one_job(client: PortraitClient, stack: dict[str, Any], http_functions: set[str]) -> list[dict[str, float]]:
    job = client.create_job(SELFIES)
    client.upload_all(job, SELFIES)
    client.submit(job).raise_for_status()
    client.pay(job)
    view = client.wait_for(job, ("ready", "partial", "failed"), timeout_s=600)
    if view["status"] != "ready":
        raise RuntimeError(f"job ended {view['status']}")
    chosen = view["styles"][0]["items"][0]["result"]
    rounds = []
    for _ in range(view["more_rounds_left"]):
        before = predictions_per_job(emulator_predictions(stack), [job.job_id])[job.job_id]
        usage(stack["api_url"], "DELETE")
        asked = time.monotonic()
        started = client.http.post(f"/jobs/{job.job_id}/more", headers=client.auth(job.token), json={"result": chosen})
        started.raise_for_status()
        done = client.wait_for(job, ("ready", "partial", "failed"), timeout_s=600)
        took = time.monotonic() - asked
        if done["images_done"] != view["images_done"] + 4:
            raise RuntimeError(f"round ended with {done['images_done'] - view['images_done']} new headshots")
        view = done
        created = predictions_per_job(emulator_predictions(stack), [job.job_id])[job.job_id] - before
        aws = total_usd(aws_cost(usage(stack["api_url"]), http_functions))
        rounds.append({"seconds": took, "predictions": created, "aws_usd": aws})
    return rounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    http_functions = {route.function for route in LocalTemplate.read().routes}
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as state, running_stack(Path(state)) as stack:
        client = PortraitClient(stack["api_url"])
        for _ in range(args.jobs):
            rounds += one_job(client, stack, http_functions)
        client.close()
    predictions = statistics.mean(r["predictions"] for r in rounds)
    replicate = predictions * PHOTOMAKER_S * REPLICATE_PER_S
    plan = PLAN_PREDICTIONS * PHOTOMAKER_S * REPLICATE_PER_S
    aws = statistics.mean(r["aws_usd"] for r in rounds)
    seconds = sorted(r["seconds"] for r in rounds)
    print(f"\nMore like this on the local stack: {len(rounds)} rounds of 4 headshots ({args.jobs} jobs × 2)\n")
    print(f"{'figure':52} {'value':>12}")
    print("-" * 66)
    print(f"{'request → 4 new results, wall s: p50 / max':52} {statistics.median(seconds):5.1f} / {seconds[-1]:4.1f}")
    print(f"{'predictions per round (mean)':52} {predictions:12.2f}")
    print(f"{'Replicate per round: × 73 s × $' + str(REPLICATE_PER_S) + '/s':52} {replicate:12.4f}")
    print(f"{'AWS + R2 per round (counted, polls included)':52} {aws:12.6f}")
    print(f"{'round ÷ paid plan (8 predictions, Replicate)':52} {replicate / plan:12.3f}")
    print("\nWall times are this machine's with the emulator's quick renders; deployed, a round takes about one")
    print("PhotoMaker run (73 s) plus a cold boot when no instance is warm.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

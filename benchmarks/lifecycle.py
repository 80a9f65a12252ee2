"""The lifecycle model test, long: many more examples than `make test` runs, with its figures.

    python benchmarks/lifecycle.py [--examples 20000] [--seed N]

Prints examples run, invariant violations (0, or the failing example), outcomes of the jobs that ran to the end,
the worst model time from generation start to a terminal state (bound: `max_generating_s`), and predictions per
job (ideal: 8; budget: 20). Baseline: the same model at `make test`'s 500 derandomized examples.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "shared"), str(ROOT)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=None, help="random (not derandomized) with this seed")
    args = parser.parse_args()

    from hypothesis import HealthCheck, Phase, seed, settings
    from hypothesis.stateful import run_state_machine_as_test

    from portrait_studio.config import Settings
    from tests.model.test_lifecycle_model import STATS, LifecycleModel

    chosen = settings(
        max_examples=args.examples,
        stateful_step_count=50,
        deadline=None,
        derandomize=args.seed is None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink],
        database=None,
    )
    started = time.monotonic()
    failure = None
    try:
        if args.seed is not None:
            seed(args.seed)(run_state_machine_as_test)(LifecycleModel, settings=chosen)
        else:
            run_state_machine_as_test(LifecycleModel, settings=chosen)
    except Exception as exc:  # the failing example, shrunk; the figures below still count
        failure = exc
    elapsed = time.monotonic() - started
    bound = Settings().max_generating_s
    per_job = STATS.predictions_per_job or [0]
    rows = [
        ("examples run", f"{STATS.examples}"),
        ("invariant violations", "0" if failure is None else "1 (below)"),
        ("jobs run to the end", ", ".join(f"{k} {v}" for k, v in sorted(STATS.jobs.items())) or "none"),
        ("worst start → terminal", f"{STATS.worst_to_terminal_s:.0f} s (bound {bound} s, "
         f"{STATS.worst_to_terminal_s / bound:.2f}×)"),
        ("predictions per job", f"mean {statistics.mean(per_job):.2f}, max {max(per_job)} (ideal 8, budget 16)"),
        ("faults injected", ", ".join(f"{k} {v}" for k, v in sorted(STATS.faults_fired.items())) or "none"),
        ("wall time", f"{elapsed:.0f} s"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    print("Lifecycle model (production settings; baseline: make test's 500 derandomized examples)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    if failure is not None:
        print(f"\n{type(failure).__name__}: {failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

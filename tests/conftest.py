"""Shared test setup: Powertools as the template configures it, no real AWS credentials ever used."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "portrait-studio")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "PortraitStudio")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


# The slowest test files, slowest first (per-file totals of `pytest --durations=0`, three workers, at 400fabf):
# `make test` hands whole files to its workers in this order (`--no-loadscope-reorder`), so the long end-to-end
# files start at once and the many short unit files fill the gaps at the end. xdist's own order, the files with
# the most tests first, started the minute-long end-to-end files last and left one worker running
# alone. The order changes only when each file runs, never what it checks.
SLOWEST_FIRST = (
    "e2e/test_production_timings.py",  # 410 s
    "e2e/test_faults.py",  # 360 s
    "browser/test_web.py",  # 248 s
    "e2e/test_create_budget.py",  # 246 s
    "e2e/test_pipeline.py",  # 227 s
    "model/test_lifecycle_model.py",  # 186 s
    "e2e/test_identity.py",  # 182 s
    "e2e/test_retention.py",  # 146 s
    "e2e/test_personal.py",  # 145 s
    "e2e/test_ledger.py",  # 137 s
    "e2e/test_payments.py",  # 126 s
    "browser/test_personal.py",  # 124 s
)
_TIER_ORDER = ("e2e", "browser", "model", "integration", "corpus", "unit")


def _run_order(item: Any) -> tuple[int, int]:
    relative = Path(str(item.path)).relative_to(Path(__file__).parent).as_posix()
    if relative in SLOWEST_FIRST:
        return (0, SLOWEST_FIRST.index(relative))
    tier = relative.split("/", 1)[0]
    return (1, _TIER_ORDER.index(tier) if tier in _TIER_ORDER else len(_TIER_ORDER))


def pytest_collection_modifyitems(items: list[Any]) -> None:
    items.sort(key=_run_order)  # stable: each file's tests keep their order, and stay together

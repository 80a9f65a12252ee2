"""Operator commands run against the local stack with no settings at all: they find its `.local/stack.json`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e
CLI = Path(sys.executable).parent / "portrait-studio"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # Nothing of this process's environment: no PORTRAIT_* settings and no AWS credentials, like a fresh shell.
    clean = {"PATH": os.environ["PATH"], "HOME": str(cwd), "PYTHONPATH": str(ROOT / "shared")}
    return subprocess.run([str(CLI), *args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=60)


def test_operator_commands_find_the_local_stack(stack: dict[str, Any], tmp_path: Path) -> None:
    # A checkout whose stack is running, the operator somewhere below its root.
    (tmp_path / ".local").mkdir()
    (tmp_path / ".local" / "stack.json").symlink_to(Path(stack["log_path"]).parent / "stack.json")
    below = tmp_path / "infra" / "r2"
    below.mkdir(parents=True)

    report = run_cli("retention-report", "--json", cwd=below)

    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout) == {
        "jobs_by_status": {},
        "oldest_object_age_h": None,
        "orphans": 0,
        "jobs_holding_email": 0,
        "promise_kept": True,
    }
    assert report.stderr.strip() == f"using the local stack at {stack['api_url']} ({tmp_path / '.local/stack.json'})"

    stored = run_cli("store-webhook-secret", cwd=below)
    assert stored.returncode == 0, stored.stderr
    assert "/portrait-studio/local/replicate-webhook-secret" in stored.stdout

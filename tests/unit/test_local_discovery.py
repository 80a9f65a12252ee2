"""Operator commands find the running local stack from its `.local/stack.json`, unless settings say otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from portrait_studio.local_discovery import find_local_stack

ENVIRONMENT = {"PORTRAIT_TABLE_NAME": "portrait-studio-local-JobsTable", "AWS_REGION": "us-east-1"}


def write_state(directory: Path, **overrides: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "stack.json"
    state = {"api_url": "http://127.0.0.1:3000", "pid": os.getpid(), "environment": ENVIRONMENT, **overrides}
    path.write_text(json.dumps(state))
    return path


def test_finds_the_stack_of_a_parent_directory(tmp_path: Path) -> None:
    path = write_state(tmp_path / ".local")
    nested = tmp_path / "shared" / "portrait_studio"
    nested.mkdir(parents=True)

    found = find_local_stack({"HOME": "/home/op"}, nested)

    assert found is not None
    assert found.path == path
    assert found.api_url == "http://127.0.0.1:3000"
    assert found.environment == ENVIRONMENT


def test_portrait_local_state_names_the_file_or_its_directory(tmp_path: Path) -> None:
    write_state(tmp_path / "cwd" / ".local", api_url="http://127.0.0.1:1111")
    elsewhere = write_state(tmp_path / "elsewhere", api_url="http://127.0.0.1:2222")

    for named in (elsewhere, elsewhere.parent):
        found = find_local_stack({"PORTRAIT_LOCAL_STATE": str(named)}, tmp_path / "cwd")
        assert found is not None
        assert found.api_url == "http://127.0.0.1:2222"
    assert find_local_stack({"PORTRAIT_LOCAL_STATE": str(tmp_path / "missing")}, tmp_path / "cwd") is None


def test_explicit_settings_are_never_overridden(tmp_path: Path) -> None:
    write_state(tmp_path / ".local")

    assert find_local_stack({"PORTRAIT_TABLE_NAME": "prod-jobs"}, tmp_path) is None
    assert find_local_stack({"PORTRAIT_AWS_ENDPOINT_URL": ""}, tmp_path) is None


def test_no_stack_no_discovery(tmp_path: Path) -> None:
    assert find_local_stack({}, tmp_path) is None


def test_a_stack_that_is_gone_or_unreadable_is_ignored(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    write_state(tmp_path / "killed" / ".local", pid=int(finished.stdout))  # left behind by a killed stack
    assert find_local_stack({}, tmp_path / "killed") is None
    write_state(tmp_path / "older" / ".local", environment=None)  # written before stack.json had it
    assert find_local_stack({}, tmp_path / "older") is None
    (tmp_path / "torn" / ".local").mkdir(parents=True)
    (tmp_path / "torn" / ".local" / "stack.json").write_text('{"api_url": ')
    assert find_local_stack({}, tmp_path / "torn") is None

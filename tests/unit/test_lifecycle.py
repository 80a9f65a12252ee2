"""The lifecycle is one module: every status and transition is in its tables, only it writes a status, and the
diagram in docs/architecture.md is the one the code renders."""

from __future__ import annotations

import ast
from pathlib import Path

from portrait_studio.models import JobStatus, SlotStatus
from portrait_studio.services.lifecycle import JOB_TRANSITIONS, SLOT_TRANSITIONS, TOMBSTONES, state_diagram

ROOT = Path(__file__).resolve().parents[2]
STATUS_WRITERS = {
    "queue_files",
    "start_generation",
    "start_round",
    "add_slots",
    "claim_slot",
    "release_slot",
    "add_collected",
}


def test_every_status_is_reached_by_a_named_transition() -> None:
    job_states = {t.target for t in JOB_TRANSITIONS.values()} | {s for t in JOB_TRANSITIONS.values() for s in t.sources}
    assert job_states | set(TOMBSTONES) == set(JobStatus)
    slot_states = {t.target for t in SLOT_TRANSITIONS.values()} | {
        s for t in SLOT_TRANSITIONS.values() for s in t.sources
    }
    assert slot_states == set(SlotStatus)
    assert all(
        not t.sources or t.target not in (JobStatus.DELETED, JobStatus.EXPIRED) for t in JOB_TRANSITIONS.values()
    )


def test_terminal_slots_and_finished_jobs_have_no_way_out() -> None:
    for t in SLOT_TRANSITIONS.values():
        assert not any(s.is_terminal for s in t.sources), t
    for t in JOB_TRANSITIONS.values():
        if t.name == "more_like_this":  # a delivered job generates a few more, then ends as it was delivered
            assert set(t.sources) == {JobStatus.READY, JobStatus.PARTIAL}, t
            continue
        assert not any(JobStatus(s).is_finished for s in t.sources), t


def test_only_the_lifecycle_writes_a_status() -> None:
    offenders = []
    for path in [*(ROOT / "shared/portrait_studio").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]:
        if path.name == "lifecycle.py" or "adapters" in path.parts or path.name == "ports.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            receiver = node.func.value
            if not (isinstance(receiver, ast.Attribute) and receiver.attr == "store"):
                continue  # only calls on a JobStore (`self.store.…`, `c.store.…`)
            name = node.func.attr
            writes_status = any(k.arg == "status" for k in node.keywords) and name in ("update_job", "update_slot")
            if writes_status or name in STATUS_WRITERS:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert offenders == []


def test_the_readme_shows_the_lifecycle_the_code_has() -> None:
    assert state_diagram() in (ROOT / "docs" / "architecture.md").read_text(), "docs/architecture.md's diagram is stale"

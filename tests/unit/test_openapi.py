"""The committed openapi.json is what the resolver generates: the contract cannot drift silently."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.openapi import generate

ROOT = Path(__file__).resolve().parents[2]


def test_committed_openapi_matches_the_code() -> None:
    committed = (ROOT / "openapi.json").read_text()
    assert committed == generate(), "openapi.json is stale: run `make openapi` and commit it"


def test_every_route_of_the_template_is_documented() -> None:
    paths = json.loads((ROOT / "openapi.json").read_text())["paths"]
    assert set(paths) >= {
        "/jobs",
        "/jobs/{job_id}",
        "/jobs/{job_id}/files",
        "/jobs/{job_id}/submit",
        "/jobs/{job_id}/archive",
    }
    assert set(paths["/jobs/{job_id}"]) == {"get", "delete"}

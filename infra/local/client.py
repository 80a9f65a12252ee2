"""A small HTTP client of the Portrait Studio API, and a way to run the local stack as a process.

The demo, the end-to-end tests and the pipeline benchmark use it: they talk to the stack over HTTP
only, like a real client (the browser or a mobile app).
"""

from __future__ import annotations

import json
import mimetypes
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from infra.local.template import ROOT

# Between looks at a job: each look is an API invocation, a query and a presigned URL per result, about as much
# CPU on the stack as a collected headshot when the job is done (the page looks every 2 s). Looking every 0.25 s
# cost a whole job about 10 % more CPU, which `make test` pays dozens of times.
WAIT_POLL_S = 1.0
CONTENT_TYPES = {".heic": "image/heic", ".heif": "image/heif", ".avif": "image/avif", ".webp": "image/webp"}


def content_type_of(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


@dataclass
class Job:
    job_id: str
    token: str
    uploads: list[dict[str, Any]]
    created: dict[str, Any] = field(default_factory=dict)


class PortraitClient:
    def __init__(self, api_url: str, timeout_s: float = 30.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.http = httpx.Client(base_url=self.api_url, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def create_job(self, files: list[Path], **options: Any) -> Job:
        body = {
            "files": [{"name": p.name, "content_type": content_type_of(p), "bytes": p.stat().st_size} for p in files],
            **options,
        }
        response = self.http.post("/jobs", json=body)
        response.raise_for_status()
        data = response.json()
        return Job(data["job_id"], data["token"], data["uploads"], data)

    def upload(self, ticket: Mapping[str, Any], path: Path) -> httpx.Response:
        """PUT the file straight to the bucket with the presigned URL, as a browser would."""
        return httpx.put(ticket["url"], content=path.read_bytes(), headers=dict(ticket["headers"]), timeout=60)

    def upload_all(self, job: Job, files: list[Path]) -> None:
        for ticket, path in zip(job.uploads, files, strict=True):
            response = self.upload(ticket, path)
            response.raise_for_status()

    def submit(self, job: Job) -> httpx.Response:
        return self.http.post(f"/jobs/{job.job_id}/submit", headers=self.auth(job.token))

    def pay(
        self, job: Job, promotion_code: str | None = None, email: str = "buyer@example.com", timeout_s: float = 120.0
    ) -> dict[str, Any]:
        """Wait until the photos are accepted, then pay on the checkout page as a person would (the local Stripe
        emulator's form: email, promotion code, Pay). Returns the job as it was when checkout opened; a job sent
        back for more photos is returned as is, unpaid."""
        deadline = time.monotonic() + timeout_s
        view = self.wait_for(job, ("awaiting_payment", "collecting", "failed"), timeout_s)
        while view["status"] == "awaiting_payment" and not view.get("checkout_url"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no checkout opened for {job.job_id}")
            time.sleep(0.25)  # Stripe was unreachable: the reconciler opens it
            response = self.get(job)
            if response.status_code != 200:
                raise RuntimeError(f"GET {job.job_id}: {response.status_code} {response.text[:500]}")
            view = response.json()
        if view["status"] != "awaiting_payment":
            return view
        form = {"email": email, "action": "pay"}
        if promotion_code:
            form["promotion_code"] = promotion_code
        paid = httpx.post(view["checkout_url"], data=form, follow_redirects=False, timeout=30)
        if paid.status_code != 303:
            raise RuntimeError(f"checkout refused the payment: {paid.status_code} {paid.text[:300]}")
        return view

    def submit_and_pay(self, job: Job, **payment: Any) -> dict[str, Any]:
        self.submit(job).raise_for_status()
        return self.pay(job, **payment)

    def get(self, job: Job) -> httpx.Response:
        return self.http.get(f"/jobs/{job.job_id}", headers=self.auth(job.token))

    def delete(self, job: Job) -> httpx.Response:
        return self.http.delete(f"/jobs/{job.job_id}", headers=self.auth(job.token))

    def archive(self, job: Job) -> httpx.Response:
        return self.http.get(f"/jobs/{job.job_id}/archive", headers=self.auth(job.token))

    def wait_for(self, job: Job, statuses: tuple[str, ...], timeout_s: float = 300.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = self.get(job)
            response.raise_for_status()
            view = response.json()
            if view["status"] in statuses:
                return view
            time.sleep(WAIT_POLL_S)
        raise TimeoutError(f"job still {view.get('status')} after {timeout_s:.0f}s: {json.dumps(_summary(view))}")

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        response = self.http.post("/_local/clock", json={"advance_seconds": seconds}, timeout=300)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


class IamDenials(AssertionError):
    """A function was refused an AWS call its code makes: deployed, that call would fail the same way."""


@contextmanager
def running_stack(
    state_dir: Path,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    timeout_s: float = 90.0,
    template: Path | None = None,
    allow_denials: bool = False,
) -> Iterator[dict[str, Any]]:
    """Start `python -m infra.local.stack` on free ports; yield its stack.json; stop it on exit.

    On a clean exit, every IAM denial the stack recorded fails the caller (`IamDenials`) unless `allow_denials`:
    a test, demo or benchmark that passes only because nothing checked a role proves nothing."""
    state_dir.mkdir(parents=True, exist_ok=True)
    state_file = state_dir / "stack.json"
    state_file.unlink(missing_ok=True)
    log_file = (log_path or state_dir / "stack.log").open("wb")
    environment = {**os.environ, "PYTHONPATH": f"{ROOT / 'shared'}{os.pathsep}{ROOT}", **(env or {})}
    command = [sys.executable, "-m", "infra.local.stack", "--port", "0", "--state-dir", str(state_dir)]
    process = subprocess.Popen(
        command + (["--template", str(template)] if template else []),
        cwd=ROOT,
        env=environment,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while not state_file.exists():
            if process.poll() is not None:
                raise RuntimeError(f"the local stack exited with {process.returncode}; see {log_file.name}")
            if time.monotonic() > deadline:
                raise TimeoutError("the local stack did not start in time")
            time.sleep(0.1)
        info = json.loads(state_file.read_text())
        yield info
        if not allow_denials:
            denied = httpx.get(f"{info['api_url']}/_local/iam", timeout=30).json()["denied"]
            if denied:
                raise IamDenials(f"{len(denied)} AWS call(s) refused by IAM: {json.dumps(denied[:10])}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


def _summary(view: dict[str, Any]) -> dict[str, Any]:
    """A job view for a failure message: every field but the links (long, and signed), each photo and style in
    one short line, so why a job is stuck is readable whole."""
    summary = {k: v for k, v in view.items() if k not in ("files", "styles") and not k.endswith("_url")}
    summary["files"] = [f"{f.get('name')}: {f.get('status')} ({f.get('code')})" for f in view.get("files", [])]
    summary["styles"] = [f"{s.get('style')}: {s.get('done')}" for s in view.get("styles", [])]
    return summary

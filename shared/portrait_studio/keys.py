"""The storage layout: one prefix per job, so deleting a job is deleting a prefix."""

from __future__ import annotations

import re

_ID = re.compile(r"^[0-9a-f]{16,32}$")


def is_valid_id(value: str) -> bool:
    return bool(_ID.match(value))


def job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/"


def upload(job_id: str, file_id: str) -> str:
    return f"jobs/{job_id}/uploads/{file_id}"


def reference(job_id: str, file_id: str) -> str:
    return f"jobs/{job_id}/refs/{file_id}.jpg"


def results_prefix(job_id: str, style: str | None = None) -> str:
    return f"jobs/{job_id}/results/" if style is None else f"jobs/{job_id}/results/{style}/"


def result(job_id: str, style: str, n: int) -> str:
    return f"jobs/{job_id}/results/{style}/{n}.png"


def crop(job_id: str, style: str, n: int) -> str:
    """A result's LinkedIn-ready square (services/crops.py)."""
    return f"jobs/{job_id}/linkedin/{style}/{n}.jpg"


def archive(job_id: str, images: int) -> str:
    """The zip of a job's `images` headshots: a round of More like this makes a new one, never a stale one."""
    return f"jobs/{job_id}/archive-{images}.zip"


def archive_member(key: str, rank: int, likeness: int) -> str:
    """`jobs/{id}/results/corporate/3.png`, ranked 1st by likeness 91 → `corporate/01-likeness-91.png` in the zip:
    sorted by name, the closest likeness comes first."""
    style = key.rsplit("/", 2)[-2]
    return f"{style}/{rank:02d}-likeness-{likeness}.png"


def archive_crop_member(key: str, rank: int, likeness: int) -> str:
    """A result's crop in the zip: `linkedin/corporate/01-likeness-91.jpg`, beside its headshot's name."""
    return "linkedin/" + archive_member(key, rank, likeness).removesuffix(".png") + ".jpg"


def job_id_from_key(key: str) -> str | None:
    parts = key.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "jobs" else None

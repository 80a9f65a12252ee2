"""The job store's records as DynamoDB items (single-table layout from DESIGN.md): keys, the attributes the
indexes and TTL read, and model values turned into what DynamoDB stores.

Under `JOB#<job_id>`: `META` (the job, later its tombstone), `FILE#<file_id>` (an upload), `PRED#<slot>` (a
prediction slot). Rate limits and paced lines have items of their own (`RATE#…`, `LINE#…`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from portrait_studio.clock import hour_key
from portrait_studio.models import Job, JobStatus, Prediction, Tombstone, UploadFile

__all__ = [
    "ACTIVE",
    "AFTERCARE",
    "META",
    "PURGING",
    "TTL_MARGIN",
    "attribute_value",
    "epoch",
    "file_item",
    "job_item",
    "job_pk",
    "records_ttl",
    "slot_item",
    "to_item",
    "tombstone_item",
    "verdict_of",
    "with_claim_epoch",
]

META = "META"
# Jobs with work owed carry `active_status` (a sparse index the reconciler queries): these statuses, and
# AFTERCARE for a finished job whose refund or email is still to do, PURGING for one being deleted (a record
# still, not a tombstone yet).
ACTIVE = (JobStatus.NORMALIZING, JobStatus.AWAITING_PAYMENT, JobStatus.GENERATING)
AFTERCARE = "aftercare"
PURGING = "purging"
# The TTL is only the last backstop behind the sweep: DynamoDB deletes expired items up to days late.
TTL_MARGIN = timedelta(hours=1)


def job_pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def records_ttl(job: Job) -> int:
    """The TTL of the job's records (its item, files and slots)."""
    return epoch(job.expires_at + TTL_MARGIN)


def to_item(data: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe values with Decimals for numbers, and no None (absent attributes instead)."""
    clean = {k: v for k, v in data.items() if v is not None}
    result: dict[str, Any] = json.loads(json.dumps(clean, default=str), parse_float=Decimal)
    return result


def attribute_value(value: Any) -> Any:
    """One field's value as DynamoDB stores it (models as maps, datetimes as ISO strings, floats as Decimals)."""
    if hasattr(value, "model_dump"):
        return to_item(value.model_dump(mode="json"))
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, list | tuple):
        return [attribute_value(v) for v in value]
    return value


def job_item(job: Job) -> dict[str, Any]:
    """The job's attributes, with the ones the indexes read (`expiry_hour`, `active_status`); no key, no TTL."""
    item = to_item(job.model_dump(mode="json"))
    item["kind"] = "job"
    item["expiry_hour"] = hour_key(job.expires_at)
    if job.status in ACTIVE:
        item["active_status"] = job.status.value
    return item


def file_item(job_id: str, file: UploadFile, ttl: int) -> dict[str, Any]:
    return to_item(file.model_dump(mode="json")) | {
        "pk": job_pk(job_id),
        "sk": f"FILE#{file.file_id}",
        "kind": "file",
        "ttl": ttl,
    }


def verdict_of(file: UploadFile) -> dict[str, Any]:
    """The attributes a file's check writes: its status, verdict and quality."""
    return to_item(file.model_dump(mode="json", include={"status", "verdict", "quality"}))


def slot_item(prediction: Prediction, ttl: int) -> dict[str, Any]:
    item = to_item(prediction.model_dump(mode="json")) | {
        "pk": job_pk(prediction.job_id),
        "sk": f"PRED#{prediction.slot}",
        "kind": "prediction",
        "ttl": ttl,
    }
    if prediction.claimed_at:
        item["claimed_epoch"] = epoch(prediction.claimed_at)
    return item


def with_claim_epoch(fields: dict[str, Any]) -> dict[str, Any]:
    """`claimed_epoch` (a number, for the stale-claim condition) follows `claimed_at`."""
    if "claimed_at" in fields:
        claimed_at = fields["claimed_at"]
        fields = {**fields, "claimed_epoch": None if claimed_at is None else epoch(claimed_at)}
    return fields


def tombstone_item(tombstone: Tombstone, expires_at: datetime) -> dict[str, Any]:
    return to_item(tombstone.model_dump(mode="json")) | {
        "pk": job_pk(tombstone.job_id),
        "sk": META,
        "kind": "tombstone",
        "ttl": epoch(expires_at),
    }

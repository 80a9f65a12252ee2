"""The job store's reads: a job and its files and slots (strongly consistent), the index queries the
reconciler and the retention sweep run, and the scans that count jobs for the retention report."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from portrait_studio.adapters.dynamo_items import AFTERCARE, META, PURGING, job_pk
from portrait_studio.adapters.dynamo_table import DynamoTable
from portrait_studio.models import Job, JobStatus, Prediction, Tombstone, UploadFile

__all__ = ["DynamoJobReads"]


class DynamoJobReads(DynamoTable):
    def get_job(self, job_id: str) -> Job | Tombstone | None:
        item = self.table.get_item(Key={"pk": job_pk(job_id), "sk": META}, ConsistentRead=True).get("Item")
        if not item:
            return None
        if item.get("kind") == "tombstone":
            return Tombstone.model_validate(item)
        return Job.model_validate(item)

    def list_files(self, job_id: str) -> list[UploadFile]:
        return [UploadFile.model_validate(item) for item in self._query_prefix(job_id, "FILE#")]

    def get_slot(self, job_id: str, slot: str) -> Prediction | None:
        item = self.table.get_item(Key={"pk": job_pk(job_id), "sk": f"PRED#{slot}"}, ConsistentRead=True).get("Item")
        return Prediction.model_validate(item) if item else None

    def list_slots(self, job_id: str) -> list[Prediction]:
        return [Prediction.model_validate(item) for item in self._query_prefix(job_id, "PRED#")]

    def items_of(self, job_id: str) -> list[dict[str, Any]]:
        """Every item stored under the job (tests and the retention report use it)."""
        return list(self._query_all(job_pk(job_id)))

    # --- the indexes: jobs with work owed, jobs by expiry hour -------------------------------------
    def jobs_expiring_in_hour(self, hour: str) -> list[str]:
        return self._query_index("by_expiry_hour", "expiry_hour", hour)

    def jobs_generating(self) -> list[str]:
        return self._query_index("by_active_status", "active_status", JobStatus.GENERATING.value)

    def jobs_normalizing(self) -> list[str]:
        return self._query_index("by_active_status", "active_status", JobStatus.NORMALIZING.value)

    def jobs_awaiting_payment(self) -> list[str]:
        return self._query_index("by_active_status", "active_status", JobStatus.AWAITING_PAYMENT.value)

    def jobs_in_aftercare(self) -> list[str]:
        return self._query_index("by_active_status", "active_status", AFTERCARE)

    def jobs_purging(self) -> list[str]:
        return self._query_index("by_active_status", "active_status", PURGING)

    # --- scans, counting only ----------------------------------------------------------------------
    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        kwargs: dict[str, Any] = {
            "FilterExpression": "sk = :meta",
            "ProjectionExpression": "#status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":meta": META},
        }
        while True:
            page = self.table.scan(**kwargs)
            for item in page.get("Items", []):
                counts[str(item.get("status"))] = counts.get(str(item.get("status")), 0) + 1
            if "LastEvaluatedKey" not in page:
                return counts
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def jobs_holding_email(self) -> int:
        """How many jobs keep a buyer's email address (only until their outcome's email): counted, never read."""
        kwargs: dict[str, Any] = {
            "FilterExpression": "sk = :meta AND attribute_exists(email)",
            "ExpressionAttributeValues": {":meta": META},
            "Select": "COUNT",
        }
        held = 0
        while True:
            page = self.table.scan(**kwargs)
            held += int(page.get("Count", 0))
            if "LastEvaluatedKey" not in page:
                return held
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- helpers -----------------------------------------------------------------------------------
    def _query_index(self, index: str, attribute: str, value: str) -> list[str]:
        ids: list[str] = []
        kwargs: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": "#a = :v",
            "ExpressionAttributeNames": {"#a": attribute},
            "ExpressionAttributeValues": {":v": value},
        }
        while True:
            page = self.table.query(**kwargs)
            ids += [str(item["job_id"]) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return ids
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _query_prefix(self, job_id: str, prefix: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": job_pk(job_id), ":prefix": prefix},
            "ConsistentRead": True,
        }
        yield from self._paginate(kwargs)

    def _query_all(self, pk: str, projection: bool = False) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": pk},
            "ConsistentRead": True,
        }
        if projection:
            kwargs["ProjectionExpression"] = "pk, sk"
        yield from self._paginate(kwargs)

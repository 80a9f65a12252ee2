"""The job store's writes to a job's own item and to its uploaded files.

Which status a job moves to is the lifecycle's decision (`services/lifecycle.py`); these store it, on the
condition that the job is still in a status the caller expects, so a racing writer's change is not overwritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from portrait_studio.adapters.dynamo_expressions import conditional_update, status_check, status_in
from portrait_studio.adapters.dynamo_items import (
    ACTIVE,
    AFTERCARE,
    META,
    PURGING,
    attribute_value,
    file_item,
    job_item,
    job_pk,
    records_ttl,
    tombstone_item,
    verdict_of,
)
from portrait_studio.adapters.dynamo_job_reads import DynamoJobReads
from portrait_studio.models import Job, JobStatus, Tombstone, UploadFile

__all__ = ["DynamoFileWrites", "DynamoJobWrites"]


class DynamoJobWrites(DynamoJobReads):
    """The job item: created with its files, updated, replaced by its tombstone."""

    def create_job(self, job: Job, files: Sequence[UploadFile]) -> None:
        ttl = records_ttl(job)
        meta = job_item(job) | {"pk": job_pk(job.job_id), "sk": META, "ttl": ttl}
        actions: list[dict[str, Any]] = [
            {"Put": {"TableName": self._table_name, "Item": meta, "ConditionExpression": "attribute_not_exists(pk)"}}
        ]
        actions += [{"Put": {"TableName": self._table_name, "Item": file_item(job.job_id, f, ttl)}} for f in files]
        self._transact(actions)

    def update_job(
        self,
        job_id: str,
        expect: Iterable[str] | None = None,
        expect_fields: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> bool:
        if "status" in fields:
            status = JobStatus(fields["status"])
            aftercare = bool(fields.get("aftercare_due"))
            fields["active_status"] = status.value if status in ACTIVE else (AFTERCARE if aftercare else None)
            if status.is_tombstone:
                fields["active_status"] = PURGING
        elif "aftercare_due" in fields:
            fields["active_status"] = AFTERCARE if fields["aftercare_due"] else None
        fields.setdefault("updated_at", self._clock.now())
        condition = ["attribute_exists(pk)", "kind = :job"]
        values: dict[str, Any] = {":job": "job"}
        names: dict[str, str] = {}
        if expect is not None:
            condition.append(status_in(expect, names, values))
        for i, (name, value) in enumerate((expect_fields or {}).items()):
            names[f"#c{i}"] = name
            if value is None:  # None is stored as an absent attribute
                condition.append(f"attribute_not_exists(#c{i})")
                continue
            values[f":c{i}"] = attribute_value(value)
            condition.append(f"#c{i} = :c{i}")
        return self._update(job_pk(job_id), META, fields, condition, names, values)

    def delete_job(self, tombstone: Tombstone, tombstone_expires_at: datetime) -> None:
        pk = job_pk(tombstone.job_id)
        keys = [{"pk": item["pk"], "sk": item["sk"]} for item in self._query_all(pk, projection=True)]
        with self.table.batch_writer() as batch:
            for key in keys:
                if key["sk"] != META:
                    batch.delete_item(Key=key)
        self.table.put_item(Item=tombstone_item(tombstone, tombstone_expires_at))

    def update_tombstone(self, job_id: str, **fields: Any) -> bool:
        names: dict[str, str] = {}
        values: dict[str, Any] = {":tombstone": "tombstone"}
        condition = ["attribute_exists(pk)", "kind = :tombstone"]
        return self._update(job_pk(job_id), META, fields, condition, names, values)

    def _job_update(self, job_id: str, expect: Iterable[str], fields: Mapping[str, Any]) -> dict[str, Any]:
        """A transaction's conditional update of the job item; a status change maintains `active_status`."""
        fields = dict(fields)
        if "status" in fields:
            status = JobStatus(fields["status"])
            fields["active_status"] = status.value if status in ACTIVE else None
        fields.setdefault("updated_at", self._clock.now())
        return conditional_update(
            self._table_name, job_pk(job_id), META, expect, fields, extra_condition="kind = :job", job=True
        )


class DynamoFileWrites(DynamoJobWrites):
    """A job's uploads: added under the job's cap, removed, queued for their check, their verdicts stored."""

    def add_files(self, job_id: str, files: Sequence[UploadFile], max_uploads: int) -> bool:
        job = self.get_job(job_id)
        if not isinstance(job, Job):
            return False
        ttl = records_ttl(job)
        # The count and its cap in the job item's own update: two racing adds cannot both pass it.
        granted = {
            "Update": {
                "TableName": self._table_name,
                "Key": {"pk": job_pk(job_id), "sk": META},
                "UpdateExpression": "ADD uploads_granted :n",
                "ConditionExpression": "#status = :collecting AND "
                "(attribute_not_exists(uploads_granted) OR uploads_granted <= :room)",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {
                    ":collecting": JobStatus.COLLECTING.value,
                    ":n": len(files),
                    ":room": max_uploads - len(files),
                },
            }
        }
        actions: list[dict[str, Any]] = [granted]
        actions += [{"Put": {"TableName": self._table_name, "Item": file_item(job_id, f, ttl)}} for f in files]
        return self._transact(actions, conditional=True)

    def remove_file(self, job_id: str, file_id: str) -> bool:
        actions: list[dict[str, Any]] = [
            status_check(self._table_name, job_id, JobStatus.COLLECTING),
            {
                "Delete": {
                    "TableName": self._table_name,
                    "Key": {"pk": job_pk(job_id), "sk": f"FILE#{file_id}"},
                    # Not while it is being checked (queued): its verdict would count for a file that is gone.
                    "ConditionExpression": "#status <> :queued",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {":queued": "queued"},
                }
            },
        ]
        return self._transact(actions, conditional=True)

    def queue_files(
        self,
        job_id: str,
        file_ids: Sequence[str],
        round: int,
        now: datetime,
        expect: Iterable[str],
        status: str,
        max_rounds: int | None = None,
    ) -> bool:
        job = self._job_update(job_id, expect, {"status": status, "pending_files": len(file_ids), "round": round})
        if max_rounds is not None:  # the stored round, not the one read before: a racing submit cannot pass it
            update = job["Update"]
            update["ConditionExpression"] += " AND #round < :max_rounds"
            update["ExpressionAttributeNames"]["#round"] = "round"
            update["ExpressionAttributeValues"][":max_rounds"] = max_rounds
        actions: list[dict[str, Any]] = [job]
        for file_id in file_ids:
            actions.append(
                {
                    "Update": {
                        "TableName": self._table_name,
                        "Key": {"pk": job_pk(job_id), "sk": f"FILE#{file_id}"},
                        "UpdateExpression": "SET #status = :queued",
                        "ConditionExpression": "#status = :awaiting",
                        "ExpressionAttributeNames": {"#status": "status"},
                        "ExpressionAttributeValues": {":queued": "queued", ":awaiting": "awaiting_upload"},
                    }
                }
            )
        return self._transact(actions, conditional=True)

    def move_with_files(
        self, job_id: str, files: Sequence[UploadFile], expect: Iterable[str], round: int | None = None, **fields: Any
    ) -> bool:
        job = self._job_update(job_id, expect, fields)
        if round is not None:  # a decision about a round that is over (the person submitted again) writes nothing
            update = job["Update"]
            update["ConditionExpression"] += " AND #round = :decided_round"
            update["ExpressionAttributeNames"]["#round"] = "round"
            update["ExpressionAttributeValues"][":decided_round"] = round
        actions = [job]
        for file in files:
            data = verdict_of(file)
            names = {f"#v{i}": name for i, name in enumerate(data)} | {"#status": "status"}
            values = {f":v{i}": value for i, value in enumerate(data.values())} | {":accepted": "accepted"}
            actions.append(
                {
                    "Update": {
                        "TableName": self._table_name,
                        "Key": {"pk": job_pk(job_id), "sk": f"FILE#{file.file_id}"},
                        "UpdateExpression": "SET " + ", ".join(f"#v{i} = :v{i}" for i in range(len(data))),
                        "ConditionExpression": "#status = :accepted",
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        return self._transact(actions, conditional=True)

    def record_verdict(self, job_id: str, file: UploadFile) -> int | None:
        data = verdict_of(file)
        names = {"#status": "status"}
        values: dict[str, Any] = {":queued": "queued", ":minus": -1}
        sets = []
        for i, (name, value) in enumerate(data.items()):
            names[f"#v{i}"] = name
            values[f":v{i}"] = value
            sets.append(f"#v{i} = :v{i}")
        actions = [
            {
                "Update": {
                    "TableName": self._table_name,
                    "Key": {"pk": job_pk(job_id), "sk": f"FILE#{file.file_id}"},
                    "UpdateExpression": "SET " + ", ".join(sets),
                    "ConditionExpression": "#status = :queued",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": {k: v for k, v in values.items() if k != ":minus"},
                }
            },
            {
                "Update": {
                    "TableName": self._table_name,
                    "Key": {"pk": job_pk(job_id), "sk": META},
                    "UpdateExpression": "ADD pending_files :minus",
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeValues": {":minus": -1},
                }
            },
        ]
        if not self._transact(actions, conditional=True):
            return None
        job = self.get_job(job_id)
        return job.pending_files if isinstance(job, Job) else None

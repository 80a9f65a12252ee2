"""JobStore on one DynamoDB table (single-table layout from DESIGN.md)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from portrait_studio.clock import hour_key
from portrait_studio.models import Job, JobStatus, Prediction, Tombstone, UploadFile
from portrait_studio.ports import Clock

META = "META"
# Jobs with work owed carry `active_status` (a sparse index the reconciler queries): these statuses, and
# AFTERCARE for a finished job whose refund or email is still to do, PURGING for one being deleted (a record
# still, not a tombstone yet).
ACTIVE = (JobStatus.NORMALIZING, JobStatus.AWAITING_PAYMENT, JobStatus.GENERATING)
AFTERCARE = "aftercare"
PURGING = "purging"
# The TTL is only the last backstop behind the sweep: DynamoDB deletes expired items up to days late.
TTL_MARGIN = timedelta(hours=1)
MAX_TURN_ATTEMPTS = 20


def _pk(job_id: str) -> str:
    return f"JOB#{job_id}"


def _to_item(data: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe values with Decimals for numbers, and no None (absent attributes instead)."""
    clean = {k: v for k, v in data.items() if v is not None}
    result: dict[str, Any] = json.loads(json.dumps(clean, default=str), parse_float=Decimal)
    return result


def _value(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return _to_item(value.model_dump(mode="json"))
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, list | tuple):
        return [_value(v) for v in value]
    return value


def _status_in(expect: Iterable[str], names: dict[str, str], values: dict[str, Any]) -> str:
    """The condition `status IN (...)`, its names and values added to the expression's maps."""
    options = []
    for i, expected in enumerate(expect):
        values[f":e{i}"] = str(expected)
        options.append(f":e{i}")
    names["#status"] = "status"
    return f"#status IN ({', '.join(options)})"


def _update_expression(fields: Mapping[str, Any], names: dict[str, str], values: dict[str, Any]) -> str:
    """SET for values, REMOVE for None; names and values added to the expression's maps."""
    sets, removes = [], []
    for i, (name, value) in enumerate(fields.items()):
        names[f"#f{i}"] = name
        if value is None:
            removes.append(f"#f{i}")
        else:
            values[f":f{i}"] = _value(value)
            sets.append(f"#f{i} = :f{i}")
    expression = ""
    if sets:
        expression += "SET " + ", ".join(sets)
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    return expression.strip()


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


class DynamoJobStore:
    def __init__(self, table_name: str, resource_factory: Any, clock: Clock) -> None:
        self._table_name = table_name
        self._resource_factory = resource_factory
        self._clock = clock
        self._table: Any = None

    @property
    def table(self) -> Any:
        if self._table is None:
            self._table = self._resource_factory().Table(self._table_name)
        return self._table

    @property
    def _client(self) -> Any:
        return self.table.meta.client

    # --- jobs --------------------------------------------------------------------------------------
    def create_job(self, job: Job, files: Sequence[UploadFile]) -> None:
        ttl = _epoch(job.expires_at + TTL_MARGIN)
        meta = self._job_item(job) | {"pk": _pk(job.job_id), "sk": META, "ttl": ttl}
        actions: list[dict[str, Any]] = [
            {"Put": {"TableName": self._table_name, "Item": meta, "ConditionExpression": "attribute_not_exists(pk)"}}
        ]
        actions += [
            {"Put": {"TableName": self._table_name, "Item": self._file_item(job.job_id, f, ttl)}} for f in files
        ]
        self._transact(actions)

    def _job_item(self, job: Job) -> dict[str, Any]:
        item = _to_item(job.model_dump(mode="json"))
        item["kind"] = "job"
        item["expiry_hour"] = hour_key(job.expires_at)
        if job.status in ACTIVE:
            item["active_status"] = job.status.value
        return item

    def _file_item(self, job_id: str, file: UploadFile, ttl: int) -> dict[str, Any]:
        return _to_item(file.model_dump(mode="json")) | {
            "pk": _pk(job_id),
            "sk": f"FILE#{file.file_id}",
            "kind": "file",
            "ttl": ttl,
        }

    def get_job(self, job_id: str) -> Job | Tombstone | None:
        item = self.table.get_item(Key={"pk": _pk(job_id), "sk": META}, ConsistentRead=True).get("Item")
        if not item:
            return None
        if item.get("kind") == "tombstone":
            return Tombstone.model_validate(item)
        return Job.model_validate(item)

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
            condition.append(_status_in(expect, names, values))
        for i, (name, value) in enumerate((expect_fields or {}).items()):
            names[f"#c{i}"] = name
            if value is None:  # None is stored as an absent attribute
                condition.append(f"attribute_not_exists(#c{i})")
                continue
            values[f":c{i}"] = _value(value)
            condition.append(f"#c{i} = :c{i}")
        return self._update(_pk(job_id), META, fields, condition, names, values)

    def _update(
        self,
        pk: str,
        sk: str,
        fields: Mapping[str, Any],
        condition: list[str],
        names: dict[str, str],
        values: dict[str, Any],
    ) -> bool:
        kwargs: dict[str, Any] = {
            "Key": {"pk": pk, "sk": sk},
            "UpdateExpression": _update_expression(fields, names, values),
            "ConditionExpression": " AND ".join(condition),
            "ExpressionAttributeNames": names,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self.table.update_item(**kwargs)
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _job_is(self, job_id: str, status: JobStatus) -> dict[str, Any]:
        """A transaction's check that the job is (still) in a status."""
        return {
            "ConditionCheck": {
                "TableName": self._table_name,
                "Key": {"pk": _pk(job_id), "sk": META},
                "ConditionExpression": "#status = :status",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":status": status.value},
            }
        }

    def add_files(self, job_id: str, files: Sequence[UploadFile], max_uploads: int) -> bool:
        job = self.get_job(job_id)
        if not isinstance(job, Job):
            return False
        ttl = _epoch(job.expires_at + TTL_MARGIN)
        # The count and its cap in the job item's own update: two racing adds cannot both pass it.
        granted = {
            "Update": {
                "TableName": self._table_name,
                "Key": {"pk": _pk(job_id), "sk": META},
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
        actions += [{"Put": {"TableName": self._table_name, "Item": self._file_item(job_id, f, ttl)}} for f in files]
        return self._transact(actions, conditional=True)

    def list_files(self, job_id: str) -> list[UploadFile]:
        return [UploadFile.model_validate(item) for item in self._query_prefix(job_id, "FILE#")]

    def remove_file(self, job_id: str, file_id: str) -> bool:
        actions: list[dict[str, Any]] = [
            self._job_is(job_id, JobStatus.COLLECTING),
            {
                "Delete": {
                    "TableName": self._table_name,
                    "Key": {"pk": _pk(job_id), "sk": f"FILE#{file_id}"},
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
                        "Key": {"pk": _pk(job_id), "sk": f"FILE#{file_id}"},
                        "UpdateExpression": "SET #status = :queued",
                        "ConditionExpression": "#status = :awaiting",
                        "ExpressionAttributeNames": {"#status": "status"},
                        "ExpressionAttributeValues": {":queued": "queued", ":awaiting": "awaiting_upload"},
                    }
                }
            )
        return self._transact(actions, conditional=True)

    def move_with_files(self, job_id: str, files: Sequence[UploadFile], expect: Iterable[str], **fields: Any) -> bool:
        actions = [self._job_update(job_id, expect, fields)]
        for file in files:
            data = _to_item(file.model_dump(mode="json", include={"status", "verdict", "quality"}))
            names = {f"#v{i}": name for i, name in enumerate(data)} | {"#status": "status"}
            values = {f":v{i}": value for i, value in enumerate(data.values())} | {":accepted": "accepted"}
            actions.append(
                {
                    "Update": {
                        "TableName": self._table_name,
                        "Key": {"pk": _pk(job_id), "sk": f"FILE#{file.file_id}"},
                        "UpdateExpression": "SET " + ", ".join(f"#v{i} = :v{i}" for i in range(len(data))),
                        "ConditionExpression": "#status = :accepted",
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        return self._transact(actions, conditional=True)

    def record_verdict(self, job_id: str, file: UploadFile) -> int | None:
        data = _to_item(file.model_dump(mode="json", include={"status", "verdict", "quality"}))
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
                    "Key": {"pk": _pk(job_id), "sk": f"FILE#{file.file_id}"},
                    "UpdateExpression": "SET " + ", ".join(sets),
                    "ConditionExpression": "#status = :queued",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": {k: v for k, v in values.items() if k != ":minus"},
                }
            },
            {
                "Update": {
                    "TableName": self._table_name,
                    "Key": {"pk": _pk(job_id), "sk": META},
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

    # --- predictions -------------------------------------------------------------------------------
    def _slot_item(self, prediction: Prediction, ttl: int) -> dict[str, Any]:
        item = _to_item(prediction.model_dump(mode="json")) | {
            "pk": _pk(prediction.job_id),
            "sk": f"PRED#{prediction.slot}",
            "kind": "prediction",
            "ttl": ttl,
        }
        if prediction.claimed_at:
            item["claimed_epoch"] = _epoch(prediction.claimed_at)
        return item

    def _put_new_slots(self, job: Job, slots: Sequence[Prediction]) -> list[dict[str, Any]]:
        ttl = _epoch(job.expires_at + TTL_MARGIN)
        return [
            {
                "Put": {
                    "TableName": self._table_name,
                    "Item": self._slot_item(slot, ttl),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for slot in slots
        ]

    def start_generation(
        self, job_id: str, slots: Sequence[Prediction], expect: Iterable[str], status: str, **fields: Any
    ) -> bool:
        job = self.get_job(job_id)
        if not isinstance(job, Job):
            return False
        actions = [self._job_update(job_id, expect, {"status": status, **fields})]
        return self._transact(actions + self._put_new_slots(job, slots), conditional=True)

    def add_slots(self, job_id: str, slots: Sequence[Prediction], expect_topups_used: int, job_status: str) -> bool:
        job = self.get_job(job_id)
        if not isinstance(job, Job):
            return False
        update = self._job_update(job_id, [job_status], {"topups_used": expect_topups_used + len(slots)})
        update["Update"]["ConditionExpression"] += " AND topups_used = :used"
        update["Update"]["ExpressionAttributeValues"][":used"] = expect_topups_used
        return self._transact([update, *self._put_new_slots(job, slots)], conditional=True)

    def start_round(
        self,
        job_id: str,
        slots: Sequence[Prediction],
        expect: Iterable[str],
        expect_rounds: int,
        status: str,
        **fields: Any,
    ) -> bool:
        job = self.get_job(job_id)
        if not isinstance(job, Job):
            return False
        update = self._job_update(job_id, expect, {"status": status, **fields})
        # Racing requests: the count of rounds is checked in the same write that moves it on.
        rounds = (
            "more_rounds = :rounds" if expect_rounds else "(attribute_not_exists(more_rounds) OR more_rounds = :rounds)"
        )
        update["Update"]["ConditionExpression"] += f" AND {rounds}"
        update["Update"]["ExpressionAttributeValues"][":rounds"] = expect_rounds
        return self._transact([update, *self._put_new_slots(job, slots)], conditional=True)

    def claim_slot(
        self,
        job_id: str,
        slot: str,
        expect: Iterable[str],
        status: str,
        reserve: bool,
        stale_before: datetime | None = None,
        **fields: Any,
    ) -> bool:
        slot_update = self._slot_update(job_id, slot, expect, {"status": status, **fields})
        condition = " AND attribute_not_exists(prediction_id)"
        if stale_before is not None:
            condition += " AND claimed_epoch < :stale"
            slot_update["Update"]["ExpressionAttributeValues"][":stale"] = _epoch(stale_before)
        slot_update["Update"]["ConditionExpression"] += condition
        # With the job in the same transaction: never a claim under a deleted job, never past the budget.
        job_check: dict[str, Any] = {
            "TableName": self._table_name,
            "Key": {"pk": _pk(job_id), "sk": META},
            "ConditionExpression": "#status = :generating",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":generating": JobStatus.GENERATING.value},
        }
        if reserve:
            job_check["ConditionExpression"] += " AND predictions_reserved < prediction_budget"
            job_check["UpdateExpression"] = "ADD predictions_reserved :one"
            job_check["ExpressionAttributeValues"][":one"] = 1
            job_action = {"Update": job_check}
        else:
            job_action = {"ConditionCheck": job_check}
        return self._transact([job_action, slot_update], conditional=True)

    def release_slot(self, job_id: str, slot: str, expect: Iterable[str], status: str, **fields: Any) -> bool:
        slot_update = self._slot_update(job_id, slot, expect, {"status": status, "claimed_at": None, **fields})
        slot_update["Update"]["ConditionExpression"] += " AND attribute_not_exists(prediction_id)"
        refund = {
            "Update": {
                "TableName": self._table_name,
                "Key": {"pk": _pk(job_id), "sk": META},
                "UpdateExpression": "ADD predictions_reserved :minus",
                "ConditionExpression": "attribute_exists(pk) AND predictions_reserved > :zero",
                "ExpressionAttributeValues": {":minus": -1, ":zero": 0},
            }
        }
        return self._transact([slot_update, refund], conditional=True)

    def update_slot(self, job_id: str, slot: str, expect: Iterable[str] | None = None, **fields: Any) -> bool:
        fields = self._with_claim_epoch(fields)
        condition = ["attribute_exists(pk)"]
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        if expect is not None:
            condition.append(_status_in(expect, names, values))
        return self._update(_pk(job_id), f"PRED#{slot}", fields, condition, names, values)

    def get_slot(self, job_id: str, slot: str) -> Prediction | None:
        item = self.table.get_item(Key={"pk": _pk(job_id), "sk": f"PRED#{slot}"}, ConsistentRead=True).get("Item")
        return Prediction.model_validate(item) if item else None

    def list_slots(self, job_id: str) -> list[Prediction]:
        return [Prediction.model_validate(item) for item in self._query_prefix(job_id, "PRED#")]

    def add_collected(
        self,
        job_id: str,
        slot: str,
        images: int,
        predict_time: float | None,
        expect: Iterable[str],
        status: str,
        **fields: Any,
    ) -> bool:
        actions = [
            self._slot_update(job_id, slot, expect, {"status": status, "images_collected": images, **fields}),
            {
                "Update": {
                    "TableName": self._table_name,
                    "Key": {"pk": _pk(job_id), "sk": META},
                    "UpdateExpression": "ADD predict_seconds :t",
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeValues": {":t": Decimal(str(predict_time or 0))},
                }
            },
        ]
        return self._transact(actions, conditional=True)

    def _with_claim_epoch(self, fields: dict[str, Any]) -> dict[str, Any]:
        """`claimed_epoch` (a number, for the stale-claim condition) follows `claimed_at`."""
        if "claimed_at" in fields:
            claimed_at = fields["claimed_at"]
            fields = {**fields, "claimed_epoch": None if claimed_at is None else _epoch(claimed_at)}
        return fields

    def _job_update(self, job_id: str, expect: Iterable[str], fields: Mapping[str, Any]) -> dict[str, Any]:
        """A transaction's conditional update of the job item; a status change maintains `active_status`."""
        fields = dict(fields)
        if "status" in fields:
            status = JobStatus(fields["status"])
            fields["active_status"] = status.value if status in ACTIVE else None
        fields.setdefault("updated_at", self._clock.now())
        return self._item_update(_pk(job_id), META, expect, fields, extra_condition="kind = :job", job=True)

    def _slot_update(self, job_id: str, slot: str, expect: Iterable[str], fields: Mapping[str, Any]) -> dict[str, Any]:
        return self._item_update(_pk(job_id), f"PRED#{slot}", expect, self._with_claim_epoch(dict(fields)))

    def _item_update(
        self,
        pk: str,
        sk: str,
        expect: Iterable[str],
        fields: Mapping[str, Any],
        extra_condition: str | None = None,
        job: bool = False,
    ) -> dict[str, Any]:
        names: dict[str, str] = {}
        values: dict[str, Any] = {":job": "job"} if job else {}
        condition = ["attribute_exists(pk)", _status_in(expect, names, values)]
        if extra_condition:
            condition.append(extra_condition)
        expression = _update_expression(fields, names, values)
        update: dict[str, Any] = {
            "TableName": self._table_name,
            "Key": {"pk": pk, "sk": sk},
            "UpdateExpression": expression,
            "ConditionExpression": " AND ".join(condition),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        return {"Update": update}

    # --- webhooks, rate limits ---------------------------------------------------------------------
    def hit_rate_limit(self, key: str, window_start: datetime, limit: int, expires_at: datetime) -> bool:
        result = self.table.update_item(
            Key={"pk": f"RATE#{key}", "sk": hour_key(window_start)},
            UpdateExpression="ADD hits :one SET #ttl = :ttl, kind = :kind",
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues={":one": 1, ":ttl": _epoch(expires_at), ":kind": "rate"},
            ReturnValues="UPDATED_NEW",
        )
        return int(result["Attributes"]["hits"]) > limit

    def reserve_turn(self, key: str, now: datetime, interval_s: float, burst: int) -> datetime:
        # One item holds the line's next free turn; an optimistic conditional write takes a turn, so concurrent
        # callers (every dispatch invocation) each get their own.
        moment = now.timestamp()
        item_key = {"pk": f"LINE#{key}", "sk": "GCRA"}
        for _ in range(MAX_TURN_ATTEMPTS):
            item = self.table.get_item(Key=item_key, ConsistentRead=True).get("Item") or {}
            previous = item.get("next_free")
            turn = max(float(previous or 0), moment - (burst - 1) * interval_s)
            condition = "attribute_not_exists(next_free)" if previous is None else "next_free = :previous"
            values: dict[str, Any] = {":next": Decimal(repr(turn + interval_s)), ":kind": "line"}
            if previous is not None:
                values[":previous"] = previous
            try:
                self.table.update_item(
                    Key=item_key,
                    UpdateExpression="SET next_free = :next, kind = :kind",
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                )
            except self._client.exceptions.ConditionalCheckFailedException:
                continue  # another caller took that turn: take the next one
            return datetime.fromtimestamp(max(turn, moment), UTC)
        raise RuntimeError(f"no turn in line {key} after {MAX_TURN_ATTEMPTS} attempts")

    def line_free_at(self, key: str) -> datetime | None:
        item = self.table.get_item(Key={"pk": f"LINE#{key}", "sk": "GCRA"}).get("Item") or {}
        return datetime.fromtimestamp(float(item["next_free"]), UTC) if "next_free" in item else None

    # --- retention ---------------------------------------------------------------------------------
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

    def delete_job(self, tombstone: Tombstone, tombstone_expires_at: datetime) -> None:
        pk = _pk(tombstone.job_id)
        keys = [{"pk": item["pk"], "sk": item["sk"]} for item in self._query_all(pk, projection=True)]
        with self.table.batch_writer() as batch:
            for key in keys:
                if key["sk"] != META:
                    batch.delete_item(Key=key)
        item = _to_item(tombstone.model_dump(mode="json")) | {
            "pk": pk,
            "sk": META,
            "kind": "tombstone",
            "ttl": _epoch(tombstone_expires_at),
        }
        self.table.put_item(Item=item)

    def update_tombstone(self, job_id: str, **fields: Any) -> bool:
        names: dict[str, str] = {}
        values: dict[str, Any] = {":tombstone": "tombstone"}
        condition = ["attribute_exists(pk)", "kind = :tombstone"]
        return self._update(_pk(job_id), META, fields, condition, names, values)

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

    def items_of(self, job_id: str) -> list[dict[str, Any]]:
        """Every item stored under the job (tests and the retention report use it)."""
        return list(self._query_all(_pk(job_id)))

    # --- helpers -----------------------------------------------------------------------------------
    def _query_prefix(self, job_id: str, prefix: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": _pk(job_id), ":prefix": prefix},
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

    def _paginate(self, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            page = self.table.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _transact(self, actions: list[dict[str, Any]], conditional: bool = False) -> bool:
        # The resource's client serializes plain Python values, as the Table methods do.
        try:
            self._client.transact_write_items(TransactItems=actions)
        except self._client.exceptions.TransactionCanceledException:
            if conditional:
                return False
            raise
        return True

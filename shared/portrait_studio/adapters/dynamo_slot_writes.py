"""The job store's writes to prediction slots: planned in the same transaction as the job's move, claimed
against the job's prediction budget, released, and their collected images counted. As for the job item
(`dynamo_job_writes`), the statuses come from the lifecycle; these only store them, conditionally."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from portrait_studio.adapters.dynamo_expressions import conditional_update, status_in
from portrait_studio.adapters.dynamo_items import META, epoch, job_pk, records_ttl, slot_item, with_claim_epoch
from portrait_studio.adapters.dynamo_job_writes import DynamoJobWrites
from portrait_studio.models import Job, JobStatus, Prediction

__all__ = ["DynamoSlotWrites"]


class DynamoSlotWrites(DynamoJobWrites):
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
            slot_update["Update"]["ExpressionAttributeValues"][":stale"] = epoch(stale_before)
        slot_update["Update"]["ConditionExpression"] += condition
        # With the job in the same transaction: never a claim under a deleted job, never past the budget.
        job_check: dict[str, Any] = {
            "TableName": self._table_name,
            "Key": {"pk": job_pk(job_id), "sk": META},
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
                "Key": {"pk": job_pk(job_id), "sk": META},
                "UpdateExpression": "ADD predictions_reserved :minus",
                "ConditionExpression": "attribute_exists(pk) AND predictions_reserved > :zero",
                "ExpressionAttributeValues": {":minus": -1, ":zero": 0},
            }
        }
        return self._transact([slot_update, refund], conditional=True)

    def update_slot(self, job_id: str, slot: str, expect: Iterable[str] | None = None, **fields: Any) -> bool:
        fields = with_claim_epoch(fields)
        condition = ["attribute_exists(pk)"]
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        if expect is not None:
            condition.append(status_in(expect, names, values))
        return self._update(job_pk(job_id), f"PRED#{slot}", fields, condition, names, values)

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
                    "Key": {"pk": job_pk(job_id), "sk": META},
                    "UpdateExpression": "ADD predict_seconds :t",
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeValues": {":t": Decimal(str(predict_time or 0))},
                }
            },
        ]
        return self._transact(actions, conditional=True)

    def _put_new_slots(self, job: Job, slots: Sequence[Prediction]) -> list[dict[str, Any]]:
        ttl = records_ttl(job)
        return [
            {
                "Put": {
                    "TableName": self._table_name,
                    "Item": slot_item(slot, ttl),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for slot in slots
        ]

    def _slot_update(self, job_id: str, slot: str, expect: Iterable[str], fields: Mapping[str, Any]) -> dict[str, Any]:
        return conditional_update(
            self._table_name, job_pk(job_id), f"PRED#{slot}", expect, with_claim_epoch(dict(fields))
        )

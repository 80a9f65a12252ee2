"""The job store's rate limits and paced lines: counters and turns shared by every caller, each in an item of
its own (not under a job)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from portrait_studio.adapters.dynamo_items import epoch
from portrait_studio.adapters.dynamo_table import DynamoTable
from portrait_studio.clock import hour_key

__all__ = ["MAX_TURN_ATTEMPTS", "DynamoPacing"]

MAX_TURN_ATTEMPTS = 20


class DynamoPacing(DynamoTable):
    def hit_rate_limit(self, key: str, window_start: datetime, limit: int, expires_at: datetime) -> bool:
        result = self.table.update_item(
            Key={"pk": f"RATE#{key}", "sk": hour_key(window_start)},
            UpdateExpression="ADD hits :one SET #ttl = :ttl, kind = :kind",
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues={":one": 1, ":ttl": epoch(expires_at), ":kind": "rate"},
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

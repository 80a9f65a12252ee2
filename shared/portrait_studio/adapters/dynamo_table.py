"""The DynamoDB table under the job store, and the three ways the store's parts talk to it: a conditional
update of one item, a transaction, and a paginated query."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from portrait_studio.adapters.dynamo_expressions import update_expression
from portrait_studio.ports import Clock

__all__ = ["DynamoTable"]


class DynamoTable:
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

    def _update(
        self,
        pk: str,
        sk: str,
        fields: Mapping[str, Any],
        condition: list[str],
        names: dict[str, str],
        values: dict[str, Any],
    ) -> bool:
        """Set (or remove, for None) fields of one item if every condition holds; False if one does not."""
        kwargs: dict[str, Any] = {
            "Key": {"pk": pk, "sk": sk},
            "UpdateExpression": update_expression(fields, names, values),
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

    def _transact(self, actions: list[dict[str, Any]], conditional: bool = False) -> bool:
        """All actions or none. With `conditional`, a cancelled transaction (a condition failed) is False."""
        # The resource's client serializes plain Python values, as the Table methods do.
        try:
            self._client.transact_write_items(TransactItems=actions)
        except self._client.exceptions.TransactionCanceledException:
            if conditional:
                return False
            raise
        return True

    def _paginate(self, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            page = self.table.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

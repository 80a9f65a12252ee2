"""Idempotency through Powertools (its DynamoDB table): an action runs once per key; a repeat gets the
first result back without running it again. A crash mid-action leaves the key retryable after a while."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class PowertoolsIdempotency:
    def __init__(self, table_name: str, client_factory: Callable[[], Any], expires_after_s: int) -> None:
        self._table_name = table_name
        self._client_factory = client_factory
        self._expires_after_s = expires_after_s
        self._persistence: Any = None

    def once(self, key: str, action: Callable[[], Mapping[str, Any]], context: Any = None) -> Mapping[str, Any]:
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

        if self._persistence is None:
            self._persistence = DynamoDBPersistenceLayer(
                table_name=self._table_name, boto3_client=self._client_factory()
            )
        config = IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=self._expires_after_s)
        if context is not None:
            config.register_lambda_context(context)

        @idempotent_function(data_keyword_argument="request", persistence_store=self._persistence, config=config)
        def run(request: dict[str, str]) -> dict[str, Any]:
            return dict(action())

        try:
            result: Mapping[str, Any] = run(request={"key": key})
        except IdempotencyAlreadyInProgressError:
            return {"result": "in_progress"}
        return result

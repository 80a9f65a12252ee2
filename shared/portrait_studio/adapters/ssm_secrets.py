"""SecretStore on SSM Parameter Store (SecureString) through Powertools parameters, cached."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class SsmSecretStore:
    def __init__(self, client_factory: Callable[[], Any], max_age_s: int) -> None:
        self._client_factory = client_factory
        self._max_age_s = max_age_s
        self._provider: Any = None

    def get(self, name: str) -> str:
        if self._provider is None:
            from aws_lambda_powertools.utilities.parameters import SSMProvider

            self._provider = SSMProvider(boto3_client=self._client_factory())
        value = self._provider.get(name, decrypt=True, max_age=self._max_age_s)
        return str(value)


def put_secure_parameter(settings: Any, name: str, value: str) -> None:
    from portrait_studio.adapters.aws import aws_client

    client = aws_client("ssm", settings.aws_region, settings.aws_endpoint_url)
    client.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)

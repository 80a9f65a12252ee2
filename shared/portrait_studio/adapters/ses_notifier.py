"""Email through Amazon SES (API v2), one message per call; the client is built on first use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portrait_studio.errors import NotificationFailed


class SesNotifier:
    def __init__(self, client_factory: Callable[[], Any], sender: str, configuration_set: str | None = None) -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self._sender = sender
        self._configuration_set = configuration_set

    def send(self, to: str, subject: str, text: str, html: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._client is None:
            self._client = self._client_factory()
        request: dict[str, Any] = {
            "FromEmailAddress": self._sender,
            "Destination": {"ToAddresses": [to]},
            "Content": {
                "Simple": {
                    "Subject": {"Data": subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": text, "Charset": "UTF-8"}, "Html": {"Data": html, "Charset": "UTF-8"}},
                }
            },
        }
        if self._configuration_set:  # bounces and complaints are published through it
            request["ConfigurationSetName"] = self._configuration_set
        try:
            return str(self._client.send_email(**request)["MessageId"])
        except ClientError as exc:  # the message names the error code, never the recipient
            raise NotificationFailed(f"SES refused the message: {exc.response['Error'].get('Code')}") from exc
        except BotoCoreError as exc:
            raise NotificationFailed(f"SES unreachable: {type(exc).__name__}") from exc

"""`ReplicateEmulator`: the emulator's parts put together, served on loopback, and its API for tests and the stack."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from email.message import Message
from typing import Any, Final

from infra.local.emulators.loopback import LoopbackEmulator, Reply, utc_now
from infra.local.replicate.deployments import Deployments
from infra.local.replicate.model import PreviewModel
from infra.local.replicate.predictions import Predictions
from infra.local.replicate.routes import Routes, json_reply
from infra.local.replicate.webhooks import WebhookSender, new_webhook_secret
from infra.local.replicate.wire import JSONDict

log = logging.getLogger("replicate_emulator")

DEFAULT_API_TOKEN: Final = "r8_local_emulator_token"  # noqa: S105 - the well-known token of a loopback-only fake
_MAX_BODY_BYTES: Final = 50 * 1024 * 1024
_WORKERS: Final = 6


class ReplicateEmulator(LoopbackEmulator):
    """Replicate's prediction API on loopback, with PhotoMaker's input schema and injectable faults."""

    server_name = "replicate-emulator"
    title = "Replicate emulator"
    max_body_bytes = _MAX_BODY_BYTES
    logger = log

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_token: str = DEFAULT_API_TOKEN,
        webhook_secret: str | None = None,
        step_delay_s: float = 0.2,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(host, port, _WORKERS)
        clock = clock or utc_now
        lock = threading.Lock()  # one lock for all of the emulator's state, shared by its parts
        self._webhooks = WebhookSender(lock, self._runner, clock, webhook_secret or new_webhook_secret())
        model = PreviewModel(lock)
        self._predictions = Predictions(
            lock, self._runner, clock, step_delay_s, lambda: self.url, self._webhooks, model
        )
        deployments = Deployments(lock, clock)
        self._routes = Routes(api_token, self._predictions, deployments, model, self._webhooks, lambda: self.url)

    @property
    def webhook_secret(self) -> str:
        return self._webhooks.secret

    def _started(self) -> None:
        self._webhooks.http = self._http

    def handle(self, method: str, target: str, headers: Message, body: bytes) -> Reply:
        return self._routes.handle(method, target, headers, body)

    def _error_reply(self, status: int, message: str) -> Reply:
        return json_reply(status, {"detail": message, "status": status})

    # ----------------------------------------------------------------------- inspection and faults

    def predictions(self) -> list[JSONDict]:
        return self._predictions.all()

    def set_faults(self, profile: dict[str, Any]) -> dict[str, Any]:
        """Replace the given keys of the fault profile (ValueError if any is invalid); returns the whole profile."""
        return self._predictions.faults.set(profile)

    def reset_faults(self) -> dict[str, Any]:
        return self._predictions.faults.reset()

    def faults(self) -> dict[str, Any]:
        return self._predictions.faults.view()

    def capacity(self) -> JSONDict:
        """The capacity profile, the instances booting, idle and busy, the queue's length and the emulated time."""
        return self._predictions.capacity.view()

    def set_capacity(self, profile: dict[str, Any]) -> JSONDict:
        """Replace the given keys of the capacity profile (ValueError if any is invalid); returns `capacity()`."""
        return self._predictions.capacity.configure(profile)

    def reset_capacity(self) -> JSONDict:
        return self._predictions.capacity.reset()

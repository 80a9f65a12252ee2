"""The Replicate emulator's HTTP routes: Replicate's API under `/v1`, the outputs' files, and `/_emulator` hooks.

`/v1/...` needs the API token (`Authorization: Bearer` or `Token`); `/files/...` and the test hooks do not.
A known path with another method answers 405, an unknown one 404, both in Replicate's error shape.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any, Final
from urllib.parse import urlsplit

from infra.local.emulators.loopback import Reply
from infra.local.replicate.deployments import Deployments
from infra.local.replicate.model import PreviewModel
from infra.local.replicate.predictions import Predictions
from infra.local.replicate.schema import validate_input, validate_webhook, validation_error, version_id
from infra.local.replicate.webhooks import WebhookSender
from infra.local.replicate.wire import dumps


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    headers: Message
    body: bytes
    params: dict[str, str]


def json_reply(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, dumps(payload), headers=headers)


_NOT_FOUND: Final = json_reply(404, {"detail": "Not found.", "status": 404})
_UNAUTHENTICATED: Final = json_reply(
    401, {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401}
)
_THROTTLED: Final = json_reply(
    429,
    {
        "title": "Request was throttled",
        "detail": "Request was throttled. Expected available in 1 second.",
        "status": 429,
    },
    headers=(("Retry-After", "1"),),
)

Handler = Callable[[_Request], Reply]


class Routes:
    """Answers each request from the emulator's parts; `handle` is the emulator's `handle`."""

    def __init__(
        self,
        api_token: str,
        predictions: Predictions,
        deployments: Deployments,
        model: PreviewModel,
        webhooks: WebhookSender,
        base_url: Callable[[], str],
    ) -> None:
        self._token = api_token
        self._predictions = predictions
        self._deployments = deployments
        self._model = model
        self._webhooks = webhooks
        self._base_url = base_url
        self._routes: list[tuple[str, re.Pattern[str], Handler, bool]] = self._route_table()

    def _route_table(self) -> list[tuple[str, re.Pattern[str], Handler, bool]]:
        pid = r"(?P<pid>[a-z0-9]+)"
        deployment = r"(?P<owner>[A-Za-z0-9][A-Za-z0-9_.-]*)/(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)"
        routes: list[tuple[str, str, Handler, bool]] = [
            ("POST", r"/v1/predictions", self._create, True),
            ("GET", r"/v1/predictions", self._list, True),
            ("GET", rf"/v1/predictions/{pid}", self._get, True),
            ("POST", rf"/v1/predictions/{pid}/cancel", self._cancel, True),
            ("POST", rf"/v1/deployments/{deployment}/predictions", self._create_on_deployment, True),
            ("GET", rf"/v1/deployments/{deployment}", self._get_deployment, True),
            ("GET", r"/v1/webhooks/default/secret", self._secret, True),
            ("GET", rf"/files/{pid}/(?P<n>\d+)\.png", self._file, False),
            ("GET", r"/_emulator/faults", self._get_faults, False),
            ("PUT", r"/_emulator/faults", self._put_faults, False),
            ("DELETE", r"/_emulator/faults", self._delete_faults, False),
            ("GET", r"/_emulator/capacity", self._get_capacity, False),
            ("PUT", r"/_emulator/capacity", self._put_capacity, False),
            ("DELETE", r"/_emulator/capacity", self._delete_capacity, False),
        ]
        return [(method, re.compile(rf"{path}/?"), handler, auth) for method, path, handler, auth in routes]

    def handle(self, method: str, target: str, headers: Message, body: bytes) -> Reply:
        path = urlsplit(target).path
        allowed: list[str] = []
        for route_method, pattern, handler, needs_auth in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if route_method != method:
                allowed.append(route_method)
                continue
            if needs_auth and not self._authorized(headers.get("Authorization")):
                return _UNAUTHENTICATED
            return handler(_Request(method, path, headers, body, match.groupdict()))
        if allowed:
            return json_reply(405, {"detail": f'Method "{method}" not allowed.', "status": 405})
        return _NOT_FOUND

    def _authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return False
        return hmac.compare_digest(token.strip().encode(), self._token.encode())

    # ----------------------------------------------------------------------- API handlers

    def _create(self, request: _Request, deployment: str | None = None) -> Reply:
        if self._predictions.faults.take_rate_limit():
            return _THROTTLED
        try:
            payload = json.loads(request.body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return json_reply(400, {"title": "Invalid JSON", "detail": str(exc), "status": 400})
        if not isinstance(payload, dict):
            return json_reply(400, {"title": "Invalid JSON", "detail": "Expected a JSON object", "status": 400})
        if deployment is None:
            version = version_id(payload.get("version"))
        else:  # a deployment runs its current release's version; the request names none
            version = str(self._deployments.get(deployment)["current_release"]["version"])
        if version is None:
            detail = "The specified version does not exist (or perhaps you don't have permission to use it?)"
            return json_reply(422, {"title": "Invalid version or not permitted", "detail": detail, "status": 422})
        problems = validate_input(payload.get("input")) + validate_webhook(payload)
        if problems:
            return json_reply(422, validation_error(problems))
        record = self._predictions.create(version, payload, deployment)
        self._predictions.prefer_wait(record, request.headers.get("Prefer"))
        return json_reply(201, self._predictions.snapshot(record))

    def _create_on_deployment(self, request: _Request) -> Reply:
        return self._create(request, f"{request.params['owner']}/{request.params['name']}")

    def _get_deployment(self, request: _Request) -> Reply:
        return json_reply(200, self._deployments.get(f"{request.params['owner']}/{request.params['name']}"))

    def _get(self, request: _Request) -> Reply:
        record = self._predictions.find(request.params["pid"])
        return _NOT_FOUND if record is None else json_reply(200, self._predictions.snapshot(record))

    def _list(self, _request: _Request) -> Reply:
        results = list(reversed(self._predictions.all()))  # newest first, as Replicate lists them
        return json_reply(200, {"previous": None, "next": None, "results": results})

    def _cancel(self, request: _Request) -> Reply:
        record = self._predictions.find(request.params["pid"])
        if record is None:
            return _NOT_FOUND
        return json_reply(200, self._predictions.cancel(record))

    def _secret(self, _request: _Request) -> Reply:
        return json_reply(200, {"key": self._webhooks.secret})

    def _file(self, request: _Request) -> Reply:
        record = self._predictions.find(request.params["pid"])
        index = int(request.params["n"])
        if record is None:
            return _NOT_FOUND
        png = self._model.output_png(record, index, self._base_url())
        return _NOT_FOUND if png is None else Reply(200, png, content_type="image/png")

    # ----------------------------------------------------------------------- /_emulator hooks

    def _get_faults(self, _request: _Request) -> Reply:
        return json_reply(200, self._predictions.faults.view())

    def _put_faults(self, request: _Request) -> Reply:
        try:
            profile = self._predictions.faults.set(json.loads(request.body or b"{}"))
        except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            return json_reply(400, {"title": "Invalid fault profile", "detail": str(exc), "status": 400})
        return json_reply(200, profile)

    def _delete_faults(self, _request: _Request) -> Reply:
        return json_reply(200, self._predictions.faults.reset())

    def _get_capacity(self, _request: _Request) -> Reply:
        return json_reply(200, self._predictions.capacity.view())

    def _put_capacity(self, request: _Request) -> Reply:
        try:
            view = self._predictions.capacity.configure(json.loads(request.body or b"{}"))
        except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            return json_reply(400, {"title": "Invalid capacity profile", "detail": str(exc), "status": 400})
        return json_reply(200, view)

    def _delete_capacity(self, _request: _Request) -> Reply:
        return json_reply(200, self._predictions.capacity.reset())

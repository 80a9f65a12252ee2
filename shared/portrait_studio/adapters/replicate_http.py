"""Generator on Replicate's HTTP API.

httpx rather than the `replicate` client: we need the raw 429 (its wait, to re-queue the SQS message
with that delay) instead of a client that sleeps and retries inside a Lambda invocation.
The official client is tested against the local emulator (tests/integration/test_replicate_emulator.py).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from portrait_studio.errors import GeneratorRateLimited, GeneratorRejectedInput, GeneratorUnavailable
from portrait_studio.ports import RemotePrediction

_WAIT = re.compile(r"(?:resets in ~?|available in )(\d+(?:\.\d+)?)\s*s", re.IGNORECASE)
DEFAULT_BACKOFF_S = 5.0


def retry_after_seconds(headers: Mapping[str, str], detail: str, attempt: int = 0) -> float:
    """The wait Replicate names (Retry-After or the detail text), else exponential backoff with jitter."""
    header = headers.get("retry-after", "")
    if header.replace(".", "", 1).isdigit():
        return max(1.0, float(header))
    match = _WAIT.search(detail or "")
    if match:
        return max(1.0, float(match.group(1)))
    return float(min(300.0, DEFAULT_BACKOFF_S * 2**attempt) * (0.5 + random.random()))


class ReplicateHttpGenerator:
    """Predictions of the pinned version, or of a deployment (`owner/name`) when one is given.

    A deployment's release names the version it runs, so `create` then ignores the version it is passed."""

    def __init__(
        self, base_url: str, token: Callable[[], str], timeout_s: float = 15.0, deployment: str | None = None
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s
        self._deployment = deployment
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import httpx

            self._client = httpx.Client(base_url=self._base_url, timeout=self._timeout_s)
        return self._client

    def _request(self, method: str, path: str, json: Any = None) -> dict[str, Any]:
        import httpx

        headers = {"Authorization": f"Bearer {self._token()}", "User-Agent": "portrait-studio/0.1"}
        try:
            response = self.client.request(method, path, json=json, headers=headers)
        except httpx.HTTPError as exc:
            raise GeneratorUnavailable(f"Replicate unreachable: {type(exc).__name__}") from exc
        if response.status_code == 429:
            detail = _detail(response)
            raise GeneratorRateLimited(retry_after_seconds(response.headers, detail))
        if response.status_code >= 500:
            raise GeneratorUnavailable(f"Replicate answered {response.status_code}")
        if response.status_code >= 400:
            raise GeneratorRejectedInput(f"Replicate refused the request ({response.status_code}): {_detail(response)}")
        body: dict[str, Any] = response.json()
        return body

    def create(self, version: str, input: Mapping[str, Any], webhook: str, events: Sequence[str]) -> RemotePrediction:
        body: dict[str, Any] = {"input": dict(input), "webhook": webhook, "webhook_events_filter": list(events)}
        if self._deployment is not None:
            path = f"/v1/deployments/{self._deployment}/predictions"
        else:
            path, body["version"] = "/v1/predictions", version
        return RemotePrediction.from_api(self._request("POST", path, json=body))

    def get(self, prediction_id: str) -> RemotePrediction:
        return RemotePrediction.from_api(self._request("GET", f"/v1/predictions/{prediction_id}"))

    def cancel(self, prediction_id: str) -> None:
        self._request("POST", f"/v1/predictions/{prediction_id}/cancel")


def _detail(response: Any) -> str:
    try:
        return str(response.json().get("detail", ""))[:300]
    except ValueError:
        return ""


def fetch_webhook_secret(base_url: str, token: str) -> str:
    """Replicate's webhook signing secret (`whsec_...`), as `GET /v1/webhooks/default/secret` gives it."""
    import httpx

    response = httpx.get(
        f"{base_url.rstrip('/')}/v1/webhooks/default/secret", headers={"Authorization": f"Bearer {token}"}, timeout=15
    )
    response.raise_for_status()
    return str(response.json()["key"])

"""Replicate webhook receiver: verify the signature, record the event, enqueue collect. Nothing else."""

from __future__ import annotations

import base64
import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from portrait_studio import wiring
from portrait_studio.errors import InvalidRequest, PortraitError, WebhookRejected
from portrait_studio.http import error_response, secured

logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver()


def _raw_body() -> bytes:
    event = app.current_event
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8", "surrogateescape")


@app.post("/webhooks/replicate")
def replicate_webhook() -> Response[Any]:
    c = wiring.container()
    try:
        verified = c.webhooks.verify(app.current_event.headers or {}, _raw_body())
    except WebhookRejected as rejected:
        metrics.add_metric(name="WebhookRejects", unit="Count", value=1)
        logger.warning("webhook rejected", extra={"reason": rejected.message})
        return error_response(rejected)
    params = app.current_event.query_string_parameters or {}
    job_id, slot = params.get("job", ""), params.get("slot", "")
    logger.set_correlation_id(job_id)
    # A repeated webhook-id (Replicate retries, duplicates) gets the first answer; nothing runs twice.
    outcome = c.idempotency.once(
        f"webhook:{verified.webhook_id}",
        lambda: {"result": c.generation.record_event(job_id, slot, params.get("claim"), verified.payload)},
        app.lambda_context,
    )
    logger.info("webhook recorded", extra={"slot": slot, "result": outcome["result"]})
    return Response(status_code=200, content_type="application/json", body=json.dumps(dict(outcome)))


@app.exception_handler(PortraitError)
def _domain_error(error: PortraitError) -> Response[Any]:
    return error_response(error)


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response[Any]:
    # A 500 Replicate retries, answered by us (JSON, security headers); the trace stays in the log.
    logger.exception("webhook failed unexpectedly")
    return error_response(PortraitError())


@app.not_found
def _not_found(_: Exception) -> Response[Any]:
    return error_response(InvalidRequest("No such route."), status=404, code="not_found")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return secured(app.resolve(event, context))

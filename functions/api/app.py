"""HTTP API: upload intake and the job API (API Gateway HTTP API → Powertools resolver)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from portrait_studio import wiring
from portrait_studio.api_models import (
    AddFilesRequest,
    AddFilesResponse,
    ArchiveResponse,
    CreateJobRequest,
    CreateJobResponse,
    JobView,
    MoreRequest,
    MoreResponse,
    PriceView,
    SubmitResponse,
    TokenResponse,
)
from portrait_studio.errors import InvalidRequest, PaymentWebhookRejected, PortraitError, RequestTooLarge
from portrait_studio.http import bearer_token, documented, error_response, json_response, secured
from portrait_studio.models import JobStatus

logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver(enable_validation=True)
MAX_BODY_BYTES = 64 * 1024
JobId = Annotated[str, Path(min_length=16, max_length=64)]
JOB_TOKEN: list[dict[str, list[str]]] = [
    {"jobToken": []}
]  # every /jobs/{id} call: Authorization: Bearer <the job's token>


def _body_limit(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
    if len(app.current_event.body or "") > MAX_BODY_BYTES:
        return error_response(RequestTooLarge())
    return next_middleware(app)


app.use(middlewares=[_body_limit])


def _raw_body() -> bytes:
    event = app.current_event
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8", "surrogateescape")


def _token() -> str | None:
    return bearer_token(app.current_event.headers)


@app.get("/price", responses=documented(200, PriceView, 503))
def get_price() -> Response[PriceView]:
    """What 32 headshots cost before any promotion code (the price lives in Stripe)."""
    c = wiring.container()
    price = c.payments.price()
    view = PriceView(amount=price.amount, currency=price.currency, images=c.settings.images_target)
    return json_response(200, view)


@app.post("/jobs", responses=documented(201, CreateJobResponse, 400, 413, 429))
def create_job(request: Annotated[CreateJobRequest, Body()]) -> Response[CreateJobResponse]:
    client = app.current_event.request_context.http.source_ip or "unknown"
    created = wiring.container().jobs.create(request, client)
    logger.append_keys(job_id=created.job_id)
    logger.info("job created", extra={"files": len(created.uploads)})
    metrics.add_metric(name="JobsCreated", unit="Count", value=1)
    return json_response(201, created)


@app.post("/jobs/<job_id>/files", responses=documented(201, AddFilesResponse, 400, 404, 409, 413), security=JOB_TOKEN)
def add_files(job_id: JobId, request: Annotated[AddFilesRequest, Body()]) -> Response[AddFilesResponse]:
    logger.append_keys(job_id=job_id)
    tickets = wiring.container().jobs.add_files(job_id, _token(), request.files)
    return json_response(201, AddFilesResponse(job_id=job_id, uploads=tickets))


@app.delete("/jobs/<job_id>/files/<file_id>", responses=documented(204, None, 400, 404, 409), security=JOB_TOKEN)
def remove_file(job_id: JobId, file_id: Annotated[str, Path(min_length=16, max_length=32)]) -> Response[None]:
    logger.append_keys(job_id=job_id)
    wiring.container().jobs.remove_file(job_id, _token(), file_id)
    return Response(status_code=204)


@app.post("/jobs/<job_id>/submit", responses=documented(202, SubmitResponse, 400, 404, 409), security=JOB_TOKEN)
def submit_job(job_id: JobId) -> Response[SubmitResponse]:
    logger.append_keys(job_id=job_id)
    submitted = wiring.container().jobs.submit(job_id, _token())
    logger.info("job submitted", extra={"files": submitted.queued_files})
    return json_response(202, submitted)


@app.get("/jobs/<job_id>", responses=documented(200, JobView, 400, 404), security=JOB_TOKEN)
def get_job(job_id: JobId) -> Response[JobView]:
    logger.append_keys(job_id=job_id)
    c = wiring.container()
    job = c.jobs.authorize(job_id, _token())
    if job.status == JobStatus.AWAITING_PAYMENT and not job.checkout_session_id:
        c.payments.open_checkout_for_page(job_id)  # normalization holds no Stripe key: the page's look opens it
    return json_response(200, c.jobs.view(job_id, _token()))


@app.post("/jobs/<job_id>/token", responses=documented(200, TokenResponse, 400, 404), security=JOB_TOKEN)
def rotate_token(job_id: JobId) -> Response[TokenResponse]:
    """A new private link: the job's new token; the one presented (and every emailed link) stops working."""
    logger.append_keys(job_id=job_id)
    rotated = wiring.container().jobs.rotate_token(job_id, _token())
    logger.info("job token rotated")
    return json_response(200, rotated)


@app.get("/jobs/<job_id>/archive", responses=documented(200, ArchiveResponse, 400, 404, 409), security=JOB_TOKEN)
def get_archive(job_id: JobId) -> Response[ArchiveResponse]:
    logger.append_keys(job_id=job_id)
    return json_response(200, wiring.container().jobs.archive(job_id, _token()))


@app.post("/jobs/<job_id>/more", responses=documented(202, MoreResponse, 400, 404, 409), security=JOB_TOKEN)
def more_like_this(job_id: JobId, request: Annotated[MoreRequest, Body()]) -> Response[MoreResponse]:
    """Four new headshots like one delivered: its style, prompt and backdrop with new seeds (twice per job)."""
    logger.append_keys(job_id=job_id)
    started = wiring.container().more.request(job_id, _token(), request.result)
    logger.info("more like this", extra={"round": started.round})
    metrics.add_metric(name="MoreRounds", unit="Count", value=1)
    return json_response(202, started)


@app.delete("/jobs/<job_id>", responses=documented(204, None, 400, 404, receipt=True, pending=202), security=JOB_TOKEN)
def delete_job(job_id: JobId) -> Response[None]:
    logger.append_keys(job_id=job_id)
    c = wiring.container()
    c.jobs.authorize(job_id, _token())
    # Recorded first with the refund it owes; 202 when the refund or the purge is left to the reconciler.
    receipt = c.deletion.request(job_id)
    logger.info("job deletion by its owner", extra={"finished": receipt.finished})
    return Response(status_code=204 if receipt.finished else 202, headers={"X-Deletion-Receipt": receipt.receipt_id})


@app.post("/webhooks/stripe", include_in_schema=False)
def stripe_webhook() -> Response[Any]:
    c = wiring.container()
    headers = app.current_event.headers or {}
    signature = next((v for k, v in headers.items() if k.lower() == "stripe-signature"), None)

    def once(key: str, action: Callable[[], str]) -> str:
        # A redelivered event id (Stripe retries) gets the first answer; nothing runs twice.
        return str(c.idempotency.once(key, lambda: {"result": action()}, app.lambda_context)["result"])

    try:
        result = c.payments.receive(_raw_body(), signature, once)
    except PaymentWebhookRejected as rejected:
        metrics.add_metric(name="PaymentWebhookRejects", unit="Count", value=1)
        logger.warning("stripe webhook rejected", extra={"reason": rejected.message})
        return error_response(rejected)
    logger.info("stripe webhook applied", extra={"result": result})
    return Response(status_code=200, content_type="application/json", body=json.dumps({"result": result}))


@app.get("/openapi.json", include_in_schema=False)
def openapi() -> Response[Any]:
    return Response(status_code=200, content_type="application/json", body=openapi_json())


def openapi_json() -> str:
    document = json.loads(_generated_openapi())
    # What Powertools cannot express: 202s and 204s have no body, and request validation answers 400, never 422.
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["responses"].pop("422", None)
            for empty in ("202", "204"):  # a DELETE's answers carry only the receipt header
                operation["responses"].get(empty, {}).pop("content", None)
    for unused in ("HTTPValidationError", "ValidationError"):
        document.get("components", {}).get("schemas", {}).pop(unused, None)
    return json.dumps(document)


def _generated_openapi() -> str:
    return app.get_openapi_json_schema(
        title="Portrait Studio API",
        version="1.0.0",
        summary="Selfies in, 32 headshots out; everything deleted within 48 hours.",
        security_schemes={"jobToken": HTTPBearer(description="The token POST /jobs returned for this job.")},
    )


@app.exception_handler(PortraitError)
def _domain_error(error: PortraitError) -> Response[Any]:
    if error.http_status >= 500:
        logger.error("request failed", extra={"code": error.code})
    return error_response(error)


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response[Any]:
    # Our own 500 (JSON, security headers) rather than API Gateway's bare one; the trace stays in the log.
    logger.exception("request failed unexpectedly")
    metrics.add_metric(name="ApiUnexpectedErrors", unit="Count", value=1)
    return error_response(PortraitError())


@app.exception_handler(RequestValidationError)
def _invalid(error: RequestValidationError) -> Response[Any]:
    problems = []
    for item in error.errors()[:5]:
        where = ".".join(str(part) for part in item.get("loc", ())[1:]) or "body"
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    return error_response(InvalidRequest("The request is not valid: " + "; ".join(problems) + "."))


@app.not_found
def _not_found(_: Exception) -> Response[Any]:
    return error_response(InvalidRequest("No such route."), status=404, code="not_found")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return secured(app.resolve(event, context))

"""Dispatch: create the PhotoMaker predictions of a job (idempotent per slot)."""

from __future__ import annotations

import math
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from portrait_studio import wiring
from portrait_studio.errors import GeneratorRateLimited, GeneratorUnavailable
from portrait_studio.messages import DispatchMessage
from portrait_studio.sqs import parse_message

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
UNAVAILABLE_BACKOFF_S = 20


def record_handler(record: SQSRecord) -> None:
    message = parse_message(record.body, DispatchMessage, logger, record.message_id)
    if message is None:
        return
    c = wiring.container()
    try:
        result = c.generation.dispatch(message.job_id, message.slots)
    except (GeneratorRateLimited, GeneratorUnavailable) as exc:
        # Never sleep here: hide the message for the wait Replicate named; SQS redelivers it then.
        attempt = int(record.attributes.approximate_receive_count or "1")
        wait = exc.retry_after_s if isinstance(exc, GeneratorRateLimited) else UNAVAILABLE_BACKOFF_S * attempt
        c.queue.change_visibility(c.settings.dispatch_queue_url, record.receipt_handle, math.ceil(wait))
        metrics.add_metric(name="DispatchDeferred", unit="Count", value=1)
        logger.warning("dispatch deferred", extra={"code": exc.code, "wait_s": math.ceil(wait)})
        raise
    logger.info(
        "predictions dispatched", extra={"predictions_created": result.created, "slots_skipped": result.skipped}
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)

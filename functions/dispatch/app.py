"""Dispatch: create the PhotoMaker predictions of a job's planned slots (at most one per slot).

Throttled creates come back as a new delayed message (the service sends it), so this message succeeds.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from portrait_studio import wiring
from portrait_studio.messages import DispatchMessage
from portrait_studio.sqs import parse_message

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
    message = parse_message(record.body, DispatchMessage, logger, record.message_id)
    if message is None:
        return
    generation = wiring.container().generation
    if message.cancel:  # an orphan the webhook receiver found (it holds no Replicate token)
        generation.cancel_orphan(message.cancel)
        logger.info("orphan prediction canceled", extra={"prediction_id": message.cancel})
        return
    result = generation.dispatch(message.job_id, message.slots, message.attempt, message.turn_at)
    logger.info(
        "predictions dispatched",
        extra={
            "predictions_created": result.created,
            "slots_skipped": result.skipped,
            "slots_given_up": result.gave_up,
            "slots_deferred": len(result.deferred),
            "wait_s": result.wait_s,
        },
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)

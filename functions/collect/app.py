"""Collect: copy a finished prediction's images into the bucket, then top up or finish the job."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from portrait_studio import wiring
from portrait_studio.messages import CollectMessage
from portrait_studio.sqs import parse_message

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
    message = parse_message(record.body, CollectMessage, logger, record.message_id)
    if message is None:
        return
    generation = wiring.container().generation
    if message.slot is None:  # a job dispatch ended: its refund and email are run here, where the grants are
        generation.aftercare(message.job_id)
        logger.info("aftercare run")
        return
    stored = generation.collect(message.job_id, message.slot)
    logger.info("prediction collected", extra={"slot": message.slot, "images": stored})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # One person per job for the whole batch (several of a job's predictions often arrive together), then forgotten.
    with wiring.container().generation.one_collect_invocation():
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )

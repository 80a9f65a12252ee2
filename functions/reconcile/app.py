"""Reconcile (every 5 minutes): finish predictions whose webhook never came; no job stays stuck."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from portrait_studio import wiring

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    c = wiring.container()
    summary = c.generation.reconcile()
    summary["photos_given_up"] = c.normalization.rescue_stuck()
    logger.info("reconciled", extra=summary)
    return summary

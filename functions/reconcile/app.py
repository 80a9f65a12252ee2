"""Reconcile (every minute): move every job on whatever message or webhook was lost; no job stays stuck."""

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
    summary |= {f"payments_{name}": count for name, count in c.payments.reconcile().items()}
    summary |= c.aftercare.reconcile()
    summary["purges_finished"] = c.deletion.finish_interrupted()  # refund first, then the purge
    logger.info("reconciled", extra=summary)
    return summary

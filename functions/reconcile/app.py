"""Reconcile (every minute): move every job on whatever message or webhook was lost; no job stays stuck.
Daily (`{"mode": "ledger"}`): the ledger matches Stripe's payments and refunds against our records."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from portrait_studio import wiring

LEDGER_WINDOW_H = 72  # three daily runs see every payment: one failed run loses nothing
logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    c = wiring.container()
    if event.get("mode") == "ledger":  # daily: Stripe's last 72 hours matched against our jobs (services/ledger.py)
        report = c.ledger.run(timedelta(hours=LEDGER_WINDOW_H))
        for item in report.items:  # ids and amounts only
            logger.warning("ledger mismatch", extra=asdict(item))
        totals = {k: v for k, v in report.as_dict().items() if isinstance(v, int)}
        logger.info("ledger", extra=totals)
        return totals
    summary = c.generation.reconcile()
    summary["photos_given_up"] = c.normalization.rescue_stuck()
    summary |= {f"payments_{name}": count for name, count in c.payments.reconcile().items()}
    summary |= c.aftercare.reconcile()
    summary["purges_finished"] = c.deletion.finish_interrupted()  # refund first, then the purge
    logger.info("reconciled", extra=summary)
    return summary

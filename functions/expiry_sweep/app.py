"""Expiry sweep: hourly, delete every job past its 48 h; nightly (mode "audit"), delete orphans."""

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
    retention = wiring.container().retention
    summary = retention.audit() if event.get("mode") == "audit" else retention.sweep()
    logger.info("retention run", extra={"mode": event.get("mode", "sweep"), **summary})
    return summary

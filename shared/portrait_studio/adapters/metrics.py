"""Metrics through Powertools (CloudWatch EMF). Handlers flush them with `@metrics.log_metrics`."""

from __future__ import annotations

from typing import Any


class PowertoolsMetrics:
    def __init__(self) -> None:
        self._metrics: Any = None

    def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        if self._metrics is None:
            from aws_lambda_powertools import Metrics

            self._metrics = Metrics()  # Powertools shares the metric set between instances
        self._metrics.add_metric(name=name, unit=unit, value=value)

"""The template's schedules, locally: the EventBridge event a rule sends, and when a `rate()`/`cron()` fires next."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from infra.local.account import ACCOUNT, REGION
from infra.local.template import Schedule


def scheduled_event(schedule: Schedule, now: datetime) -> dict[str, Any]:
    if schedule.input is not None:
        return dict(schedule.input)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{schedule.function}-{schedule.name}"],
        "detail": {},
    }


def next_fire(expression: str, after: datetime) -> datetime:
    """The next time a `rate(...)` or `cron(...)` schedule fires after `after` (UTC)."""
    expression = expression.strip()
    if expression.startswith("rate("):
        amount, unit = expression[5:-1].split()
        seconds = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}[unit]
        return after + timedelta(seconds=int(amount) * seconds)
    if expression.startswith("cron("):
        minute, hour, *_ = expression[5:-1].split()
        candidate = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(2 * 24 * 60):
            if _cron_field(minute, candidate.minute) and _cron_field(hour, candidate.hour):
                return candidate
            candidate += timedelta(minutes=1)
    raise ValueError(f"unsupported schedule expression: {expression}")


def _cron_field(spec: str, value: int) -> bool:
    if spec in ("*", "?"):
        return True
    if spec.startswith("*/"):
        return value % int(spec[2:]) == 0
    return value in {int(part) for part in spec.split(",")}

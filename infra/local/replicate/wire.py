"""How the Replicate emulator writes values on the wire: compact JSON, Replicate's timestamps and its ids."""

from __future__ import annotations

import json
import secrets
import string
from datetime import UTC, datetime
from typing import Any, Final

JSONDict = dict[str, Any]

_ID_ALPHABET: Final = string.ascii_lowercase + string.digits


def iso(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def random_id(length: int = 26) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()

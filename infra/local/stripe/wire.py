"""How the Stripe emulator writes its answers: Stripe's ids, amounts as a person reads them, JSON and HTML replies."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any, Final

from infra.local.emulators.loopback import Reply

JSONDict = dict[str, Any]

# The API version stripe-python 16.1.0 pins (`stripe.api_version`); events are rendered at it.
API_VERSION: Final = "2026-10-28.endive"

ID_ALPHABET: Final = string.ascii_letters + string.digits


def random_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


def money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def json_reply(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, json.dumps(payload, indent=2).encode(), headers=headers)


def html_reply(status: int, page: str) -> Reply:
    return Reply(status, page.encode(), content_type="text/html; charset=utf-8")

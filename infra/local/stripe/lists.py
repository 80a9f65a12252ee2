"""Stripe's lists: one page of them, newest first, and the `created` filter.

- `created`: the list API's range filter on an object's `created` (epoch seconds) — a plain integer, or
  `created[gt|gte|lt|lte]`, as `GET /v1/checkout/sessions` and `GET /v1/refunds` take it.
- `limit`, `starting_after`, `ending_before`: the page, as every list takes them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from infra.local.stripe.errors import StripeError, missing
from infra.local.stripe.params import integer_param
from infra.local.stripe.wire import JSONDict

_BOUNDS: dict[str, Callable[[int, int], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


class ListParamError(ValueError):
    """A list parameter Stripe would refuse: (message, param)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def _epoch(value: Any, param: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ListParamError(f"Invalid integer: {value}", param) from None


def created_filter(items: list[JSONDict], params: JSONDict) -> list[JSONDict]:
    """The items whose `created` is within the `created` parameter (all of them without one)."""
    wanted = params.get("created")
    if wanted is None:
        return items
    if not isinstance(wanted, dict):
        exact = _epoch(wanted, "created")
        return [item for item in items if int(item["created"]) == exact]
    unknown = set(wanted) - set(_BOUNDS)
    if unknown:
        name = sorted(unknown)[0]
        raise ListParamError(f"Received unknown parameter: created[{name}]", f"created[{name}]")
    bounds = [(_BOUNDS[op], _epoch(value, f"created[{op}]")) for op, value in wanted.items()]
    return [item for item in items if all(test(int(item["created"]), bound) for test, bound in bounds)]


def filter_created(items: list[JSONDict], params: JSONDict) -> list[JSONDict]:
    try:
        return created_filter(items, params)
    except ListParamError as exc:
        raise StripeError(400, str(exc), param=exc.param) from None


def list_page(items: list[JSONDict], params: JSONDict, url: str) -> JSONDict:
    """One page of a Stripe list, newest first, honouring `limit` and `starting_after`/`ending_before`."""
    limit = integer_param(params.get("limit", "10"), "limit")
    if not 1 <= limit <= 100:
        raise StripeError(400, f"This value must be between 1 and 100 (it currently is {limit}).", param="limit")
    # Newest first; `items` come oldest first, so ties on `created` (the same second) keep newest first too.
    ranked = sorted(enumerate(items), key=lambda pair: (pair[1]["created"], pair[0]), reverse=True)
    ordered = [item for _, item in ranked]
    ids = [item["id"] for item in ordered]
    if params.get("starting_after") is not None:
        cursor = str(params["starting_after"])
        if cursor not in ids:
            raise missing("object", cursor, "starting_after", status=400)
        ordered = ordered[ids.index(cursor) + 1 :]
    elif params.get("ending_before") is not None:
        cursor = str(params["ending_before"])
        if cursor not in ids:
            raise missing("object", cursor, "ending_before", status=400)
        ordered = ordered[: ids.index(cursor)][-limit:]
    return {"object": "list", "data": ordered[:limit], "has_more": len(ordered) > limit, "url": url}

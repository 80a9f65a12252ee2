"""Stripe's errors: the API's error envelope, and the hosted checkout page refusing a form."""

from __future__ import annotations

from typing import Final

from infra.local.stripe.wire import JSONDict

_DOCS: Final = "https://docs.stripe.com/error-codes"


class StripeError(Exception):
    """An API error in Stripe's envelope. `saved`: kept for idempotent replay (endpoint execution had begun)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        saved: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.param = param
        self.saved = saved

    def envelope(self, request_id: str | None = None) -> JSONDict:
        error: JSONDict = {"message": self.message, "type": self.kind}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"{_DOCS}#{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        if request_id is not None:
            error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        return {"error": error}


def missing(kind: str, object_id: str, param: str, status: int = 404) -> StripeError:
    return StripeError(status, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def param_missing(param: str) -> StripeError:
    return StripeError(400, f"Missing required param: {param}.", code="parameter_missing", param=param)


class CheckoutRefused(Exception):
    """The hosted page refuses a form (or the test hook a pay): the status and what the page says."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code

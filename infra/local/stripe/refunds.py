"""Refunds, made through the API as the dashboard makes them, and the PaymentIntents they refund."""

from __future__ import annotations

import copy
import logging
from typing import Final

from infra.local.emulators.loopback import Reply
from infra.local.stripe.errors import StripeError, missing
from infra.local.stripe.lists import filter_created, list_page
from infra.local.stripe.params import integer_param, metadata_param, string_param, unknown_params
from infra.local.stripe.routing import Request
from infra.local.stripe.state import StripeState
from infra.local.stripe.webhooks import Webhooks
from infra.local.stripe.wire import JSONDict, json_reply, money, random_id

log = logging.getLogger("stripe_emulator")

_REFUND_PARAMS: Final = frozenset({"payment_intent", "charge", "amount", "metadata", "reason", "expand"})
_REFUND_REASONS: Final = ("duplicate", "fraudulent", "requested_by_customer")


class Refunds:
    """`/v1/refunds` and `/v1/payment_intents` on the emulator's state; `refund.created` goes out via `webhooks`."""

    def __init__(self, state: StripeState, webhooks: Webhooks) -> None:
        self._state = state
        self._webhooks = webhooks

    def create_refund(self, request: Request) -> Reply:
        params = request.params
        unknown_params(params, _REFUND_PARAMS)
        intent_id = string_param(params, "payment_intent")
        charge_id = string_param(params, "charge")
        metadata = metadata_param(params)
        reason = string_param(params, "reason")
        if reason is not None and reason not in _REFUND_REASONS:
            message = f"Invalid reason: must be one of {', '.join(_REFUND_REASONS)}"
            raise StripeError(400, message, param="reason")
        amount = integer_param(params["amount"], "amount", positive=True) if params.get("amount") is not None else None
        with self._state.lock:
            intent = self._intent_for_refund_locked(intent_id, charge_id)
            refunded = self._refunded_locked(intent["id"])
            remaining = int(intent["amount_received"]) - refunded
            if remaining <= 0:
                message = f"Charge {intent['latest_charge']} has already been refunded."
                raise StripeError(400, message, code="charge_already_refunded", saved=True)
            if amount is None:
                amount = remaining
            if amount > remaining:
                message = (
                    f"Refund amount ({money(amount)}) is greater than unrefunded amount on charge ({money(remaining)})"
                )
                raise StripeError(400, message, code="amount_too_large", param="amount", saved=True)
            refund_id = random_id("re_3")
            refund: JSONDict = {
                "id": refund_id,
                "object": "refund",
                "amount": amount,
                "balance_transaction": random_id("txn_3"),
                "charge": intent["latest_charge"],
                "created": int(self._state.clock().timestamp()),
                "currency": intent["currency"],
                "destination_details": {"card": {"reference_status": "pending", "type": "refund"}, "type": "card"},
                "metadata": metadata,
                "payment_intent": intent["id"],
                "reason": reason,
                "receipt_number": None,
                "source_transfer_reversal": None,
                "status": "succeeded",
                "transfer_reversal": None,
            }
            self._state.refunds[refund_id] = refund
            event = self._webhooks.record_locked("refund.created", refund, request.request_id, request.idempotency_key)
            snapshot = copy.deepcopy(refund)
        log.info("refund %s of %s on %s", refund_id, money(amount), intent["id"])
        self._webhooks.dispatch(event)
        return json_reply(200, snapshot)

    def _intent_for_refund_locked(self, intent_id: str | None, charge_id: str | None) -> JSONDict:
        if intent_id is None and charge_id is None:
            message = "One of the following params should be provided for this request: payment_intent or charge."
            raise StripeError(400, message, code="parameter_missing")
        if intent_id is not None:
            intent = self._state.payment_intents.get(intent_id)
            if intent is None:
                raise missing("payment_intent", intent_id, "payment_intent", status=400)
            if charge_id is not None and intent["latest_charge"] != charge_id:
                raise StripeError(400, "The charge does not belong to this payment_intent.", param="charge")
            return intent
        for intent in self._state.payment_intents.values():
            if intent["latest_charge"] == charge_id:
                return intent
        raise missing("charge", str(charge_id), "charge", status=400)

    def _refunded_locked(self, intent_id: str) -> int:
        return sum(int(r["amount"]) for r in self._state.refunds.values() if r["payment_intent"] == intent_id)

    def list_refunds(self, request: Request) -> Reply:
        with self._state.lock:
            refunds = list(self._state.refunds.values())
            for name in ("payment_intent", "charge"):
                wanted = request.params.get(name)
                if isinstance(wanted, str):
                    refunds = [refund for refund in refunds if refund[name] == wanted]
            refunds = filter_created(refunds, request.params)
            page = list_page(copy.deepcopy(refunds), request.params, "/v1/refunds")
        return json_reply(200, page)

    def get_refund(self, request: Request) -> Reply:
        with self._state.lock:
            refund = self._state.refunds.get(request.ids["id"])
            if refund is None:
                raise missing("refund", request.ids["id"], "id")
            return json_reply(200, copy.deepcopy(refund))

    def get_payment_intent(self, request: Request) -> Reply:
        with self._state.lock:
            intent = self._state.payment_intents.get(request.ids["id"])
            if intent is None:
                raise missing("payment_intent", request.ids["id"], "intent")
            return json_reply(200, copy.deepcopy(intent))

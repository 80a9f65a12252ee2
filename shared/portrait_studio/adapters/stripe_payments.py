"""Payments on Stripe through the official `stripe` library (Checkout Sessions, refunds, signed webhooks).

The library is imported when first used (Lambda cold starts); the client is built lazily from the secret key
in SSM. `api_url` points it at the local Stripe emulator; unset, it talks to api.stripe.com.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from portrait_studio.errors import PaymentProviderError, PaymentProviderUnavailable, PaymentWebhookRejected
from portrait_studio.ports import CheckoutSession, PaymentEvent, Price, RefundRecord

CHECKOUT_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
    }
)


def _at(epoch: Any) -> datetime:
    return datetime.fromtimestamp(int(epoch or 0), tz=UTC)


def checkout_session(data: Any) -> CheckoutSession:
    """Our view of a Checkout Session object (as the API or an event's `data.object` gives it)."""
    if hasattr(data, "to_dict"):  # a StripeObject is not a Mapping
        data = data.to_dict()
    details = data.get("total_details") or {}
    customer = data.get("customer_details") or {}
    intent = data.get("payment_intent")
    if isinstance(intent, Mapping):  # expanded
        intent = intent.get("id")
    return CheckoutSession(
        session_id=str(data["id"]),
        url=data.get("url"),
        status=str(data.get("status") or ""),
        payment_status=str(data.get("payment_status") or ""),
        job_id=data.get("client_reference_id"),
        expires_at=_at(data.get("expires_at")),
        amount_subtotal=int(data.get("amount_subtotal") or 0),
        amount_discount=int(details.get("amount_discount") or 0),
        amount_total=int(data.get("amount_total") or 0),
        currency=str(data.get("currency") or ""),
        payment_intent=str(intent) if intent else None,
        email=customer.get("email"),
    )


def refund_record(data: Any) -> RefundRecord:
    """Our view of a Refund object: ids, cents and our metadata (none on a refund made in the dashboard)."""
    if hasattr(data, "to_dict"):
        data = data.to_dict()
    metadata = data.get("metadata") or {}
    intent = data.get("payment_intent")
    if isinstance(intent, Mapping):
        intent = intent.get("id")
    return RefundRecord(
        refund_id=str(data["id"]),
        payment_intent=str(intent) if intent else None,
        amount=int(data.get("amount") or 0),
        currency=str(data.get("currency") or ""),
        status=str(data.get("status") or ""),
        created=_at(data.get("created")),
        job_id=metadata.get("job_id"),
        key=metadata.get("refund_key"),
    )


class StripePayments:
    def __init__(
        self,
        secret_key: Callable[[], str],
        webhook_secret: Callable[[], str],
        api_url: str | None = None,
        tolerance_s: int = 300,
        timeout_s: float = 20.0,
    ) -> None:
        self._secret_key = secret_key
        self._webhook_secret = webhook_secret
        self._api_url = api_url
        self._tolerance_s = tolerance_s
        self._timeout_s = timeout_s
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import stripe

            addresses = {"api": self._api_url.rstrip("/")} if self._api_url else None
            self._client = stripe.StripeClient(
                self._secret_key(),
                base_addresses=addresses,  # type: ignore[arg-type]
                # The library retries connection errors and 5xx with the same idempotency key.
                max_network_retries=2,
                http_client=stripe.HTTPXClient(timeout=self._timeout_s, allow_sync_methods=True),
            )
        return self._client

    def price(self, price_id: str) -> Price:
        found = self._call(lambda: self.client.v1.prices.retrieve(price_id))
        return Price(price_id=price_id, amount=int(found["unit_amount"]), currency=str(found["currency"]))

    def create_checkout(
        self,
        job_id: str,
        price_id: str,
        success_url: str,
        cancel_url: str,
        expires_at: datetime,
        idempotency_key: str,
    ) -> CheckoutSession:
        params = {
            "mode": "payment",
            "line_items": [{"price": price_id, "quantity": 1}],
            "allow_promotion_codes": True,
            "client_reference_id": job_id,
            "metadata": {"job_id": job_id},
            "success_url": success_url,
            "cancel_url": cancel_url,
            "expires_at": int(expires_at.timestamp()),
        }
        created = self._call(
            lambda: self.client.v1.checkout.sessions.create(params=params, options={"idempotency_key": idempotency_key})
        )
        return checkout_session(created)

    def get_checkout(self, session_id: str) -> CheckoutSession:
        return checkout_session(self._call(lambda: self.client.v1.checkout.sessions.retrieve(session_id)))

    def expire_checkout(self, session_id: str) -> None:
        import stripe

        try:
            self._call(lambda: self.client.v1.checkout.sessions.expire(session_id))
        except PaymentProviderError as refused:
            if not isinstance(refused.__cause__, stripe.InvalidRequestError):
                raise
            # Already complete or expired: nothing is left to close.

    def refund(self, payment_intent: str, amount: int, idempotency_key: str, job_id: str) -> str:
        # The key goes into the metadata too: Stripe forgets idempotency keys after 24 hours, a listing does not.
        metadata = {"job_id": job_id, "refund_key": idempotency_key}
        params = {"payment_intent": payment_intent, "amount": amount, "metadata": metadata}
        made = self._call(
            lambda: self.client.v1.refunds.create(params=params, options={"idempotency_key": idempotency_key})
        )
        return str(made["id"])

    def list_refunds(self, payment_intent: str) -> list[RefundRecord]:
        params = {"payment_intent": payment_intent, "limit": 100}
        every = self._call(lambda: list(self.client.v1.refunds.list(params=params).auto_paging_iter()))
        return [refund_record(r) for r in every]

    def list_checkouts(self, created_gte: datetime) -> list[CheckoutSession]:
        params = {"created": {"gte": int(created_gte.timestamp())}, "limit": 100}
        every = self._call(lambda: list(self.client.v1.checkout.sessions.list(params=params).auto_paging_iter()))
        return [checkout_session(s) for s in every]

    def list_refunds_since(self, created_gte: datetime) -> list[RefundRecord]:
        params = {"created": {"gte": int(created_gte.timestamp())}, "limit": 100}
        every = self._call(lambda: list(self.client.v1.refunds.list(params=params).auto_paging_iter()))
        return [refund_record(r) for r in every]

    def checkout_of_payment(self, payment_intent: str) -> CheckoutSession | None:
        params = {"payment_intent": payment_intent, "limit": 1}
        found = self._call(lambda: self.client.v1.checkout.sessions.list(params=params))
        return checkout_session(found.data[0]) if found.data else None

    def verify_event(self, payload: bytes, signature: str | None) -> PaymentEvent:
        import stripe

        if not signature:
            raise PaymentWebhookRejected("The Stripe-Signature header is missing.")
        try:
            event = stripe.Webhook.construct_event(payload, signature, self._webhook_secret(), self._tolerance_s)
        except stripe.SignatureVerificationError as exc:
            raise PaymentWebhookRejected("The Stripe signature does not match, or the event is too old.") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise PaymentWebhookRejected("The Stripe event is not valid JSON.") from exc
        body = json.loads(payload)
        kind = str(body.get("type") or "")
        session = None
        if kind in CHECKOUT_EVENTS:
            try:
                session = checkout_session(body["data"]["object"])
            except (KeyError, TypeError, ValueError) as exc:
                raise PaymentWebhookRejected("The Stripe event has no checkout session.") from exc
        return PaymentEvent(event_id=str(event.id), type=kind, session=session)

    @staticmethod
    def _call(action: Callable[[], Any]) -> Any:
        import stripe

        try:
            return action()
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            raise PaymentProviderUnavailable() from exc
        except stripe.APIError as exc:
            raise PaymentProviderUnavailable() from exc
        except stripe.StripeError as exc:
            # The message names the parameter at fault; it carries no card data (we never send any).
            raise PaymentProviderError(f"Stripe refused the request: {exc.user_message or exc.code}") from exc

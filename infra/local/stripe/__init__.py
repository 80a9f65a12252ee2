"""A local stand-in for Stripe's REST API: Checkout Sessions, a hosted checkout page, refunds and signed webhooks.

It speaks the subset of `https://api.stripe.com/v1` the payments adapter uses, so the official `stripe` library works
against it unchanged: form-encoded requests (`line_items[0][price]=…`), Stripe's object shapes and error envelope,
`Idempotency-Key` honoured (replayed with `Idempotent-Replayed: true`, refused with `idempotency_error` when the
parameters differ). It is seeded with one product and its $12.90 price, and a $3-off coupon behind the promotion
code SAVE3. A session's `url` is the emulator's own hosted page, where a person (or a script) enters an email and a
promotion code and pays; the emulator then signs `checkout.session.completed` as Stripe does
(`Stripe-Signature: t=…,v1=HMAC-SHA256(secret, "t.body")`) and POSTs it to the webhook URL, retrying on failure.
Open sessions expire by themselves when the injected clock passes their `expires_at`.

Test hooks live under `/_emulator/` (no API key; `hooks.py`). Lists take `created[gt|gte|lt|lte]` as Stripe's do;
refunds can be made directly (`POST /v1/refunds`), as the dashboard does.

- `emulator.py`: `StripeEmulator`, its parts put together and its route table; `routing.py`: how a request
  reaches its handler (API key, `idempotency.py`, headers); `params.py`, `lists.py`, `errors.py`, `wire.py`: the
  API's parameters, lists, errors and answers;
- `state.py`: everything it remembers; `seeds.py`: what it is seeded with;
- `checkout.py`, `payments.py`, `hosted_pages.py`: Checkout Sessions, paying them, and the hosted page;
- `refunds.py`, `catalogue.py`, `events.py`: the other resources;
- `webhooks.py`: signing and delivery; `faults.py`: delivery faults.

    python -m infra.local.stripe --port 8789
"""

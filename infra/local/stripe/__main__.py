"""`python -m infra.local.stripe --port 8789`: the Stripe emulator on its own, until Ctrl-C."""

from __future__ import annotations

from infra.local.emulators.cli import cli_parser, parse_cli
from infra.local.stripe.emulator import DEFAULT_API_KEY, StripeEmulator
from infra.local.stripe.seeds import DEFAULT_PRICE_ID


def main() -> None:
    parser = cli_parser("Local Stripe emulator (Checkout, refunds, signed webhooks).", port=8789)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--webhook-url", default=None, help="where events are POSTed; none when omitted")
    parser.add_argument("--price-id", default=DEFAULT_PRICE_ID)
    args = parse_cli(parser)
    emulator = StripeEmulator(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        price_id=args.price_id,
    )
    emulator.start()
    print(
        f"Stripe emulator on {emulator.url}\napi key: {args.api_key}\nprice: {emulator.price_id}\n"
        f"webhook secret: {emulator.webhook_secret}\nwebhook url: {emulator.webhook_url}",
        flush=True,
    )
    emulator.serve_until_interrupted()


if __name__ == "__main__":
    main()

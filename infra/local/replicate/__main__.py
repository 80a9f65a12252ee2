"""`python -m infra.local.replicate --port 8788`: the Replicate emulator on its own, until Ctrl-C."""

from __future__ import annotations

from infra.local.emulators.cli import cli_parser, parse_cli
from infra.local.replicate.emulator import DEFAULT_API_TOKEN, ReplicateEmulator


def main() -> None:
    parser = cli_parser("Local Replicate emulator (PhotoMaker, labelled previews).", port=8788)
    parser.add_argument("--api-token", default=DEFAULT_API_TOKEN)
    parser.add_argument("--step-delay", type=float, default=0.2, help="seconds per lifecycle step")
    args = parse_cli(parser)
    emulator = ReplicateEmulator(
        host=args.host,
        port=args.port,
        api_token=args.api_token,
        webhook_secret=args.webhook_secret,
        step_delay_s=args.step_delay,
    )
    emulator.start()
    print(f"Replicate emulator on {emulator.url}\nwebhook secret: {emulator.webhook_secret}", flush=True)
    emulator.serve_until_interrupted()


if __name__ == "__main__":
    main()

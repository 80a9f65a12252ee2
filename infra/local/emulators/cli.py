"""What every emulator's command line shares: its common options and logging set up for a CLI run."""

from __future__ import annotations

import argparse
import logging


def cli_parser(description: str, port: int) -> argparse.ArgumentParser:
    """An emulator CLI's parser, with the options every emulator takes: --host, --port, --webhook-secret."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--webhook-secret", default=None, help="whsec_...; random when omitted")
    return parser


def parse_cli(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The command line's options, with logging set up for a CLI run (INFO, timestamped)."""
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return args

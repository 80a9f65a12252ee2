"""`portrait-studio`: operator and support commands.

portrait-studio normalize FILE... [--out DIR] [--json]   the normalize function's checks on local files
portrait-studio likeness --refs FILE... --outputs FILE... [--json]
                                                          intake's person check on the references and
                                                          collect's face gate on each output
portrait-studio retention-report                          prove the 48-hour promise (exit 1 if broken)
portrait-studio ledger [--since 72h] [--json]             match Stripe against our records (exit 1 if unrepaired)
portrait-studio store-webhook-secret                      fetch Replicate's signing secret into SSM

With no PORTRAIT_* setting in the environment, the last two use the running local stack found in
.local/stack.json (in this directory or a parent; PORTRAIT_LOCAL_STATE names another).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "normalize":
        from portrait_studio.cli_normalize import run

        return run(rest)
    if command == "likeness":
        return likeness(rest)
    if command == "retention-report":
        with local_stack_unless_configured():
            return retention_report(rest)
    if command == "ledger":
        with local_stack_unless_configured():
            return ledger(rest)
    if command == "store-webhook-secret":
        with local_stack_unless_configured():
            return store_webhook_secret(rest)
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


@contextmanager
def local_stack_unless_configured() -> Iterator[None]:
    """Point the command at the running local stack when no settings say where to go.

    The environment is restored afterwards: `main` also runs inside other processes (tests)."""
    from portrait_studio.local_discovery import find_local_stack

    found = find_local_stack(os.environ, Path.cwd())
    if found is None:
        yield
        return
    print(f"using the local stack at {found.api_url} ({found.path})", file=sys.stderr)
    saved = {name: os.environ.get(name) for name in found.environment}
    os.environ.update(found.environment)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def likeness(argv: list[str]) -> int:
    """Settings come from the environment (e.g. PORTRAIT_MIN_SHORT_SIDE_PX for small published crops)."""
    parser = argparse.ArgumentParser(prog="portrait-studio likeness")
    parser.add_argument("--refs", nargs="+", type=Path, required=True, metavar="FILE", help="reference photos")
    parser.add_argument("--outputs", nargs="+", type=Path, required=True, metavar="FILE", help="generated images")
    parser.add_argument("--json", action="store_true")
    try:
        args = parser.parse_args(argv)
        for path in [*args.refs, *args.outputs]:
            if not path.is_file():
                parser.error(f"not a readable file: {path}")
    except SystemExit as exit_:  # argparse prints the usage and exits 2 (0 for --help)
        return exit_.code if isinstance(exit_.code, int) else 2
    from portrait_studio.config import get_settings
    from portrait_studio.services.likeness_report import assess

    report = assess(
        [(str(p), p.read_bytes()) for p in args.refs], [(str(p), p.read_bytes()) for p in args.outputs], get_settings()
    )
    if args.json:
        print(report.model_dump_json())
        return 0
    for ref in report.references:
        distance = "" if ref.distance is None else f"  distance {ref.distance:.2f}"
        print(f"reference  {ref.verdict:16}  {ref.file}{distance}")
    for out in report.outputs:
        figures = "" if out.distance is None else f"  distance {out.distance:.2f}  likeness {out.likeness}"
        print(f"output     {out.verdict:16}  {out.file}{figures}")
    return 0


def retention_report(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="portrait-studio retention-report")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from portrait_studio import wiring

    report = wiring.container().retention.report()
    if args.json:
        print(
            json.dumps(
                {
                    "jobs_by_status": report.jobs_by_status,
                    "oldest_object_age_h": report.oldest_object_age_h,
                    "orphans": len(report.orphans),
                    "jobs_holding_email": report.jobs_holding_email,
                    "promise_kept": report.promise_kept,
                }
            )
        )
    else:
        print("jobs by status: " + (", ".join(f"{k} {v}" for k, v in sorted(report.jobs_by_status.items())) or "none"))
        age = "no objects" if report.oldest_object_age_h is None else f"{report.oldest_object_age_h:.2f} h"
        print(f"oldest object under jobs/: {age}")
        print(f"orphaned job prefixes: {len(report.orphans)}")
        print(f"anything older than {report.max_age_h:.0f} h: {'NO' if report.promise_kept else 'YES'}")
    return 0 if report.promise_kept else 1


def parse_window(text: str) -> timedelta:
    """`72h`, `3d`, `90m`: the ledger's window."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: a number and m, h or d (e.g. 72h)")
    return timedelta(**{units[text[-1]]: int(text[:-1])})


def ledger(argv: list[str]) -> int:
    """Every payment and refund Stripe holds for the window, matched to a job or a tombstone; what can be repaired
    is (once). One line per mismatch, then the totals; exit 1 while an unrepaired mismatch is left."""
    parser = argparse.ArgumentParser(prog="portrait-studio ledger")
    parser.add_argument("--since", type=parse_window, default=timedelta(hours=72))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from portrait_studio import wiring

    report = wiring.container().ledger.run(args.since)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        for item in report.items:
            print(item.line())
        totals = report.as_dict()
        print(" ".join(f"{name} {totals[name]}" for name in ("sessions", "paid", "refunded", "mismatches", "repaired")))
    return 1 if report.unrepaired else 0


def store_webhook_secret(argv: list[str]) -> int:
    """Fetch `GET /v1/webhooks/default/secret` with the Replicate token and keep it in SSM."""
    argparse.ArgumentParser(prog="portrait-studio store-webhook-secret").parse_args(argv)
    from portrait_studio import wiring
    from portrait_studio.adapters.replicate_http import fetch_webhook_secret
    from portrait_studio.adapters.ssm_secrets import put_secure_parameter

    c = wiring.container()
    s = c.settings
    secret = fetch_webhook_secret(str(s.replicate_api_url), c.secrets.get(s.replicate_token_param))
    put_secure_parameter(s, s.webhook_secret_param, secret)
    print(f"stored the webhook signing secret in {s.webhook_secret_param}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The local stack: every function of `template.yaml` running on 127.0.0.1, with no cloud account.

- a moto server: S3 (standing in for R2), SQS, DynamoDB, SSM, SES — resources created from the template;
- an AWS gate in front of it that authorizes every call with the calling function's role as SAM deploys it
  (`infra/local/aws_gate/`; denials at `GET /_local/iam`; `PORTRAIT_LOCAL_IAM=off` only to debug), and an
  S3 gate standing in for R2 that accepts only the R2 key (given to the functions the template gives it) and
  presigned URLs;
- each function in worker processes of its own, with its template's environment, Timeout, MemorySize and
  concurrency (see `infra/local/invoker/`);
- an HTTP gateway that turns requests into API Gateway HTTP API v2 events for the template's routes
  (`infra/local/gateway/`);
- pollers that feed each queue to its function in real SQS batch events (partial failures honoured;
  `infra/local/queues/`);
- a scheduler firing the template's schedules on a clock that `POST /_local/clock` can move
  (`infra/local/scheduler/`);
- crash faults for the queue-driven invocations, set with `PUT /_local/faults` (see `infra/local/queues/crashes.py`);
- counters of what the functions would be billed for, `GET /_local/usage` (see `infra/local/usage/`);
- the Replicate emulator (`infra/local/replicate/`), whose webhooks come back through the gateway;
- the Stripe emulator (`infra/local/stripe/`: checkout page, signed events to POST /webhooks/stripe);
- every email sent through SES, readable at `GET /_local/mail` (`PUT {"deliver": false}` makes SES refuse).

`python -m infra.local.stack` runs it in the foreground; Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.local.account import REGION
from infra.local.aws_gate.identities import ADMIN_KEY
from infra.local.cloud import LocalCloud
from infra.local.environment import portrait_environment, put_deploy_parameters
from infra.local.gateway.server import Gateway, LocalRoute
from infra.local.log import log
from infra.local.mail import mail_route
from infra.local.ports import listening_socket, port_of
from infra.local.queues.crashes import CrashFaults, faults_route
from infra.local.queues.pollers import QueuePollers
from infra.local.scheduler.clock import clock_route, make_clock
from infra.local.scheduler.scheduler import Scheduler
from infra.local.template import ROOT, LocalTemplate
from infra.local.usage.counters import Usage

LOCAL_TOKEN = "r8_local_emulator_token"  # noqa: S105 - the emulator's fixed local token, not a secret
MAIL_IDENTITY = "portrait-studio.local"  # the SES identity outcome emails are sent from (moto keeps them)
LOCAL_STRIPE_KEY = "sk_test_local_emulator"
# The stack's own (admin) credentials; fixed ones keep a developer's real AWS keys away from the local endpoints.
LOCAL_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": ADMIN_KEY,
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


class LocalStack:
    def __init__(
        self,
        port: int = 3000,
        state_dir: Path = ROOT / ".local",
        moto_port: int = 0,
        replicate_port: int = 0,
        visibility_timeout_s: int | None = 30,
        step_delay_s: float = 0.3,
        template_path: Path | None = None,
    ) -> None:
        self.template_path = template_path
        self.template = LocalTemplate.read(template_path)
        # The gateway's and moto's ports are held from here on: URLs naming them are handed out before they serve.
        self._gateway_socket = listening_socket(port)
        self.port = port_of(self._gateway_socket)
        moto_socket = listening_socket(moto_port)
        self.replicate_port = replicate_port  # 0: the emulator binds a free port when it starts
        self.state_dir = state_dir
        self.visibility_timeout_s = visibility_timeout_s
        self.step_delay_s = step_delay_s
        self.api_url = f"http://127.0.0.1:{self.port}"
        self.cloud = LocalCloud(self.template, template_path, moto_socket, MAIL_IDENTITY)
        self.usage = Usage(self.template, self.cloud.table_names)
        self.runtime: Any = None  # infra.local.invoker.runtime.LambdaRuntime, once started
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.clock: Any = None
        self.scheduler: Scheduler | None = None
        self._gateway: Gateway | None = None
        self.emulator: Any = None
        self.stripe: Any = None
        self.crashes = CrashFaults()
        self._pollers: QueuePollers | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        os.environ.update(LOCAL_AWS_ENVIRONMENT)
        self.cloud.start(self.usage, lambda: self.clock.now() if self.clock else datetime.now(UTC))
        self.cloud.provision(self.api_url, self.visibility_timeout_s)
        self._start_emulator()
        self._start_stripe()
        self._start_functions()
        self._start_gateway()
        self._start_pollers()
        self._start_scheduler()
        self._write_state()
        log(
            f"ready: api {self.api_url}  web {self.api_url}/  aws {self.cloud.aws_url}  replicate {self.emulator.url}"
            f"  stripe {self.stripe.url}  mail {self.api_url}/_local/mail"
        )

    def stop(self) -> None:
        self._stop.set()
        if self.runtime:
            self._log_longest_invocations()
        if self._gateway:
            self._gateway.stop()
        else:
            self._gateway_socket.close()  # the stack stopped before its gateway served
        if self._pollers:
            self._pollers.wait_for_batches(timeout_s=5)
        for thread in self._threads:
            thread.join(timeout=5)
        if self.runtime:
            self.runtime.stop()
        if self.emulator:
            self.emulator.stop()
        if self.stripe:
            self.stripe.stop()
        self.cloud.stop()
        for name in ("stack.json", "clock-offset"):
            (self.state_dir / name).unlink(missing_ok=True)
        log("stopped")

    def _log_longest_invocations(self) -> None:
        """How near each function came to its Timeout (CloudWatch's Duration maximum): a slow batch shows here
        before it is killed."""
        functions = self.usage.snapshot()["lambda"]
        longest = [
            f"{name} {figures['longest_ms'] / 1000:.1f}/{self.runtime.timeout_s(name):g} s"
            for name, figures in sorted(functions.items())
            if figures["invocations"]
        ]
        if longest:
            log("longest invocation / timeout: " + ", ".join(longest))

    def _start_emulator(self) -> None:
        from infra.local.replicate.emulator import ReplicateEmulator

        self.clock = make_clock(self.state_dir)
        self.emulator = ReplicateEmulator(
            port=self.replicate_port, api_token=LOCAL_TOKEN, step_delay_s=self.step_delay_s, clock=self.clock.now
        )
        self.emulator.start()
        self.usage.watch_replicate(self.emulator)

    def _start_stripe(self) -> None:
        """Stripe's emulator, seeded with the $12.90 price and SAVE3; its signed events come back through the
        gateway to POST /webhooks/stripe, as Stripe's would to the deployed API."""
        from infra.local.stripe.emulator import StripeEmulator

        self.stripe = StripeEmulator(
            api_key=LOCAL_STRIPE_KEY, webhook_url=f"{self.api_url}/webhooks/stripe", clock=self.clock.now
        )
        self.stripe.start()
        put_deploy_parameters(self.cloud, self.emulator.url, LOCAL_TOKEN, self.stripe, LOCAL_STRIPE_KEY)

    def credentials_for(self, function: str) -> dict[str, str]:
        """The AWS credentials `function`'s process runs with: its own role's (infra/local/aws_gate/identities.py)."""
        return self.cloud.identities.credentials_for(function)

    def local_environment(self) -> dict[str, str]:
        """Every PORTRAIT_* variable the template sets, with its local value."""
        return portrait_environment(self.cloud, self.emulator.url, self.stripe, self.api_url, MAIL_IDENTITY)

    def _start_functions(self) -> None:
        """Each function in worker processes of its own, with only its template's environment (see
        `infra/local/invoker/`); nothing of theirs is set in this process."""
        from infra.local.invoker.environment import function_environment, function_spec
        from infra.local.invoker.runtime import LambdaRuntime

        cap = int(os.environ.get("LOCAL_MAX_WORKERS_PER_FUNCTION", "2"))
        values = self.local_environment()
        # Unless the stack runs the template's own visibility timeouts (None), they are shortened (a crashed batch
        # comes back in seconds, not minutes), so the functions the queues feed get at most that Timeout: AWS
        # refuses a mapping whose queue hides a batch for less time than its function may run (else a slow batch
        # is handed out again while it still runs).
        fed_by_queue = {source.function for source in self.template.queue_sources}
        specs = {
            function: function_spec(
                self.template,
                function,
                function_environment(
                    self.template, function, values, self.credentials_for(function), os.environ, REGION
                ),
                cap,
                timeout_cap_s=self.visibility_timeout_s if function in fed_by_queue else None,
            )
            for function in self.template.functions
        }
        self.runtime = LambdaRuntime(specs, clock_file=self.state_dir / "clock-offset", observer=self.usage)
        self.runtime.prewarm()

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Run `function` on `event` in one of its workers; a handler error or a killed worker raises."""
        with self.usage.invocation(function):
            return self.runtime.invoke(function, event)

    # --- gateway, queues, schedules ---------------------------------------------------------------------
    def _start_gateway(self) -> None:
        self._gateway = Gateway(
            self._gateway_socket,
            self.template.routes,
            self.invoke,
            self._local_routes(),
            self.api_url,
            self.cloud.r2_url,
        )
        self._spawn("gateway", self._gateway.bind().serve_forever)

    def _local_routes(self) -> dict[str, LocalRoute]:
        """The stack's own controls under `/_local/` (see each part for what its route takes)."""
        json_headers = {"Content-Type": "application/json"}
        aws_gate = self.cloud.aws_gate
        assert aws_gate is not None
        return {
            "/_local/usage": lambda method, _path, _body: self.usage.route(method),
            "/_local/iam": aws_gate.route,
            "/_local/aws-faults": aws_gate.route,
            "/_local/faults": lambda method, _path, body: faults_route(self.crashes, method, body),
            "/_local/clock": lambda method, _path, body: clock_route(self.clock, self.fire_due_schedules, method, body),
            "/_local/mail": lambda method, _path, body: mail_route(
                method, body, lambda: self.cloud.client("sesv2"), MAIL_IDENTITY
            ),
            "/_local/health": lambda _method, _path, _body: (200, json_headers, b'{"ok":true}'),
        }

    def _start_pollers(self) -> None:
        pollers = QueuePollers(
            self.template.queue_sources,
            self.cloud.identities,
            self.invoke,
            self.crashes,
            self._stop,
            region=REGION,
            queue_urls=self.cloud.queue_urls,
            queue_arn=self.cloud.queue_arn,
            aws_gate_url=self.cloud.aws_gate_url,
        )
        # Not joined on stop: a poller spends most of its time in a 20 s long poll. Stopping waits for the batches
        # being handled instead (wait_for_batches).
        pollers.start(
            self.runtime.concurrency, self._spawn_unjoined, self.runtime.timeout_s, self.cloud.visibility_timeout_s
        )
        self._pollers = pollers

    def _start_scheduler(self) -> None:
        self.scheduler = Scheduler(self.template.schedules, self.clock.now, self.invoke, self._stop)
        self.scheduler.prime()
        self._spawn("scheduler", self.scheduler.run)

    def fire_due_schedules(self) -> list[str]:
        """Invoke every schedule whose time has come (once, however many periods passed)."""
        assert self.scheduler is not None
        return self.scheduler.fire_due()

    # --- helpers -----------------------------------------------------------------------------------
    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        self._threads.append(self._spawn_unjoined(name, target))

    @staticmethod
    def _spawn_unjoined(name: str, target: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    def state(self) -> dict[str, Any]:
        return {
            "api_url": self.api_url,
            "web_url": f"{self.api_url}/",
            "aws_endpoint_url": self.cloud.aws_url,
            "r2_endpoint_url": self.cloud.r2_url,
            "replicate_url": self.emulator.url,
            "replicate_token": LOCAL_TOKEN,
            "stripe_url": self.stripe.url,
            # The emulator's own loopback-only key: a script can act as Stripe's dashboard (a refund by hand).
            "stripe_secret_key": LOCAL_STRIPE_KEY,
            "bucket": self.cloud.bucket,
            "region": REGION,
            "tables": self.cloud.table_names,
            "table": self.cloud.table_names.get("JobsTable"),
            "queues": self.cloud.queue_urls,
            "pid": os.getpid(),
            "iam_enforced": self.cloud.aws_gate.enforced if self.cloud.aws_gate else False,
            # Everything an operator command needs to reach this stack (`portrait-studio` applies it as is).
            "environment": {**LOCAL_AWS_ENVIRONMENT, **self.local_environment()},
        }

    def _write_state(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        target = self.state_dir / "stack.json"
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.state(), indent=2))
        temporary.replace(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Portrait Studio locally (Ctrl-C stops).")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local")
    parser.add_argument("--step-delay", type=float, default=float(os.environ.get("EMULATOR_STEP_DELAY", "0.3")))
    parser.add_argument("--template", type=Path, default=None, help="another template.yaml (tests take grants away)")
    parser.add_argument(
        "--visibility-timeout",
        default=os.environ.get("LOCAL_VISIBILITY_TIMEOUT_S", "30"),
        help="seconds SQS hides a received batch (and the most a queue-fed function may run), or `template`",
    )
    args = parser.parse_args(argv)
    stack = LocalStack(
        port=args.port,
        state_dir=args.state_dir,
        step_delay_s=args.step_delay,
        template_path=args.template,
        visibility_timeout_s=None if args.visibility_timeout == "template" else int(args.visibility_timeout),
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    try:
        stack.start()
        print(f"Portrait Studio is running: open {stack.api_url}/ (API {stack.api_url}). Ctrl-C stops.", flush=True)
        while not stopping.wait(0.5):
            pass
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

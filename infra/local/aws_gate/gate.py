"""`AwsGate`: who may call what, the denials it recorded, its faults, and its server in front of moto."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

from infra.local.aws_gate.faults import AwsFaults
from infra.local.aws_gate.handler import GateHandler
from infra.local.aws_gate.iam import Roles
from infra.local.aws_gate.request import AwsRequest

CallerKind = Literal["function", "event_source", "admin"]


@dataclass(frozen=True)
class Caller:
    kind: CallerKind
    function: str | None = None


# (caller, request, body sent, status answered, body answered): the stack's usage counters.
CallObserver = Callable[[Caller, AwsRequest, bytes, int, bytes], None]


class AwsGate:
    def __init__(
        self,
        upstream: str,
        roles: Roles,
        callers: Mapping[str, Caller],
        clock: Callable[[], datetime],
        *,
        region: str,
        account: str,
        enforced: bool = True,
        on_call: CallObserver | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.roles, self.callers, self.clock = roles, dict(callers), clock
        self.region, self.account, self.enforced = region, account, enforced
        self.on_call = on_call
        self.url = ""
        self._denied: list[dict[str, str]] = []
        self.faults = AwsFaults()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- decisions ---------------------------------------------------------------------------------
    def decide(self, caller: Caller, request: AwsRequest) -> tuple[str, str] | None:
        """The first (action, resource) the caller's role does not allow, recorded; None when all are allowed."""
        if caller.kind == "admin" or caller.function is None:
            return None
        for action, resource in request.checks:
            if not self.roles.allows(caller.function, action, resource):
                denial = {"function": caller.function, "action": action, "resource": resource}
                with self._lock:
                    self._denied.append({**denial, "at": self.clock().isoformat()})
                print(f"[iam] denied {caller.function}: {action} on {resource}", flush=True)
                return (action, resource) if self.enforced else None
        return None

    def denial_message(self, caller: Caller, action: str, resource: str) -> str:
        assert caller.function is not None
        role = self.roles.roles[caller.function].name
        return (
            f"User: arn:aws:sts::{self.account}:assumed-role/{role}/{caller.function} is not authorized to perform: "
            f"{action} on resource: {resource} because no identity-based policy allows the {action} action"
        )

    def route(self, method: str, path: str = "/_local/iam", body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        """`GET /_local/iam`: whether roles are enforced and every denial so far; `DELETE` forgets the denials.
        `/_local/aws-faults`: the service errors to answer (faults.py)."""
        if path == "/_local/aws-faults":
            return self.faults.route(method, body)
        headers = {"Content-Type": "application/json"}
        if method not in ("GET", "DELETE"):
            return 405, headers, b'{"error":{"code":"method_not_allowed","message":"Use GET or DELETE."}}'
        with self._lock:
            if method == "DELETE":
                self._denied.clear()
            return 200, headers, json.dumps({"enforced": self.enforced, "denied": list(self._denied)}).encode()

    # --- server ------------------------------------------------------------------------------------
    def start(self) -> None:
        handler = type("AwsGateHandler", (GateHandler,), {"gate": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

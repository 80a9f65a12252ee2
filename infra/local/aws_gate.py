"""A proxy in front of moto that authorizes every AWS call as IAM would, and counts what it would bill.

moto accepts any credentials and allows everything. Each function process gets its own access key (its
execution role), each queue poller the key of its function's event source mapping (which polls with the
function's role, as Lambda's does), and the stack itself an admin key. For every request the gate reads the
caller, the operation and the resources (`infra/local/aws_requests.py`), asks the role
(`infra/local/iam.py`), and either forwards it to moto untouched or answers the error AWS answers —
`AccessDeniedException` / `AccessDenied` naming the action and resource — and records the denial for
`GET /_local/iam`. An unknown key is refused as AWS refuses one (`UnrecognizedClientException`). An allowed call
can be made to fail as the service sometimes fails (`/_local/aws-faults`, `infra/local/aws_faults.py`).
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

from infra.local.aws_faults import AwsFaults
from infra.local.aws_requests import AwsRequest, read_request
from infra.local.iam import Roles

CallerKind = Literal["function", "event_source", "admin"]
INVALID_TOKEN = "The security token included in the request is invalid."  # noqa: S105 - AWS's message
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "expect"})


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
        `/_local/aws-faults`: the service errors to answer (infra/local/aws_faults.py)."""
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
        handler = type("AwsGateHandler", (_Handler,), {"gate": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    gate: AwsGate

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: request bodies hold job ids and emails."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        gate = self.gate
        request = read_request(self.command, self.path, headers, body, gate.region, gate.account)
        caller = gate.callers.get(request.access_key or "")
        if caller is None:
            self._refuse(request, 400, "UnrecognizedClientException", INVALID_TOKEN)
            return
        denied = gate.decide(caller, request)
        if denied is not None:
            self._refuse(request, *_access_denied(request, gate.denial_message(caller, *denied)))
            return
        if gate.faults.take(caller.function, [action for action, _ in request.checks], body):
            self._refuse(request, 500, "InternalServerError", "Internal server error (a local fault)")
            return
        status, reply_headers, answer = self._forward(body)
        if gate.on_call is not None:
            gate.on_call(caller, request, body, status, answer)
        self._answer(status, reply_headers, answer)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_POST

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(self.gate.upstream_host, self.gate.upstream_port, timeout=60)
        try:
            connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    connection.putheader(name, value)
            connection.endheaders(body if body or self.command in ("PUT", "POST", "PATCH") else None)
            response = connection.getresponse()
            answer = response.read()
            headers = [(n, v) for n, v in response.msg.items() if n.lower() not in HOP_BY_HOP | {"content-length"}]
            return response.status, headers, answer
        finally:
            connection.close()

    def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self, request: AwsRequest, status: int, code: str, message: str) -> None:
        request_id = str(uuid.uuid4())
        headers = [("x-amzn-RequestId", request_id)]
        if request.service == "ses":  # REST JSON: the code travels in a header
            headers += [("x-amzn-ErrorType", f"{code}:"), ("Content-Type", "application/json")]
            body = {"message": message}
        else:
            json_1_0 = request.service in ("dynamodb", "sqs")
            headers.append(("Content-Type", f"application/x-amz-json-{'1.0' if json_1_0 else '1.1'}"))
            if request.service == "sqs":  # SQS's JSON protocol keeps its query-protocol error codes
                headers.append(("x-amzn-query-error", f"{_sqs_code(code)};Sender"))
            body = {"__type": f"com.amazon.coral.service#{code}", "message": message, "Message": message}
        self._answer(status, headers, json.dumps(body).encode())


def _sqs_code(code: str) -> str:
    return "AccessDenied" if code == "AccessDeniedException" else code


def _access_denied(request: AwsRequest, message: str) -> tuple[int, str, str]:
    return (403 if request.service == "ses" else 400), "AccessDeniedException", message

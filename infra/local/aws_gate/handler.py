"""One AWS call at the gate: an unknown key, a denied action or an injected fault is refused as AWS refuses it;
anything else goes to moto untouched, and its answer comes back (and is told to the gate's observer)."""

from __future__ import annotations

import http.client
import json
import uuid
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from infra.local.aws_gate.request import AwsRequest, read_request

if TYPE_CHECKING:
    from infra.local.aws_gate.gate import AwsGate

INVALID_TOKEN = "The security token included in the request is invalid."  # noqa: S105 - AWS's message
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "expect"})


class GateHandler(BaseHTTPRequestHandler):
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

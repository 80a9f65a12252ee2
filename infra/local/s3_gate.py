"""A reverse proxy in front of moto's S3 that checks presigned URLs the way R2 and S3 do.

moto does not verify query-string (presigned) signatures, so locally an upload of another type or size
than the one signed, or one made after expiry, would be accepted. The gate recomputes SigV4 query auth
for every request whose query carries it and answers S3's own 4xx XML errors when it does not hold:

- `SignatureDoesNotMatch` (403): method, path, query or any signed header (Content-Type, Content-Length,
  Host, ...) differs from what was signed, or the signature itself is wrong;
- `AccessDenied` "Request has expired" (403): `X-Amz-Date` + `X-Amz-Expires` is before the gate's clock;
- `InvalidAccessKeyId` (403): the access key id in `X-Amz-Credential` is not one of `credentials`;
- `AuthorizationQueryParametersError` (400): the SigV4 query parameters are missing or malformed;
- `InvalidArgument` (400): both a query signature and an `Authorization` header.

Requests with an `Authorization` header (the functions' own boto3 calls) go to moto unchanged when their key
id is one of `header_keys` (default: any; the local stack allows only the R2 key, as R2 knows no AWS role):
`InvalidAccessKeyId` (403) otherwise. Unsigned ones (CORS preflight) go to moto unchanged.
Everything is forwarded verbatim — raw request target, headers but the hop-by-hop ones,
body — and moto's answer comes back as it is (CORS headers included). The gate logs nothing: presigned URLs
carry signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import re
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlsplit
from xml.sax.saxutils import escape

DEFAULT_CREDENTIALS: Mapping[str, str] = MappingProxyType({"testing": "testing"})

ALGORITHM = "AWS4-HMAC-SHA256"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_EXPIRES_S = 604_800  # a week, S3's limit for SigV4 presigned URLs
MAX_BODY_BYTES = 512 * 1024 * 1024  # far above the 30 MB uploads; only guards the gate's memory
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",  # the gate has answered `100 Continue` itself and holds the whole body
    }
)
AUTH_QUERY_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)
MISSING_AUTH_PARAMS = (
    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, "
    "X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
)
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your key and signing method."
)


@dataclass(frozen=True)
class Rejection:
    """An S3 error answer: status, `<Code>`, `<Message>` and S3's extra elements, in order."""

    status: int
    code: str
    message: str
    details: Sequence[tuple[str, str]] = field(default_factory=tuple)

    def xml(self, request_id: str, host_id: str) -> bytes:
        elements = [("Code", self.code), ("Message", self.message), *self.details]
        elements += [("RequestId", request_id), ("HostId", host_id)]
        inner = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in elements)
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{inner}</Error>'.encode()


def _uri_encode(raw: str, safe: str) -> str:
    """S3's canonical form of a raw (percent-encoded) URI component: decode once, encode once.

    Every byte but the RFC 3986 unreserved characters (and `safe`) is percent-encoded with upper-case hex,
    whatever the client sent — `%2b`, `+` and `%2B` in a path are all `%2B`; a raw `!` becomes `%21`.
    botocore's presigned URLs are already in this form, so for them it is the identity.
    """
    return quote(unquote_to_bytes(raw), safe=safe)


def _query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """(key, value) pairs of a raw query string in S3's canonical encoding; `a` alone is `("a", "")`."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((_uri_encode(key, "-_.~"), _uri_encode(value, "-_.~")))
    return pairs


def is_presigned(raw_query: str) -> bool:
    """Does the query carry SigV4 query auth? (`X-Amz-Algorithm` alone counts: a stripped signature is no pass.)"""
    return any(key in ("X-Amz-Signature", "X-Amz-Algorithm") for key, _ in _query_pairs(raw_query))


def _trim(value: str) -> str:
    return " ".join(value.split())


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def verify_presigned(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
    credentials: Mapping[str, str],
    now: datetime,
) -> Rejection | None:
    """Check SigV4 query auth as S3 does; None when the request may proceed.

    `raw_path` and `raw_query` are the request target as received (still percent-encoded), `headers` the
    actual request headers (repeats allowed), `now` an aware UTC datetime. The checks run in S3's order:
    parameters (400), access key (403), expiry (403), signature (403).
    """
    pairs = _query_pairs(raw_query)
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in AUTH_QUERY_PARAMS:
            if key in params:
                return Rejection(400, "AuthorizationQueryParametersError", f"{key} is given more than once.")
            params[key] = unquote_to_bytes(value).decode("utf-8", "replace")
    if any(name not in params for name in AUTH_QUERY_PARAMS):
        return Rejection(400, "AuthorizationQueryParametersError", MISSING_AUTH_PARAMS)
    if params["X-Amz-Algorithm"] != ALGORITHM:
        return Rejection(400, "AuthorizationQueryParametersError", f'X-Amz-Algorithm only supports "{ALGORITHM}"')
    scope = params["X-Amz-Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or scope[3] != "s3" or not scope[0]:
        return Rejection(
            400,
            "AuthorizationQueryParametersError",
            "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; "
            'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
        )
    access_key, scope_date, region, service, _ = scope
    amz_date = params["X-Amz-Date"]
    try:
        signed_at = datetime.strptime(amz_date, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return Rejection(
            400,
            "AuthorizationQueryParametersError",
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
        )
    try:
        expires_s = int(params["X-Amz-Expires"])
    except ValueError:
        return Rejection(400, "AuthorizationQueryParametersError", "X-Amz-Expires should be a number")
    if expires_s < 0:
        return Rejection(400, "AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative")
    if expires_s > MAX_EXPIRES_S:
        return Rejection(
            400,
            "AuthorizationQueryParametersError",
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES_S}",
        )
    secret = credentials.get(access_key)
    if secret is None:
        return Rejection(
            403,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            (("AWSAccessKeyId", access_key),),
        )
    expires_at = signed_at + timedelta(seconds=expires_s)
    if now > expires_at:
        return Rejection(
            403,
            "AccessDenied",
            "Request has expired",
            (
                ("X-Amz-Expires", str(expires_s)),
                ("Expires", expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")),
                ("ServerTime", now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
            ),
        )

    # The canonical request, from what actually arrived.
    signed_names = params["X-Amz-SignedHeaders"].split(";")
    actual: dict[str, list[str]] = {}
    for name, value in headers:
        actual.setdefault(name.lower(), []).append(_trim(value))
    canonical_headers = "".join(f"{name}:{','.join(actual.get(name, []))}\n" for name in signed_names)
    canonical_query = "&".join(f"{k}={v}" for k, v in sorted(pairs) if k != "X-Amz-Signature")
    payload_hash = ",".join(actual.get("x-amz-content-sha256", [])) or UNSIGNED_PAYLOAD
    canonical_request = "\n".join(
        (
            method.upper(),
            _uri_encode(raw_path or "/", "/~"),
            canonical_query,
            canonical_headers,
            params["X-Amz-SignedHeaders"],
            payload_hash,
        )
    )
    credential_scope = f"{scope_date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        (ALGORITHM, amz_date, credential_scope, hashlib.sha256(canonical_request.encode()).hexdigest())
    )
    expected = hmac.new(
        signing_key(secret, scope_date, region, service), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
        return Rejection(
            403,
            "SignatureDoesNotMatch",
            SIGNATURE_MISMATCH,
            (
                ("AWSAccessKeyId", access_key),
                ("StringToSign", string_to_sign),
                ("CanonicalRequest", canonical_request),
            ),
        )
    return None


class _BodyError(Exception):
    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.code)
        self.rejection = rejection


class _GateHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AmazonS3"
    sys_version = ""
    timeout = 120  # an idle keep-alive connection (or a stalled upload) frees its thread after this
    gate: S3Gate  # set on the per-gate subclass

    def log_message(self, format: str, *args: Any) -> None:
        """No access log, no error log: request lines hold presigned signatures."""

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = do_GET

    # ------------------------------------------------------------------ request

    def _handle(self) -> None:
        raw_path, _, raw_query = self.path.partition("?")
        raw_path = raw_path.partition("#")[0]
        try:
            body = self._read_body()
        except _BodyError as exc:
            self.close_connection = True
            self._reject(exc.rejection)
            return
        # A CORS preflight is never authenticated (the browser sends it to the presigned URL, query and all).
        if self.command != "OPTIONS" and is_presigned(raw_query):
            if self.headers.get("Authorization") is not None:
                self._reject(
                    Rejection(
                        400,
                        "InvalidArgument",
                        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature "
                        "query string parameter or the Authorization header should be specified",
                        (("ArgumentName", "Authorization"),),
                    )
                )
                return
            rejection = verify_presigned(
                self.command,
                raw_path,
                raw_query,
                self.headers.items(),
                self.gate.credentials,
                self.gate.now(),
            )
            if rejection is None:
                rejection = self._check_payload_hash(body)
            if rejection is not None:
                self._reject(rejection)
                return
        else:
            rejection = self._check_header_key()
            if rejection is not None:
                self._reject(rejection)
                return
        self._forward(body)

    def _check_header_key(self) -> Rejection | None:
        authorization = self.headers.get("Authorization")
        if authorization is None or self.gate.header_keys is None:
            return None
        found = re.search(r"Credential=([^/,\s]+)/", authorization)
        key = found.group(1) if found else ""
        if key in self.gate.header_keys:
            return None
        return Rejection(
            403,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            (("AWSAccessKeyId", key),),
        )

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            raise _BodyError(Rejection(400, "BadRequest", "An error occurred when parsing the HTTP request.")) from None
        if length < 0:
            raise _BodyError(Rejection(400, "BadRequest", "An error occurred when parsing the HTTP request."))
        if length > MAX_BODY_BYTES:
            raise _BodyError(Rejection(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size"))
        return self._read_exactly(length)

    def _read_exactly(self, length: int) -> bytes:
        chunks: list[bytes] = []
        remaining = length
        try:
            while remaining:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
        except (TimeoutError, OSError):
            pass
        if remaining:
            raise _BodyError(
                Rejection(
                    400,
                    "IncompleteBody",
                    "You did not provide the number of bytes specified by the Content-Length HTTP header",
                )
            )
        return b"".join(chunks)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        malformed = _BodyError(Rejection(400, "BadRequest", "An error occurred when parsing the HTTP request."))
        try:
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";", 1)[0].strip() or b"x", 16)
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise _BodyError(
                        Rejection(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
                    )
                chunks.append(self._read_exactly(size))
                self.rfile.readline(8)
        except (ValueError, TimeoutError, OSError):
            raise malformed from None

    def _check_payload_hash(self, body: bytes) -> Rejection | None:
        claimed = self.headers.get("x-amz-content-sha256")
        if claimed is None or claimed == UNSIGNED_PAYLOAD or claimed.startswith("STREAMING-"):
            return None
        if hashlib.sha256(body).hexdigest() != claimed.lower():
            return Rejection(
                400,
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                (
                    ("ClientComputedContentSHA256", claimed),
                    ("S3ComputedContentSHA256", hashlib.sha256(body).hexdigest()),
                ),
            )
        return None

    # ------------------------------------------------------------------ forwarding

    def _upstream_headers(self, body: bytes) -> list[tuple[str, str]]:
        dropped = set(HOP_BY_HOP)
        for value in self.headers.get_all("Connection", []):
            dropped |= {token.strip().lower() for token in value.split(",")}
        headers = [(name, value) for name, value in self.headers.items() if name.lower() not in dropped]
        if "Transfer-Encoding" in self.headers:
            # The gate decoded the chunked body; moto gets it with a length.
            headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
            headers.append(("Content-Length", str(len(body))))
        if "Host" not in self.headers:
            headers.append(("Host", self.gate.upstream_netloc))
        return headers

    def _exchange(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        connection = self.gate.connect()
        try:
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                connection.putheader(name, value)
            connection.endheaders(body if body or method in ("PUT", "POST", "PATCH") else None)
            return connection, connection.getresponse()
        except BaseException:
            connection.close()
            raise

    def _forward(self, body: bytes) -> None:
        if self.gate.on_forward is not None:
            self.gate.on_forward(self.command, self.path, self.headers)
        try:
            connection, response = self._exchange(self.command, self.path, self._upstream_headers(body), body)
        except (OSError, http.client.HTTPException):
            self.close_connection = True
            self._reject(Rejection(502, "BadGateway", "The gate could not reach the object store."))
            return
        try:
            self._relay(response)
        finally:
            response.close()
            connection.close()

    def _relay(self, response: http.client.HTTPResponse) -> None:
        dropped = set(HOP_BY_HOP)
        for value in response.msg.get_all("Connection", []):
            dropped |= {token.strip().lower() for token in value.split(",")}
        headers = [(n, v) for n, v in response.msg.items() if n.lower() not in dropped]
        length = response.getheader("Content-Length")
        bodiless = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        if length is None and not bodiless:
            # Chunked or close-delimited upstream: read it all and give the client a length.
            data = response.read()
            headers.append(("Content-Length", str(len(data))))
            self._start_response(response.status, response.reason, headers)
            self.wfile.write(data)
            return
        self._start_response(response.status, response.reason, headers)
        if bodiless:
            return
        while chunk := response.read(1 << 16):
            self.wfile.write(chunk)

    def _start_response(self, status: int, reason: str, headers: Sequence[tuple[str, str]]) -> None:
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    # ------------------------------------------------------------------ errors

    def _reject(self, rejection: Rejection) -> None:
        request_id = secrets.token_hex(8).upper()
        body = rejection.xml(request_id, secrets.token_urlsafe(24))
        headers = [
            ("x-amz-request-id", request_id),
            ("Date", self.date_time_string()),
            ("Server", self.server_version),
            ("Content-Type", "application/xml"),
            ("Content-Length", str(len(body))),
            *self._cors_headers(),
        ]
        self._start_response(rejection.status, http.client.responses.get(rejection.status, ""), headers)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _cors_headers(self) -> list[tuple[str, str]]:
        """The bucket's CORS answer for this origin and method, so a browser can read the error (as with S3)."""
        origin = self.headers.get("Origin")
        if origin is None or self.command == "OPTIONS":
            return []
        raw_path = self.path.partition("?")[0]
        probe = [
            ("Host", self.headers.get("Host", self.gate.upstream_netloc)),
            ("Origin", origin),
            ("Access-Control-Request-Method", self.command),
            ("Content-Length", "0"),
        ]
        try:
            connection, response = self._exchange("OPTIONS", raw_path or "/", probe, b"")
        except (OSError, http.client.HTTPException):
            return []
        try:
            response.read()
            if response.status != 200:
                return []
            return [
                (n, v)
                for n, v in response.msg.items()
                if n.lower().startswith("access-control-") or n.lower() == "vary"
            ]
        finally:
            response.close()
            connection.close()


class _GateServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Dropped client connections are routine; print nothing (tracebacks could show URLs)."""


class S3Gate:
    """`start()` it, point presigned URLs (and boto3, if you like) at `url`; moto stays behind it."""

    def __init__(
        self,
        upstream: str,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: Mapping[str, str] = DEFAULT_CREDENTIALS,
        clock: Callable[[], datetime] | None = None,
        *,
        upstream_timeout_s: float = 60.0,
        on_forward: Callable[[str, str, Message], None] | None = None,
        header_keys: frozenset[str] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream must be an http(s) URL, got {upstream!r}")
        self.upstream = upstream
        self.upstream_netloc = parts.netloc
        self._upstream_https = parts.scheme == "https"
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or (443 if self._upstream_https else 80)
        self._upstream_timeout_s = upstream_timeout_s
        self.host = host
        self.port = port
        self.credentials: Mapping[str, str] = dict(credentials)
        self.header_keys = header_keys
        self.clock = clock
        # Told the method, raw target and headers of each request forwarded upstream (the local stack counts
        # R2 operations with it); never of a rejected one.
        self.on_forward = on_forward
        self.url = f"http://{self._url_host(host)}:{port}"
        self._server: _GateServer | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def _url_host(host: str) -> str:
        return "127.0.0.1" if host in ("", "0.0.0.0") else host

    def now(self) -> datetime:
        now = self.clock() if self.clock is not None else datetime.now(UTC)
        return now if now.tzinfo is not None else now.replace(tzinfo=UTC)

    def connect(self) -> http.client.HTTPConnection:
        if self._upstream_https:
            return http.client.HTTPSConnection(
                self._upstream_host, self._upstream_port, timeout=self._upstream_timeout_s
            )
        return http.client.HTTPConnection(self._upstream_host, self._upstream_port, timeout=self._upstream_timeout_s)

    def start(self) -> None:
        if self._server is not None:
            return
        handler = type("S3GateHandler", (_GateHandler,), {"gate": self})
        self._server = _GateServer((self.host, self.port), handler)
        self.port = int(self._server.server_address[1])
        self.url = f"http://{self._url_host(self.host)}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="s3-gate", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> S3Gate:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["DEFAULT_CREDENTIALS", "Rejection", "S3Gate", "is_presigned", "signing_key", "verify_presigned"]

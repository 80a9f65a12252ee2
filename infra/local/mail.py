"""`/_local/mail`: the emails the functions sent through SES (moto keeps them), and SES refusing to send."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from typing import Any

from infra.local.account import ACCOUNT, REGION


def mail_route(method: str, body: bytes, sesv2: Callable[[], Any], identity: str) -> tuple[int, dict[str, str], bytes]:
    """GET: every email the functions sent through SES (moto keeps them). PUT {"deliver": false}: SES refuses
    to send from then on (its identity is removed), {"deliver": true} undoes it."""
    json_headers = {"Content-Type": "application/json"}
    if method == "PUT":
        try:
            deliver = json.loads(body or b"null")["deliver"]
            if not isinstance(deliver, bool):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            error = {"error": {"code": "invalid_request", "message": 'Send {"deliver": true|false}.'}}
            return 400, json_headers, json.dumps(error).encode()
        if deliver:
            sesv2().create_email_identity(EmailIdentity=identity)
        else:
            sesv2().delete_email_identity(EmailIdentity=identity)
        return 200, json_headers, json.dumps({"deliver": deliver}).encode()
    if method != "GET":
        return 405, json_headers, b'{"error":{"code":"method_not_allowed","message":"Use GET or PUT."}}'
    from moto.ses.models import ses_backends

    messages = [
        {
            "id": m.id,
            "from": m.source,
            "to": list(m.destinations.get("ToAddresses", [])),
            "subject": m.subject,
            "html": m.body,  # SES keeps the HTML part when a message has both
            "text": _as_text(m.body),
        }
        for m in ses_backends[ACCOUNT][REGION].sent_messages
    ]
    return 200, json_headers, json.dumps(messages).encode()


def _as_text(body: str) -> str:
    """The HTML part read as text, links spelled out (SES in moto keeps only the HTML of a two-part message)."""
    spelled = re.sub(r'<a\s[^>]*href="([^"]+)"[^>]*>(.*?)</a>', r"\2: \1", body, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "\n", spelled)).strip()

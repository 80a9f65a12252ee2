"""The hosted checkout page `GET /c/pay/{session_id}`, and its form posted back to the same URL.

    email=buyer@example.com            required on "pay"
    promotion_code=SAVE3               optional; case-insensitive, as on Stripe
    action=pay | apply                 "apply" only re-renders the page with the code's discount (default: pay)

A paid form answers 303 to `success_url` (`{CHECKOUT_SESSION_ID}` replaced); a refused one answers 4xx with the page
saying why (400 invalid email or code, 404 unknown session, 409 already paid, 410 expired).
"""

from __future__ import annotations

import contextlib
import copy
import html

from infra.local.emulators.loopback import Reply
from infra.local.stripe.errors import CheckoutRefused
from infra.local.stripe.payments import Payments
from infra.local.stripe.routing import Request
from infra.local.stripe.seeds import PRODUCT_NAME
from infra.local.stripe.state import StripeState
from infra.local.stripe.wire import JSONDict, html_reply, money


class HostedPages:
    """The checkout page of each open session; its form pays through `payments`."""

    def __init__(self, state: StripeState, payments: Payments) -> None:
        self._state = state
        self._payments = payments

    def page(self, request: Request) -> Reply:
        session_id = request.ids["id"]
        with self._state.lock:
            try:
                session = copy.deepcopy(self._payments.open_session_locked(session_id))
            except CheckoutRefused as refused:
                return html_reply(refused.status, _error_page(refused.message))
        return html_reply(200, self._checkout_page(session, email="", code="", discount=0, message=None))

    def submit(self, request: Request) -> Reply:
        session_id = request.ids["id"]
        form = request.params
        email = form.get("email") if isinstance(form.get("email"), str) else ""
        code = form.get("promotion_code") if isinstance(form.get("promotion_code"), str) else ""
        assert isinstance(email, str)
        assert isinstance(code, str)
        with self._state.lock:
            try:
                session = copy.deepcopy(self._payments.open_session_locked(session_id))
            except CheckoutRefused as refused:
                return html_reply(refused.status, _error_page(refused.message))
        if form.get("action") == "apply":
            with self._state.lock:
                try:
                    _, discount, _promo = self._payments.quote_locked(session, code)
                except CheckoutRefused as refused:
                    page = self._checkout_page(session, email, code, 0, refused.message, refused.code)
                    return html_reply(refused.status, page)
            return html_reply(200, self._checkout_page(session, email, code, discount, None))
        try:
            paid = self._payments.pay(session_id, email, code)
        except CheckoutRefused as refused:
            if refused.status in (404, 409, 410):
                return html_reply(refused.status, _error_page(refused.message))
            discount = 0
            if refused.code != "promotion_code":
                with self._state.lock, contextlib.suppress(CheckoutRefused):
                    discount = self._payments.quote_locked(session, code)[1]
            page = self._checkout_page(session, email, code, discount, refused.message, refused.code)
            return html_reply(refused.status, page)
        success_url = paid["success_url"]
        if not success_url:
            return html_reply(200, _done_page(paid))
        location = str(success_url).replace("{CHECKOUT_SESSION_ID}", paid["id"])
        return Reply(303, b"", content_type="text/html; charset=utf-8", headers=(("Location", location),))

    def _checkout_page(
        self, session: JSONDict, email: str, code: str, discount: int, message: str | None, problem: str = ""
    ) -> str:
        esc = html.escape
        quantity = sum(item["quantity"] for item in self._state.line_items.get(session["id"], [])) or 1
        subtotal = int(session["amount_subtotal"])
        total = subtotal - discount
        rows = [f"<tr><th scope='row'>{esc(PRODUCT_NAME)} × {quantity}</th><td>{money(subtotal)}</td></tr>"]
        if discount:
            rows.append(
                f"<tr><th scope='row'>Discount ({esc(code.strip().upper())})</th><td>−{money(discount)}</td></tr>"
            )
        rows.append(f"<tr><th scope='row'>Total due</th><td><strong>{money(total)}</strong></td></tr>")
        alert = f'<p role="alert" id="problem" class="error">{esc(message)}</p>' if message else ""
        described = ' aria-invalid="true" aria-describedby="problem"'
        promo_field = ""
        if session["allow_promotion_codes"]:
            promo_field = (
                '<p><label for="promotion_code">Promotion code</label> '
                f'<input id="promotion_code" name="promotion_code" value="{esc(code)}" autocomplete="off"'
                f"{described if problem == 'promotion_code' else ''}> "
                '<button type="submit" name="action" value="apply" formnovalidate>Apply</button></p>'
            )
        cancel = session.get("cancel_url")
        cancel_link = f'<p><a href="{esc(cancel)}">Cancel and return</a></p>' if cancel else ""
        body = (
            f"<h1>Pay Portrait Studio</h1>\n{alert}\n"
            f'<table aria-label="Order summary"><tbody>{"".join(rows)}</tbody></table>\n'
            f'<form method="post" action="/c/pay/{esc(session["id"])}">\n'
            '<p><label for="email">Email</label> '
            f'<input id="email" name="email" type="email" autocomplete="email" required value="{esc(email)}"'
            f"{described if problem == 'email' else ''}></p>\n"
            f"{promo_field}\n"
            "<p><small>Test mode: no card is charged.</small></p>\n"
            f'<p><button type="submit" name="action" value="pay">Pay {money(total)}</button></p>\n'
            f"</form>\n{cancel_link}"
        )
        return _layout("Checkout — Portrait Studio", body)


def _layout(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        "<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem}"
        "table{width:100%;border-collapse:collapse;margin:1rem 0}th{text-align:left;font-weight:normal}"
        "td{text-align:right}.error{color:#a00;font-weight:bold}</style>\n"
        f"</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _error_page(message: str) -> str:
    return _layout(
        "Checkout unavailable — Portrait Studio", f"<h1>Checkout unavailable</h1>\n<p>{html.escape(message)}</p>"
    )


def _done_page(session: JSONDict) -> str:
    total = money(int(session["amount_total"]))
    return _layout("Paid — Portrait Studio", f"<h1>Thank you</h1>\n<p>Payment of {total} complete.</p>")

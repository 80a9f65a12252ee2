"""The seeded catalogue as the API shows it: its price, product, coupon and promotion code (`seeds.py`)."""

from __future__ import annotations

import copy

from infra.local.emulators.loopback import Reply
from infra.local.stripe.errors import missing
from infra.local.stripe.lists import list_page
from infra.local.stripe.params import boolean_param
from infra.local.stripe.routing import Request
from infra.local.stripe.seeds import COUPON_ID, PRODUCT_ID, PROMOTION_CODE_ID
from infra.local.stripe.state import StripeState
from infra.local.stripe.wire import json_reply


class Catalogue:
    """`/v1/prices`, `/v1/products`, `/v1/coupons` and `/v1/promotion_codes`, on the emulator's state."""

    def __init__(self, state: StripeState) -> None:
        self._state = state

    def get_price(self, request: Request) -> Reply:
        if request.ids["id"] != self._state.price_id:
            raise missing("price", request.ids["id"], "price")
        with self._state.lock:
            return json_reply(200, copy.deepcopy(self._state.catalogue.price))

    def get_product(self, request: Request) -> Reply:
        if request.ids["id"] != PRODUCT_ID:
            raise missing("product", request.ids["id"], "id")
        with self._state.lock:
            return json_reply(200, copy.deepcopy(self._state.catalogue.product))

    def get_coupon(self, request: Request) -> Reply:
        if request.ids["id"] != COUPON_ID:
            raise missing("coupon", request.ids["id"], "coupon")
        with self._state.lock:
            return json_reply(200, copy.deepcopy(self._state.catalogue.coupon))

    def get_promotion_code(self, request: Request) -> Reply:
        if request.ids["id"] != PROMOTION_CODE_ID:
            raise missing("promotion_code", request.ids["id"], "promotion_code")
        with self._state.lock:
            return json_reply(200, copy.deepcopy(self._state.catalogue.promotion_code))

    def list_promotion_codes(self, request: Request) -> Reply:
        params = request.params
        with self._state.lock:
            promo = copy.deepcopy(self._state.catalogue.promotion_code)
        matches = [promo]
        code = params.get("code")
        if isinstance(code, str) and code != promo["code"]:  # the API's `code` filter is case-sensitive
            matches = []
        if "active" in params and boolean_param(params["active"], "active") != promo["active"]:
            matches = []
        if isinstance(params.get("coupon"), str) and params["coupon"] != COUPON_ID:
            matches = []
        return json_reply(200, list_page(matches, params, "/v1/promotion_codes"))

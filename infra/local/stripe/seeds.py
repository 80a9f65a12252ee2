"""What the Stripe emulator is seeded with: one product and its $12.90 price, and a $3-off coupon behind SAVE3."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from infra.local.stripe.wire import JSONDict

DEFAULT_PRICE_ID: Final = "price_portrait_32"
PRODUCT_ID: Final = "prod_portrait_32"
PRODUCT_NAME: Final = "Portrait Studio — 32 AI headshots"
UNIT_AMOUNT: Final = 1290
CURRENCY: Final = "usd"
COUPON_ID: Final = "coupon_save3"
PROMOTION_CODE: Final = "SAVE3"
PROMOTION_CODE_ID: Final = "promo_save3"
AMOUNT_OFF: Final = 300


@dataclass
class SeededCatalogue:
    product: JSONDict
    price: JSONDict
    coupon: JSONDict
    promotion_code: JSONDict


def seed_catalogue(created: int, price_id: str) -> SeededCatalogue:
    """The product, its price, the $3 coupon and its SAVE3 code, as created at `created` (nothing redeemed yet)."""
    product: JSONDict = {
        "id": PRODUCT_ID,
        "object": "product",
        "active": True,
        "created": created,
        "default_price": price_id,
        "description": "32 professional 1024×1024 headshots in four styles.",
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": PRODUCT_NAME,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": created,
        "url": None,
    }
    price: JSONDict = {
        "id": price_id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": CURRENCY,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": PRODUCT_ID,
        "recurring": None,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "one_time",
        "unit_amount": UNIT_AMOUNT,
        "unit_amount_decimal": str(UNIT_AMOUNT),
    }
    coupon: JSONDict = {
        "id": COUPON_ID,
        "object": "coupon",
        "amount_off": AMOUNT_OFF,
        "created": created,
        "currency": CURRENCY,
        "duration": "once",
        "duration_in_months": None,
        "livemode": False,
        "max_redemptions": None,
        "metadata": {},
        "name": "$3 off",
        "percent_off": None,
        "redeem_by": None,
        "times_redeemed": 0,
        "valid": True,
    }
    promotion_code: JSONDict = {
        "id": PROMOTION_CODE_ID,
        "object": "promotion_code",
        "active": True,
        "code": PROMOTION_CODE,
        "created": created,
        "customer": None,
        "expires_at": None,
        "livemode": False,
        "max_redemptions": None,
        "metadata": {},
        "promotion": {"coupon": COUPON_ID, "type": "coupon"},
        "restrictions": {
            "first_time_transaction": False,
            "minimum_amount": None,
            "minimum_amount_currency": None,
        },
        "times_redeemed": 0,
    }
    return SeededCatalogue(product, price, coupon, promotion_code)

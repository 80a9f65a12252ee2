"""A Stripe request's parameters: the form encoding decoded, and each kind of parameter checked as Stripe checks it."""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import parse_qsl

from infra.local.stripe.errors import StripeError
from infra.local.stripe.wire import JSONDict

_KEY_RE: Final = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def decode_form(raw: str) -> JSONDict:
    """Stripe's form encoding (`a[b]=1`, `a[0][c]=2`, `a[]=3`) back into nested dicts and lists."""
    root: JSONDict = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        match = _KEY_RE.match(key)
        parts = [key] if match is None else [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        last = parts[-1] if parts[-1] != "" else str(len(node))
        node[last] = value
    decoded: JSONDict = _listify(root)
    return decoded


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def unknown_params(params: JSONDict, allowed: frozenset[str], prefix: str = "") -> None:
    for name in params:
        if name not in allowed:
            full = f"{prefix}[{name}]" if prefix else name
            raise StripeError(400, f"Received unknown parameter: {full}", code="parameter_unknown", param=full)


def string_param(params: JSONDict, name: str, max_length: int = 5000) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise StripeError(400, f"Invalid string: {name}", code="parameter_invalid_string", param=name)
    if len(value) > max_length:
        message = f"Invalid string: {value[:20]}...; must be at most {max_length} characters"
        raise StripeError(400, message, code="parameter_invalid_string", param=name)
    return value


def integer_param(value: Any, param: str, *, positive: bool = False) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?\d{1,18}", value.strip()):
        raise StripeError(400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=param)
    number = int(value)
    if positive and number <= 0:
        raise StripeError(400, "Invalid positive integer", code="parameter_invalid_integer", param=param)
    return number


def boolean_param(value: Any, param: str) -> bool:
    if value not in ("true", "false"):
        raise StripeError(400, f"Invalid boolean: {value}", param=param)
    return bool(value == "true")


def metadata_param(params: JSONDict) -> dict[str, str]:
    value = params.get("metadata")
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise StripeError(400, "Invalid object", param="metadata")
    if len(value) > 50:
        raise StripeError(400, "Metadata can have at most 50 keys.", param="metadata")
    clean: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str):
            raise StripeError(400, "Invalid string", param=f"metadata[{key}]")
        if len(key) > 40 or len(item) > 500:
            message = "Metadata keys can be at most 40 characters and values at most 500 characters."
            raise StripeError(400, message, param=f"metadata[{key}]")
        if item != "":  # an empty value unsets a key
            clean[key] = item
    return clean

"""PhotoMaker's input schema as Replicate enforces it: Replicate-style `invalid_fields` for a create request."""

from __future__ import annotations

import re
from typing import Any, Final

from infra.local.replicate.wire import JSONDict

MODEL: Final = "tencentarc/photomaker"
STYLE_NAMES: Final = (
    "(No style)",
    "Cinematic",
    "Disney Charactor",
    "Digital Art",
    "Photographic (Default)",
    "Fantasy art",
    "Neonpunk",
    "Enhance",
    "Comic book",
    "Lowpoly",
    "Line art",
)
DEFAULT_STYLE: Final = "Photographic (Default)"
WEBHOOK_EVENTS: Final = ("start", "output", "logs", "completed")

_VERSION_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_TRIGGER_RE: Final = re.compile(r"\bimg\b", re.IGNORECASE)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _invalid(kind: str, field_name: str, description: str) -> JSONDict:
    return {"type": kind, "field": field_name, "description": description}


def is_number(value: Any, integer: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not integer or isinstance(value, int) or value.is_integer()


def _check_range(name: str, value: Any, low: float, high: float, integer: bool) -> list[JSONDict]:
    field_name = f"input.{name}"
    if not is_number(value, integer):
        expected = "integer" if integer else "number"
        return [_invalid("invalid_type", field_name, f"Invalid type. Expected: {expected}, given: {_json_type(value)}")]
    if value < low:
        return [_invalid("number_gte", field_name, f"Must be greater than or equal to {low}")]
    if value > high:
        return [_invalid("number_lte", field_name, f"Must be less than or equal to {high}")]
    return []


def _check_type(name: str, value: Any, expected: str) -> list[JSONDict]:
    given = _json_type(value)
    if given == expected:
        return []
    return [_invalid("invalid_type", f"input.{name}", f"Invalid type. Expected: {expected}, given: {given}")]


def _check_uri(name: str, value: Any) -> list[JSONDict]:
    problems = _check_type(name, value, "string")
    if problems:
        return problems
    if not value.startswith(("http://", "https://", "data:")):
        return [_invalid("format", f"input.{name}", "Does not match format 'uri'")]
    return []


def _check_prompt(value: Any) -> list[JSONDict]:
    problems = _check_type("prompt", value, "string")
    if problems:
        return problems
    # PhotoMaker locates the ID embedding at the trigger word and refuses prompts with more than one.
    if len(_TRIGGER_RE.findall(value)) != 1:
        description = "Must contain the trigger word 'img' exactly once, after the class word (e.g. 'a man img')"
        return [_invalid("trigger_word", "input.prompt", description)]
    return []


_RANGES: Final[dict[str, tuple[float, float, bool]]] = {
    "num_outputs": (1, 4, True),
    "num_steps": (1, 100, True),
    "style_strength_ratio": (15, 50, False),
    "guidance_scale": (1, 10, False),
}
_TYPES: Final = {"negative_prompt": "string", "disable_safety_checker": "boolean"}


def validate_input(model_input: Any) -> list[JSONDict]:
    """Replicate-style `invalid_fields` for a PhotoMaker input (empty when valid)."""
    if not isinstance(model_input, dict):
        if model_input is None:
            return [_invalid("required", "(root)", "input is required")]
        return [_invalid("invalid_type", "input", f"Invalid type. Expected: object, given: {_json_type(model_input)}")]
    required = ("input_image", "prompt")
    problems = [_invalid("required", "input", f"{name} is required") for name in required if name not in model_input]
    for name, value in model_input.items():
        problems += _check_field(name, value)
    return problems


def _check_field(name: str, value: Any) -> list[JSONDict]:
    if name == "prompt":
        return _check_prompt(value)
    if name in ("input_image", "input_image2", "input_image3", "input_image4"):
        return _check_uri(name, value)
    if name in _RANGES:
        return _check_range(name, value, *_RANGES[name])
    if name in _TYPES:
        return _check_type(name, value, _TYPES[name])
    if name == "seed":
        if value is None or is_number(value, integer=True):
            return []
        return _check_type(name, value, "integer")
    if name == "style_name" and value not in STYLE_NAMES:
        choices = ", ".join(f'"{s}"' for s in STYLE_NAMES)
        return [_invalid("enum", "input.style_name", f"input.style_name must be one of the following: {choices}")]
    return []  # Replicate ignores inputs the model does not declare


def validate_webhook(payload: JSONDict) -> list[JSONDict]:
    problems: list[JSONDict] = []
    webhook = payload.get("webhook")
    if webhook is not None and not (isinstance(webhook, str) and webhook.startswith(("http://", "https://"))):
        problems.append(_invalid("format", "webhook", "Does not match format 'uri'"))
    events = payload.get("webhook_events_filter")
    if events is not None and not (isinstance(events, list) and all(e in WEBHOOK_EVENTS for e in events)):
        choices = ", ".join(f'"{e}"' for e in WEBHOOK_EVENTS)
        problems.append(_invalid("enum", "webhook_events_filter", f"Each item must be one of: {choices}"))
    return problems


def version_id(value: Any) -> str | None:
    # Replicate also accepts "owner/model:version" in the version field.
    if not isinstance(value, str):
        return None
    version = value.rsplit(":", 1)[-1]
    return version if _VERSION_RE.match(version) else None


def validation_error(problems: list[JSONDict]) -> JSONDict:
    detail = "".join(f"- {p['field']}: {p['description']}\n" for p in problems)
    return {"title": "Input validation failed", "detail": detail, "status": 422, "invalid_fields": problems}

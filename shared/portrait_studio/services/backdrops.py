"""The backdrop a person chooses before paying: validated, and turned into words a prompt can carry."""

from __future__ import annotations

import re

from portrait_studio.errors import InvalidBackdrop
from portrait_studio.models import BACKDROPS, HEX_COLOR, Backdrop
from portrait_studio.services.plan import load_styles


def parse_backdrop(kind: str | None, color: str | None) -> Backdrop:
    """The request's choice, or studio grey when none was made. Unknown kinds and bad colours are refused with
    what is allowed, so a client can correct itself."""
    allowed: dict[str, object] = {"allowed": list(BACKDROPS), "color": "#rrggbb, only with solid"}
    chosen = kind or "studio_grey"
    if chosen not in BACKDROPS:
        message = f"Unknown backdrop {chosen[:32]!r}; choose one of {', '.join(BACKDROPS)}."
        raise InvalidBackdrop(message, details=allowed)
    if chosen != "solid":
        if color is not None:
            raise InvalidBackdrop("A colour can be given only with the solid backdrop.", details=allowed)
        return Backdrop(kind=chosen)
    normalized = (color or "").strip().lower()
    if not re.fullmatch(HEX_COLOR, normalized):
        raise InvalidBackdrop("A solid backdrop needs its colour as #rrggbb, e.g. #1f5fbf.", details=allowed)
    return Backdrop(kind="solid", color=normalized)


def backdrop_phrase(backdrop: Backdrop) -> str:
    spec = load_styles().backdrops[backdrop.kind]
    if backdrop.kind != "solid" or backdrop.color is None:
        return spec.phrase
    return spec.phrase.format(color=nearest_color_name(backdrop.color))


def backdrop_label(backdrop: Backdrop) -> str:
    return load_styles().backdrops[backdrop.kind].label


def nearest_color_name(hex_color: str) -> str:
    """The named colour nearest the hex value (squared distance in RGB, weighted roughly as the eye is)."""
    target = _rgb(hex_color)

    def distance(item: tuple[str, str]) -> float:
        r, g, b = (a - c for a, c in zip(_rgb(item[1]), target, strict=True))
        return 2 * r * r + 4 * g * g + 3 * b * b

    return min(load_styles().colors.items(), key=distance)[0]


def _rgb(hex_color: str) -> tuple[int, int, int]:
    value = int(hex_color.lstrip("#"), 16)
    return value >> 16, (value >> 8) & 0xFF, value & 0xFF

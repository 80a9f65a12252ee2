"""The emulator's outputs: the reference photo, tinted and stamped "LOCAL PREVIEW - not AI output".

Nobody can mistake them for generated headshots. The faults replace what an output shows: somebody else
(`other_person`, a bundled public-domain photo) or no face at all (`backdrop`).
"""

from __future__ import annotations

import hashlib
import io
import logging
from functools import lru_cache
from pathlib import Path
from typing import Final

from PIL import Image, ImageDraw, ImageFont, ImageOps

log = logging.getLogger("replicate_emulator")

OUTPUT_SIZE: Final = 1024
# The face an output shows under `identity_drift_rate`: a public-domain photo of somebody else (assets/ATTRIBUTION.md),
# found next to this package so the emulator finds it from any working directory.
OTHER_PERSON_PHOTO: Final = Path(__file__).resolve().parents[1] / "assets" / "grace-hopper.jpg"


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except ImportError:  # Pillow built without FreeType: small bitmap font, still legible
        return ImageFont.load_default()


def load_reference(data: bytes | None) -> Image.Image:
    """The reference photo, upright, cropped to a square and resized to the output size (grey if unusable).

    Tall photos are cropped from near the top, where a selfie's face is, not from the middle."""
    if data:
        try:
            with Image.open(io.BytesIO(data)) as opened:
                opened.draft("RGB", (OUTPUT_SIZE, OUTPUT_SIZE))
                upright = ImageOps.exif_transpose(opened).convert("RGB")
            centering = (0.5, 0.15) if upright.height > upright.width else (0.5, 0.5)
            return ImageOps.fit(upright, (OUTPUT_SIZE, OUTPUT_SIZE), Image.Resampling.BICUBIC, centering=centering)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            log.warning("reference image unreadable (%s); using a grey canvas", exc)
    return Image.new("RGB", (OUTPUT_SIZE, OUTPUT_SIZE), (128, 128, 128))


@lru_cache(maxsize=1)
def other_person() -> Image.Image:
    """The bundled photo of somebody else, prepared like a reference (never drawn on: blending makes a copy)."""
    return load_reference(OTHER_PERSON_PHOTO.read_bytes())


def backdrop(prompt: str, style_name: str, seed: int) -> Image.Image:
    """A plain studio backdrop in the style's tint, lighter towards the bottom: an output with no face in it."""
    red, green, blue = _tint_color(prompt, style_name)
    shade = seed % 48
    dark = (red // 4 + shade, green // 4 + shade, blue // 4 + shade)
    light = (min(255, red // 2 + 120), min(255, green // 2 + 120), min(255, blue // 2 + 120))
    gradient = Image.linear_gradient("L").resize((OUTPUT_SIZE, OUTPUT_SIZE))  # black at the top, white below
    return Image.composite(Image.new("RGB", gradient.size, light), Image.new("RGB", gradient.size, dark), gradient)


def _tint_color(prompt: str, style_name: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{style_name}|{prompt}".encode()).digest()
    return digest[0], digest[1], digest[2]


def _ascii(text: str) -> str:
    # The bundled font covers ASCII only; anything else would render as boxes.
    return text.encode("ascii", "replace").decode()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    """The text, or its longest prefix that fits with "..." after it (found by halving: measuring text is slow)."""
    if draw.textlength(text, font=font) <= width:
        return text
    fits, too_long = 0, len(text)
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if draw.textlength(text[:middle] + "...", font=font) <= width:
            fits = middle
        else:
            too_long = middle
    return text[:fits] + "..."


def _draw_banner(image: Image.Image, caption: str) -> None:
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, OUTPUT_SIZE, 132), fill=(12, 12, 12))
    big, small = _font(56), _font(28)
    x = 24
    # The font has no em dash glyph, so the dash is drawn as a bar between the two halves.
    for part in ("LOCAL PREVIEW", None, "not AI output"):
        if part is None:
            draw.rectangle((x + 12, 48, x + 60, 53), fill=(255, 214, 0))
            x += 72
            continue
        draw.text((x, 18), part, font=big, fill=(255, 214, 0))
        x += int(draw.textlength(part, font=big))
    draw.text((24, 88), _fit(draw, _ascii(caption), small, OUTPUT_SIZE - 48), font=small, fill=(235, 235, 235))


def render_preview(base: Image.Image, prompt: str, style_name: str, seed: int, index: int, total: int) -> bytes:
    """One labelled 1024x1024 RGB PNG; seed and index change both the tint and the caption."""
    color = _tint_color(prompt, style_name)
    image = Image.blend(base, Image.new("RGB", base.size, color), 0.12 + 0.04 * (index % 4))
    # Prompt last: it is the part that gets cut when the caption is too long.
    caption = f"seed {seed} | output {index + 1}/{total} | {style_name} | {prompt}"
    _draw_banner(image, caption)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()

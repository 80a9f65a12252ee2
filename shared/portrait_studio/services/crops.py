"""LinkedIn-ready crops: every delivered headshot also as a square centred on the face, made once at collect.

LinkedIn shows a profile photo as the circle inscribed in its square, so the whole face box the output gate
found must lie inside that circle, and the face sits at the centre (moved at most 5 % of the side, where the
frame's edge leaves no other way). The crop is 800 × 800, scaled down from a larger square, never up: when the
face is so near the edge of the headshot that no 800 px square can be centred on it, the crop is the largest
square that can (at least MIN_SIDE px, kept at its own size); below that, or when the face does not fit the
circle, the headshot gets no crop (the page and the zip simply have none for it).
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, NamedTuple

from portrait_studio.models import FaceBox

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

CROP_SIDE = 800
MIN_SIDE = 512
FACE_SHARE = 0.4  # the face box's larger side over the crop's side: head, hair and shoulders in the circle
MAX_SHIFT = 0.05  # how far (share of the side) the crop's centre may sit from the face's centre
JPEG_QUALITY = 92


class CropBox(NamedTuple):
    left: int
    top: int
    side: int


def crop_box(width: int, height: int, face: FaceBox) -> CropBox | None:
    """The square to cut from a `width` × `height` image around `face`, or None when no good one exists."""
    cx, cy = face.left + face.width / 2, face.top + face.height / 2
    side = min(max(CROP_SIDE, math.ceil(max(face.width, face.height) / FACE_SHARE)), width, height)
    room = min(cx, cy, width - cx, height - cy)  # from the face's centre to the nearest edge
    side = min(side, math.floor(room / (0.5 - MAX_SHIFT)))
    if side < MIN_SIDE:
        return None
    left = round(min(max(cx - side / 2, 0), width - side))
    top = round(min(max(cy - side / 2, 0), height - side))
    centre_x, centre_y, radius = left + side / 2, top + side / 2, side / 2
    corners = [(x, y) for x in (face.left, face.left + face.width) for y in (face.top, face.top + face.height)]
    if any(math.hypot(x - centre_x, y - centre_y) > radius for x, y in corners):
        return None
    return CropBox(left, top, side)


def linkedin_crop(image: bytes | npt.NDArray[np.uint8], face: FaceBox) -> bytes | None:
    """The headshot's square crop as a JPEG without metadata (the caller stamps it), or None (see the module).

    `image` is the headshot's file, or its RGB pixels as the output gate decoded them (collect passes those: a
    1024 x 1024 PNG takes about as long to decode again as the crop takes to make)."""
    from PIL import Image

    if isinstance(image, bytes):
        with Image.open(io.BytesIO(image)) as opened:
            picture = opened.convert("RGB")
    else:
        picture = Image.fromarray(image)
    box = crop_box(picture.width, picture.height, face)
    if box is None:
        return None
    square = picture.crop((box.left, box.top, box.left + box.side, box.top + box.side))
    if box.side > CROP_SIDE:
        square = square.resize((CROP_SIDE, CROP_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    square.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()

"""JPEG, PNG, WebP and AVIF decoding: the header first (size checked before any pixel is decoded), then at
most one frame, downscaled to the output size as it is decoded. HEIC/HEIF has its own, `imaging_heif`.

JPEG: libjpeg-turbo's DCT scaling decodes straight to n/8 of the size. Pillow's draft() offers only 1/2, 1/4
and 1/8, so YCbCr/RGB and grey JPEGs go through simplejpeg, which offers every n: an 1800x1200 photo is
decoded at 5/8 (0.84 MP) instead of whole (2.2 MP), a smaller frame and a cheaper LANCZOS pass (7/8 is not
used: slower than a whole decode). Its strict mode also makes libjpeg's corrupt-data warnings errors, which
Pillow ignores. CMYK/YCCK JPEGs stay with Pillow.

Heavy libraries are imported inside functions (see `imaging`).
"""

from __future__ import annotations

import warnings
from io import BytesIO
from typing import TYPE_CHECKING

from portrait_studio.errors import CorruptImage
from portrait_studio.services.imaging_checks import check_size
from portrait_studio.services.imaging_pixels import fit, resize, to_8bit

if TYPE_CHECKING:
    from PIL import Image

    from portrait_studio.config import Settings

__all__ = ["dct_eighths", "decode_pillow"]

_PIL_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}

# JPEG DCT scaling: libjpeg-turbo decodes straight to n/8 of the size. The smallest n that still covers the
# target is used, up to 6/8: a 7/8 decode measured slower than a whole one (its 7x7 IDCT has no SIMD and
# saves little), so those JPEGs are decoded whole.
_MAX_DCT_EIGHTHS = 6

_ORIENTATION_TAG = 0x0112


def decode_pillow(data: bytes, source_format: str, settings: Settings) -> tuple[Image.Image, int, bytes | None]:
    """JPEG, PNG, WebP and AVIF through Pillow: header first, then at most one decoded frame.

    Returns the frame at the output size, its EXIF orientation and its ICC profile. YCbCr/RGB and grey JPEGs
    have their pixels decoded by `_decode_jpeg` instead, chosen from the header (never as a fallback after an
    error).
    """
    from PIL import Image

    # Our limit, not Pillow's default (~179 MP, below real 200 MP cameras). Anything over it is refused
    # below; Pillow's own bomb warning/error fire at the same or a higher count and map to TooManyPixels.
    Image.MAX_IMAGE_PIXELS = settings.max_pixels
    im = Image.open(BytesIO(data), formats=[_PIL_FORMAT[source_format]])
    try:
        width, height = im.size
        check_size(width, height, settings)
        target = fit(width, height, settings.max_side_px)
        plain_jpeg = source_format == "jpeg" and im.mode in ("RGB", "L")  # not CMYK/YCCK
        extent = None
        if not plain_jpeg:
            if source_format == "jpeg" and target != (width, height):
                # Pillow's DCT scaling offers only 1/2, 1/4 or 1/8 (never below the target).
                drafted = im.draft("RGB", target)
                extent = drafted[1][2:] if drafted else None
            im.load()  # animated WebP/AVIF, APNG: frame 0
        # After load() for the others (a PNG's eXIf may follow its pixels). For _decode_jpeg nothing is loaded:
        # a JPEG's EXIF and ICC profile sit in APP markers ahead of the scan, so the header alone has them.
        orientation = _read_orientation(im, source_format)
        icc = im.info.get("icc_profile") or None
        mode = im.mode
    except BaseException:
        im.close()
        raise
    if plain_jpeg:
        im.close()  # no pixel of it was decoded
        return _decode_jpeg(data, mode, (width, height), target), orientation, icc
    # Each step returns a new image and closes its input, so only one decoded frame is alive at a time.
    return resize(to_8bit(im), target, extent=extent), orientation, icc


def dct_eighths(width: int, height: int, target: tuple[int, int]) -> int:
    """The smallest n whose n/8 DCT-scaled decode (libjpeg rounds each side up) still covers the target."""
    for eighths in range(1, 8):
        scaled_width, scaled_height = _dct_size(width, height, eighths)
        if scaled_width >= target[0] and scaled_height >= target[1]:
            return eighths
    return 8


def _dct_size(width: int, height: int, eighths: int) -> tuple[int, int]:
    """The size libjpeg decodes to at `eighths`/8: each side rounded up."""
    return -(-width * eighths // 8), -(-height * eighths // 8)


def _decode_jpeg(data: bytes, mode: str, size: tuple[int, int], target: tuple[int, int]) -> Image.Image:
    """A YCbCr/RGB ("RGB") or grey ("L") JPEG decoded straight to n/8 of its size (n <= 6, else whole), resized.

    simplejpeg rather than Pillow's draft(), which offers only 1/2, 1/4 and 1/8: an 1800x1200 photo is decoded
    at 5/8 (0.84 MP) instead of whole (2.2 MP), so the decode, the frame and the LANCZOS pass all shrink.
    strict=True raises ValueError on libjpeg's warnings (truncated or corrupt data), i.e. CorruptImage; Pillow
    ignores them, so every plain JPEG comes here, scaled or not, and the same file gets the same verdict
    whatever its size.
    """
    import simplejpeg
    from PIL import Image

    width, height = size
    eighths = dct_eighths(width, height, target)
    if eighths > _MAX_DCT_EIGHTHS:
        eighths = 8
    scaled = _dct_size(width, height, eighths)
    colorspace = "GRAY" if mode == "L" else "RGB"
    array = simplejpeg.decode_jpeg(data, colorspace=colorspace, min_width=scaled[0], min_height=scaled[1], strict=True)
    if (array.shape[1], array.shape[0]) != scaled:
        raise CorruptImage()  # libjpeg read another frame size than Pillow's header
    # RGB is copied into Pillow's 4-byte pixels (grey is wrapped as is). Wrapping a decoded RGBX instead
    # would skip that copy, but LANCZOS then resamples 4 bands instead of 3: measured slower, same peak RSS.
    if mode == "L":
        frame = Image.frombuffer(mode, scaled, array, "raw", mode, 0, 1)
    else:
        frame = Image.new(mode, scaled, None)  # not zero-filled first (a millisecond): every pixel is written
        frame.frombytes(array)
    del array
    # The last column and row of an n/8 decode cover only part of a source block: resize from the exact
    # extent, or the picture shifts by up to half a pixel (measured 29-38 dB instead of 41-53 dB PSNR).
    return resize(frame, target, extent=None if eighths == 8 else (width * eighths / 8, height * eighths / 8))


def _read_orientation(im: Image.Image, source_format: str) -> int:
    """EXIF orientation 1..8; unreadable or out-of-range EXIF counts as 1 (metadata is not the photo)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if source_format == "avif":
                # Pillow writes the container's irot/imir here and overrides any EXIF tag with it.
                raw = im.info.get("exif")
                if not raw:
                    return 1
                exif = Image.Exif()
                exif.load(raw)
            else:
                exif = im.getexif()
            value = exif.get(_ORIENTATION_TAG, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1

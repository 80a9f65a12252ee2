"""Colour for normalization: alpha flattened onto white, then the embedded ICC profile (or HEIF/AVIF nclx
Display P3) converted to sRGB. Broken or absent profiles are treated as sRGB.

Heavy libraries are imported inside functions (see `imaging`).
"""

from __future__ import annotations

import struct
from functools import lru_cache
from io import BytesIO
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image, ImageCms

__all__ = ["NCLX_P3_D65", "display_p3_profile", "icc_transform", "to_srgb"]

# The nclx colour_primaries code of Display P3 (ITU-T H.273: SMPTE EG 432-1, P3 with a D65 white).
NCLX_P3_D65 = 12

# Display P3 colorants (D50-adapted, as in Apple's profile); P3 shares sRGB's white point and curve.
_P3_COLORANTS = {
    b"rXYZ": (0.515121, 0.241196, -0.001053),
    b"gXYZ": (0.291977, 0.692245, 0.041885),
    b"bXYZ": (0.157104, 0.066574, 0.784073),
}


def to_srgb(im: Image.Image, icc: bytes | None, nclx_primaries: int | None) -> Image.Image:
    """Flatten alpha, then convert the embedded profile (Display P3, Adobe RGB, CMYK, gray...) to sRGB RGB."""
    im = _flatten(im)
    profile = icc
    if profile is None and nclx_primaries == NCLX_P3_D65 and im.mode == "RGB":
        profile = display_p3_profile()
    if profile is not None:
        transform = icc_transform(profile, im.mode)
        if transform is not None:
            try:
                out = transform.apply(im)
            except Exception:
                out = None  # a profile that does not fit the pixels: treat them as sRGB
            if out is not None:
                im.close()
                return out
    if im.mode != "RGB":
        converted = im.convert("RGB")  # CMYK without a profile: Pillow's naive formula is the best guess
        im.close()
        return converted
    return im


def _flatten(im: Image.Image) -> Image.Image:
    from PIL import Image

    if im.mode not in ("RGBA", "LA"):
        return im
    base_mode = "RGB" if im.mode == "RGBA" else "L"
    background = Image.new(base_mode, im.size, "white")
    background.paste(im.convert(base_mode), mask=im.getchannel("A"))
    background.info = dict(im.info)
    im.close()
    return background


@lru_cache(maxsize=8)
def icc_transform(profile: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """Built once per distinct profile (Display P3 repeats on every iPhone photo).

    None means "treat the pixels as sRGB": the profile is unusable, or it is sRGB already (most cameras
    and Android phones embed sRGB IEC61966-2.1; skipping the identity transform saves ~10 ms per photo).
    """
    from PIL import ImageCms

    if mode not in ("RGB", "L", "CMYK"):
        return None
    try:
        source = ImageCms.ImageCmsProfile(BytesIO(profile))
        transform = ImageCms.buildTransform(
            source,
            _srgb_profile(),
            mode,
            "RGB",
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
        )
        if mode == "RGB" and _is_identity(transform):
            return None
    except Exception:
        return None
    return transform


def _is_identity(transform: ImageCms.ImageCmsTransform) -> bool:
    """Whether the transform moves no colour of a 17x17x17 grid by more than one level."""
    from PIL import Image, ImageChops

    levels = [min(255, 16 * step) for step in range(17)]
    grid = bytes(channel for r in levels for g in levels for b in levels for channel in (r, g, b))
    probe = Image.frombytes("RGB", (len(levels) ** 2, len(levels)), grid)
    difference = ImageChops.difference(transform.apply(probe), probe)
    return all(isinstance(band, tuple) and band[1] <= 1 for band in difference.getextrema())


@lru_cache(maxsize=1)
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@lru_cache(maxsize=1)
def display_p3_profile() -> bytes:
    """Display P3 for HEIF/AVIF that signal it with nclx (primaries 12) instead of an ICC profile.

    Built from lcms's sRGB profile by swapping the three colorant tags: same D65 white and sRGB curve.
    """
    data = bytearray(_srgb_profile().tobytes())
    (tag_count,) = struct.unpack_from(">I", data, 128)
    for index in range(tag_count):
        signature, offset, _length = struct.unpack_from(">4sII", data, 132 + 12 * index)
        if signature in _P3_COLORANTS:
            values = [round(v * 65536) for v in _P3_COLORANTS[signature]]
            struct.pack_into(">3i", data, offset + 8, *values)
    data[84:100] = bytes(16)  # profile ID (MD5) no longer matches; zero means "not computed"
    return bytes(data)

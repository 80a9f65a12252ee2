"""Photo normalization: untrusted upload bytes in, a small metadata-free sRGB JPEG out.

Pipeline (DESIGN.md "Normalization"): sniff magic bytes -> allowlist (JPEG, PNG, WebP, HEIC/HEIF, AVIF)
-> pixel limit from the header, before any pixel is decoded -> decode with warnings as errors (truncated
files refused, including HEIF files libheif "decodes" with missing tiles) -> longest side <= max_side_px
-> flatten alpha onto white -> embedded ICC profile (or HEIF/AVIF nclx P3) to sRGB -> orientation -> JPEG.

Orientation policy (all 8 values):
- JPEG, PNG, WebP: the EXIF orientation (Pillow's reading, which falls back to XMP) is applied.
- HEIF/AVIF whose primary image carries irot/imir: the container wins and EXIF is ignored, as the HEIF
  spec says; iPhones write both, so applying EXIF as well would rotate twice. libheif applies irot/imir
  while decoding HEIF (a grid's irot we apply, see `imaging_heif`); for AVIF, Pillow reports them as the EXIF
  orientation, which we apply.
- HEIF/AVIF without irot/imir: the orientation in the file's Exif item is applied (writers that record
  the rotation only there), read by our own parser since both decoders hide or override it.
Animated WebP/AVIF and APNG: the first frame is used (it is the still a phone exports); multi-image HEIF:
the primary image. Broken or absent ICC profiles are treated as sRGB.

This module is the pipeline; each step lives where its libraries do:
- `heif_container`: HEIF/AVIF structure, read before any decoder runs (integrity, size, grid plan);
- `imaging_checks`: the size limits, and decoder warnings and errors mapped to `PhotoRejected`;
- `imaging_decoders`: JPEG (simplejpeg's DCT scaling), PNG, WebP and AVIF through Pillow;
- `imaging_heif`: HEIC/HEIF through libheif, a grid tile by tile;
- `imaging_pixels`: output size, 8-bit modes, downscaling on a few threads;
- `imaging_colour`: alpha flattened, ICC profile or nclx P3 to sRGB.
Every decoder hands back its frame already at the output size: the steps after it only touch the small frame.

Heavy libraries are imported inside functions, in every imaging module: a Lambda cold start pays for them
only when a photo is seen.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING

from portrait_studio.errors import PhotoRejected, UnsupportedFormat
from portrait_studio.services.heif_container import Container, check_container
from portrait_studio.services.imaging_checks import check_size, map_decoder_error, raise_on_decoder_warnings
from portrait_studio.services.imaging_colour import to_srgb
from portrait_studio.services.imaging_decoders import decode_pillow
from portrait_studio.services.imaging_heif import decode_heif, decode_heif_grid

if TYPE_CHECKING:
    from PIL import Image

    from portrait_studio.config import Settings

__all__ = ["NormalizedPhoto", "normalize_photo", "sniff_format"]

# ftyp brands (ISO/IEC 23008-12, 23000-22 MIAF, AV1-ISOBMFF).
_AVIF_BRANDS = frozenset({b"avif", b"avis", b"avio"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_GENERIC_BRANDS = frozenset({b"mif1", b"mif2", b"msf1"})


@dataclass(frozen=True)
class NormalizedPhoto:
    jpeg: bytes
    width: int
    height: int
    source_format: str  # "jpeg" | "png" | "webp" | "heif" | "avif"
    decode_ms: float  # wall time of reading the pixels (open + decode), for metrics


def sniff_format(data: bytes) -> str:
    """The format by magic bytes only; anything outside the allowlist is UnsupportedFormat."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp":
        size = int.from_bytes(data[:4], "big")
        if 16 <= size <= min(len(data), 4096):
            major = data[8:12]
            compatible = {data[i : i + 4] for i in range(16, size - 3, 4)}
            brands = compatible | {major}
            # A file may list several brands; the major brand decides when it is specific.
            if major in _AVIF_BRANDS:
                return "avif"
            if major in _HEIF_BRANDS:
                return "heif"
            if brands & _AVIF_BRANDS and not brands & _HEIF_BRANDS:
                return "avif"
            if brands & (_HEIF_BRANDS | _GENERIC_BRANDS):
                return "heif"
    raise UnsupportedFormat()


def normalize_photo(data: bytes, settings: Settings) -> NormalizedPhoto:
    """Decode, check, orient, colour-convert, downscale and re-encode one upload.

    Raises only `PhotoRejected` subclasses: UnsupportedFormat, CorruptImage, TooManyPixels, TooSmall.
    """
    source_format = sniff_format(data)
    try:
        if source_format in ("heif", "avif"):
            container = check_container(data)
            if container.width and container.height:
                check_size(container.width, container.height, settings, check_small=False)
        else:
            container = Container()
        with warnings.catch_warnings(record=True) as caught:
            # Decoder warnings (truncated data, odd chunks, bomb warnings) mean the pixels are not
            # trustworthy. They are recorded, not raised: the filter is process-wide, and raising would
            # turn other threads' harmless warnings into errors (the local stack runs functions in threads).
            warnings.simplefilter("always")
            started = time.perf_counter()
            if source_format == "heif" and container.grid is not None:
                im, orientation, icc = decode_heif_grid(container.grid, settings)
            elif source_format == "heif":
                im, orientation, icc = decode_heif(data, settings)
            else:
                im, orientation, icc = decode_pillow(data, source_format, settings)
            if source_format in ("heif", "avif") and not container.has_transform:
                # No irot/imir: the writer recorded the rotation only in EXIF (older Android phones,
                # some converters), so honour it like a JPEG's. With irot/imir, EXIF is ignored.
                orientation = container.exif_orientation
            decode_ms = (time.perf_counter() - started) * 1000.0
            raise_on_decoder_warnings(caught)
            im = to_srgb(im, icc, container.nclx_primaries)
            im = _apply_orientation(im, orientation)
            jpeg = _encode_jpeg(im, settings.jpeg_quality)
            raise_on_decoder_warnings(caught)
            width, height = im.size
            im.close()
    except PhotoRejected:
        raise
    except Exception as exc:
        raise map_decoder_error(exc) from exc
    return NormalizedPhoto(jpeg=jpeg, width=width, height=height, source_format=source_format, decode_ms=decode_ms)


# --- the last steps, on the small frame ---------------------------------------------------------------
_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270"}
_TRANSPOSE |= {7: "TRANSVERSE", 8: "ROTATE_90"}


def _apply_orientation(im: Image.Image, orientation: int) -> Image.Image:
    from PIL import Image

    method = _TRANSPOSE.get(orientation)
    if method is None:
        return im
    out = im.transpose(Image.Transpose[method])
    im.close()
    return out


def _encode_jpeg(im: Image.Image, quality: int) -> bytes:
    # Pillow's JPEG writer falls back to im.info for some fields (comment): start from nothing.
    im.info = {}
    buffer = BytesIO()
    im.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()

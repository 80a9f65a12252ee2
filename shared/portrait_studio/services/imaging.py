"""Photo normalization: untrusted upload bytes in, a small metadata-free sRGB JPEG out.

Pipeline (DESIGN.md "Normalization"): sniff magic bytes -> allowlist (JPEG, PNG, WebP, HEIC/HEIF, AVIF)
-> pixel limit from the header, before any pixel is decoded -> decode with warnings as errors (truncated
files refused, including HEIF files libheif "decodes" with missing tiles) -> longest side <= max_side_px
-> flatten alpha onto white -> embedded ICC profile (or HEIF/AVIF nclx P3) to sRGB -> orientation -> JPEG.

Orientation policy (all 8 values):
- JPEG, PNG, WebP: the EXIF orientation (Pillow's reading, which falls back to XMP) is applied.
- HEIF/AVIF whose primary image carries irot/imir: the container wins and EXIF is ignored, as the HEIF
  spec says; iPhones write both, so applying EXIF as well would rotate twice. libheif applies irot/imir
  while decoding HEIF (a grid's irot we apply, see below); for AVIF, Pillow reports them as the EXIF
  orientation, which we apply.
- HEIF/AVIF without irot/imir: the orientation in the file's Exif item is applied (writers that record
  the rotation only there), read by our own parser since both decoders hide or override it.
Animated WebP/AVIF and APNG: the first frame is used (it is the still a phone exports); multi-image HEIF:
the primary image. Broken or absent ICC profiles are treated as sRGB.

Memory: a grid HEIC (every iPhone photo: 48 HEVC tiles) is decoded one tile at a time and box-reduced as the
tiles arrive (`heif_container` plans it), so a 12 MP photo needs about 0.8x its RGB frame instead of the 1.6x
of libheif's whole decode (4.6x for a 10-bit camera HIF). Other HEIFs are downscaled in bands straight out of
libheif's buffer.

JPEG: libjpeg-turbo's DCT scaling decodes straight to n/8 of the size. Pillow's draft() offers only 1/2, 1/4
and 1/8, so YCbCr/RGB and grey JPEGs go through simplejpeg, which offers every n: an 1800x1200 photo is
decoded at 5/8 (0.84 MP) instead of whole (2.2 MP), a smaller frame and a cheaper LANCZOS pass (7/8 is not
used: slower than a whole decode). Its strict mode also makes libjpeg's corrupt-data warnings errors, which
Pillow ignores. CMYK/YCCK JPEGs stay with Pillow.

Heavy libraries are imported inside functions: a Lambda cold start pays for them only when a photo is seen.
"""

from __future__ import annotations

import struct
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache, partial
from io import BytesIO
from typing import TYPE_CHECKING, cast

from portrait_studio.errors import CorruptImage, PhotoRejected, TooManyPixels, TooSmall, UnsupportedFormat
from portrait_studio.services.heif_container import Container, GridPlan, check_container

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image, ImageCms

    from portrait_studio.config import Settings

__all__ = ["NormalizedPhoto", "normalize_photo", "sniff_format"]

# ftyp brands (ISO/IEC 23008-12, 23000-22 MIAF, AV1-ISOBMFF).
_AVIF_BRANDS = frozenset({b"avif", b"avis", b"avio"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_GENERIC_BRANDS = frozenset({b"mif1", b"mif2", b"msf1"})

_PIL_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}

# JPEG DCT scaling: libjpeg-turbo decodes straight to n/8 of the size. The smallest n that still covers the
# target is used, up to 6/8: a 7/8 decode measured slower than a whole one (its 7x7 IDCT has no SIMD and
# saves little), so those JPEGs are decoded whole.
_MAX_DCT_EIGHTHS = 6

# Downscale by an integer box filter (reduce) to within 2x of the target, then LANCZOS (Pillow's
# reducing_gap=1.0): on the corpus photos >= 47 dB PSNR against a pure LANCZOS, i.e. invisible, and
# several times faster.
_REDUCING_GAP = 1.0
# HEIF: rows produced per band straight from libheif's buffer, so no full-size copy in Pillow.
_BAND_ROWS = 64
# The final resize runs in horizontal strips on a few threads (Pillow releases the GIL while resampling).
# Grid HEIC tiles up to this size are decoded on those threads too (libheif releases the GIL).
_PARALLEL_TILE_PIXELS = 1 << 20
_MAX_RESIZE_THREADS = 4
_STRIP_ROWS = 128
_LANCZOS_SUPPORT = 3.0

_ORIENTATION_TAG = 0x0112
_NCLX_P3_D65 = 12

# Display P3 colorants (D50-adapted, as in Apple's profile); P3 shares sRGB's white point and curve.
_P3_COLORANTS = {
    b"rXYZ": (0.515121, 0.241196, -0.001053),
    b"gXYZ": (0.291977, 0.692245, 0.041885),
    b"bXYZ": (0.157104, 0.066574, 0.784073),
}


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
                _check_size(container.width, container.height, settings, check_small=False)
        else:
            container = Container()
        with warnings.catch_warnings(record=True) as caught:
            # Decoder warnings (truncated data, odd chunks, bomb warnings) mean the pixels are not
            # trustworthy. They are recorded, not raised: the filter is process-wide, and raising would
            # turn other threads' harmless warnings into errors (the local stack runs functions in threads).
            warnings.simplefilter("always")
            started = time.perf_counter()
            if source_format == "heif" and container.grid is not None:
                im, orientation, icc = _decode_heif_grid(container.grid, settings)
            elif source_format == "heif":
                im, orientation, icc = _decode_heif(data, settings)
            else:
                im, orientation, icc = _decode_pillow(data, source_format, settings)
            if source_format in ("heif", "avif") and not container.has_transform:
                # No irot/imir: the writer recorded the rotation only in EXIF (older Android phones,
                # some converters), so honour it like a JPEG's. With irot/imir, EXIF is ignored.
                orientation = container.exif_orientation
            decode_ms = (time.perf_counter() - started) * 1000.0
            _raise_on_decoder_warnings(caught)
            im = _to_srgb(im, icc, container.nclx_primaries)
            im = _apply_orientation(im, orientation)
            jpeg = _encode_jpeg(im, settings.jpeg_quality)
            _raise_on_decoder_warnings(caught)
            width, height = im.size
            im.close()
    except PhotoRejected:
        raise
    except Exception as exc:
        raise _map_decoder_error(exc) from exc
    return NormalizedPhoto(jpeg=jpeg, width=width, height=height, source_format=source_format, decode_ms=decode_ms)


# --- size policy ------------------------------------------------------------------------------------
def _check_size(width: int, height: int, settings: Settings, *, check_small: bool = True) -> None:
    if width <= 0 or height <= 0:
        raise CorruptImage()
    size: dict[str, object] = {"width": width, "height": height}
    if width * height > settings.max_pixels:
        raise TooManyPixels(details=size)
    # The shorter side does not change under any of the 8 orientations, so it can be checked early.
    if check_small and min(width, height) < settings.min_short_side_px:
        raise TooSmall(details=size)


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The output size: longest side <= max_side, aspect kept, never upscaled."""
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _raise_on_decoder_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Only the image libraries' own warnings count; another thread's may land in the same list."""
    from PIL import Image

    for warning in caught:
        if issubclass(warning.category, Image.DecompressionBombWarning):
            raise TooManyPixels()
        if any(part in warning.filename for part in ("/PIL/", "/pillow_heif/", "imaging.py")):
            raise CorruptImage()


def _map_decoder_error(exc: BaseException) -> PhotoRejected:
    from PIL import Image

    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return TooManyPixels()
    return CorruptImage()


# --- decoding -------------------------------------------------------------------------------------
def _decode_pillow(data: bytes, source_format: str, settings: Settings) -> tuple[Image.Image, int, bytes | None]:
    """JPEG, PNG, WebP and AVIF through Pillow: header first, then at most one decoded frame.

    YCbCr/RGB and grey JPEGs have their pixels decoded by `_decode_jpeg` instead, chosen from the header
    (never as a fallback after an error).
    """
    from PIL import Image

    # Our limit, not Pillow's default (~179 MP, below real 200 MP cameras). Anything over it is refused
    # below; Pillow's own bomb warning/error fire at the same or a higher count and map to TooManyPixels.
    Image.MAX_IMAGE_PIXELS = settings.max_pixels
    im = Image.open(BytesIO(data), formats=[_PIL_FORMAT[source_format]])
    try:
        width, height = im.size
        _check_size(width, height, settings)
        target = _fit(width, height, settings.max_side_px)
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
    return _resize(_to_8bit(im), target, extent=extent), orientation, icc


def _dct_eighths(width: int, height: int, target: tuple[int, int]) -> int:
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
    eighths = _dct_eighths(width, height, target)
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
    return _resize(frame, target, extent=None if eighths == 8 else (width * eighths / 8, height * eighths / 8))


def _decode_heif(data: bytes, settings: Settings) -> tuple[Image.Image, int, bytes | None]:
    """HEIC/HEIF through pillow-heif's low-level API, so the frame is downscaled in bands straight out of
    libheif's buffer instead of being copied whole into Pillow first (one decoded frame, not two)."""
    import pillow_heif
    from PIL import Image
    from pillow_heif import options

    options.THUMBNAILS = False
    options.DEPTH_IMAGES = False
    options.AUX_IMAGES = False
    heif_file = pillow_heif.open_heif(data, convert_hdr_to_8bit=True, remove_stride=False)
    image = heif_file[heif_file.primary_index]  # multi-image files (stereo pairs, bursts): the primary
    width, height = image.size  # after libheif's irot/imir
    _check_size(width, height, settings)
    target = _fit(width, height, settings.max_side_px)
    icc = _heif_profile(image.info)  # libheif finds nclx on grid tiles too, where our parser does not look
    mode = image.mode
    buffer = image.data  # decodes; irot/imir already applied
    stride = image.stride
    del heif_file
    if image.size != (width, height):
        raise CorruptImage()
    if mode not in ("RGB", "RGBA", "L", "LA"):
        frame = _to_8bit(Image.frombytes(mode, (width, height), buffer, "raw", mode, stride))
        del buffer, image
        return _resize(frame, target), 1, icc
    factor = max(1, int(min(width / target[0], height / target[1]) / _REDUCING_GAP))
    if factor == 1:
        frame = _resize_buffer(buffer, mode, (width, height), stride, target)
    else:
        frame = _reduce_buffer(buffer, mode, (width, height), stride, factor)
    del buffer, image
    return _resize(frame, target), 1, icc


def _decode_heif_grid(grid: GridPlan, settings: Settings) -> tuple[Image.Image, int, bytes | None]:
    """A grid HEIC (iPhone, most phones and cameras) decoded tile by tile, each tile a small HEIF of its own.

    The frame is box-reduced by the integer factor as tiles arrive, so only the reduced frame and a tile (or
    a row of tiles) are alive at once; the result equals reducing the whole frame. When the factor divides
    the tile size, each tile is reduced on its own; otherwise a row of tiles is, rows left over from the
    uneven factor waiting for the next row. Small tiles are decoded on the worker threads, large ones (a
    10-bit camera's 3 MP tiles, whose libheif intermediates are four times their size) one at a time. The
    grid's irot comes back as the equivalent EXIF orientation, for the caller to apply to the small result.
    """
    width, height = grid.output_width, grid.output_height
    _check_size(width, height, settings)
    target = _fit(width, height, settings.max_side_px)
    factor = max(1, int(min(width / target[0], height / target[1]) / _REDUCING_GAP))
    parallel = grid.tile_width * grid.tile_height <= _PARALLEL_TILE_PIXELS
    if grid.tile_width % factor == 0 and grid.tile_height % factor == 0:
        frame, icc = _reduce_tiles(grid, factor, parallel=parallel)
    else:
        frame, icc = _reduce_tile_rows(grid, factor, parallel=parallel)
    orientation = {1: 8, 2: 3, 3: 6}.get(grid.quarter_turns, 1)
    return _resize(frame, target), orientation, grid.icc or icc  # the grid's own profile describes the image


def _reduce_tiles(grid: GridPlan, factor: int, *, parallel: bool) -> tuple[Image.Image, bytes | None]:
    """Each tile cropped to the canvas and reduced on its own (the factor divides the tile size)."""
    from PIL import Image

    width, height = grid.output_width, grid.output_height

    def reduced_tile(index: int) -> tuple[Image.Image, bytes | None]:
        tile, icc = _decode_tile(grid, index)
        row, column = divmod(index, grid.columns)
        visible = (
            0,
            0,
            min(grid.tile_width, width - column * grid.tile_width),
            min(grid.tile_height, height - row * grid.tile_height),
        )
        if factor == 1 and visible[2:] == tile.size:
            return tile, icc
        reduced = tile.reduce(factor, box=visible)
        tile.close()
        return reduced, icc

    indices = range(grid.rows * grid.columns)
    frame: Image.Image | None = None
    found_icc: bytes | None = None
    for index, (piece, icc) in zip(indices, _maybe_parallel(reduced_tile, indices, parallel=parallel), strict=True):
        if frame is None:
            frame = Image.new(piece.mode, (-(-width // factor), -(-height // factor)))
        row, column = divmod(index, grid.columns)
        frame.paste(_as_mode(piece, frame.mode), (column * grid.tile_width // factor, row * grid.tile_height // factor))
        piece.close()
        found_icc = found_icc or icc
    assert frame is not None
    return frame, found_icc


def _reduce_tile_rows(grid: GridPlan, factor: int, *, parallel: bool) -> tuple[Image.Image, bytes | None]:
    """Rows of tiles joined into bands and reduced; the rows a band leaves over (< factor) join the next."""
    from PIL import Image

    width, height = grid.output_width, grid.output_height
    frame: Image.Image | None = None
    pending: Image.Image | None = None
    done_rows = 0  # rows of `frame` written
    found_icc: bytes | None = None
    decode = partial(_decode_tile, grid)
    for row in range(grid.rows):
        indices = range(row * grid.columns, (row + 1) * grid.columns)
        rows_here = min(grid.tile_height, height - row * grid.tile_height)
        carried = pending.height if pending is not None else 0
        band: Image.Image | None = None
        for column, (tile, icc) in enumerate(_maybe_parallel(decode, indices, parallel=parallel)):
            if frame is None:
                frame = Image.new(tile.mode, (-(-width // factor), -(-height // factor)))
            if band is None:
                band = Image.new(frame.mode, (width, carried + rows_here))
                if pending is not None:
                    band.paste(pending, (0, 0))
                    pending.close()
            band.paste(_as_mode(tile, frame.mode), (column * grid.tile_width, carried))  # clipped at the canvas
            tile.close()
            found_icc = found_icc or icc
        assert frame is not None and band is not None
        last = row == grid.rows - 1
        usable = band.height if last else band.height - band.height % factor
        if usable:
            reduced = band.reduce(factor, box=(0, 0, width, usable))
            frame.paste(reduced, (0, done_rows))
            done_rows += reduced.height
            reduced.close()
        pending = None if usable == band.height else band.crop((0, usable, width, band.height))
        band.close()
    assert frame is not None
    return frame, found_icc


def _maybe_parallel(
    function: Callable[[int], tuple[Image.Image, bytes | None]], indices: range, *, parallel: bool
) -> Iterator[tuple[Image.Image, bytes | None]]:
    return _worker_pool().map(function, indices) if parallel else map(function, indices)


def _as_mode(im: Image.Image, mode: str) -> Image.Image:
    """A tile in the frame's mode (a grid's tiles may disagree, e.g. one grey tile among colour ones)."""
    if im.mode == mode:
        return im
    converted = im.convert(mode)
    im.close()
    return converted


def _decode_tile(grid: GridPlan, index: int) -> tuple[Image.Image, bytes | None]:
    """One tile as an 8-bit image of the grid's tile size, with its ICC profile (or Display P3 for nclx P3)."""
    import pillow_heif

    heif_file = pillow_heif.open_heif(grid.tile_file(index), convert_hdr_to_8bit=True, remove_stride=False)
    if heif_file.size != (grid.tile_width, grid.tile_height):
        raise CorruptImage()
    tile = _whole_frame(heif_file.data, heif_file.mode, heif_file.size, heif_file.stride)
    return _to_8bit(tile), _heif_profile(heif_file.info)


def _heif_profile(info: Mapping[str, object]) -> bytes | None:
    """A decoded HEIF image's ICC profile, or Display P3 when it signals P3 by nclx instead."""
    profile, nclx = info.get("icc_profile"), info.get("nclx_profile")
    if isinstance(profile, (bytes, bytearray)) and profile:
        return bytes(profile)
    if isinstance(nclx, dict) and nclx.get("color_primaries") == _NCLX_P3_D65:
        return _display_p3_profile()
    return None


def _band(buffer: memoryview, mode: str, width: int, stride: int, first: int, last: int) -> Image.Image:
    """Rows [first, last) of a decoded buffer as an image (RGB is copied: Pillow stores it as 4 bytes)."""
    from PIL import Image

    view = cast("bytes", buffer[first * stride : last * stride])  # any buffer works; the stub says bytes
    return Image.frombuffer(mode, (width, last - first), view, "raw", mode, stride, 1)


def _whole_frame(buffer: memoryview, mode: str, size: tuple[int, int], stride: int) -> Image.Image:
    """A decoded buffer as an image that owns its pixels."""
    whole = _band(buffer, mode, size[0], stride, 0, size[1])
    # RGB is already a copy (see _band); L and RGBA map libheif's buffer, which must not outlive it.
    return whole.copy() if whole.readonly else whole


def _reduce_buffer(buffer: memoryview, mode: str, size: tuple[int, int], stride: int, factor: int) -> Image.Image:
    """Box-reduce by an integer factor, a band of rows at a time."""
    from PIL import Image

    width, height = size
    frame = Image.new(mode, (-(-width // factor), -(-height // factor)))
    rows = _BAND_ROWS * factor
    for top in range(0, height, rows):
        band = _band(buffer, mode, width, stride, top, min(height, top + rows))
        reduced = band.reduce(factor)  # premultiplies alpha itself
        frame.paste(reduced, (0, top // factor))
        band.close()
        reduced.close()
    return frame


def _resize_buffer(
    buffer: memoryview, mode: str, size: tuple[int, int], stride: int, target: tuple[int, int]
) -> Image.Image:
    """LANCZOS-resize a band of output rows at a time, bands on the resize threads; each band carries the
    filter's support rows, so the result equals resizing the whole frame."""
    from PIL import Image

    width, height = size
    if size == target:
        return _whole_frame(buffer, mode, size, stride)
    scale = height / target[1]
    support = _LANCZOS_SUPPORT * max(scale, 1.0)

    def band_resized(top: int) -> Image.Image:
        bottom = min(target[1], top + _BAND_ROWS)
        source_top, source_bottom = top * scale, bottom * scale
        first = max(0, int(source_top - support) - 1)
        last = min(height, int(source_bottom + support) + 2)
        band = _band(buffer, mode, width, stride, first, last)
        box = (0.0, source_top - first, float(width), source_bottom - first)
        resized = band.resize((target[0], bottom - top), Image.Resampling.LANCZOS, box=box)
        band.close()
        return resized

    frame = Image.new(mode, target)
    tops = range(0, target[1], _BAND_ROWS)
    for top, piece in zip(tops, _worker_pool().map(band_resized, tops), strict=True):
        frame.paste(piece, (0, top))
        piece.close()
    return frame


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


# --- pixels -----------------------------------------------------------------------------------------
def _to_8bit(im: Image.Image) -> Image.Image:
    """Every mode we can meet to one of L, LA, RGB, RGBA, CMYK (8 bits per channel)."""
    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK") and "transparency" not in im.info:
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        import numpy as np
        from PIL import Image

        array = np.asarray(im)
        if mode == "F":
            scaled = np.clip(array, 0.0, 255.0)
        elif mode == "I" and int(array.max(initial=0)) <= 255:
            scaled = np.clip(array, 0, 255)
        else:
            # 16-bit samples: keep the top 8 bits (Pillow's convert would clip at 255 instead).
            scaled = np.clip(array, 0, 65535) >> 8
        out = Image.fromarray(np.ascontiguousarray(scaled, dtype=np.uint8))  # mode L
        out.info = dict(im.info)
        im.close()
        return out
    # A palette, grey or RGB PNG can mark one colour transparent (tRNS): that becomes real alpha.
    has_alpha = mode in ("LA", "RGBA", "PA", "La", "RGBa") or "transparency" in im.info
    converted = im.convert("RGBA" if has_alpha else ("L" if mode == "1" else "RGB"))
    if converted is not im:
        converted.info = {k: v for k, v in im.info.items() if k != "transparency"}
        im.close()
    return converted


def _resize(im: Image.Image, target: tuple[int, int], *, extent: tuple[float, float] | None = None) -> Image.Image:
    """LANCZOS (after an integer reduce) in horizontal strips on a few threads; closes `im`.

    `extent`: the (width, height) of `im` the picture really covers, for a DCT-scaled JPEG whose last
    column and row stand for a partial block (Pillow's thumbnail() uses draft()'s box the same way).
    """
    from PIL import Image

    if im.size == target:
        return im
    mode = im.mode
    # Premultiply once here; Pillow would otherwise convert the whole image again for every strip.
    premultiplied = {"RGBA": "RGBa", "LA": "La"}.get(mode)
    source = im.convert(premultiplied) if premultiplied else im
    if source is not im:
        im.close()
    width, height = target
    # Small strips also keep Pillow's intermediate (horizontal pass) images small. Equal strips, a whole
    # number per thread, so no thread is left with a last strip while the others idle.
    threads = _resize_threads()
    strips = threads * -(-height // (threads * _STRIP_ROWS))
    rows = -(-height // strips)
    tops = list(range(0, height, rows))
    source_width, source_height = extent or source.size
    scale = source_height / height

    def strip(top: int) -> Image.Image:
        bottom = min(height, top + rows)
        box = (0.0, top * scale, float(source_width), bottom * scale)
        return source.resize((width, bottom - top), Image.Resampling.LANCZOS, box=box, reducing_gap=_REDUCING_GAP)

    if len(tops) == 1 or threads == 1:
        box = (0.0, 0.0, float(source_width), float(source_height))
        out = source.resize(target, Image.Resampling.LANCZOS, box=box, reducing_gap=_REDUCING_GAP)
    else:
        out = Image.new(source.mode, target, None)  # not zero-filled: the strips cover every row
        for top, piece in zip(tops, _worker_pool().map(strip, tops), strict=True):
            out.paste(piece, (0, top))
            piece.close()
    source.close()
    if premultiplied:
        unpremultiplied = out.convert(mode)
        out.close()
        out = unpremultiplied
    return out


@lru_cache(maxsize=1)
def _resize_threads() -> int:
    import os

    return max(1, min(_MAX_RESIZE_THREADS, len(os.sched_getaffinity(0))))


@lru_cache(maxsize=1)
def _worker_pool() -> ThreadPoolExecutor:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=_resize_threads(), thread_name_prefix="resize")


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


def _to_srgb(im: Image.Image, icc: bytes | None, nclx_primaries: int | None) -> Image.Image:
    """Flatten alpha, then convert the embedded profile (Display P3, Adobe RGB, CMYK, gray...) to sRGB RGB."""
    im = _flatten(im)
    profile = icc
    if profile is None and nclx_primaries == _NCLX_P3_D65 and im.mode == "RGB":
        profile = _display_p3_profile()
    if profile is not None:
        transform = _icc_transform(profile, im.mode)
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


@lru_cache(maxsize=8)
def _icc_transform(profile: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
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
def _display_p3_profile() -> bytes:
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

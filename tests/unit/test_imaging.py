"""normalize_photo on synthetic images made here: formats, limits, orientation, colour, metadata."""

from __future__ import annotations

import functools
import importlib
import io
import os
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from portrait_studio.config import Settings
from portrait_studio.errors import CorruptImage, PhotoRejected, TooManyPixels, TooSmall, UnsupportedFormat
from portrait_studio.services.heif_container import check_container
from portrait_studio.services.imaging import NormalizedPhoto, normalize_photo, sniff_format
from portrait_studio.services.imaging_colour import display_p3_profile
from portrait_studio.services.imaging_decoders import dct_eighths, decode_pillow
from portrait_studio.services.imaging_pixels import fit

SETTINGS = Settings()
SHARED = Path(__file__).resolve().parents[2] / "shared"
JFIF_KEYS = {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi"}
FORBIDDEN_BYTES = (b"Exif\x00\x00", b"http://ns.adobe.com/xap", b"ICC_PROFILE", b"GPS", b"secret-comment")

# Orientation -> what a viewer does to the stored pixels to display them (EXIF 2.3, as Pillow maps it).
DISPLAY = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
INVERSE = {
    Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270,
}
QUADRANTS = {"tl": (220, 30, 30), "tr": (30, 200, 30), "bl": (30, 30, 220), "br": (240, 240, 240)}


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **params)
    return buffer.getvalue()


def decode(result: NormalizedPhoto) -> Image.Image:
    im = Image.open(io.BytesIO(result.jpeg))
    im.load()
    assert im.format == "JPEG"
    assert im.size == (result.width, result.height)
    return im


def quadrant_image(size: tuple[int, int]) -> Image.Image:
    """What the viewer should see: four coloured quadrants."""
    width, height = size
    im = Image.new("RGB", size)
    im.paste(QUADRANTS["tl"], (0, 0, width // 2, height // 2))
    im.paste(QUADRANTS["tr"], (width // 2, 0, width, height // 2))
    im.paste(QUADRANTS["bl"], (0, height // 2, width // 2, height))
    im.paste(QUADRANTS["br"], (width // 2, height // 2, width, height))
    return im


def assert_quadrants(im: Image.Image) -> None:
    width, height = im.size
    points = {
        "tl": (width // 4, height // 4),
        "tr": (3 * width // 4, height // 4),
        "bl": (width // 4, 3 * height // 4),
        "br": (3 * width // 4, 3 * height // 4),
    }
    rgb = im.convert("RGB")
    for name, point in points.items():
        pixel = rgb.getpixel(point)
        assert isinstance(pixel, tuple)
        assert max(abs(a - b) for a, b in zip(pixel, QUADRANTS[name], strict=True)) < 24, (name, pixel)


def stored_for(displayed: Image.Image, orientation: int) -> Image.Image:
    """The pixels a camera stores so that `orientation` displays `displayed`."""
    method = DISPLAY[orientation]
    if method is None:
        return displayed.copy()
    return displayed.transpose(INVERSE.get(method, method))


def exif_with(orientation: int | None = None, gps: bool = False) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "ACME Camera"  # Make
    if orientation is not None:
        exif[0x0112] = orientation
    if gps:
        exif[0x8825] = {1: "N", 2: (37.0, 46.0, 30.0), 3: "W", 4: (122.0, 25.0, 10.0)}
    return exif


def assert_no_metadata(result: NormalizedPhoto) -> None:
    im = decode(result)
    assert len(im.getexif()) == 0
    assert "icc_profile" not in im.info
    assert "xmp" not in im.info
    assert "exif" not in im.info
    assert "comment" not in im.info
    assert set(im.info) <= JFIF_KEYS, im.info.keys()
    for needle in FORBIDDEN_BYTES:
        assert needle not in result.jpeg, needle
    assert result.jpeg.endswith(b"\xff\xd9")


# --- formats ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xe0" + bytes(20), "jpeg"),
        (b"\x89PNG\r\n\x1a\n" + bytes(20), "png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "heif"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "heif"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1avif", "avif"),
        (b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00mif1miaf", "avif"),
        (b"\x00\x00\x00\x14ftypmsf1\x00\x00\x00\x00msf1", "heif"),
    ],
)
def test_sniff_by_magic(data: bytes, expected: str) -> None:
    assert sniff_format(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, this is not a photo at all\n",
        b"<svg xmlns='http://www.w3.org/2000/svg' width='640' height='480'></svg>",
        b"GIF89a" + bytes(20),
        b"II*\x00" + bytes(20),  # TIFF
        b"BM" + bytes(40),  # BMP
        b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x00crx isom",  # Canon CR3: ISOBMFF but not HEIF
        b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00isommp41",  # MP4 video
        b"\xff\xd8",  # too short to be a JPEG
    ],
    ids=["empty", "text", "svg", "gif", "tiff", "bmp", "cr3", "mp4", "two-bytes"],
)
def test_anything_else_is_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedFormat):
        normalize_photo(data, SETTINGS)


def test_real_gif_is_refused_even_though_pillow_reads_it() -> None:
    data = encode(quadrant_image((800, 600)).convert("P"), "GIF")
    with pytest.raises(UnsupportedFormat):
        normalize_photo(data, SETTINGS)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF", "AVIF"])
def test_each_allowed_format_normalizes(fmt: str) -> None:
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    data = encode(quadrant_image((900, 700)), fmt, quality=95)
    result = normalize_photo(data, SETTINGS)
    assert result.source_format == {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp", "HEIF": "heif", "AVIF": "avif"}[fmt]
    assert (result.width, result.height) == (900, 700)
    assert result.decode_ms >= 0
    assert_quadrants(decode(result))


# --- limits -----------------------------------------------------------------------------------------
def png_header_only(width: int, height: int, bit_depth: int = 1, color_type: int = 0) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(("width", "height"), [(60000, 60000), (20000, 20000), (16321, 12240)])
def test_png_header_bomb_is_refused_before_decoding(width: int, height: int) -> None:
    with pytest.raises(TooManyPixels):
        normalize_photo(png_header_only(width, height), SETTINGS)


def test_pixel_limit_is_ours_not_pillows() -> None:
    # Exactly at the limit (a 200 MP camera) is not refused for size: it fails later only because this
    # crafted file has no pixel data, which shows the header check let it through.
    with pytest.raises(CorruptImage):
        normalize_photo(png_header_only(16320, 12240), SETTINGS)
    small_limit = Settings(max_pixels=1000)
    with pytest.raises(TooManyPixels):
        normalize_photo(
            encode(quadrant_image((40, 40)), "PNG"), small_limit.model_copy(update={"min_short_side_px": 1})
        )


def test_heif_header_bomb_is_refused_from_the_container() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    data = bytearray(encode(quadrant_image((640, 512)), "HEIF"))
    index = data.find(b"ispe")
    assert index > 0
    struct.pack_into(">II", data, index + 8, 30000, 30000)
    with pytest.raises(TooManyPixels):
        normalize_photo(bytes(data), SETTINGS)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((3000, 2000), (1024, 683)),
        ((2000, 3000), (683, 1024)),
        ((4000, 4000), (1024, 1024)),
        ((1024, 768), (1024, 768)),
        ((700, 600), (700, 600)),
        ((512, 2000), (262, 1024)),
    ],
)
def test_downscale_to_max_side_never_upscale(size: tuple[int, int], expected: tuple[int, int]) -> None:
    result = normalize_photo(encode(quadrant_image(size), "JPEG", quality=92), SETTINGS)
    assert (result.width, result.height) == expected
    assert_quadrants(decode(result))


@pytest.mark.parametrize("size", [(511, 800), (800, 511), (128, 128)])
def test_too_small_short_side(size: tuple[int, int]) -> None:
    with pytest.raises(TooSmall):
        normalize_photo(encode(quadrant_image(size), "PNG"), SETTINGS)


def test_min_short_side_is_inclusive() -> None:
    result = normalize_photo(encode(quadrant_image((512, 900)), "PNG"), SETTINGS)
    assert (result.width, result.height) == (512, 900)


# --- orientation --------------------------------------------------------------------------------------
@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_eight_exif_orientations_jpeg(orientation: int) -> None:
    displayed = quadrant_image((1600, 1000))
    stored = stored_for(displayed, orientation)
    data = encode(stored, "JPEG", quality=92, exif=exif_with(orientation))
    result = normalize_photo(data, SETTINGS)
    assert (result.width, result.height) == (1024, 640)
    assert_quadrants(decode(result))
    assert_no_metadata(result)


@pytest.mark.parametrize(("fmt", "orientation"), [("PNG", 6), ("WEBP", 8), ("PNG", 3), ("WEBP", 5)])
def test_exif_orientation_png_webp(fmt: str, orientation: int) -> None:
    displayed = quadrant_image((900, 600))
    data = encode(stored_for(displayed, orientation), fmt, exif=exif_with(orientation), lossless=True)
    result = normalize_photo(data, SETTINGS)
    assert (result.width, result.height) == (900, 600)
    assert_quadrants(decode(result))


def test_bad_orientation_values_are_ignored() -> None:
    displayed = quadrant_image((900, 600))
    for value in (0, 9, 255):
        result = normalize_photo(encode(displayed, "JPEG", exif=exif_with(value)), SETTINGS)
        assert_quadrants(decode(result))


def test_heif_container_rotation_is_not_applied_twice() -> None:
    """Like every iPhone photo: irot in the container AND EXIF orientation 6; rotate exactly once.

    (pillow-heif writes irot, and keeps the EXIF tag, when given EXIF bytes with an orientation.)
    """
    import pillow_heif

    pillow_heif.register_heif_opener()
    displayed = quadrant_image((600, 900))
    data = encode(stored_for(displayed, 6), "HEIF", quality=95, exif=exif_with(6).tobytes())
    assert b"irot" in data
    assert check_container(data).exif_orientation == 6
    result = normalize_photo(data, SETTINGS)
    assert (result.width, result.height) == (600, 900)
    assert_quadrants(decode(result))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_heif_exif_orientation_without_irot_is_honoured(orientation: int) -> None:
    """A writer that records the rotation only in EXIF (pillow-heif does, given an Exif object)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    displayed = quadrant_image((600, 900))
    data = encode(stored_for(displayed, orientation), "HEIF", quality=95, exif=exif_with(orientation))
    assert b"irot" not in data
    result = normalize_photo(data, SETTINGS)
    assert (result.width, result.height) == (600, 900)
    assert_quadrants(decode(result))


def test_avif_irot_is_applied_once() -> None:
    displayed = quadrant_image((600, 900))
    data = encode(stored_for(displayed, 8), "AVIF", quality=95, exif=exif_with(8))
    result = normalize_photo(data, SETTINGS)
    assert (result.width, result.height) == (600, 900)
    assert_quadrants(decode(result))


# --- pixels and colour --------------------------------------------------------------------------------
def test_alpha_is_flattened_onto_white() -> None:
    im = Image.new("RGBA", (800, 600), (0, 0, 255, 255))
    im.paste((255, 0, 0, 0), (0, 0, 400, 600))  # transparent red: must not show
    out = decode(normalize_photo(encode(im, "PNG"), SETTINGS))
    assert out.mode == "RGB"
    left, right = out.getpixel((100, 300)), out.getpixel((700, 300))
    assert isinstance(left, tuple)
    assert isinstance(right, tuple)
    assert min(left) > 245, left
    assert right[2] > 230 and right[0] < 25, right


def test_alpha_downscale_does_not_bleed_hidden_colour() -> None:
    im = Image.new("RGBA", (3000, 3000), (255, 0, 0, 0))  # hidden red everywhere
    im.paste((0, 0, 0, 255), (1500, 0, 3000, 3000))
    out = np.asarray(decode(normalize_photo(encode(im, "PNG"), SETTINGS))).astype(int)
    assert (out[..., 0] - out[..., 1]).max() < 12  # no pink fringe from premultiplication errors


def test_gray_with_alpha() -> None:
    im = Image.new("RGBA", (600, 600), (0, 0, 0, 0))
    im.paste((0, 0, 0, 255), (300, 0, 600, 600))
    out = decode(normalize_photo(encode(im.convert("LA"), "PNG"), SETTINGS)).convert("L")
    assert out.getpixel((100, 300)) > 240  # type: ignore[operator]
    assert out.getpixel((500, 300)) < 15  # type: ignore[operator]


def test_palette_with_transparency() -> None:
    im = Image.new("P", (600, 600), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.paste(1, (300, 0, 600, 600))
    out = decode(normalize_photo(encode(im, "PNG", transparency=0), SETTINGS))
    assert min(out.getpixel((100, 300))) > 240  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_transparent_colour_key_is_flattened(mode: str) -> None:
    im = Image.new(mode, (600, 600), 0)  # black, declared transparent by tRNS
    im.paste(200 if mode == "L" else (200, 200, 200), (300, 0, 600, 600))
    out = decode(normalize_photo(encode(im, "PNG", transparency=0 if mode == "L" else (0, 0, 0)), SETTINGS))
    left, right = out.getpixel((100, 300)), out.getpixel((500, 300))
    assert isinstance(left, tuple)
    assert isinstance(right, tuple)
    assert min(left) > 245 and max(abs(channel - 200) for channel in right) < 6, (left, right)


def test_16_bit_gray_keeps_its_tones() -> None:
    ramp = np.tile(np.linspace(0, 65535, 768, dtype=np.uint16), (600, 1))
    im = Image.fromarray(ramp)
    assert im.mode.startswith("I;16")
    out = np.asarray(decode(normalize_photo(encode(im, "PNG"), SETTINGS)).convert("L")).astype(int)
    # Pillow's own convert would clip everything above 255 to white; the middle must stay mid-grey.
    assert 110 < out[300, 384] < 145
    assert out[300, 5] < 10
    assert out[300, 760] > 245


def test_16_bit_rgba_png() -> None:
    rgba = np.zeros((600, 600, 4), dtype=">u2")
    rgba[..., 1] = 40000
    rgba[..., 3] = 65535
    raw = b"".join(b"\x00" + row.tobytes() for row in rgba)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 600, 600, 16, 6, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    pixel = decode(normalize_photo(data, SETTINGS)).getpixel((300, 300))
    assert isinstance(pixel, tuple)
    assert abs(pixel[1] - 40000 * 255 // 65535) < 6 and pixel[0] < 8, pixel


def test_grayscale_becomes_rgb() -> None:
    im = Image.new("L", (600, 600), 77)
    out = decode(normalize_photo(encode(im, "JPEG"), SETTINGS))
    assert out.mode == "RGB"
    pixel = out.getpixel((300, 300))
    assert isinstance(pixel, tuple)
    assert all(abs(channel - 77) < 4 for channel in pixel)


def test_cmyk_jpeg_becomes_correct_rgb() -> None:
    im = Image.new("CMYK", (600, 600), (255, 0, 0, 0))  # pure cyan
    im.paste((0, 0, 0, 255), (300, 0, 600, 600))  # pure black
    out = decode(normalize_photo(encode(im, "JPEG", quality=95), SETTINGS))
    cyan, black = out.getpixel((100, 300)), out.getpixel((500, 300))
    assert isinstance(cyan, tuple)
    assert isinstance(black, tuple)
    assert cyan[0] < 30 and cyan[1] > 225 and cyan[2] > 225, cyan
    assert max(black) < 30, black


def p3_in_srgb(colour: tuple[int, int, int]) -> tuple[int, ...]:
    """A Display P3 colour as LittleCMS converts it to sRGB (relative colorimetric), the reference."""
    expected = ImageCms.profileToProfile(
        Image.new("RGB", (1, 1), colour),
        ImageCms.ImageCmsProfile(io.BytesIO(display_p3_profile())),
        ImageCms.createProfile("sRGB"),
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )
    assert expected is not None
    want = expected.getpixel((0, 0))
    assert isinstance(want, tuple)
    return want


def test_display_p3_profile_is_converted_to_srgb() -> None:
    p3 = display_p3_profile()
    colour = (200, 120, 60)
    data = encode(Image.new("RGB", (600, 600), colour), "PNG", icc_profile=p3)
    out = decode(normalize_photo(data, SETTINGS)).getpixel((300, 300))
    assert isinstance(out, tuple)
    want = p3_in_srgb(colour)
    assert want != colour  # the conversion does change these numbers...
    assert max(abs(a - b) for a, b in zip(out, want, strict=True)) <= 3, (out, want)  # ...and we did it


def test_srgb_profile_and_broken_profile_leave_colours_alone() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    colour = (200, 120, 60)
    for profile in (srgb, b"definitely not an ICC profile"):
        data = encode(Image.new("RGB", (600, 600), colour), "PNG", icc_profile=profile)
        out = decode(normalize_photo(data, SETTINGS)).getpixel((300, 300))
        assert isinstance(out, tuple)
        assert max(abs(a - b) for a, b in zip(out, colour, strict=True)) <= 3


def test_animated_webp_uses_first_frame() -> None:
    frames = [Image.new("RGB", (600, 600), colour) for colour in ((250, 0, 0), (0, 0, 250))]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    pixel = decode(normalize_photo(data, SETTINGS)).getpixel((300, 300))
    assert isinstance(pixel, tuple)
    assert pixel[0] > 230 and pixel[2] < 25


# --- damage -----------------------------------------------------------------------------------------
def noisy(size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(7)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99])
def test_truncated_jpeg_is_corrupt(keep: float) -> None:
    data = encode(noisy((1200, 900)), "JPEG", quality=90)
    with pytest.raises(CorruptImage):
        normalize_photo(data[: int(len(data) * keep)], SETTINGS)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_png_is_corrupt(keep: float) -> None:
    data = encode(noisy((800, 600)), "PNG")
    with pytest.raises(CorruptImage):
        normalize_photo(data[: int(len(data) * keep)], SETTINGS)


@functools.cache
def noisy_heif(**params: object) -> bytes:
    """A noisy 1024x768 HEIF, encoded once per module: x265 takes about 3 CPU s over noise."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    return encode(noisy((1024, 768)), "HEIF", **params)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_heif_is_corrupt(keep: float) -> None:
    data = noisy_heif(quality=80)
    with pytest.raises(CorruptImage):
        normalize_photo(data[: int(len(data) * keep)], SETTINGS)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_truncated_grid_heif_that_libheif_decodes_silently_is_corrupt(keep: float) -> None:
    """iPhones store HEIC as a grid of tiles; libheif paints missing tiles and reports success."""
    import pillow_heif

    data = noisy_heif(quality=60, tile_size=256)
    assert b"grid" in data
    cut = data[: int(len(data) * keep)]
    heif = pillow_heif.open_heif(cut)
    assert len(heif[heif.primary_index].data) == 1024 * 768 * 3  # the decoder's silence
    with pytest.raises(CorruptImage):
        normalize_photo(cut, SETTINGS)


def test_decoder_warnings_are_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    original = ImageFile.ImageFile.load

    def load_with_warning(self: ImageFile.ImageFile) -> object:
        # As if Pillow itself warned while decoding (only the image libraries' warnings count).
        warnings.warn_explicit("broken data stream when reading image file", UserWarning, ImageFile.__file__, 1)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load_with_warning)
    with pytest.raises(CorruptImage):
        normalize_photo(encode(quadrant_image((800, 600)), "PNG"), SETTINGS)


IMAGING_MODULES = ("imaging", "imaging_checks", "imaging_decoders", "imaging_heif", "imaging_pixels", "imaging_colour")


# "faces": another module's warning (another thread's, landing in the same list) does not count.
@pytest.mark.parametrize(("module", "counts"), [*((name, True) for name in IMAGING_MODULES), ("faces", False)])
def test_warnings_attributed_to_our_imaging_modules_are_errors(
    monkeypatch: pytest.MonkeyPatch, module: str, counts: bool
) -> None:
    """A C decoder's warning is attributed to the line of ours that called it, in whichever imaging module."""
    from PIL import ImageFile

    source = importlib.import_module(f"portrait_studio.services.{module}").__file__
    assert source is not None
    original = ImageFile.ImageFile.load

    def load_with_warning(self: ImageFile.ImageFile) -> object:
        warnings.warn_explicit("corrupt data", UserWarning, source, 1)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load_with_warning)
    data = encode(quadrant_image((800, 600)), "PNG")
    if counts:
        with pytest.raises(CorruptImage):
            normalize_photo(data, SETTINGS)
    else:
        assert isinstance(normalize_photo(data, SETTINGS), NormalizedPhoto)


@pytest.mark.parametrize("error", [RuntimeError("boom"), MemoryError(), KeyError("x"), OSError("io"), ValueError()])
def test_any_decoder_exception_becomes_corrupt(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise error

    monkeypatch.setattr(Image, "open", explode)
    with pytest.raises(CorruptImage) as caught:
        normalize_photo(encode(quadrant_image((800, 600)), "PNG"), SETTINGS)
    assert caught.value.__cause__ is error


def test_only_domain_errors_escape_on_heif_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    data = encode(quadrant_image((800, 600)), "HEIF")

    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("libheif exploded")

    monkeypatch.setattr(pillow_heif, "open_heif", explode)
    with pytest.raises(PhotoRejected):
        normalize_photo(data, SETTINGS)


# --- metadata -----------------------------------------------------------------------------------------
def test_no_metadata_survives_jpeg() -> None:
    p3 = display_p3_profile()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://ns.adobe.com/xap/1.0/"/></x:xmpmeta>'
    data = encode(
        quadrant_image((1500, 1000)),
        "JPEG",
        exif=exif_with(1, gps=True),
        icc_profile=p3,
        comment=b"secret-comment",
        xmp=xmp,
    )
    with Image.open(io.BytesIO(data)) as source:  # the input has it all
        assert source.getexif().get_ifd(0x8825)
        assert {"icc_profile", "xmp", "comment", "exif"} <= set(source.info)
    result = normalize_photo(data, SETTINGS)
    assert_no_metadata(result)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "HEIF"])
def test_no_metadata_survives_other_formats(fmt: str) -> None:
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    data = encode(quadrant_image((900, 700)), fmt, exif=exif_with(1, gps=True), icc_profile=display_p3_profile())
    assert_no_metadata(normalize_photo(data, SETTINGS))


def test_polyglot_trailing_bytes_do_not_reach_the_output() -> None:
    payload = b"PK\x03\x04" + b"hidden-zip-payload" * 100
    data = encode(quadrant_image((800, 600)), "JPEG") + payload
    result = normalize_photo(data, SETTINGS)
    assert b"hidden-zip-payload" not in result.jpeg


# --- cold start ----------------------------------------------------------------------------------------
def test_module_imports_lazily() -> None:
    """Importing imaging loads none of the heavy decoders (Lambda cold starts); how fast is a benchmark's
    business, not a timed unit test's on a shared machine."""
    code = (
        "import sys\n"
        "import portrait_studio.services.imaging\n"
        "print(','.join(m for m in ('PIL', 'numpy', 'pillow_heif', 'simplejpeg', 'dlib') if m in sys.modules))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(SHARED))
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert output.stdout.strip() == "", output.stdout


# --- JPEG DCT scaling (simplejpeg) ---------------------------------------------------------------------
def textured(size: tuple[int, int]) -> Image.Image:
    """Photo-like detail near the output's resolution: a misplaced or blurred resample shows in the PSNR."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    red = 128 + 60 * np.sin(x / 7.0) * np.cos(y / 11.0) + 40 * np.sin((x + 2 * y) / 4.3)
    green = 128 + 70 * np.cos(x / 5.1 + y / 9.0) + 30 * np.sin(y / 3.7)
    blue = 110 + 90 * x / width - 50 * y / height + 25 * np.sin((x - y) / 6.1)
    return Image.fromarray(np.clip(np.stack([red, green, blue], axis=-1), 0, 255).astype(np.uint8))


def psnr(a: Image.Image, b: Image.Image) -> float:
    first, second = np.asarray(a.convert("RGB"), np.float64), np.asarray(b.convert("RGB"), np.float64)
    assert first.shape == second.shape
    mse = float(((first - second) ** 2).mean())
    return 99.0 if mse == 0 else 10 * float(np.log10(255**2 / mse))


@pytest.fixture
def simplejpeg_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Records each simplejpeg decode (its keyword arguments and the decoded size)."""
    import simplejpeg

    calls: list[dict[str, object]] = []
    original = simplejpeg.decode_jpeg

    def recording(data: bytes, **kwargs: object) -> np.ndarray:
        array = original(data, **kwargs)
        calls.append({**kwargs, "size": (array.shape[1], array.shape[0])})
        return array

    monkeypatch.setattr(simplejpeg, "decode_jpeg", recording)
    return calls


@pytest.mark.parametrize(
    ("size", "target", "eighths"),
    [
        ((1800, 1200), (1024, 683), 5),
        ((1200, 1800), (683, 1024), 5),
        ((3264, 2448), (1024, 768), 3),
        ((4032, 3024), (1024, 768), 3),
        ((6000, 4500), (1024, 768), 2),
        ((8192, 6144), (1024, 768), 1),
        ((1450, 967), (1024, 683), 6),
        ((1200, 900), (1024, 768), 7),  # decoded whole instead: 7/8 is slower than a whole decode
        ((1024, 768), (1024, 768), 8),
    ],
)
def test_dct_scale_is_the_smallest_that_covers_the_target(
    size: tuple[int, int], target: tuple[int, int], eighths: int
) -> None:
    assert fit(*size, SETTINGS.max_side_px) == target
    assert dct_eighths(*size, target) == eighths


@pytest.mark.parametrize(("size", "scaled"), [((1800, 1200), (1125, 750)), ((1650, 1100), (1032, 688))])
def test_scaled_jpeg_decode_matches_a_full_lanczos(
    size: tuple[int, int], scaled: tuple[int, int], simplejpeg_calls: list[dict[str, object]]
) -> None:
    data = encode(textured(size), "JPEG", quality=92)
    im, orientation, icc = decode_pillow(data, "jpeg", SETTINGS)
    assert [call["size"] for call in simplejpeg_calls] == [scaled]  # 5/8, straight out of libjpeg-turbo
    assert simplejpeg_calls[0]["strict"] is True
    with Image.open(io.BytesIO(data)) as full:
        reference = full.convert("RGB").resize(im.size, Image.Resampling.LANCZOS)
    assert im.size == (1024, 683) and im.mode == "RGB"
    assert (orientation, icc) == (1, None)
    # 1650 * 5/8 = 1031.25: resizing the 1032 decoded columns as if they were whole shifts the picture by up
    # to half a pixel (about 30 dB here); from the exact extent it is about 42 dB, like 1800 * 5/8 = 1125.
    assert psnr(im, reference) >= 38
    assert decode(normalize_photo(data, SETTINGS)).size == (1024, 683)


def test_jpeg_that_only_a_7_8_scale_fits_is_decoded_whole(simplejpeg_calls: list[dict[str, object]]) -> None:
    out = decode(normalize_photo(encode(quadrant_image((1200, 900)), "JPEG"), SETTINGS))
    assert out.size == (1024, 768)
    assert_quadrants(out)
    assert [call["size"] for call in simplejpeg_calls] == [(1200, 900)]


def damaged_scan(data: bytes) -> bytes:
    """A JPEG with a few entropy-coded bytes overwritten mid-scan: libjpeg warns, and paints garbage."""
    scan = data.index(b"\xff\xda")
    middle = scan + (len(data) - scan) // 2
    return data[:middle] + b"\xff\xd3\x00\x17" + data[middle + 4 :]


@pytest.mark.parametrize("size", [(700, 600), (1100, 800), (1800, 1200)])
def test_damaged_jpeg_is_corrupt_whatever_its_size(size: tuple[int, int]) -> None:
    """libjpeg's corrupt-data warnings are errors for every plain JPEG, scaled or decoded whole."""
    data = damaged_scan(encode(noisy(size), "JPEG", quality=90))
    with pytest.raises(CorruptImage):
        normalize_photo(data, Settings(min_short_side_px=1))


def test_scaled_grayscale_jpeg(simplejpeg_calls: list[dict[str, object]]) -> None:
    grey = textured((1800, 1200)).convert("L")
    data = encode(grey, "JPEG", quality=92)
    im, _orientation, _icc = decode_pillow(data, "jpeg", SETTINGS)
    assert [(call["colorspace"], call["size"]) for call in simplejpeg_calls] == [("GRAY", (1125, 750))]
    assert im.mode == "L" and im.size == (1024, 683)
    with Image.open(io.BytesIO(data)) as full:
        reference = full.resize(im.size, Image.Resampling.LANCZOS)
    assert psnr(im, reference) >= 38
    out = decode(normalize_photo(data, SETTINGS))
    assert out.mode == "RGB" and out.size == (1024, 683)
    red, green, blue = (np.asarray(band, np.int16) for band in out.split())
    assert int(np.abs(red - green).max()) <= 2 and int(np.abs(green - blue).max()) <= 2


def test_large_cmyk_jpeg_stays_with_pillow(simplejpeg_calls: list[dict[str, object]]) -> None:
    im = Image.new("CMYK", (2100, 1400), (255, 0, 0, 0))  # pure cyan; Pillow's draft decodes it at 1/2
    im.paste((0, 0, 0, 255), (1050, 0, 2100, 1400))  # pure black
    out = decode(normalize_photo(encode(im, "JPEG", quality=95), SETTINGS))
    assert out.size == (1024, 683)
    assert simplejpeg_calls == []
    cyan, black = out.getpixel((200, 340)), out.getpixel((800, 340))
    assert isinstance(cyan, tuple)
    assert isinstance(black, tuple)
    assert cyan[0] < 30 and cyan[1] > 225 and cyan[2] > 225, cyan
    assert max(black) < 30, black


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99])
def test_truncated_scaled_jpeg_is_corrupt(keep: float, simplejpeg_calls: list[dict[str, object]]) -> None:
    data = encode(noisy((1800, 1200)), "JPEG", quality=90)
    with pytest.raises(CorruptImage) as caught:
        normalize_photo(data[: int(len(data) * keep)], SETTINGS)
    assert isinstance(caught.value.__cause__, ValueError)  # simplejpeg's strict mode, not Pillow, refused it


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_on_a_scaled_jpeg(orientation: int, simplejpeg_calls: list[dict[str, object]]) -> None:
    stored = stored_for(quadrant_image((1800, 1200)), orientation)
    data = encode(stored, "JPEG", exif=exif_with(orientation))
    out = decode(normalize_photo(data, SETTINGS))
    assert out.size == (1024, 683)
    assert_quadrants(out)
    assert [call["size"] for call in simplejpeg_calls] == [(stored.width * 5 // 8, stored.height * 5 // 8)]


def test_scaled_jpeg_keeps_its_icc_profile(simplejpeg_calls: list[dict[str, object]]) -> None:
    p3 = display_p3_profile()
    colour = (200, 120, 60)
    data = encode(Image.new("RGB", (1800, 1200), colour), "JPEG", quality=95, icc_profile=p3)
    out = decode(normalize_photo(data, SETTINGS)).getpixel((512, 340))
    assert isinstance(out, tuple)
    assert len(simplejpeg_calls) == 1
    want = p3_in_srgb(colour)
    assert max(abs(a - b) for a, b in zip(out, want, strict=True)) <= 4, (out, want)

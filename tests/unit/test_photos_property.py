"""Properties of the photo gate: whatever bytes arrive, only PhotoRejected comes out, and memory stays bounded.

Random bytes, files with valid magic and junk after it, and mutated real files (byte flips, truncations,
insertions, header splices) of every allowed format. Small seeds with min_short_side_px=1 so that the
mutations reach the decoders instead of stopping at the size floor.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from functools import cache
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import PhotoRejected
from portrait_studio.services.faces import find_duplicate, hamming_distance, perceptual_hash
from portrait_studio.services.imaging import normalize_photo
from portrait_studio.services.photos import CheckedPhoto, check_photo

PERMISSIVE = Settings(min_short_side_px=1)
SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPUS = Path(os.environ.get("PORTRAIT_CORPUS") or Path(__file__).resolve().parents[3] / "shared" / "corpus")
FUZZ = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
CORPUS_SEEDS = (
    "jpeg/hopper_orient6.jpg",
    "jpeg/cmyk.jpg",
    "jpeg/astronaut_progressive.jpg",
    "png/icc_profile.png",
    "png/rgba_16bit.png",
    "webp/hopper_orient6.webp",
    "webp/animated_iss634.webp",
    "heic/rgba_8bit_alpha.heif",
    "heic/colors_alpha_thumbnail.heic",
    "heic/gray_3images_thumb.heic",
    "avif/transparency.avif",
    "avif/rot1mir0.avif",
)


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **params)
    return buffer.getvalue()


@cache
def seeds() -> tuple[bytes, ...]:
    """Small valid files of every allowed format: synthetic, plus corpus files when the corpus is present."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    rng = np.random.default_rng(11)
    im = Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    made = [
        encode(im, "JPEG", quality=80, exif=exif),
        encode(im, "JPEG", quality=80, progressive=True),
        encode(im.convert("RGBA"), "PNG"),
        encode(im.convert("P"), "PNG", transparency=3),
        encode(im, "WEBP", quality=80, exif=exif),
        encode(im, "WEBP", lossless=True),
        encode(im, "HEIF", quality=60, exif=exif.tobytes()),
        encode(Image.fromarray(rng.integers(0, 255, (256, 320, 3), dtype=np.uint8)), "HEIF", quality=50, tile_size=64),
        encode(im, "AVIF", quality=60),
    ]
    found = [(CORPUS / path).read_bytes() for path in CORPUS_SEEDS if (CORPUS / path).is_file()]
    return tuple(made + found)


def outcome(data: bytes) -> str:
    """Run the whole gate; anything but a PhotoRejected (or success) fails the test."""
    try:
        result = check_photo(data, PERMISSIVE)
    except PhotoRejected as rejection:
        return rejection.code
    assert isinstance(result, CheckedPhoto)
    assert max(result.normalized.width, result.normalized.height) <= PERMISSIVE.max_side_px
    assert result.normalized.jpeg.startswith(b"\xff\xd8")
    return "accepted"


# --- only domain errors ---------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    outcome(data)


MAGICS = [
    b"\xff\xd8\xff\xe0",
    b"\xff\xd8\xff\xe1",
    b"\x89PNG\r\n\x1a\n",
    b"RIFF\x00\x10\x00\x00WEBPVP8 ",
    b"RIFF\x00\x10\x00\x00WEBPVP8X",
    b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
    b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00mif1avif",
    b"\x00\x00\x00\x14ftypmif1\x00\x00\x00\x00mif1",
]


@FUZZ
@given(st.sampled_from(MAGICS), st.binary(max_size=2048))
def test_valid_magic_then_junk(magic: bytes, tail: bytes) -> None:
    outcome(magic + tail)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds())))
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "splice", "box-size"]))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            position = draw(st.integers(0, len(data) - 1))
            data[position] ^= draw(st.integers(1, 255))
    elif kind == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "insert":
        position = draw(st.integers(0, len(data)))
        data[position:position] = draw(st.binary(min_size=1, max_size=64))
    elif kind == "delete":
        start = draw(st.integers(0, len(data) - 1))
        del data[start : start + draw(st.integers(1, 64))]
    elif kind == "splice":
        other = draw(st.sampled_from(seeds()))
        cut = draw(st.integers(0, min(len(data), 512)))
        data = data[:cut] + other[draw(st.integers(0, len(other) - 1)) :]
    else:  # overwrite a 32-bit big-endian field near the start: box sizes, IHDR, iloc offsets
        position = draw(st.integers(0, max(0, min(len(data), 4096) - 4)))
        value = draw(st.sampled_from([0, 1, 7, 8, 0x7FFFFFFF, 0xFFFFFFFF, len(data), len(data) + 1]))
        data[position : position + 4] = struct.pack(">I", value)
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_files(data: bytes) -> None:
    outcome(data)


@settings(max_examples=15, deadline=None, database=None)
@given(
    st.integers(1, 2400),
    st.integers(1, 2400),
    st.sampled_from(["JPEG", "PNG", "WEBP"]),
    st.sampled_from([1, 3, 6, 8]),
)
def test_any_size_comes_out_within_bounds(width: int, height: int, fmt: str, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.new("RGB", (width, height), (90, 120, 150)), fmt, exif=exif)
    result = normalize_photo(data, PERMISSIVE)
    shown = (height, width) if orientation in (6, 8) else (width, height)
    assert max(result.width, result.height) == min(max(shown), PERMISSIVE.max_side_px)
    assert (result.width >= result.height) == (shown[0] >= shown[1]) or abs(shown[0] - shown[1]) <= 2
    assert result.width <= shown[0] and result.height <= shown[1]  # never upscaled


# --- duplicates -----------------------------------------------------------------------------------
hashes = st.integers(0, 2**64 - 1).map(lambda value: f"{value:016x}")


@settings(max_examples=100, deadline=None, database=None)
@given(hashes, hashes)
def test_hamming_distance_is_a_metric(first: str, second: str) -> None:
    assert hamming_distance(first, first) == 0
    assert hamming_distance(first, second) == hamming_distance(second, first)
    assert 0 <= hamming_distance(first, second) <= 64


@settings(max_examples=100, deadline=None, database=None)
@given(hashes, st.dictionaries(st.text(max_size=5), hashes, max_size=5), st.integers(0, 64))
def test_find_duplicate_returns_a_close_key_or_none(phash: str, others: dict[str, str], limit: int) -> None:
    found = find_duplicate(phash, others, limit)
    if found is None:
        assert all(hamming_distance(phash, other) > limit for other in others.values())
    else:
        assert hamming_distance(phash, others[found]) <= limit


def test_find_duplicate_ignores_malformed_hashes() -> None:
    assert find_duplicate("", {"a": ""}, 64) is None
    assert find_duplicate("zz" * 8, {"a": "00" * 8}, 64) is None
    assert find_duplicate("00" * 8, {"a": "not-a-hash", "b": "0x" + "0" * 14}, 64) is None
    assert find_duplicate("00" * 8, {"a": "ff" * 8, "b": "01" + "00" * 7}, 1) == "b"


def test_phash_is_stable_under_resize_and_recompression() -> None:
    rng = np.random.default_rng(5)
    base = Image.fromarray(rng.integers(0, 255, (24, 32), dtype=np.uint8)).resize((640, 480), Image.Resampling.BICUBIC)
    variants = [base, base.resize((320, 240)), Image.open(io.BytesIO(encode(base, "JPEG", quality=60)))]
    values = [perceptual_hash(np.asarray(v.convert("L"), dtype=np.float32)) for v in variants]
    assert max(hamming_distance(values[0], value) for value in values) <= 2
    other = perceptual_hash(np.asarray(base.transpose(Image.Transpose.ROTATE_90).resize((640, 480)), dtype=np.float32))
    assert hamming_distance(values[0], other) > 10


# --- memory -----------------------------------------------------------------------------------------
MEMORY_CHILD = r"""
import json, resource, sys
from portrait_studio.config import Settings
from portrait_studio.errors import PhotoRejected
from portrait_studio.services.imaging import normalize_photo

settings = Settings(min_short_side_px=1)
warm, path = sys.argv[1], sys.argv[2]
normalize_photo(open(warm, "rb").read(), settings)  # load the codec libraries before the baseline
data = open(path, "rb").read()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    normalize_photo(data, settings)
    verdict = "accepted"
except PhotoRejected as rejection:
    verdict = rejection.code
print(json.dumps({"verdict": verdict, "peak_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}))
"""


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(1 << 20)))
        + chunk(b"IEND", b"")
    )


def peak(tmp_path: Path, name: str, data: bytes, warm: bytes) -> dict[str, object]:
    source, warm_path = tmp_path / name, tmp_path / f"warm-{name}"
    source.write_bytes(data)
    warm_path.write_bytes(warm)
    env = dict(os.environ, PYTHONPATH=str(SHARED))
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(warm_path), str(source)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def gradient(width: int, height: int) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    red = (x * 255 // width).astype(np.uint8)
    green = (y * 255 // height).astype(np.uint8)
    blue = (((x // 32 + y // 32) % 2) * 200).astype(np.uint8)
    return Image.fromarray(np.stack([red, green, blue], axis=-1))


def test_peak_memory_is_bounded(tmp_path: Path) -> None:
    """Stated limits, measured as the child's peak RSS growth (C allocations included):

    - anything refused from its header (pixel bombs): < 16 MB, i.e. nothing is decoded;
    - a 27 MP JPEG (81 MB as RGB): < 0.5x its decoded frame, thanks to DCT scaling;
    - a 12 MP PNG (36 MB as RGB): < 2.5x its frame (Pillow holds RGB as 4 bytes a pixel);
    - a 3 MP tiled HEIC (9.4 MB as RGB): < 2.5x its frame plus 6 MB (libheif's YUV + RGB buffers).
    """
    import pillow_heif

    pillow_heif.register_heif_opener()
    small_jpeg = encode(gradient(64, 48), "JPEG")
    bombs = {
        "png-60000.png": png_header(60000, 60000),
        "png-20000.png": png_header(20000, 20000),
    }
    for name, data in bombs.items():
        result = peak(tmp_path, name, data, small_jpeg)
        assert result["verdict"] == "too_many_pixels"
        assert float(str(result["peak_mb"])) < 16, result

    frame_mb = 6000 * 4500 * 3 / 2**20
    result = peak(tmp_path, "big.jpg", encode(gradient(6000, 4500), "JPEG", quality=85), small_jpeg)
    assert result["verdict"] == "accepted"
    assert float(str(result["peak_mb"])) < 0.5 * frame_mb, result

    frame_mb = 4000 * 3000 * 3 / 2**20
    png = encode(gradient(4000, 3000), "PNG", compress_level=1)
    result = peak(tmp_path, "big.png", png, encode(gradient(64, 48), "PNG"))
    assert result["verdict"] == "accepted"
    assert float(str(result["peak_mb"])) < 2.5 * frame_mb, result

    frame_mb = 2048 * 1536 * 3 / 2**20
    heic = encode(gradient(2048, 1536), "HEIF", quality=40, tile_size=512)
    result = peak(tmp_path, "big.heic", heic, encode(gradient(64, 48), "HEIF"))
    assert result["verdict"] == "accepted"
    assert float(str(result["peak_mb"])) < 2.5 * frame_mb + 6, result

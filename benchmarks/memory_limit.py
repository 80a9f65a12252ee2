"""Benchmark: does NormalizeFunction's MemorySize (template.yaml) hold the largest photo we accept?

    .venv/bin/python benchmarks/memory_limit.py [--megapixels 24]

For each format a photo-like image (gradients, edges and noise, so codecs cannot shortcut it) of
`--megapixels` is checked by `check_photo` (normalization and the face gate, as the function runs them) in a
fresh process that has imported boto3 and warmed every codec up on a 1.5 MP file. Its peak RSS growth (Linux
VmHWM, reset once the warm-up is over and the file read) is expressed as a multiple of the image's RGB frame
(w*h*3) and projected to the pixel limit (`Settings.max_pixels`, 200 MP): the warmed process's RSS + ratio x
the limit's RGB frame. Decoders' working sets grow with the pixel count, so the ratio carries over.

Goal: every format's projection within 85% of MemorySize, leaving room for the upload's own bytes (<= 30 MB)
and the allocator's slack.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEADROOM = 0.85
# Single-image HEIC is measured at 12 MP at most: libde265 cannot decode the larger single images x265
# writes. Phones never write them (their HEICs are grids).
SINGLE_HEIC_MAX_MEGAPIXELS = 12.0

# (label, file name, Pillow save parameters); HEIF tile_size makes a grid like a phone's.
FORMATS: list[tuple[str, str, dict[str, object]]] = [
    ("JPEG baseline 4:2:0", "photo.jpg", {"format": "JPEG", "quality": 90}),
    (
        "JPEG progressive 4:4:4",
        "photo-progressive.jpg",
        {"format": "JPEG", "quality": 90, "progressive": True, "subsampling": 0},
    ),
    ("PNG", "photo.png", {"format": "PNG", "compress_level": 1}),
    ("WebP", "photo.webp", {"format": "WEBP", "quality": 85}),
    ("HEIC grid (phones)", "photo-grid.heic", {"format": "HEIF", "quality": 80, "tile_size": 512}),
    ("HEIC single image", "photo-single.heic", {"format": "HEIF", "quality": 80}),
    ("AVIF", "photo.avif", {"format": "AVIF", "quality": 70, "speed": 10}),
]

_CHILD = r"""
import json, sys
import boto3  # loaded in the function by the S3 download before any photo is decoded
from portrait_studio.config import Settings
from portrait_studio.errors import PhotoRejected
from portrait_studio.services.photos import check_photo

def status_kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

settings = Settings()
for warm in sys.argv[2:]:
    try:
        check_photo(open(warm, "rb").read(), settings)
    except PhotoRejected:
        pass
data = open(sys.argv[1], "rb").read()
with open("/proc/self/clear_refs", "w") as clear_refs:
    clear_refs.write("5")  # Linux: the peak RSS (VmHWM) starts again from the current RSS
base = status_kib("VmRSS")
try:
    check_photo(data, settings)
    verdict = "accepted"
except PhotoRejected as rejection:
    verdict = rejection.code
print(json.dumps({"verdict": verdict, "base_kib": base, "peak_kib": status_kib("VmHWM")}))
"""

# Writes the images in a process of its own: a parent grown by a 24 MP image would pass its peak RSS on
# to the children it starts (Linux keeps the high-water mark across fork and exec), hiding their figures.
_GENERATOR = r"""
import json, sys
import numpy as np
import pillow_heif
from PIL import Image

pillow_heif.register_heif_opener()
directory, formats = sys.argv[1], json.loads(sys.argv[2])

def photo_like(width, height):
    rng = np.random.default_rng(7)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1)
    rgb[height // 3 : height // 2, width // 5 : width // 2] = (250, 20, 20)
    rgb += rng.normal(0, 6, rgb.shape).astype(np.float32)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))

small, images = photo_like(1400, 1050), {}
for name, params, (width, height) in formats:
    small.save(f"{directory}/warm-{name}", **params)
    if (width, height) not in images:
        images[(width, height)] = photo_like(width, height)
    images[(width, height)].save(f"{directory}/{name}", **params)
"""


def memory_size_mb() -> int:
    """NormalizeFunction's MemorySize, read from template.yaml."""
    text = (REPO / "template.yaml").read_text()
    block = text[text.index("  NormalizeFunction:") :]
    match = re.search(r"^      MemorySize: (\d+)$", block, re.MULTILINE)
    if match is None:
        raise SystemExit("NormalizeFunction has no MemorySize in template.yaml")
    return int(match.group(1))


def size_for(megapixels: float) -> tuple[int, int]:
    """A 4:3 photo of about `megapixels`."""
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    return width, width * 3 // 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=24.0, help="size of the measured images")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "shared"))
    from portrait_studio.config import Settings

    limit_pixels = Settings().max_pixels
    limit_frame_mb = limit_pixels * 3 / 2**20
    memory_mb = memory_size_mb()
    sizes = {
        name: size_for(min(args.megapixels, SINGLE_HEIC_MAX_MEGAPIXELS) if "single" in name else args.megapixels)
        for _label, name, _params in FORMATS
    }
    print(
        f"NormalizeFunction MemorySize {memory_mb} MB; pixel limit {limit_pixels / 1e6:.0f} MP "
        f"({limit_frame_mb:.0f} MB RGB frame); images of {args.megapixels:g} MP "
        f"(single-image HEIC: {min(args.megapixels, SINGLE_HEIC_MAX_MEGAPIXELS):g} MP)"
    )
    header = f"{'format':24} {'size':>10} {'file MB':>8} {'verdict':>10} {'base MB':>8} {'grew MB':>8} {'x frame':>8}"
    print(f"{header} {'at limit MB':>12}  goal")
    env = dict(os.environ, PYTHONPATH=str(REPO / "shared"))
    failures = 0
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as scratch:
        directory = Path(scratch)
        spec = json.dumps([(name, params, sizes[name]) for _label, name, params in FORMATS])
        subprocess.run([sys.executable, "-c", _GENERATOR, scratch, spec], check=True, env=env, timeout=1800)
        warm_paths = [str(directory / f"warm-{name}") for _label, name, _params in FORMATS]
        for label, name, _params in FORMATS:
            path = directory / name
            width, height = sizes[name]
            frame_mb = width * height * 3 / 2**20
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path), *warm_paths],
                capture_output=True,
                text=True,
                env=env,
                timeout=1800,
            )
            if proc.returncode != 0:
                failures += 1
                tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"{label:24} FAILED: {tail[:100]}")
                continue
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            base_mb, growth_mb = result["base_kib"] / 1024, (result["peak_kib"] - result["base_kib"]) / 1024
            ratio = growth_mb / frame_mb
            projected = base_mb + ratio * limit_frame_mb
            fits = projected <= HEADROOM * memory_mb
            failures += not fits
            print(
                f"{label:24} {f'{width}x{height}':>10} {path.stat().st_size / 2**20:8.1f} {result['verdict']:>10} "
                f"{base_mb:8.0f} {growth_mb:8.0f} {ratio:8.2f} {projected:12.0f}  {'PASS' if fits else 'FAIL'}"
            )
    goal = f"projected peak at {limit_pixels / 1e6:.0f} MP <= {HEADROOM:.0%} of {memory_mb} MB"
    print(f"\n{'FAIL' if failures else 'PASS'}: {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

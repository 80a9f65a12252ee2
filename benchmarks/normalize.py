"""Benchmark: our `normalize_photo` against a naive Pillow pipeline, pyvips and ImageMagick.

    .venv/bin/python benchmarks/normalize.py [--repeat 5] [--only SUBSTRING]

Over the corpus's decodable files (MANIFEST.json `expected.decodes` true, GIF excluded: refused by
policy), grouped JPEG / HEIC / other. Every (tool, file) runs in a fresh subprocess: it imports the tool,
warms it up on a tiny file of the same format (codec libraries load lazily), records its peak RSS
(`ru_maxrss`) as the baseline, normalizes the file once and records the peak again (the difference is
the file's peak memory), then times `--repeat` more runs and reports the median. ImageMagick is an
external process, so its timing includes process start and its memory is the child's own peak minus
the peak of a run on the tiny file.

Ours runs with min_short_side_px=1 so that small files do the whole pipeline instead of being refused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLS = ("ours", "naive", "pyvips", "magick")
GROUPS = ("JPEG", "HEIC", "other")
# A tiny file of each kind for warming up the codecs before the baseline is taken.
WARMUP = {
    "JPEG": "faces/hopper.jpg",
    "HEIC": "heic/rgba_8bit_alpha.heif",
    "PNG": "png/icc_profile.png",
    "WEBP": "webp/hopper_orient6.webp",
    "AVIF": "avif/transparency.avif",
}
# Memory is judged where it matters: frames of at least this many bytes (w*h*3), i.e. about 1.4 MP.
MEMORY_MIN_FRAME_BYTES = 4 * 1024 * 1024

_CHILD = r"""
import io, json, resource, statistics, subprocess, sys, tempfile, time
tool, path, warm, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
data = open(path, "rb").read()
warm_data = open(warm, "rb").read()

def peak_kib(who=resource.RUSAGE_SELF):
    return resource.getrusage(who).ru_maxrss

if tool == "ours":
    from portrait_studio.config import Settings
    from portrait_studio.services.imaging import normalize_photo
    settings = Settings(min_short_side_px=1)
    def job(blob):
        return normalize_photo(blob, settings).jpeg
elif tool == "naive":
    from PIL import Image, ImageOps
    import pillow_heif
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    Image.MAX_IMAGE_PIXELS = 16320 * 12240
    def job(blob):
        im = Image.open(io.BytesIO(blob))
        im = ImageOps.exif_transpose(im)
        im = im.convert("RGB")
        im.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        im.save(out, "JPEG", quality=90)
        return out.getvalue()
elif tool == "pyvips":
    import pyvips
    def job(blob):
        return pyvips.Image.thumbnail_buffer(blob, 1024).jpegsave_buffer(Q=90, strip=True)
elif tool == "magick":
    out_path = tempfile.mktemp(suffix=".jpg")
    def job(blob, source=path):
        args = ["convert", source, "-auto-orient", "-thumbnail", "1024x1024>", "-quality", "90", "-strip", out_path]
        subprocess.run(args, check=True, capture_output=True, timeout=120)
        return open(out_path, "rb").read()
else:
    raise SystemExit(f"unknown tool {tool}")

result = {"tool": tool, "ok": True}
try:
    if tool == "magick":
        job(warm_data, source=warm)
        base = peak_kib(resource.RUSAGE_CHILDREN)
        job(data)
        result["peak_kib"] = max(0, peak_kib(resource.RUSAGE_CHILDREN) - base)
    else:
        job(warm_data)
        base = peak_kib()
        job(data)
        result["peak_kib"] = max(0, peak_kib() - base)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        job(data)
        times.append((time.perf_counter() - started) * 1000.0)
    result["ms"] = statistics.median(times)
except Exception as exc:
    result = {"tool": tool, "ok": False, "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:90]}"}
print(json.dumps(result))
"""


def corpus_dir() -> Path:
    return Path(os.environ.get("PORTRAIT_CORPUS", REPO.parent / "shared" / "corpus"))


def magick_status() -> str | None:
    """None when a real ImageMagick `convert` is on PATH, else why not."""
    exe = shutil.which("convert")
    if exe is None:
        return "not installed"
    try:
        proc = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "not installed"
    if "ImageMagick" not in proc.stdout or "Version:" not in proc.stdout:
        return "not installed (convert on PATH is a stand-in)"
    return None


def pyvips_status() -> str | None:
    proc = subprocess.run([sys.executable, "-c", "import pyvips"], capture_output=True, timeout=60)
    return None if proc.returncode == 0 else "not installed (pip install pyvips==3.2.0 pyvips-binary==8.18.7)"


def group_of(entry: dict[str, object]) -> str:
    fmt = str(entry.get("format"))
    return "JPEG" if fmt == "JPEG" else "HEIC" if fmt == "HEIF" else "other"


def measure(tool: str, path: Path, warm: Path, repeat: int) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "shared"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, tool, str(path), str(warm), str(repeat)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"tool": tool, "ok": False, "error": f"exit {proc.returncode}: {tail[:90]}"}
    result: dict[str, object] = json.loads(lines[-1])
    return result


def fmt_ms(result: dict[str, object] | None) -> str:
    if result is None:
        return "n/a"
    if not result.get("ok"):
        return "FAIL"
    return f"{float(str(result['ms'])):.1f}"


def fmt_mb(result: dict[str, object] | None) -> str:
    if result is None or not result.get("ok"):
        return "-"
    return f"{int(str(result['peak_kib'])) / 1024:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per (tool, file) after the first")
    parser.add_argument("--only", default="", help="only files whose path contains this")
    args = parser.parse_args(argv)

    corpus = corpus_dir()
    manifest_path = corpus / "MANIFEST.json"
    if not manifest_path.is_file():
        print(f"corpus not found at {corpus} (set PORTRAIT_CORPUS)", file=sys.stderr)
        return 2
    entries = [
        e
        for e in json.loads(manifest_path.read_text())
        if e["expected"].get("decodes") is True and e.get("format") != "GIF" and args.only in e["path"]
    ]
    unavailable = {"pyvips": pyvips_status(), "magick": magick_status()}
    tools = [tool for tool in TOOLS if unavailable.get(tool) is None]
    for tool, why in unavailable.items():
        if why:
            print(f"{tool}: {why}")

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory():
        for entry in entries:
            path = corpus / str(entry["path"])
            fmt = str(entry.get("format"))
            warm = corpus / WARMUP.get("HEIC" if fmt == "HEIF" else fmt, WARMUP["JPEG"])
            width, height = int(entry.get("width") or 0), int(entry.get("height") or 0)
            row: dict[str, object] = {"path": entry["path"], "group": group_of(entry), "frame": width * height * 3}
            for tool in tools:
                row[tool] = measure(tool, path, warm, args.repeat)
            rows.append(row)
            print(_row_text(row, tools), flush=True)

    print()
    print(_summary(rows, tools, unavailable))
    return 0


def _row_text(row: dict[str, object], tools: list[str]) -> str:
    cells = [f"{row['path']!s:48.48}", f"{row['group']!s:5}", f"{int(str(row['frame'])) / 2**20:8.1f}"]
    for tool in tools:
        result = row.get(tool)
        assert result is None or isinstance(result, dict)
        cells.append(f"{fmt_ms(result):>8} {fmt_mb(result):>7}")
    errors = [
        f"{tool}: {result['error']}"
        for tool in tools
        if isinstance(result := row.get(tool), dict) and not result.get("ok")
    ]
    return "  ".join(cells) + ("  " + "; ".join(errors) if errors else "")


def _median(rows: list[dict[str, object]], tool: str) -> float | None:
    values = [float(str(r[tool]["ms"])) for r in rows if isinstance(r.get(tool), dict) and r[tool].get("ok")]  # type: ignore[index,union-attr]
    return statistics.median(values) if values else None


def _summary(rows: list[dict[str, object]], tools: list[str], unavailable: dict[str, str | None]) -> str:
    lines = ["median ms per file (ratio to ours); files that failed for a tool are left out of its median"]
    header = f"{'group':6} {'files':>5}  " + "  ".join(f"{tool:>16}" for tool in TOOLS)
    lines.append(header)
    medians: dict[tuple[str, str], float | None] = {}
    for group in GROUPS:
        members = [r for r in rows if r["group"] == group]
        cells = []
        ours = _median(members, "ours")
        for tool in TOOLS:
            if tool not in tools:
                cells.append(f"{'not installed':>16}")
                continue
            value = _median(members, tool)
            medians[(group, tool)] = value
            failed = sum(1 for r in members if isinstance(r.get(tool), dict) and not r[tool].get("ok"))  # type: ignore[union-attr]
            text = "-" if value is None else f"{value:.1f}"
            if value is not None and ours and tool != "ours":
                text += f" ({value / ours:.2f}x)"
            if failed:
                text += f" {failed}F"
            cells.append(f"{text:>16}")
        lines.append(f"{group:6} {len(members):>5}  " + "  ".join(cells))

    lines.append("")
    lines.append(f"peak RSS / decoded frame (w*h*3), files with frame >= {MEMORY_MIN_FRAME_BYTES // 2**20} MB:")
    worst: float | None = None
    for row in rows:
        frame = int(str(row["frame"]))
        result = row.get("ours")
        if frame < MEMORY_MIN_FRAME_BYTES or not isinstance(result, dict) or not result.get("ok"):
            continue
        ratio = int(str(result["peak_kib"])) * 1024 / frame
        worst = ratio if worst is None else max(worst, ratio)
        others = "  ".join(
            f"{tool} {int(str(r['peak_kib'])) * 1024 / frame:.2f}x"
            for tool in tools
            if tool != "ours" and isinstance(r := row.get(tool), dict) and r.get("ok")
        )
        lines.append(f"  {row['path']!s:48.48} frame {frame / 2**20:6.1f} MB  ours {ratio:.2f}x  {others}")

    def goal(name: str, ok: bool | None) -> str:
        return f"{'PASS' if ok else 'FAIL' if ok is False else 'SKIP'}: {name}"

    def ratio(group: str, tool: str) -> float | None:
        ours, other = medians.get((group, "ours")), medians.get((group, tool))
        return None if ours is None or other is None or other == 0 else ours / other

    jpeg_naive, jpeg_vips, heic_naive = ratio("JPEG", "naive"), ratio("JPEG", "pyvips"), ratio("HEIC", "naive")
    lines.append("")
    lines.append(
        goal(
            f"JPEG median <= 0.5x naive Pillow (ours/naive = {jpeg_naive:.2f})" if jpeg_naive else "JPEG vs naive",
            None if jpeg_naive is None else jpeg_naive <= 0.5,
        )
    )
    lines.append(
        goal(
            f"JPEG median faster than pyvips (ours/pyvips = {jpeg_vips:.2f})"
            if jpeg_vips
            else f"JPEG vs pyvips ({unavailable.get('pyvips') or 'no data'})",
            None if jpeg_vips is None else jpeg_vips < 1.0,
        )
    )
    lines.append(
        goal(
            f"HEIC median <= 1.0x naive Pillow (ours/naive = {heic_naive:.2f})" if heic_naive else "HEIC vs naive",
            None if heic_naive is None else heic_naive <= 1.0,
        )
    )
    lines.append(
        goal(
            f"peak memory <= 1.5x decoded frame (worst {worst:.2f}x)" if worst is not None else "peak memory",
            None if worst is None else worst <= 1.5,
        )
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

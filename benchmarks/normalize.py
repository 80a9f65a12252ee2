"""Benchmark: our `normalize_photo` against a naive Pillow pipeline, pyvips and ImageMagick.

    .venv/bin/python benchmarks/normalize.py [--repeat 5] [--only SUBSTRING[,...]] [--group JPEG,HEIC] [--quick]

`--only` and `--group` select files (any of the comma-separated path substrings / groups). `--quick` is for
iterating: one timed round (at least 0.2 s instead of 1 s for small files) and no ImageMagick; its goal
lines are indicative only. Baselines and goals are the same in every mode.

Over the corpus's decodable files (MANIFEST.json `expected.decodes` true, GIF excluded: refused by
policy), grouped JPEG / HEIC / other.

Memory: every (tool, file) runs in a fresh subprocess that imports the tool and warms it up on a tiny file
of the same format and on a 1400x1050 JPEG (codec libraries load lazily; thread pools and their allocator
arenas start on first use, as they would have in a warm function), resets the peak RSS (Linux VmHWM, via
/proc/self/clear_refs), normalizes the file once and reads the peak; peak minus the RSS before is the file's
peak memory. For ImageMagick (an external process) it is the child's peak minus that of the warm-up runs.

Time: one subprocess per file runs the tools round-robin (`--repeat` rounds after a warm-up round, more
for small files, up to a second in all), so a load spike on a shared machine hits every tool alike; the
median per tool is reported. pyvips' operation
cache is off (it would otherwise return the previous result). ImageMagick's time includes its start-up.

Ours runs with min_short_side_px=1 so that small files do the whole pipeline instead of being refused.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLS = ("ours", "naive", "pyvips", "magick")
GROUPS = ("JPEG", "HEIC", "other")
# A tiny file of each kind for warming up the codecs before measuring. In-process tools then also warm up on
# a 1400x1050 JPEG made here (`warm_jpeg`): a photo's whole path, DCT scaling and thread pools included.
WARMUP = {
    "JPEG": "faces/hopper.jpg",
    "HEIC": "heic/rgba_8bit_alpha.heif",
    "PNG": "png/icc_profile.png",
    "WEBP": "webp/hopper_orient6.webp",
    "AVIF": "avif/transparency.avif",
}
# Memory is judged where it matters: frames of at least this many bytes (w*h*3), i.e. about 1.4 MP.
MEMORY_MIN_FRAME_BYTES = 4 * 1024 * 1024
# Photos rather than test swatches: the summary also gives medians over files of at least 1 MP.
LARGE_PIXELS = 1_000_000

_SETUP = r"""
import io, json, os, resource, statistics, subprocess, sys, tempfile, time

def make_job(tool, magick):
    if tool == "ours":
        from portrait_studio.config import Settings
        from portrait_studio.services.imaging import normalize_photo
        settings = Settings(min_short_side_px=1)
        return lambda blob, path: normalize_photo(blob, settings).jpeg
    if tool == "naive":
        from PIL import Image, ImageOps
        import pillow_heif
        pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
        Image.MAX_IMAGE_PIXELS = 16320 * 12240
        def naive(blob, path):
            im = Image.open(io.BytesIO(blob))
            im = ImageOps.exif_transpose(im)
            im = im.convert("RGB")
            im.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            im.save(out, "JPEG", quality=90)
            return out.getvalue()
        return naive
    if tool == "pyvips":
        import pyvips
        pyvips.cache_set_max(0)
        return lambda blob, path: pyvips.Image.thumbnail_buffer(blob, 1024).jpegsave_buffer(Q=90, strip=True)
    if tool == "magick":
        out_path = tempfile.mktemp(suffix=".jpg")
        def run(blob, path):
            args = [magick, path, "-auto-orient", "-thumbnail", "1024x1024>", "-quality", "90", "-strip", out_path]
            subprocess.run(args, check=True, capture_output=True, timeout=120)
            return open(out_path, "rb").read()
        return run
    raise SystemExit(f"unknown tool {tool}")

def failure(exc):
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {(text[0] if text else '')[:80]}"
"""

_MEMORY_CHILD = (
    _SETUP
    + r"""
tool, path, warm, warm_photo, magick = sys.argv[1:6]
data = open(path, "rb").read()

def status_kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

def reset_peak():
    # Linux: "5" resets the peak RSS (VmHWM) to the current RSS, so warming up costs nothing below.
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False

try:
    job = make_job(tool, magick)
    # ImageMagick runs as a process per file: no state to warm, and its peak is measured against the tiny run.
    for name in (warm,) if tool == "magick" else (warm, warm_photo):
        job(open(name, "rb").read(), name)
    if tool != "magick" and reset_peak():
        base = status_kib("VmRSS")
        job(data, path)
        peak = status_kib("VmHWM") - base
    else:
        who = resource.RUSAGE_CHILDREN if tool == "magick" else resource.RUSAGE_SELF
        base = resource.getrusage(who).ru_maxrss
        job(data, path)
        peak = resource.getrusage(who).ru_maxrss - base
    print(json.dumps({"ok": True, "peak_kib": max(0, peak)}))
except Exception as exc:
    print(json.dumps({"ok": False, "error": failure(exc)}))
"""
)

_TIME_CHILD = (
    _SETUP
    + r"""
path, warm, magick, repeat, tools = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
MIN_SECONDS, MAX_ROUNDS = float(os.environ.get("BENCH_MIN_SECONDS", "1.0")), 200
data, warm_data = open(path, "rb").read(), open(warm, "rb").read()
jobs, results, times = {}, {}, {tool: [] for tool in tools}
for tool in tools:
    try:
        jobs[tool] = make_job(tool, magick)
        jobs[tool](warm_data, warm)
        jobs[tool](data, path)
    except Exception as exc:
        results[tool] = {"ok": False, "error": failure(exc)}
# At least `repeat` rounds and, for small files whose runs take a millisecond, enough rounds to fill
# MIN_SECONDS: a single scheduler hiccup on a shared machine would otherwise decide the median.
started_all, rounds = time.perf_counter(), 0
while rounds < repeat or (time.perf_counter() - started_all < MIN_SECONDS and rounds < MAX_ROUNDS):
    rounds += 1
    for tool in tools:
        if tool in results:
            continue
        started = time.perf_counter()
        try:
            jobs[tool](data, path)
        except Exception as exc:
            results[tool] = {"ok": False, "error": failure(exc)}
            continue
        times[tool].append((time.perf_counter() - started) * 1000.0)
for tool in tools:
    if tool not in results:
        results[tool] = {"ok": True, "ms": statistics.median(times[tool])}
print(json.dumps(results))
"""
)


def corpus_dir() -> Path:
    return Path(os.environ.get("PORTRAIT_CORPUS", REPO.parent / "shared" / "corpus"))


def make_warm_jpeg(directory: Path) -> Path:
    """1400x1050: over the 1024 px limit, so it takes the DCT-scaled, threaded path of a photo."""
    from PIL import Image

    path = directory / "warm-1400x1050.jpg"
    Image.linear_gradient("L").resize((1400, 1050)).convert("RGB").save(path, "JPEG", quality=90)
    return path


def find_magick() -> tuple[str | None, str]:
    """The first real ImageMagick `convert` binary on PATH, or why there is none.

    Script wrappers (a stand-in, or a shim that forwards to the real binary) are skipped: their own start-up
    would be billed to ImageMagick.
    """
    skipped = False
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory or ".") / "convert"
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        with candidate.resolve().open("rb") as handle:
            if handle.read(4) != b"\x7fELF":
                skipped = True
                continue
        try:
            proc = subprocess.run([str(candidate), "-version"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            continue
        if proc.stdout.startswith("Version: ImageMagick"):
            return str(candidate), proc.stdout.splitlines()[0].removeprefix("Version: ")
    return None, "not installed" + (" (convert on PATH is a script stand-in)" if skipped else "")


def pyvips_status() -> str | None:
    proc = subprocess.run([sys.executable, "-c", "import pyvips"], capture_output=True, timeout=60)
    return None if proc.returncode == 0 else "not installed (pip install pyvips==3.2.0 pyvips-binary==8.18.7)"


def group_of(entry: dict[str, object]) -> str:
    fmt = str(entry.get("format"))
    return "JPEG" if fmt == "JPEG" else "HEIC" if fmt == "HEIF" else "other"


def _run_child(code: str, args: list[str]) -> object:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "shared"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=1800)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "error": f"exit {proc.returncode}: {tail[:80]}"}
    return json.loads(lines[-1])


def measure(
    tools: list[str], path: Path, warm: Path, warm_photo: Path, magick: str, repeat: int
) -> dict[str, dict[str, object]]:
    timed = _run_child(_TIME_CHILD, [str(path), str(warm), magick, str(repeat), *tools])
    results: dict[str, dict[str, object]] = {}
    for tool in tools:
        result = dict(timed.get(tool, timed)) if isinstance(timed, dict) else {"ok": False, "error": "?"}
        if result.get("ok"):
            memory = _run_child(_MEMORY_CHILD, [tool, str(path), str(warm), str(warm_photo), magick])
            if isinstance(memory, dict) and memory.get("ok"):
                result["peak_kib"] = memory["peak_kib"]
            else:
                result = {
                    "ok": False,
                    "error": f"memory run: {memory.get('error') if isinstance(memory, dict) else '?'}",
                }
        results[tool] = result
    return results


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
    parser.add_argument("--only", default="", help="only files whose path contains one of these (comma-separated)")
    parser.add_argument("--group", default="", help="only these groups (comma-separated: JPEG, HEIC, other)")
    parser.add_argument("--quick", action="store_true", help="one timed round, no ImageMagick: for iterating")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 1
        os.environ["BENCH_MIN_SECONDS"] = "0.2"
    only = [part for part in args.only.split(",") if part] or [""]
    groups = {part.strip() for part in args.group.split(",") if part.strip()} or set(GROUPS)

    corpus = corpus_dir()
    manifest_path = corpus / "MANIFEST.json"
    if not manifest_path.is_file():
        print(f"corpus not found at {corpus} (set PORTRAIT_CORPUS)", file=sys.stderr)
        return 2
    entries = [
        e
        for e in json.loads(manifest_path.read_text())
        if e["expected"].get("decodes") is True
        and e.get("format") != "GIF"
        and any(part in e["path"] for part in only)
        and group_of(e) in groups
    ]
    magick, magick_note = find_magick()
    scratch = tempfile.TemporaryDirectory(prefix="bench-normalize-")
    warm_jpeg = make_warm_jpeg(Path(scratch.name))
    unavailable = {"pyvips": pyvips_status(), "magick": None if magick else magick_note}
    if args.quick:
        unavailable["magick"] = "skipped (--quick)"
    tools = [tool for tool in TOOLS if unavailable.get(tool) is None]
    print(f"tools: {', '.join(tools)}; magick: {magick_note if magick is None else magick + ' = ' + magick_note}")
    for tool, why in unavailable.items():
        if why:
            print(f"{tool}: {why}")
    print(f"{'file':48}  {'group':5}  {'frame MB':>8}  " + "  ".join(f"{tool + ' ms':>8} {'MB':>7}" for tool in tools))

    rows: list[dict[str, object]] = []
    for entry in entries:
        path = corpus / str(entry["path"])
        fmt = str(entry.get("format"))
        warm = corpus / WARMUP.get("HEIC" if fmt == "HEIF" else fmt, WARMUP["JPEG"])
        width, height = int(entry.get("width") or 0), int(entry.get("height") or 0)
        row: dict[str, object] = {"path": entry["path"], "group": group_of(entry), "frame": width * height * 3}
        row.update(measure(tools, path, warm, warm_jpeg, magick or "", args.repeat))
        rows.append(row)
        print(_row_text(row, tools), flush=True)

    print()
    print(_summary(rows, tools, unavailable))
    if args.quick:
        print("(--quick: one timed round per file; the goal lines above are indicative only)")
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
                why = "skipped" if (unavailable.get(tool) or "").startswith("skipped") else "not installed"
                cells.append(f"{why:>16}")
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
        large = [r for r in members if int(str(r["frame"])) >= 3 * LARGE_PIXELS]
        if large:
            ours_large = _median(large, "ours")
            cells = []
            for tool in TOOLS:
                value = _median(large, tool) if tool in tools else None
                text = "-" if value is None else f"{value:.1f}"
                if value is not None and ours_large and tool != "ours":
                    text += f" ({value / ours_large:.2f}x)"
                cells.append(f"{text:>16}")
            lines.append(f"{' >=1MP':6} {len(large):>5}  " + "  ".join(cells))

    lines.append("")
    lines.append(f"peak RSS / decoded frame (w*h*3), files with frame >= {MEMORY_MIN_FRAME_BYTES // 2**20} MB:")
    worst: float | None = None
    worst_by_group: dict[str, tuple[float, str]] = {}
    for row in rows:
        frame = int(str(row["frame"]))
        result = row.get("ours")
        if frame < MEMORY_MIN_FRAME_BYTES or not isinstance(result, dict) or not result.get("ok"):
            continue
        ratio = int(str(result["peak_kib"])) * 1024 / frame
        worst = ratio if worst is None else max(worst, ratio)
        group = str(row["group"])
        if ratio > worst_by_group.get(group, (0.0, ""))[0]:
            worst_by_group[group] = (ratio, str(row["path"]))
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
    for group in GROUPS:
        if group in worst_by_group:
            ratio_, path = worst_by_group[group]
            lines.append(f"  {goal(f'{group}: worst {ratio_:.2f}x ({path})', ratio_ <= 1.5)}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

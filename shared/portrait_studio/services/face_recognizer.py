"""Who is this face? SFace descriptors of faces aligned by YuNet's five landmarks, on onnxruntime.

SFace's weights ship in int8 (to fit Lambda's layer size) and are computed in float (about 4x faster than int8 on x86).

The HOG detector (faces.py) decides where a face is and how many there are; this module only describes the
face in a box it found. YuNet looks at a square crop around that box (its ONNX input is a fixed 640x640) and
gives five landmarks (eye centres, nose tip, mouth corners); a similarity transform takes them onto SFace's
112x112 ArcFace template, and SFace turns the aligned face and its mirror image into one unit vector (the
mirror averages out an asymmetric pose or light; on the real-output evaluation it narrowed the gap between a
person's farthest output and the closest stranger: docs/identity-recognizers.md). Two faces of one person
have a small cosine distance (1 - u.v), two people a large one.

Why SFace and not dlib's ResNet: on published PhotoMaker outputs dlib accepted half of one East-Asian pair's
outputs as each other; SFace accepted none, in any group (same page). Models: portrait_studio/face_models/
(NOTICE.md: sources, licences, hashes), shipped in the SharedLayer; OpenCV is not needed (82 MiB on arm64).

Privacy: the vectors exist only in memory (identity.Descriptor wraps them); nothing here logs or stores them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["MODELS_DIR", "describe", "landmarks"]

MODELS_DIR = Path(__file__).resolve().parent.parent / "face_models"
YUNET_MODEL = "face_detection_yunet_2023mar.onnx"
SFACE_MODEL = "face_recognition_sface_2021dec_int8w.onnx"

# YuNet's graph takes exactly 640x640; the crop around a HOG box is this many box sizes wide (the face ~160 px).
# Chosen on the real-output evaluation among 1.8, 2.5, 3.0, 3.5, 4.0 and the whole image: 4.0 kept the most of
# each person's outputs with no stranger accepted (docs/identity-recognizers.md).
_YUNET_INPUT = 640
_CROP_PER_BOX = 4.0
_YUNET_STRIDES = (8, 16, 32)
_YUNET_MIN_SCORE = 0.5
# A YuNet face is HOG's face when their boxes overlap at least this much (intersection over union).
_MIN_OVERLAP = 0.3
# ArcFace / SFace 112x112 template: left eye, right eye (image left to right), nose tip, mouth left, right.
_TEMPLATE = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)
# Where YuNet's five points fall in a HOG box (fractions of its width / height): the medians over the corpus's
# 16 one-face photos, made left-right symmetric. Used only when YuNet does not find the face HOG found (it found
# all 16 and all 45 one-face real outputs), so every face still gets a descriptor.
_BOX_TEMPLATE = ((0.31, 0.31), (0.69, 0.31), (0.50, 0.52), (0.32, 0.70), (0.68, 0.70))


@lru_cache(maxsize=4)
def _session(path: str) -> Any:
    """One onnxruntime session per model per process (about 0.1 s to build); `run` is thread-safe."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # the zoo's graphs warn about initializers listed as inputs: harmless
    # One thread: a Lambda environment at our memory sizes has at most one vCPU's worth of time.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    # SFace stores int8 weights behind DequantizeLinear nodes (scripts/quantize_sface.py). Without this entry
    # onnxruntime keeps them for its quantized kernels; with it, it folds them into float weights once, here, and
    # fuses each batch norm into its convolution: about 4x faster per face on x86 (docs/identity-recognizers.md).
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def landmarks(
    rgb: npt.NDArray[np.uint8], box: tuple[int, int, int, int], models: Path = MODELS_DIR
) -> npt.NDArray[np.float64] | None:
    """YuNet's five landmarks (image coordinates) of the face in `box` (left, top, right, bottom, exclusive);
    None when YuNet finds no face overlapping it."""
    import numpy as np
    from PIL import Image

    left, top, right, bottom = box
    side = _CROP_PER_BOX * max(right - left, bottom - top)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0, y0 = cx - side / 2, cy - side / 2
    scale = _YUNET_INPUT / side
    # Crop and resize in one affine step (PIL pads outside the image with black).
    crop = Image.fromarray(rgb).transform(
        (_YUNET_INPUT, _YUNET_INPUT),
        Image.Transform.AFFINE,
        (1 / scale, 0, x0, 0, 1 / scale, y0),
        Image.Resampling.BILINEAR,
    )
    bgr = np.asarray(crop, dtype=np.float32)[:, :, ::-1]  # YuNet was trained on OpenCV's BGR, 0-255
    blob = np.ascontiguousarray(bgr.transpose(2, 0, 1)[None])
    found = _decode(_session(str(models / YUNET_MODEL)).run(None, {"input": blob}))
    target = ((left - x0) * scale, (top - y0) * scale, (right - x0) * scale, (bottom - y0) * scale)
    # The most confident detection of HOG's face: what OpenCV's non-maximum suppression would keep of it.
    matching = [(score, points) for score, found_box, points in found if _iou(found_box, target) >= _MIN_OVERLAP]
    if not matching:
        return None
    best = max(matching, key=lambda match: match[0])[1]
    points: npt.NDArray[np.float64] = best / scale + np.array([x0, y0])
    return points


def _decode(outputs: list[Any]) -> list[tuple[float, tuple[float, float, float, float], npt.NDArray[np.float64]]]:
    """YuNet's per-stride grids -> [(score, box x0, y0, x1, y1, five landmarks)] above the score threshold.

    As OpenCV's FaceDetectorYN decodes the 2023mar graph: score = sqrt(cls * obj); the box centre and the
    landmarks are offsets from the grid cell in units of the stride, the box size exp() of the stride.
    """
    import numpy as np

    # The graph's outputs: cls_8/16/32, obj_8/16/32, bbox_8/16/32, kps_8/16/32.
    named = {name: outputs[3 * i : 3 * i + 3] for i, name in enumerate(("cls", "obj", "bbox", "kps"))}
    found = []
    for index, stride in enumerate(_YUNET_STRIDES):
        cols = _YUNET_INPUT // stride
        cls = np.clip(named["cls"][index][0, :, 0], 0, 1)
        obj = np.clip(named["obj"][index][0, :, 0], 0, 1)
        scores = np.sqrt(cls * obj)
        for cell in np.flatnonzero(scores >= _YUNET_MIN_SCORE):
            row, col = divmod(int(cell), cols)
            dx, dy, dw, dh = (float(v) for v in named["bbox"][index][0, cell])
            cx, cy = (col + dx) * stride, (row + dy) * stride
            w, h = float(np.exp(dw)) * stride, float(np.exp(dh)) * stride
            kps = named["kps"][index][0, cell].astype(np.float64).reshape(5, 2)
            points = (kps + np.array([col, row])) * stride
            found.append((float(scores[cell]), (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), points))
    return found


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def describe(
    rgb: npt.NDArray[np.uint8], box: tuple[int, int, int, int], models: Path = MODELS_DIR
) -> npt.NDArray[np.float64]:
    """The unit 128-d SFace vector of the face in `box` (left, top, right, bottom; right/bottom exclusive)."""
    import numpy as np

    points = landmarks(rgb, box, models)
    if points is None:
        left, top, right, bottom = box
        points = np.array([(left + fx * (right - left), top + fy * (bottom - top)) for fx, fy in _BOX_TEMPLATE])
    crop = _align(rgb, points)
    session = _session(str(models / SFACE_MODEL))
    total = np.zeros(128, dtype=np.float64)
    for face in (crop, crop[:, ::-1]):
        # As OpenCV's FaceRecognizerSF: RGB, 0-255, NCHW; the graph normalizes.
        blob = np.ascontiguousarray(face.astype(np.float32).transpose(2, 0, 1)[None])
        vector = np.asarray(session.run(None, {"data": blob})[0][0], dtype=np.float64)
        total += vector / np.linalg.norm(vector)
    unit: npt.NDArray[np.float64] = total / np.linalg.norm(total)
    return unit


def _align(rgb: npt.NDArray[np.uint8], points: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """The 112x112 face under the least-squares similarity transform taking `points` onto the template."""
    import numpy as np
    from PIL import Image

    template = np.array(_TEMPLATE)
    src_mean, dst_mean = points.mean(axis=0), template.mean(axis=0)
    src, dst = points - src_mean, template - dst_mean
    denom = float((src**2).sum())
    a = float((src * dst).sum()) / denom
    b = float((src[:, 0] * dst[:, 1] - src[:, 1] * dst[:, 0]).sum()) / denom
    rotation = np.array([[a, -b], [b, a]])
    forward = np.vstack([np.hstack([rotation, (dst_mean - rotation @ src_mean)[:, None]]), [0, 0, 1]])
    inverse = np.linalg.inv(forward)[:2].flatten().tolist()  # PIL maps output pixels back to input ones
    crop = Image.fromarray(rgb).transform((112, 112), Image.Transform.AFFINE, inverse, Image.Resampling.BILINEAR)
    return np.asarray(crop, dtype=np.uint8)

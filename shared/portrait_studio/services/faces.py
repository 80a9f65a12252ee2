"""The quality gate on a normalized photo: one face, big enough, inside the frame, sharp, not a duplicate.

Runs on the normalized JPEG (sRGB, upright, longest side <= 1024), on CPU, with dlib's HOG frontal face
detector: the one the `dlib-bin` wheel builds in, shipped saved in face_models/ so that it loads fast; nothing is
downloaded at run time. The detector sees
only upright, roughly frontal faces, which is what a reference photo should show anyway.

Thresholds live in `Settings` (face_min_score, face_min_fraction, face_edge_margin_fraction,
blur_min_variance, duplicate_max_distance); docs/photos-and-identity.md "Photos we accept" gives the corpus evidence.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from functools import lru_cache
from io import BytesIO
from typing import TYPE_CHECKING, Any

from portrait_studio.errors import (
    CorruptImage,
    FaceCutOff,
    FaceTooSmall,
    MultipleFaces,
    NoFace,
    PhotoRejected,
    TooBlurry,
)
from portrait_studio.models import FaceBox, PhotoQuality
from portrait_studio.services.face_recognizer import MODELS_DIR

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from portrait_studio.config import Settings

__all__ = [
    "HOG_DETECTOR_FILE",
    "SECONDARY_FACE_MIN_RATIO",
    "assess_photo",
    "decode_rgb",
    "detect_faces",
    "find_duplicate",
    "hamming_distance",
    "perceptual_hash",
]

# HOG's sliding window is 80x80 px: smaller faces are only found after upsampling the image (4x the cost).
_HOG_MIN_FACE_PX = 80
# A second face counts only when it is at least this fraction of the main face's width: a group photo or
# a friend beside you is refused, a stranger far behind you is not (corpus: real second faces >= 0.69).
SECONDARY_FACE_MIN_RATIO = 0.4
# Sharpness is measured on the face resized to this size, so it does not depend on the photo's resolution.
_SHARPNESS_FACE_PX = 128
# dlib's HOG model has five sub-detectors: 0 frontal, 1 and 2 turned (checked on a mirrored portrait:
# 2 fires for a face turned to the image's left), 3 and 4 frontal but tilted.
_KIND_TURNED_IMAGE_RIGHT = 1
_KIND_TURNED_IMAGE_LEFT = 2
# pHash: DCT of a 32x32 grey thumbnail, the 8x8 lowest frequencies against their median.
_PHASH_SIZE = 32
_PHASH_BITS = 8
_PHASH_HEX_DIGITS = _PHASH_BITS * _PHASH_BITS // 4


class Face:
    """dlib's box as it came out: it may reach past the frame when the face is cut off.

    A plain class rather than a dataclass: each dataclass costs about a millisecond of cold start.
    """

    __slots__ = ("bottom", "kind", "left", "right", "score", "top")

    def __init__(self, *, left: int, top: int, right: int, bottom: int, score: float, kind: int) -> None:
        self.left = left
        self.top = top
        self.right = right  # exclusive
        self.bottom = bottom  # exclusive
        self.score = score
        self.kind = kind  # which HOG sub-detector fired

    @property
    def size(self) -> int:
        return max(self.right - self.left, self.bottom - self.top)

    def clipped(self, width: int, height: int) -> tuple[int, int, int, int]:
        return max(0, self.left), max(0, self.top), min(width, self.right), min(height, self.bottom)


def assess_photo(jpeg: bytes, settings: Settings) -> PhotoQuality:
    """Measure a normalized photo and refuse it unless it shows exactly one usable face.

    Raises NoFace, MultipleFaces, FaceTooSmall, FaceCutOff, TooBlurry (or CorruptImage if `jpeg` is not
    a JPEG we can read); only `PhotoRejected` subclasses escape.
    """
    try:
        rgb = decode_rgb(jpeg)
    except Exception as exc:
        raise CorruptImage() from exc
    try:
        return _assess(rgb, settings)
    except PhotoRejected:
        raise
    except Exception as exc:  # a detector failure must still be a verdict, never a crash
        raise CorruptImage() from exc


def _assess(rgb: npt.NDArray[np.uint8], settings: Settings) -> PhotoQuality:
    height, width = rgb.shape[:2]
    short_side = min(width, height)
    faces = detect_faces(rgb, settings)
    main = faces[0] if faces else None
    counted = [face for face in faces if main is not None and face.size >= SECONDARY_FACE_MIN_RATIO * main.size]
    details: dict[str, object] = {"width": width, "height": height, "faces": len(counted)}
    if main is None:
        raise NoFace(details=details)
    if len(counted) > 1:
        raise MultipleFaces(details=details)
    fraction = main.size / short_side
    if fraction < settings.face_min_fraction:
        raise FaceTooSmall(details=details)
    # HOG's box runs from the brows to the chin: it is smaller than the head, so a box touching or
    # crossing the frame edge (within the configured margin, in box sizes) means the face is cut off.
    margin = settings.face_edge_margin_fraction * main.size
    if (
        main.left - margin <= 0
        or main.top - margin <= 0
        or main.right + margin >= width
        or main.bottom + margin >= height
    ):
        raise FaceCutOff(details=details)
    left, top, right, bottom = main.clipped(width, height)
    gray = _luma(rgb)
    del rgb
    crop = gray[top:bottom, left:right]
    sharpness = _sharpness(crop)
    if sharpness < settings.blur_min_variance:
        raise TooBlurry(details=details)
    return PhotoQuality(
        width=width,
        height=height,
        face=FaceBox(left=left, top=top, width=right - left, height=bottom - top),
        face_fraction=round(fraction, 4),
        sharpness=round(sharpness, 2),
        yaw_hint=round(_yaw_hint(crop, main.kind), 3),
        phash=perceptual_hash(gray),
    )


def decode_rgb(jpeg: bytes) -> npt.NDArray[np.uint8]:
    import numpy as np
    from PIL import Image

    with Image.open(BytesIO(jpeg), formats=["JPEG"]) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


_per_thread = threading.local()
# dlib's own frontal face detector (what `dlib.get_frontal_face_detector()` builds), saved in dlib's binary format by
# scripts/save_hog_detector.py: it loads in about 2 ms, where building it from the text dlib embeds takes about 400 ms
# of every cold start that looks for a face (normalize, collect).
HOG_DETECTOR_FILE = MODELS_DIR / "dlib_frontal_face_detector.svm"


def _detector() -> Any:
    """dlib's HOG detector, loaded once per thread and reused across invocations. Not once per process: a dlib
    detector is not thread-safe, and the local stack runs functions side by side in one process (two at once found
    faces that were not there); a Lambda environment runs one invocation at a time."""
    detector = getattr(_per_thread, "detector", None)
    if detector is None:
        import dlib

        detector = _per_thread.detector = dlib.fhog_object_detector(str(HOG_DETECTOR_FILE))
    return detector


def detect_faces(rgb: npt.NDArray[np.uint8], settings: Settings) -> list[Face]:
    """Faces scoring at least face_min_score, largest first."""
    # Upsample once only when an acceptable face could be smaller than HOG's window (4x the cost).
    height, width = rgb.shape[:2]
    upsample = 1 if settings.face_min_fraction * min(width, height) < _HOG_MIN_FACE_PX else 0
    faces = _run_detector(rgb, upsample, settings)
    if not faces and upsample == 0:
        # Nothing at normal size: look for small faces too, so the verdict can say "too small" or
        # "more than one face" instead of "no face". Only refused photos pay for this pass.
        faces = _run_detector(rgb, 1, settings)
    return faces


def _run_detector(rgb: npt.NDArray[np.uint8], upsample: int, settings: Settings) -> list[Face]:
    height, width = rgb.shape[:2]
    rects, scores, kinds = _detector().run(rgb, upsample, settings.face_min_score)
    faces = [
        Face(
            left=int(rect.left()),
            top=int(rect.top()),
            right=int(rect.right()) + 1,
            bottom=int(rect.bottom()) + 1,
            score=float(score),
            kind=int(kind),
        )
        for rect, score, kind in zip(rects, scores, kinds, strict=True)
        if float(score) >= settings.face_min_score
    ]
    faces = [face for face in faces if _visible_area(face, width, height) > 0]
    return sorted(faces, key=lambda face: (face.size, face.score), reverse=True)


def _visible_area(face: Face, width: int, height: int) -> int:
    left, top, right, bottom = face.clipped(width, height)
    return max(0, right - left) * max(0, bottom - top)


def _luma(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    import numpy as np

    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.asarray(rgb.astype(np.float32) @ weights, dtype=np.float32)


def _resize_gray(gray: npt.NDArray[np.float32], size: tuple[int, int]) -> npt.NDArray[np.float32]:
    import numpy as np
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(gray, dtype=np.float32))  # mode F
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS), dtype=np.float32)


def _sharpness(face: npt.NDArray[np.float32]) -> float:
    """Variance of the 4-neighbour Laplacian of the face resized to a fixed size."""
    import numpy as np

    small = _resize_gray(face, (_SHARPNESS_FACE_PX, _SHARPNESS_FACE_PX))
    laplacian = small[1:-1, :-2] + small[1:-1, 2:] + small[:-2, 1:-1] + small[2:, 1:-1] - 4.0 * small[1:-1, 1:-1]
    return float(np.var(laplacian))


def _yaw_hint(face: npt.NDArray[np.float32], kind: int) -> float:
    """Rough head turn in [-1, 1] (negative: turned towards the image's left), landmark-free.

    A frontal face is mirror-symmetric about the box centre; when the head turns, the symmetry axis of
    its vertical edges (nose line, eyes, mouth corners) moves off-centre in the direction the face points.
    An axis shift of 40 % of the half-width reads as a full turn. dlib's side-looking sub-detectors
    (kinds 1 and 2) fix the sign when they fired.
    """
    import numpy as np

    size = 128
    small = _resize_gray(face, (size, size))
    edges = np.abs(np.diff(small, axis=1))
    profile = edges[size // 4 : 3 * size // 4].sum(axis=0)  # rows from the eyes to the mouth
    centre = (profile.shape[0] - 1) / 2.0
    half_window = size // 4
    max_shift = size // 5
    best_shift, best_cost = 0, float("inf")
    for shift in range(-max_shift, max_shift + 1):
        axis = round(centre) + shift
        left = profile[axis - half_window : axis][::-1]
        right = profile[axis + 1 : axis + 1 + half_window]
        cost = float(np.mean(np.abs(left - right))) / (float(np.mean(left + right)) + 1e-6)
        if cost < best_cost:
            best_shift, best_cost = shift, cost
    yaw = max(-1.0, min(1.0, best_shift / (0.4 * size / 2)))
    if kind == _KIND_TURNED_IMAGE_LEFT:
        yaw = min(yaw, -0.5)
    elif kind == _KIND_TURNED_IMAGE_RIGHT:
        yaw = max(yaw, 0.5)
    return yaw


# --- perceptual hash ----------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _dct_matrix() -> npt.NDArray[np.float64]:
    import numpy as np

    n = _PHASH_SIZE
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    matrix[0] /= np.sqrt(2.0)
    return np.asarray(matrix, dtype=np.float64)


def perceptual_hash(gray: npt.NDArray[np.float32]) -> str:
    """64-bit DCT pHash as 16 hex digits: the 8x8 lowest frequencies of a 32x32 thumbnail vs their median."""
    import numpy as np

    small = _resize_gray(gray, (_PHASH_SIZE, _PHASH_SIZE)).astype(np.float64)
    dct = _dct_matrix() @ small @ _dct_matrix().T
    low = dct[:_PHASH_BITS, :_PHASH_BITS].ravel()
    bits = low > np.median(low)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:016x}"


def hamming_distance(first: str, second: str) -> int:
    return (int(first, 16) ^ int(second, 16)).bit_count()


def find_duplicate(phash: str, others: Mapping[str, str], max_distance: int) -> str | None:
    """The key of the first other photo whose hash is within `max_distance` bits, else None.

    Malformed or empty hashes never match (a photo without a hash cannot be a duplicate).
    """
    if not _is_hash(phash):
        return None
    for key, other in others.items():
        if _is_hash(other) and hamming_distance(phash, other) <= max_distance:
            return key
    return None


def _is_hash(value: str) -> bool:
    return len(value) == _PHASH_HEX_DIGITS and all(char in "0123456789abcdefABCDEF" for char in value)

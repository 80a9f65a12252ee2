"""Is it you? Face descriptors for one person per job and a likeness gate on every output.

SFace (face_recognizer.py: int8 weights, float compute, on faces aligned by YuNet's landmarks) turns a face the
HOG detector found into a unit 128-d descriptor; two photos of one person are close in cosine distance (1 - u.v),
two people far apart. It replaced dlib's ResNet, which took two East-Asian people for one on published model outputs
(docs/identity-recognizers.md).

Privacy: a descriptor identifies a person, so it exists only in memory during one invocation. `Descriptor`
cannot be pickled, hides its numbers in repr() and is no pydantic field; nothing here logs, stores or
returns it outside these in-memory objects. Only derived numbers (a distance, a 0-100 score, a yes/no)
may be kept.

Thresholds live in `Settings` (identity_same_person_max_distance, identity_output_max_distance), set from the
real-output evaluation (`benchmarks/identity.py --real`) and the corpus; docs/identity-recognizers.md gives both.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from io import BytesIO
from typing import TYPE_CHECKING, Literal, NoReturn

from portrait_studio import keys
from portrait_studio.models import FaceBox
from portrait_studio.services import face_recognizer
from portrait_studio.services.faces import SECONDARY_FACE_MIN_RATIO, decode_rgb, detect_faces

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from portrait_studio.config import Settings
    from portrait_studio.models import UploadFile
    from portrait_studio.ports import BlobStore

__all__ = [
    "Descriptor",
    "OutputJudgement",
    "PersonCheck",
    "check_one_person",
    "decode_output",
    "describe_face",
    "describe_photo",
    "describe_references",
    "judge_output",
    "judge_pixels",
    "likeness_score",
]

# Outputs are generated, never user files: PNG, JPEG or WebP only, and never more than 4x a 1024x1024 image.
_OUTPUT_FORMATS = ["PNG", "JPEG", "WEBP"]
_OUTPUT_MAX_PIXELS = 4 * 1024 * 1024
# Likeness 100 at or below this distance: photos of one sitting are this close (corpus <= 0.34), no real output is.
_LIKENESS_FULL_AT = 0.3
# A person check looks for the largest mutually-close group among at most this many photos (all subsets).
_MAX_PHOTOS = 16

Drop = Literal["no_face", "extra_faces", "not_like_you"]


class Descriptor:
    """One face's unit 128-d descriptor, in memory only: not picklable, not printable, not a pydantic field."""

    __slots__ = ("_vector",)

    def __init__(self, vector: npt.NDArray[np.float64]) -> None:
        self._vector = vector

    @property
    def vector(self) -> npt.NDArray[np.float64]:
        return self._vector

    def distance(self, other: Descriptor) -> float:
        """Cosine distance: 0 for the same direction, 1 for unrelated, up to 2 for opposite."""
        import numpy as np

        return float(1.0 - np.dot(self._vector, other._vector))

    @staticmethod
    def mean(descriptors: Iterable[Descriptor]) -> Descriptor:
        """The unit vector along the descriptors' mean: a person's consensus."""
        import numpy as np

        total = np.sum([d._vector for d in descriptors], axis=0)
        return Descriptor(total / np.linalg.norm(total))

    def __repr__(self) -> str:
        return "Descriptor(<128-d, in memory only>)"

    def __reduce__(self) -> NoReturn:
        # Pickling is how a value reaches a cache, a queue or a file: refuse it loudly.
        raise TypeError("a face descriptor never leaves memory")


class PersonCheck:
    """Whether a job's photos show one person. `distances` (derived numbers) may be stored; `consensus` not."""

    __slots__ = ("consensus", "distances", "outliers", "single_person")

    def __init__(
        self,
        *,
        single_person: bool,
        outliers: list[str],
        distances: dict[str, float],
        consensus: Descriptor | None,
    ) -> None:
        self.single_person = single_person
        self.outliers = outliers  # keys refused `different_person`
        self.distances = distances  # each photo's distance to the consensus, rounded
        self.consensus = consensus  # the person's mean descriptor; None when there is no single person

    def __repr__(self) -> str:
        return f"PersonCheck(single_person={self.single_person}, outliers={self.outliers}, distances={self.distances})"


class OutputJudgement:
    """The verdict on one generated image: kept (drop None) with its likeness, or dropped with a reason."""

    __slots__ = ("distance", "drop", "face", "faces", "likeness")

    def __init__(
        self,
        *,
        drop: Drop | None,
        faces: int,
        distance: float | None,
        likeness: int | None,
        face: FaceBox | None = None,
    ) -> None:
        self.drop = drop
        self.face = face  # where the one face is (its box in the image), when exactly one was found
        self.faces = faces  # faces counted (secondary faces below the size ratio are not)
        self.distance = distance  # to the references' consensus; None when no single face was found
        self.likeness = likeness  # 0-100, see likeness_score

    def __repr__(self) -> str:
        return (
            f"OutputJudgement(drop={self.drop!r}, faces={self.faces}, distance={self.distance}, "
            f"likeness={self.likeness})"
        )


# --- descriptors --------------------------------------------------------------------------------------
def describe_face(image_rgb: npt.NDArray[np.uint8], box: FaceBox | tuple[int, int, int, int]) -> Descriptor:
    """The descriptor of the face in `box`: a FaceBox, or (left, top, right, bottom) with right/bottom exclusive.

    The box should come from the HOG detector (faces.py): the recognizer aligns the face HOG found.
    """
    corners = box if isinstance(box, tuple) else (box.left, box.top, box.left + box.width, box.top + box.height)
    return Descriptor(face_recognizer.describe(image_rgb, corners))


def describe_photo(jpeg: bytes, settings: Settings, box: FaceBox | None = None) -> Descriptor | None:
    """The descriptor of a normalized reference JPEG's face; None when no face is found.

    Pass the FaceBox the quality gate stored (PhotoQuality.face) to skip detection; otherwise the largest
    face the HOG detector finds is described.
    """
    rgb = decode_rgb(jpeg)
    if box is not None:
        return describe_face(rgb, box)
    faces = detect_faces(rgb, settings)
    if not faces:
        return None
    height, width = rgb.shape[:2]
    return describe_face(rgb, faces[0].clipped(width, height))


def describe_references(
    blobs: BlobStore, job_id: str, files: Iterable[UploadFile], settings: Settings
) -> dict[str, Descriptor]:
    """The descriptors of these accepted photos' normalized copies, by file id (the stored face box spares a
    detection). A copy that is gone or shows no readable face is left out: the others judge without it."""
    descriptors: dict[str, Descriptor] = {}
    for f in files:
        try:
            jpeg = blobs.get(keys.reference(job_id, f.file_id))
        except KeyError:
            continue
        found = describe_photo(jpeg, settings, f.quality.face if f.quality else None)
        if found is not None:
            descriptors[f.file_id] = found
    return descriptors


# --- one person per job -------------------------------------------------------------------------------
def check_one_person(descriptors: Mapping[str, Descriptor], settings: Settings) -> PersonCheck:
    """Do these photos show one person, and which of them do not?

    The person is the largest group of photos whose every pair is within identity_same_person_max_distance
    (ties: the tighter group), provided it has at least two photos and is a strict majority: with no such
    group (three different people, two strangers, two against two) there is no single person. The
    consensus is the group's mean descriptor; every photo farther than the threshold from it is an outlier
    (refused `different_person`), and every photo's distance to it is reported. A single photo is its own
    consensus. Without a single person nobody is singled out: outliers and distances are empty.

    Why a group of mutually-close photos rather than the mean of all: one stranger's photo pulls a mean of
    three towards itself, while a group only forms from pairs that each look like one person (real references:
    one person's pairs <= 0.60 apart, two people's >= 0.74).
    """

    keys = list(descriptors)
    if len(keys) > _MAX_PHOTOS:
        raise ValueError(f"at most {_MAX_PHOTOS} photos per person check, got {len(keys)}")
    if not keys:
        return PersonCheck(single_person=False, outliers=[], distances={}, consensus=None)
    threshold = settings.identity_same_person_max_distance
    pair = {(a, b): descriptors[a].distance(descriptors[b]) for a, b in itertools.combinations(keys, 2)}
    group = _largest_close_group(keys, pair, threshold)
    if len(keys) > 1 and (len(group) < 2 or 2 * len(group) <= len(keys)):
        return PersonCheck(single_person=False, outliers=[], distances={}, consensus=None)
    consensus = Descriptor.mean(descriptors[key] for key in group)
    distances = {key: round(descriptors[key].distance(consensus), 4) for key in keys}
    outliers = [key for key in keys if distances[key] > threshold]
    return PersonCheck(single_person=True, outliers=outliers, distances=distances, consensus=consensus)


def _largest_close_group(keys: list[str], pair: Mapping[tuple[str, str], float], threshold: float) -> list[str]:
    """The largest subset whose pairs are all within `threshold` (ties: smallest mean pairwise distance).

    Exhaustive, largest sizes first: at most 2^10 subsets for the 10 photos a job may have.
    """
    for size in range(len(keys), 1, -1):
        best: tuple[float, tuple[str, ...]] | None = None
        for subset in itertools.combinations(keys, size):
            distances = [pair[a, b] for a, b in itertools.combinations(subset, 2)]
            if max(distances) <= threshold:
                mean = sum(distances) / len(distances)
                if best is None or mean < best[0]:
                    best = (mean, subset)
        if best is not None:
            return list(best[1])
    return keys[:1]


# --- the output gate ----------------------------------------------------------------------------------
def likeness_score(distance: float, settings: Settings) -> int:
    """0-100, linear in the distance: 100 up to _LIKENESS_FULL_AT, 50 at identity_output_max_distance, 0 as far
    beyond it as full is below it.

    With the default 0.7: real PhotoMaker outputs that are kept (0.38-0.70 from their consensus) score 50-90;
    other people's outputs (>= 0.71) score below 50; corpus photos of one person (<= 0.34) 90-100.
    """
    threshold = settings.identity_output_max_distance
    full_at = min(_LIKENESS_FULL_AT, threshold / 2)
    zero_at = 2.0 * threshold - full_at
    return max(0, min(100, round(100.0 * (zero_at - distance) / (zero_at - full_at))))


def judge_output(image_bytes: bytes, consensus: Descriptor, settings: Settings) -> OutputJudgement:
    """`judge_pixels` on the decoded image. Raises ValueError when it cannot be read as a PNG, JPEG or WebP."""
    return judge_pixels(decode_output(image_bytes), consensus, settings)


def judge_pixels(rgb: npt.NDArray[np.uint8], consensus: Descriptor, settings: Settings) -> OutputJudgement:
    """Keep a generated image only when it shows exactly one face and that face is the job's person.

    Faces are found by the same HOG detector and score as the quality gate; a second face counts when it
    is at least faces.py's secondary ratio (0.4) of the main face's size, as for uploads (corpus: real
    second faces are >= 0.58 of the main one), so a tiny figure far in the background does not drop a
    headshot.
    """
    faces = detect_faces(rgb, settings)
    if not faces:
        return OutputJudgement(drop="no_face", faces=0, distance=None, likeness=None)
    main = faces[0]
    counted = sum(1 for face in faces if face.size >= SECONDARY_FACE_MIN_RATIO * main.size)
    if counted > 1:
        return OutputJudgement(drop="extra_faces", faces=counted, distance=None, likeness=None)
    height, width = rgb.shape[:2]
    left, top, right, bottom = main.clipped(width, height)
    distance = describe_face(rgb, (left, top, right, bottom)).distance(consensus)
    drop: Drop | None = "not_like_you" if distance > settings.identity_output_max_distance else None
    box = FaceBox(left=left, top=top, width=right - left, height=bottom - top)
    likeness = likeness_score(distance, settings)
    return OutputJudgement(drop=drop, faces=1, distance=round(distance, 4), likeness=likeness, face=box)


def decode_output(data: bytes) -> npt.NDArray[np.uint8]:
    """A generated image's RGB pixels. Raises ValueError when it is not a readable PNG, JPEG or WebP."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(BytesIO(data), formats=_OUTPUT_FORMATS) as image:
            if image.width * image.height > _OUTPUT_MAX_PIXELS:
                raise ValueError(f"output is {image.width}x{image.height}, larger than any generated image")
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError("output is not a readable PNG, JPEG or WebP") from exc

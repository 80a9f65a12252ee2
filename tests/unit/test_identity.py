"""services/identity.py: one person per job and the likeness gate, with the corpus as the evidence.

Corpus tests (marker `corpus`) use every one-face photo MANIFEST.json names a person for, normalized and
assessed by `check_photo` as in production; without the corpus ($PORTRAIT_CORPUS, else ../shared/corpus)
they are skipped and the rest still runs.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import pickle
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

from infra.local.replicate.render import OUTPUT_SIZE, render_preview
from portrait_studio.config import Settings
from portrait_studio.errors import PhotoRejected
from portrait_studio.services import face_recognizer
from portrait_studio.services.identity import (
    Descriptor,
    check_one_person,
    describe_photo,
    judge_output,
    likeness_score,
)
from portrait_studio.services.photos import CheckedPhoto, check_photo

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("PORTRAIT_CORPUS") or REPO.parent / "shared" / "corpus")
HAVE_CORPUS = (CORPUS / "MANIFEST.json").is_file()
MANIFEST: list[dict[str, Any]] = json.loads((CORPUS / "MANIFEST.json").read_text()) if HAVE_CORPUS else []
_NO_CORPUS = pytest.mark.skipif(not HAVE_CORPUS, reason=f"photo corpus not found at {CORPUS} (set PORTRAIT_CORPUS)")
DEFAULT = Settings()
# The corpus's 128 px portraits are below the upload minimum; they still go through the whole gate here.
PERMISSIVE = Settings(min_short_side_px=1)
# One-face photos with a named person. GIF is refused by policy, so it never becomes a reference.
PEOPLE = {
    entry["path"]: entry["expected"]["person"]
    for entry in MANIFEST
    if entry.get("expected", {}).get("person") and entry["expected"].get("faces") == 1 and entry["format"] != "GIF"
}
PAIRS = list(itertools.combinations(sorted(PEOPLE), 2))
OBAMA = ("faces/obama_portrait.jpg", "faces/obama_podium.jpg", "faces/obama_oval_office.jpg")


@cache
def checked(path: str) -> CheckedPhoto:
    result = check_photo((CORPUS / path).read_bytes(), PERMISSIVE)
    assert isinstance(result, CheckedPhoto)
    return result


@cache
def descriptor(path: str) -> Descriptor:
    photo = checked(path)
    found = describe_photo(photo.normalized.jpeg, PERMISSIVE, photo.quality.face)
    assert found is not None
    return found


def fake_output(path: str, *, banner: bool = True) -> bytes:
    """A 1024x1024 PNG as the local Replicate emulator makes it: the photo, tinted, under a dark banner."""
    with Image.open(io.BytesIO(checked(path).normalized.jpeg)) as image:
        base = ImageOps.fit(image.convert("RGB"), (OUTPUT_SIZE, OUTPUT_SIZE), centering=(0.5, 0.15))
    if banner:
        return render_preview(base, "a corporate headshot", "corporate", 7, 0, 4)
    return png(base)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def vector(seed: int, noise: float = 0.0, base_seed: int | None = None) -> Descriptor:
    """A synthetic descriptor: a random unit direction, optionally jittered around another one's (`noise` is
    the jitter's length; random directions in 128-d are ~1.0 apart in cosine distance)."""
    base = np.random.default_rng(base_seed if base_seed is not None else seed).normal(0, 1, 128)
    base /= np.linalg.norm(base)
    jitter = np.random.default_rng(seed + 1000).normal(0, noise / np.sqrt(128), 128) if noise else 0.0
    moved = base + jitter
    return Descriptor(moved / np.linalg.norm(moved))


# --- without the corpus --------------------------------------------------------------------------------
def test_likeness_score_is_linear_and_monotone() -> None:
    threshold = DEFAULT.identity_output_max_distance
    assert likeness_score(0.0, DEFAULT) == likeness_score(0.3, DEFAULT) == 100
    assert likeness_score(threshold, DEFAULT) == 50
    assert likeness_score(threshold + 0.01, DEFAULT) < 50  # below 50 means "not like you"
    assert likeness_score(2 * threshold - 0.3, DEFAULT) == 0
    assert likeness_score(5.0, DEFAULT) == 0
    scores = [likeness_score(d / 100, DEFAULT) for d in range(150)]
    assert scores == sorted(scores, reverse=True)


def test_descriptor_never_leaves_memory() -> None:
    desc = vector(1)
    with pytest.raises(TypeError):
        pickle.dumps(desc)
    assert "in memory only" in repr(desc)
    check = check_one_person({"a": desc, "b": vector(2, 0.2, base_seed=1)}, DEFAULT)
    with pytest.raises(TypeError):
        pickle.dumps(check)  # slots class holding a Descriptor: refused with it
    assert str(desc.vector[0]) not in repr(check)


def test_the_recognizer_loads_the_two_shipped_models() -> None:
    for model in (face_recognizer.YUNET_MODEL, face_recognizer.SFACE_MODEL):
        assert (face_recognizer.MODELS_DIR / model).is_file()
        assert face_recognizer._session(str(face_recognizer.MODELS_DIR / model)) is not None


def test_one_photo_is_its_own_person() -> None:
    check = check_one_person({"only": vector(1)}, DEFAULT)
    assert check.single_person and check.outliers == [] and check.distances == {"only": 0.0}


def test_two_strangers_or_two_against_two_have_no_single_person() -> None:
    assert not check_one_person({"a": vector(1), "b": vector(2)}, DEFAULT).single_person
    pairs = {"a1": vector(1), "a2": vector(3, 0.2, 1), "b1": vector(2), "b2": vector(4, 0.2, 2)}
    check = check_one_person(pairs, DEFAULT)
    assert not check.single_person and check.outliers == [] and check.consensus is None


def test_majority_group_wins_and_strangers_are_outliers() -> None:
    photos = {f"me{i}": vector(10 + i, 0.3, base_seed=1) for i in range(4)} | {"x": vector(2), "y": vector(3)}
    check = check_one_person(photos, DEFAULT)
    assert check.single_person
    assert check.outliers == ["x", "y"]
    assert all(check.distances[f"me{i}"] < DEFAULT.identity_same_person_max_distance for i in range(4))


def test_judge_output_refuses_what_is_not_an_image() -> None:
    with pytest.raises(ValueError, match="PNG, JPEG or WebP"):
        judge_output(b"GIF89a not really", vector(1), DEFAULT)


def test_faceless_output_is_no_face() -> None:
    gradient = Image.linear_gradient("L").resize((OUTPUT_SIZE, OUTPUT_SIZE)).convert("RGB")
    judgement = judge_output(png(gradient), vector(1), DEFAULT)
    assert (judgement.drop, judgement.faces, judgement.distance, judgement.likeness) == ("no_face", 0, None, None)


# --- the corpus ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}~{b}" for a, b in PAIRS])
@pytest.mark.corpus
@_NO_CORPUS
def test_every_corpus_pair_is_classified_by_the_threshold(first: str, second: str) -> None:
    """Every same/different pair of one-face corpus photos falls on its side of the intake threshold."""
    distance = descriptor(first).distance(descriptor(second))
    same = PEOPLE[first] == PEOPLE[second]
    threshold = DEFAULT.identity_same_person_max_distance
    assert (distance <= threshold) == same, f"{PEOPLE[first]} vs {PEOPLE[second]}: {distance:.3f}"


@pytest.mark.corpus
@_NO_CORPUS
def test_described_from_the_stored_box_or_by_detection_alike() -> None:
    photo = checked(OBAMA[0])
    detected = describe_photo(photo.normalized.jpeg, PERMISSIVE)
    assert detected is not None and detected.distance(descriptor(OBAMA[0])) < 1e-6


@pytest.mark.corpus
@_NO_CORPUS
def test_three_of_one_person_and_one_other_refuses_the_other() -> None:
    photos = {path: descriptor(path) for path in (*OBAMA, "faces/biden_second.jpg")}
    check = check_one_person(photos, DEFAULT)
    assert check.single_person
    assert check.outliers == ["faces/biden_second.jpg"]
    assert max(check.distances[path] for path in OBAMA) < DEFAULT.identity_same_person_max_distance
    assert check.distances["faces/biden_second.jpg"] > DEFAULT.identity_same_person_max_distance


@pytest.mark.corpus
@_NO_CORPUS
def test_three_different_people_are_no_single_person() -> None:
    photos = {path: descriptor(path) for path in (OBAMA[0], "faces/biden_second.jpg", "faces/astronaut.png")}
    check = check_one_person(photos, DEFAULT)
    assert not check.single_person and check.consensus is None and check.outliers == []


@pytest.mark.corpus
@_NO_CORPUS
def test_output_from_a_reference_is_kept_and_ranks_above_another_person() -> None:
    consensus = check_one_person({path: descriptor(path) for path in OBAMA[1:]}, DEFAULT).consensus
    assert consensus is not None
    mine = judge_output(fake_output(OBAMA[0]), consensus, DEFAULT)
    assert mine.drop is None and mine.faces == 1
    assert mine.likeness is not None and mine.likeness >= 60
    other = judge_output(fake_output("faces/biden_second.jpg"), consensus, DEFAULT)
    assert other.drop == "not_like_you"
    assert other.likeness is not None and other.likeness < mine.likeness
    assert other.distance is not None and mine.distance is not None and other.distance > mine.distance


@pytest.mark.corpus
@_NO_CORPUS
def test_output_with_two_faces_side_by_side_is_extra_faces() -> None:
    canvas = Image.new("RGB", (OUTPUT_SIZE, OUTPUT_SIZE), (90, 90, 90))
    for x, path in ((0, OBAMA[0]), (OUTPUT_SIZE // 2, "faces/biden_second.jpg")):
        with Image.open(io.BytesIO(checked(path).normalized.jpeg)) as image:
            half = ImageOps.fit(image.convert("RGB"), (OUTPUT_SIZE // 2, OUTPUT_SIZE // 2), centering=(0.5, 0.3))
        canvas.paste(half, (x, OUTPUT_SIZE // 4))
    consensus = descriptor(OBAMA[0])
    judgement = judge_output(png(canvas), consensus, DEFAULT)
    assert (judgement.drop, judgement.faces, judgement.likeness) == ("extra_faces", 2, None)


@pytest.mark.corpus
@_NO_CORPUS
def test_output_formats_jpeg_and_webp_judged_alike() -> None:
    consensus = descriptor(OBAMA[1])
    with Image.open(io.BytesIO(fake_output(OBAMA[0], banner=False))) as image:
        rgb = image.convert("RGB")
    for fmt in ("JPEG", "WEBP"):
        buffer = io.BytesIO()
        rgb.save(buffer, fmt, quality=90)
        judgement = judge_output(buffer.getvalue(), consensus, DEFAULT)
        assert judgement.drop is None and judgement.faces == 1, fmt


def _corpus_rejections() -> list[str]:
    """Named-person photos the gate refuses even when permissive (kept visible: they are not in PAIRS)."""
    refused = []
    for path in PEOPLE:
        try:
            check_photo((CORPUS / path).read_bytes(), PERMISSIVE)
        except PhotoRejected:
            refused.append(path)
    return refused


@pytest.mark.corpus
@_NO_CORPUS
def test_every_named_one_face_photo_is_described() -> None:
    assert _corpus_rejections() == []
    assert len(PEOPLE) >= 16 and len({*PEOPLE.values()}) >= 4

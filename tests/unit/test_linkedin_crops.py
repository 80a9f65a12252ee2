"""LinkedIn-ready crops: real photos through normalization, the output gate and collect; each crop checked with the
gate's own face detector: the whole face inside the inscribed circle, its centre near the image's centre."""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from infra.local.replicate.render import load_reference, render_preview
from portrait_studio import keys
from portrait_studio.models import FaceBox, Job, JobStatus
from portrait_studio.services.crops import CROP_SIDE, MIN_SIDE, crop_box, linkedin_crop
from portrait_studio.services.faces import detect_faces
from portrait_studio.services.jobs import hash_token
from portrait_studio.services.provenance import TRAINED_ALGORITHMIC_MEDIA, ProvenanceStamp
from tests.unit.conftest import World
from tests.unit.helpers import finish_all, run_queues
from tests.unit.test_output_gate import SAMPLES, paid_job  # noqa: F401  (a fixture)
from tests.unit.test_provenance import UNTRUSTED, chain, failures, read, stamp, with_stamp  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("PORTRAIT_CORPUS") or REPO.parent / "shared" / "corpus")
MANIFEST: list[dict[str, Any]] = (
    json.loads((CORPUS / "MANIFEST.json").read_text()) if (CORPUS / "MANIFEST.json").is_file() else []
)
ONE_FACE = [
    e["path"]
    for e in MANIFEST
    if e.get("expected", {}).get("faces") == 1 and e["path"].rsplit(".", 1)[-1] in ("jpg", "jpeg", "png")
]


def assert_linkedin_ready(data: bytes, world: World) -> None:
    """800 × 800 (or a smaller square never upscaled); one face, wholly inside the circle, centred within 10 %."""
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.width == image.height
        assert MIN_SIDE <= image.width <= CROP_SIDE
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    faces = detect_faces(rgb, world.settings)
    assert faces, "the detector finds the face in the crop"
    face = faces[0]
    side = rgb.shape[0]
    centre, radius = side / 2, side / 2
    corners = [(x, y) for x in (face.left, face.right) for y in (face.top, face.bottom)]
    assert all(math.hypot(x - centre, y - centre) <= radius for x, y in corners), (corners, side)
    fx, fy = (face.left + face.right) / 2, (face.top + face.bottom) / 2
    assert abs(fx - centre) <= 0.1 * side and abs(fy - centre) <= 0.1 * side, (fx, fy, side)


def test_every_delivered_headshot_has_a_stamped_linkedin_crop_also_in_the_zip(
    world: World,
    paid_job: str,  # noqa: F811
    stamp: ProvenanceStamp,  # noqa: F811
) -> None:
    with_stamp(world, stamp)
    photos = ["person-a-1.jpg", "person-a-2.jpg", "person-a-2.jpg", "person-a-1.jpg"]
    world.downloader.by_index = {i: render((SAMPLES / name).read_bytes(), i) for i, name in enumerate(photos)}
    run_queues(world)
    finish_all(world, paid_job)
    run_queues(world)
    job = world.store.get_job(paid_job)
    assert isinstance(job, Job) and job.status == JobStatus.READY
    slots = world.store.list_slots(paid_job)
    assert all(sorted(s.crops) == sorted(s.results) for s in slots)
    crops = {k: v for k, v in world.blobs.objects.items() if "/linkedin/" in k}
    assert len(crops) == sum(len(s.results) for s in slots) >= 32
    for data, content_type, _ in crops.values():
        assert content_type == "image/jpeg"
        assert TRAINED_ALGORITHMIC_MEDIA.encode() in data  # IPTC XMP, as on the headshot
        assert failures(read(data, "image/jpeg")) == {UNTRUSTED}  # a valid C2PA manifest (a test signer)
        assert_linkedin_ready(data, world)

    assert world.store.update_job(paid_job, token_hash=hash_token("t"))  # the fixture keeps no token: set one
    items = [item for style in world.jobs.view(paid_job, "t").styles for item in style.items]
    assert items and all(item.linkedin_url for item in items)  # beside each headshot, a link to its crop
    archive = world.jobs.archive(paid_job, "t")
    assert archive.linkedin_crops == archive.images == len(crops)
    with zipfile.ZipFile(io.BytesIO(world.blobs.get(keys.archive(paid_job, archive.images)))) as bundle:
        names = bundle.namelist()
    linkedin = [n for n in names if n.startswith("linkedin/")]
    assert len(linkedin) == len(crops) and all(n.endswith(".jpg") for n in linkedin)
    assert {n.removeprefix("linkedin/").removesuffix(".jpg") for n in linkedin} == {
        n.removesuffix(".png") for n in names if n.endswith(".png")
    }


def render(photo: bytes, index: int) -> bytes:
    return render_preview(load_reference(photo), "a portrait of a person img", "Photographic (Default)", 1, index, 4)


@pytest.mark.skipif(not ONE_FACE, reason=f"photo corpus not found at {CORPUS} (set PORTRAIT_CORPUS)")
@pytest.mark.parametrize("path", ONE_FACE)
def test_corpus_portraits_rendered_as_headshots_crop_around_the_face(world: World, path: str) -> None:
    output = render((CORPUS / path).read_bytes(), 0)
    rgb = np.asarray(Image.open(io.BytesIO(output)).convert("RGB"), dtype=np.uint8)
    faces = detect_faces(rgb, world.settings)
    if not faces:  # the output gate drops it (no_face): no headshot, no crop
        pytest.skip(f"{path}: the gate finds no face in the render")
    left, top, right, bottom = faces[0].clipped(rgb.shape[1], rgb.shape[0])
    face = FaceBox(left=left, top=top, width=right - left, height=bottom - top)
    crop = linkedin_crop(output, face)
    # Collect hands over the pixels the gate decoded: the very same crop, byte for byte.
    assert linkedin_crop(rgb, face) == crop
    if crop is None:  # the face too near the edge for a centred square: documented, no crop
        pytest.skip(f"{path}: no centred crop possible")
    assert_linkedin_ready(crop, world)


@pytest.mark.parametrize(
    ("face", "side"),
    [
        (FaceBox(left=400, top=350, width=220, height=260), CROP_SIDE),  # a usual headshot: 800 from a larger square
        (FaceBox(left=300, top=250, width=420, height=480), 1024),  # a big face: the whole 1024 square
        (FaceBox(left=150, top=350, width=200, height=200), 555),  # near the edge: smaller, never upscaled
    ],
)
def test_the_crop_square_fits_the_face(face: FaceBox, side: int) -> None:
    box = crop_box(1024, 1024, face)
    assert box is not None and box.side == side


def test_no_crop_when_no_centred_square_can_hold_the_face() -> None:
    assert crop_box(1024, 1024, FaceBox(left=0, top=400, width=200, height=200)) is None  # at the edge
    assert crop_box(1024, 1024, FaceBox(left=100, top=100, width=820, height=820)) is None  # fills the frame

"""The emulator's identity faults: outputs that show somebody else (`identity_drift_rate`) or no face at all
(`faceless_rate`), checked with dlib's HOG detector and the production SFace descriptor on the very PNGs a
client downloads."""

from __future__ import annotations

import base64
import hashlib
import io
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, ImageOps
from replicate.prediction import Prediction

from infra.local.replicate.emulator import ReplicateEmulator
from infra.local.replicate.render import OTHER_PERSON_PHOTO, load_reference, render_preview
from portrait_studio.config import Settings
from portrait_studio.services.identity import Descriptor, describe_face
from tests.integration.emulators import PHOTOMAKER_VERSION as VERSION
from tests.integration.emulators import replicate_client

pytestmark = pytest.mark.integration

PROMPT = "a professional headshot of a man img, studio lighting"
STYLE = "Photographic (Default)"
SEED = 1234
REFERENCE = Path(__file__).resolve().parents[2] / "samples" / "person-a-1.jpg"
BANNER = (12, 12, 12)  # the banner's fill, drawn after the tint: exact on every output
SAME_PERSON = Settings().identity_output_max_distance  # the gate's distance below which two faces are one person
STEP_DELAY_S = 0.02


@pytest.fixture
def emulator(make_replicate: Callable[..., ReplicateEmulator]) -> ReplicateEmulator:
    return make_replicate(step_delay_s=STEP_DELAY_S)


def _input(**overrides: Any) -> dict[str, Any]:
    reference = "data:image/jpeg;base64," + base64.b64encode(REFERENCE.read_bytes()).decode()
    return {"prompt": PROMPT, "input_image": reference, "style_name": STYLE, "num_outputs": 4, **overrides}


def _run(emulator: ReplicateEmulator, **overrides: Any) -> tuple[Prediction, list[bytes]]:
    client = replicate_client(emulator, poll_interval_s=0.02)
    prediction = client.predictions.create(version=VERSION, input=_input(**overrides))
    deadline = time.monotonic() + 20
    while prediction.status not in ("succeeded", "failed", "canceled"):
        assert time.monotonic() < deadline, f"prediction stuck in {prediction.status}"
        time.sleep(client.poll_interval)
        prediction.reload()
    assert prediction.status == "succeeded", prediction.error
    return prediction, [httpx.get(url, timeout=10).content for url in prediction.output]


def _rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.uint8)


@lru_cache(maxsize=1)
def _detector() -> Any:
    import dlib

    return dlib.get_frontal_face_detector()


def _faces(rgb: np.ndarray) -> list[Any]:
    """Every face dlib's HOG detector finds, small ones too (upsampled once, any score)."""
    rects, _, _ = _detector().run(rgb, 1, -0.5)
    return list(rects)


def _descriptor(rgb: np.ndarray) -> Descriptor:
    faces = _faces(rgb)
    assert faces, "no face"
    main = max(faces, key=lambda rect: rect.area())
    height, width = rgb.shape[:2]
    box = (max(0, main.left()), max(0, main.top()), min(width, main.right() + 1), min(height, main.bottom() + 1))
    return describe_face(rgb, box)


def _has_banner(rgb: np.ndarray) -> bool:
    top = rgb[:132]
    yellow = (top[..., 0] > 200) & (top[..., 1] > 170) & (top[..., 2] < 80)
    return tuple(int(v) for v in rgb[4, 4]) == BANNER and int(yellow.sum()) > 1000


def test_without_the_faults_every_output_shows_the_reference_person(emulator: ReplicateEmulator) -> None:
    _, outputs = _run(emulator, seed=SEED)
    reference = _descriptor(_rgb(REFERENCE.read_bytes()))
    for data in outputs:
        rgb = _rgb(data)
        assert _has_banner(rgb)
        assert _descriptor(rgb).distance(reference) < SAME_PERSON


def test_identity_drift_rate_one_shows_the_bundled_face_in_every_output(emulator: ReplicateEmulator) -> None:
    emulator.set_faults({"identity_drift_rate": 1.0})
    prediction, outputs = _run(emulator, seed=SEED)
    assert len(outputs) == 4
    assert "identity_drift_rate" in prediction.logs

    other = load_reference(OTHER_PERSON_PHOTO.read_bytes())
    reference = _descriptor(_rgb(REFERENCE.read_bytes()))
    bundled = _descriptor(np.asarray(other))
    for index, data in enumerate(outputs):
        # Byte for byte the bundled photo, tinted, captioned and labelled as any preview.
        assert data == render_preview(other, PROMPT, STYLE, SEED + index, index, 4)
        rgb = _rgb(data)
        assert _has_banner(rgb)
        face = _descriptor(rgb)
        assert face.distance(bundled) < SAME_PERSON
        assert face.distance(reference) > SAME_PERSON  # somebody else than the reference shows


def test_faceless_rate_one_gives_outputs_without_a_face(emulator: ReplicateEmulator) -> None:
    emulator.set_faults({"faceless_rate": 1.0, "identity_drift_rate": 1.0})  # no face wins over somebody else
    prediction, outputs = _run(emulator, seed=SEED)
    assert len(outputs) == 4
    assert "faceless_rate" in prediction.logs
    assert len({hashlib.sha256(data).digest() for data in outputs}) == 4  # captions and tints still differ
    for data in outputs:
        rgb = _rgb(data)
        assert _has_banner(rgb)
        assert _faces(rgb) == []
        with Image.open(io.BytesIO(data)) as image:
            assert (image.format, image.size) == ("PNG", (1024, 1024))


def test_the_faults_are_drawn_per_output_and_a_seed_replays_them(
    make_replicate: Callable[..., ReplicateEmulator],
) -> None:
    def run() -> list[str]:
        emulator = make_replicate(step_delay_s=STEP_DELAY_S)
        emulator.set_faults({"identity_drift_rate": 0.4, "faceless_rate": 0.3, "seed": 5})
        outputs = [data for _ in range(3) for data in _run(emulator)[1]]
        return [hashlib.sha256(data).hexdigest() for data in outputs]

    first = run()
    assert first == run()

    # The same run, told apart by what each output shows: a mix, not one fault for the whole prediction.
    emulator = make_replicate(step_delay_s=STEP_DELAY_S)
    emulator.set_faults({"identity_drift_rate": 0.4, "faceless_rate": 0.3, "seed": 5})
    reference = _descriptor(_rgb(REFERENCE.read_bytes()))
    kinds = []
    for _ in range(3):
        for data in _run(emulator)[1]:
            rgb = _rgb(data)
            if not _faces(rgb):
                kinds.append("faceless")
            else:
                kinds.append("same" if _descriptor(rgb).distance(reference) < SAME_PERSON else "other")
    assert set(kinds) == {"same", "other", "faceless"}, kinds


@pytest.mark.parametrize("key", ["identity_drift_rate", "faceless_rate"])
def test_the_rates_are_validated(emulator: ReplicateEmulator, key: str) -> None:
    assert emulator.faults()[key] == 0.0  # off unless asked for
    url = f"{emulator.url}/_emulator/faults"
    for bad in (-0.1, 1.5, True, "0.5", None, [0.5]):
        with pytest.raises(ValueError, match=key):
            emulator.set_faults({key: bad})
        assert httpx.put(url, json={key: bad}).status_code == 400, bad
    for good in (0, 0.25, 1):
        assert httpx.put(url, json={key: good}).json()[key] == float(good)
    assert httpx.delete(url).json()[key] == 0.0

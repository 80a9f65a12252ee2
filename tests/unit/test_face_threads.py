"""dlib's detector and models are not thread-safe: sharing one detector between threads crashed the process or
found faces that were not there (CI: a photo of one face refused as `multiple_faces` while another function
judged headshots in the same local-stack process). Each thread gets its own."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from portrait_studio.config import Settings
from portrait_studio.services import identity
from portrait_studio.services.faces import decode_rgb, detect_faces
from portrait_studio.services.photos import check_photo

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_faces_are_found_and_described_in_parallel_threads_as_alone() -> None:
    settings = Settings()
    one_face = decode_rgb(check_photo((SAMPLES / "person-a-3.heic").read_bytes(), settings, {}).normalized.jpeg)
    reference = check_photo((SAMPLES / "person-a-1.jpg").read_bytes(), settings, {}).normalized.jpeg
    alone = identity.describe_photo(reference, settings)
    assert alone is not None
    found: list[int] = []
    distances: list[float] = []

    def detect() -> None:
        found.extend(len(detect_faces(one_face, settings)) for _ in range(20))

    def describe() -> None:
        for _ in range(8):
            described = identity.describe_photo(reference, settings)
            assert described is not None
            distances.append(described.distance(alone))

    threads = [threading.Thread(target=t) for t in (detect, detect, describe)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(found) == {1: 40}
    assert len(distances) == 8 and max(distances) < 1e-6

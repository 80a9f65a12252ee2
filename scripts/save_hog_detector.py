"""Save dlib's built-in HOG frontal face detector to shared/portrait_studio/face_models/ (services/faces.py loads it).

`dlib.get_frontal_face_detector()` builds the detector from text embedded in dlib, about 400 ms of every cold start
that looks for a face; the same detector saved in dlib's binary format loads in about 2 ms. The file is byte-identical
on every run for a given dlib (20.0.1 from dlib-bin here); its sha256 is in face_models/NOTICE.md, and
tests/unit/test_locks.py checks both the sha256 and that the file still is the detector dlib builds in.

Run: `python scripts/save_hog_detector.py [--out FILE]` (after changing dlib-bin's pin, then update NOTICE.md).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))

from portrait_studio.services.faces import HOG_DETECTOR_FILE  # noqa: E402


def main() -> int:
    import dlib

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HOG_DETECTOR_FILE)
    args = parser.parse_args()
    dlib.get_frontal_face_detector().save(str(args.out))
    print(f"{args.out}: dlib {dlib.__version__}, sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Hints about the accepted photos that never block a job: today, photos that all show the same pose.

PhotoMaker learns the face from the reference photos; when every one of them is the same frontal shot, the
headshots come out stiff and alike. Intake already stores a rough head turn per accepted photo
(`PhotoQuality.yaw_hint`, -1 looking left .. 1 looking right, see faces._yaw_hint), so the spread of those
numbers says whether the photos were taken from different angles.

The threshold, measured with intake's own code (normalize_photo, then assess_photo) on the real photos of
the shared corpus (`../shared/corpus`, `PORTRAIT_CORPUS`) grouped by MANIFEST.json's `expected.person`, and on samples/:

* the same photo again (re-encoded, rotated by EXIF, HEIC vs PNG): Eileen Collins' 3 files read 0.156, 0.156
  and 0.0 (spread 0.156); Obama's portrait and its EXIF-rotated copy both read 0.234 (spread 0.0);
* the same photo re-framed (three crops of samples/person-a-1.jpg, 85-100 % of it, brightness ±15 %): 0.234,
  0.195 and 0.0 (spread 0.234) — the hint's own noise for one pose;
* distinct photos of one person: Biden's two read -0.977 and -0.312 (spread 0.665, the least varied real set);
  Obama's three distinct ones 0.234, 0.664 and -0.938 (spread 1.602); samples/person-a-1..3 0.234, -0.898 and
  0.664 (spread 1.562).

So one pose spreads at most 0.234 and the least varied distinct photos 0.665: 0.35 sits above the noise with
room to spare and well below any real variety we have seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from portrait_studio.api_models import JobHint
from portrait_studio.models import FileStatus, JobStatus, UploadFile

__all__ = ["LOW_VARIETY", "LOW_VARIETY_MESSAGE", "MIN_YAW_SPREAD", "lacks_variety", "photo_hints", "yaw_spread"]

LOW_VARIETY = "low_variety"
LOW_VARIETY_MESSAGE = (
    "Your photos all show your face from the same angle. Photos from a few different angles give better results."
)
# Below this spread of yaw_hint the accepted photos are one pose (see the module's docstring for the figures).
MIN_YAW_SPREAD = 0.35
# One photo says nothing about variety; two of the same pose already do.
MIN_PHOTOS_TO_JUDGE = 2
# Hints help while the photos can still be changed or the person decides whether to pay; not afterwards.
HINTED_STATUSES = frozenset({JobStatus.COLLECTING, JobStatus.AWAITING_PAYMENT})


def yaw_spread(yaws: Iterable[float]) -> float | None:
    """Widest head-turn difference among the photos, or None for fewer than two of them."""
    values = list(yaws)
    if len(values) < MIN_PHOTOS_TO_JUDGE:
        return None
    return max(values) - min(values)


def lacks_variety(yaws: Iterable[float]) -> bool:
    spread = yaw_spread(yaws)
    return spread is not None and spread < MIN_YAW_SPREAD


def photo_hints(status: JobStatus, files: Sequence[UploadFile]) -> list[JobHint]:
    """The job view's non-blocking hints about its accepted photos."""
    if status not in HINTED_STATUSES:
        return []
    yaws = [f.quality.yaw_hint for f in files if f.status == FileStatus.ACCEPTED and f.quality is not None]
    if lacks_variety(yaws):
        return [JobHint(code=LOW_VARIETY, message=LOW_VARIETY_MESSAGE)]
    return []

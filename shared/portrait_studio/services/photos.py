"""One photo through the whole gate: normalize, assess, refuse duplicates.

The single entry point the normalize Lambda and the `portrait-studio normalize` CLI both call, so a
verdict seen locally is the verdict production gives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from portrait_studio.errors import DuplicatePhoto
from portrait_studio.services.faces import assess_photo, find_duplicate
from portrait_studio.services.imaging import NormalizedPhoto, normalize_photo

if TYPE_CHECKING:
    from portrait_studio.config import Settings
    from portrait_studio.models import PhotoQuality

__all__ = ["CheckedPhoto", "check_photo"]

_NO_HASHES: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class CheckedPhoto:
    normalized: NormalizedPhoto
    quality: PhotoQuality


def check_photo(data: bytes, settings: Settings, other_hashes: Mapping[str, str] = _NO_HASHES) -> CheckedPhoto:
    """Normalize and assess one upload; `other_hashes` maps the job's accepted photos to their pHash.

    Raises only `PhotoRejected` subclasses (UnsupportedFormat ... TooBlurry, DuplicatePhoto).
    """
    normalized = normalize_photo(data, settings)
    quality = assess_photo(normalized.jpeg, settings)
    if find_duplicate(quality.phash, other_hashes, settings.duplicate_max_distance) is not None:
        raise DuplicatePhoto()
    return CheckedPhoto(normalized=normalized, quality=quality)

"""What an upload must pass before and while it is decoded: the pixel and size limits, and the verdict on the
decoders' warnings and errors. Everything here raises or returns a `PhotoRejected`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from portrait_studio.errors import CorruptImage, PhotoRejected, TooManyPixels, TooSmall

if TYPE_CHECKING:
    import warnings

    from portrait_studio.config import Settings

__all__ = ["check_size", "map_decoder_error", "raise_on_decoder_warnings"]

# Where a warning that counts comes from: the image libraries, or our own imaging modules (imaging.py and
# imaging_*.py), since a warning from a C decoder, or one raised with a stacklevel, is attributed to the
# Python line that called it.
_DECODING_CODE = ("/PIL/", "/pillow_heif/", "/portrait_studio/services/imaging")


def check_size(width: int, height: int, settings: Settings, *, check_small: bool = True) -> None:
    if width <= 0 or height <= 0:
        raise CorruptImage()
    size: dict[str, object] = {"width": width, "height": height}
    if width * height > settings.max_pixels:
        raise TooManyPixels(details=size)
    # The shorter side does not change under any of the 8 orientations, so it can be checked early.
    if check_small and min(width, height) < settings.min_short_side_px:
        raise TooSmall(details=size)


def raise_on_decoder_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Only the image libraries' own warnings count; another thread's may land in the same list."""
    from PIL import Image

    for warning in caught:
        if issubclass(warning.category, Image.DecompressionBombWarning):
            raise TooManyPixels()
        if any(part in warning.filename for part in _DECODING_CODE):
            raise CorruptImage()


def map_decoder_error(exc: BaseException) -> PhotoRejected:
    from PIL import Image

    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return TooManyPixels()
    return CorruptImage()

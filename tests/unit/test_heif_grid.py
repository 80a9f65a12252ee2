"""Grid HEIC (how iPhones store every photo) decoded tile by tile: same pixels as libheif's whole decode."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from portrait_studio.config import Settings
from portrait_studio.errors import CorruptImage
from portrait_studio.services import heif_container, imaging
from portrait_studio.services.heif_container import check_container
from portrait_studio.services.imaging import NormalizedPhoto, normalize_photo


def grid_heic(im: Image.Image, tile: int = 256) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    im.save(buffer, "HEIF", quality=90, tile_size=tile)
    return buffer.getvalue()


def photo_like(size: tuple[int, int]) -> Image.Image:
    """Smooth gradients with sharp-edged blocks: tile seams or misplaced tiles would show."""
    width, height = size
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1)
    rgb[height // 3 : height // 2, width // 5 : width // 2] = (250, 20, 20)
    rgb[2 * height // 3 :, 3 * width // 4 :] = (10, 10, 240)
    return Image.fromarray(rgb.astype(np.uint8))


def pixels(result: NormalizedPhoto) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(result.jpeg)).convert("RGB"), dtype=np.float32)


def whole_decode(data: bytes, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> NormalizedPhoto:
    """The same file through libheif's whole-image decode (the path for grids we do not plan)."""

    def without_grid(blob: bytes) -> heif_container.Container:
        container = check_container(blob)
        container.grid = None
        return container

    with monkeypatch.context() as patch:
        patch.setattr(imaging, "check_container", without_grid)
        return normalize_photo(data, settings)


@pytest.mark.parametrize(
    ("max_side", "path"),
    [(1024, "whole frame, then LANCZOS"), (500, "each tile reduced by 2"), (350, "rows of tiles reduced by 3")],
)
def test_grid_decoded_tile_by_tile_equals_whole_decode(
    max_side: int, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = photo_like((1100, 700))  # 5 x 3 tiles of 256, the last column and row cropped
    data = grid_heic(source)
    plan = check_container(data).grid
    assert plan is not None and (plan.columns, plan.rows) == (5, 3)
    settings = Settings(max_side_px=max_side, min_short_side_px=1)

    tiled = normalize_photo(data, settings)
    whole = whole_decode(data, settings, monkeypatch)

    assert (tiled.width, tiled.height) == (whole.width, whole.height)
    assert max(tiled.width, tiled.height) == min(max_side, 1100)
    assert np.abs(pixels(tiled) - pixels(whole)).mean() < 0.5, path
    reference = np.asarray(source.resize((tiled.width, tiled.height), Image.Resampling.LANCZOS), dtype=np.float32)
    assert np.abs(pixels(tiled) - reference).mean() < 4.0


def test_grid_with_one_short_tile_row_and_column() -> None:
    """A canvas barely over the tiles: the last row and column show a single pixel of their tiles."""
    data = grid_heic(photo_like((513, 513)))
    plan = check_container(data).grid
    assert plan is not None and (plan.columns, plan.rows) == (3, 3)
    result = normalize_photo(data, Settings(min_short_side_px=1))
    assert (result.width, result.height) == (513, 513)


def test_grid_whose_tile_count_disagrees_is_left_to_libheif() -> None:
    data = bytearray(grid_heic(photo_like((600, 300))))
    plan = check_container(bytes(data)).grid
    assert plan is not None and (plan.columns, plan.rows) == (3, 2)
    # The grid item's payload: version, flags, rows - 1, columns - 1, output size. Claim 3 rows.
    grid_item = bytes([0, 0, 1, 2]) + (600).to_bytes(2, "big") + (300).to_bytes(2, "big")
    at = data.find(grid_item)
    assert at > 0
    data[at + 2] = 2
    assert check_container(bytes(data)).grid is None
    with pytest.raises(CorruptImage):  # libheif refuses it as well: no silent half decode
        normalize_photo(bytes(data), Settings(min_short_side_px=1))


def test_each_tile_is_a_standalone_heif_file() -> None:
    import pillow_heif

    plan = check_container(grid_heic(photo_like((600, 300)))).grid
    assert plan is not None
    tile = pillow_heif.open_heif(plan.tile_file(0))
    assert tile.size == (256, 256)
    assert len(tile.data) >= 256 * 256 * 3

"""HEIC/HEIF decoding through pillow-heif (libheif), with the memory of a Lambda in mind.

A grid HEIC (every iPhone photo: 48 HEVC tiles) is decoded one tile at a time and box-reduced as the tiles
arrive (`heif_container` plans it), so a 12 MP photo needs about 0.8x its RGB frame instead of the 1.6x of
libheif's whole decode (4.6x for a 10-bit camera HIF). Other HEIFs are downscaled in bands straight out of
libheif's buffer. AVIF goes through Pillow (`imaging_decoders`).

Heavy libraries are imported inside functions (see `imaging`).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from portrait_studio.errors import CorruptImage
from portrait_studio.services.imaging_checks import check_size
from portrait_studio.services.imaging_colour import NCLX_P3_D65, display_p3_profile
from portrait_studio.services.imaging_pixels import (
    REDUCING_GAP,
    fit,
    reduce_buffer,
    resize,
    resize_buffer,
    to_8bit,
    whole_frame,
    worker_pool,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from PIL import Image

    from portrait_studio.config import Settings
    from portrait_studio.services.heif_container import GridPlan

__all__ = ["decode_heif", "decode_heif_grid"]

# Grid HEIC tiles up to this size are decoded on the resize threads (libheif releases the GIL); larger ones
# (a 10-bit camera's 3 MP tiles, whose libheif intermediates are four times their size) one at a time.
_PARALLEL_TILE_PIXELS = 1 << 20


def decode_heif(data: bytes, settings: Settings) -> tuple[Image.Image, int, bytes | None]:
    """HEIC/HEIF through pillow-heif's low-level API, so the frame is downscaled in bands straight out of
    libheif's buffer instead of being copied whole into Pillow first (one decoded frame, not two)."""
    import pillow_heif
    from PIL import Image
    from pillow_heif import options

    options.THUMBNAILS = False
    options.DEPTH_IMAGES = False
    options.AUX_IMAGES = False
    heif_file = pillow_heif.open_heif(data, convert_hdr_to_8bit=True, remove_stride=False)
    image = heif_file[heif_file.primary_index]  # multi-image files (stereo pairs, bursts): the primary
    width, height = image.size  # after libheif's irot/imir
    check_size(width, height, settings)
    target = fit(width, height, settings.max_side_px)
    icc = _heif_profile(image.info)  # libheif finds nclx on grid tiles too, where our parser does not look
    mode = image.mode
    buffer = image.data  # decodes; irot/imir already applied
    stride = image.stride
    del heif_file
    if image.size != (width, height):
        raise CorruptImage()
    if mode not in ("RGB", "RGBA", "L", "LA"):
        frame = to_8bit(Image.frombytes(mode, (width, height), buffer, "raw", mode, stride))
        del buffer, image
        return resize(frame, target), 1, icc
    factor = max(1, int(min(width / target[0], height / target[1]) / REDUCING_GAP))
    if factor == 1:
        frame = resize_buffer(buffer, mode, (width, height), stride, target)
    else:
        frame = reduce_buffer(buffer, mode, (width, height), stride, factor)
    del buffer, image
    return resize(frame, target), 1, icc


def decode_heif_grid(grid: GridPlan, settings: Settings) -> tuple[Image.Image, int, bytes | None]:
    """A grid HEIC (iPhone, most phones and cameras) decoded tile by tile, each tile a small HEIF of its own.

    The frame is box-reduced by the integer factor as tiles arrive, so only the reduced frame and a tile (or
    a row of tiles) are alive at once; the result equals reducing the whole frame. When the factor divides
    the tile size, each tile is reduced on its own; otherwise a row of tiles is, rows left over from the
    uneven factor waiting for the next row. Small tiles are decoded on the worker threads, large ones (a
    10-bit camera's 3 MP tiles, whose libheif intermediates are four times their size) one at a time. The
    grid's irot comes back as the equivalent EXIF orientation, for the caller to apply to the small result.
    """
    width, height = grid.output_width, grid.output_height
    check_size(width, height, settings)
    target = fit(width, height, settings.max_side_px)
    factor = max(1, int(min(width / target[0], height / target[1]) / REDUCING_GAP))
    parallel = grid.tile_width * grid.tile_height <= _PARALLEL_TILE_PIXELS
    if grid.tile_width % factor == 0 and grid.tile_height % factor == 0:
        frame, icc = _reduce_tiles(grid, factor, parallel=parallel)
    else:
        frame, icc = _reduce_tile_rows(grid, factor, parallel=parallel)
    orientation = {1: 8, 2: 3, 3: 6}.get(grid.quarter_turns, 1)
    return resize(frame, target), orientation, grid.icc or icc  # the grid's own profile describes the image


def _reduce_tiles(grid: GridPlan, factor: int, *, parallel: bool) -> tuple[Image.Image, bytes | None]:
    """Each tile cropped to the canvas and reduced on its own (the factor divides the tile size)."""
    from PIL import Image

    width, height = grid.output_width, grid.output_height

    def reduced_tile(index: int) -> tuple[Image.Image, bytes | None]:
        tile, icc = _decode_tile(grid, index)
        row, column = divmod(index, grid.columns)
        visible = (
            0,
            0,
            min(grid.tile_width, width - column * grid.tile_width),
            min(grid.tile_height, height - row * grid.tile_height),
        )
        if factor == 1 and visible[2:] == tile.size:
            return tile, icc
        reduced = tile.reduce(factor, box=visible)
        tile.close()
        return reduced, icc

    indices = range(grid.rows * grid.columns)
    frame: Image.Image | None = None
    found_icc: bytes | None = None
    for index, (piece, icc) in zip(indices, _maybe_parallel(reduced_tile, indices, parallel=parallel), strict=True):
        if frame is None:
            frame = Image.new(piece.mode, (-(-width // factor), -(-height // factor)))
        row, column = divmod(index, grid.columns)
        frame.paste(_as_mode(piece, frame.mode), (column * grid.tile_width // factor, row * grid.tile_height // factor))
        piece.close()
        found_icc = found_icc or icc
    assert frame is not None
    return frame, found_icc


def _reduce_tile_rows(grid: GridPlan, factor: int, *, parallel: bool) -> tuple[Image.Image, bytes | None]:
    """Rows of tiles joined into bands and reduced; the rows a band leaves over (< factor) join the next."""
    from PIL import Image

    width, height = grid.output_width, grid.output_height
    frame: Image.Image | None = None
    pending: Image.Image | None = None
    done_rows = 0  # rows of `frame` written
    found_icc: bytes | None = None
    decode = partial(_decode_tile, grid)
    for row in range(grid.rows):
        indices = range(row * grid.columns, (row + 1) * grid.columns)
        rows_here = min(grid.tile_height, height - row * grid.tile_height)
        carried = pending.height if pending is not None else 0
        band: Image.Image | None = None
        for column, (tile, icc) in enumerate(_maybe_parallel(decode, indices, parallel=parallel)):
            if frame is None:
                frame = Image.new(tile.mode, (-(-width // factor), -(-height // factor)))
            if band is None:
                band = Image.new(frame.mode, (width, carried + rows_here))
                if pending is not None:
                    band.paste(pending, (0, 0))
                    pending.close()
            band.paste(_as_mode(tile, frame.mode), (column * grid.tile_width, carried))  # clipped at the canvas
            tile.close()
            found_icc = found_icc or icc
        assert frame is not None and band is not None
        last = row == grid.rows - 1
        usable = band.height if last else band.height - band.height % factor
        if usable:
            reduced = band.reduce(factor, box=(0, 0, width, usable))
            frame.paste(reduced, (0, done_rows))
            done_rows += reduced.height
            reduced.close()
        pending = None if usable == band.height else band.crop((0, usable, width, band.height))
        band.close()
    assert frame is not None
    return frame, found_icc


def _maybe_parallel(
    function: Callable[[int], tuple[Image.Image, bytes | None]], indices: range, *, parallel: bool
) -> Iterator[tuple[Image.Image, bytes | None]]:
    return worker_pool().map(function, indices) if parallel else map(function, indices)


def _as_mode(im: Image.Image, mode: str) -> Image.Image:
    """A tile in the frame's mode (a grid's tiles may disagree, e.g. one grey tile among colour ones)."""
    if im.mode == mode:
        return im
    converted = im.convert(mode)
    im.close()
    return converted


def _decode_tile(grid: GridPlan, index: int) -> tuple[Image.Image, bytes | None]:
    """One tile as an 8-bit image of the grid's tile size, with its ICC profile (or Display P3 for nclx P3)."""
    import pillow_heif

    heif_file = pillow_heif.open_heif(grid.tile_file(index), convert_hdr_to_8bit=True, remove_stride=False)
    if heif_file.size != (grid.tile_width, grid.tile_height):
        raise CorruptImage()
    tile = whole_frame(heif_file.data, heif_file.mode, heif_file.size, heif_file.stride)
    return to_8bit(tile), _heif_profile(heif_file.info)


def _heif_profile(info: Mapping[str, object]) -> bytes | None:
    """A decoded HEIF image's ICC profile, or Display P3 when it signals P3 by nclx instead."""
    profile, nclx = info.get("icc_profile"), info.get("nclx_profile")
    if isinstance(profile, (bytes, bytearray)) and profile:
        return bytes(profile)
    if isinstance(nclx, dict) and nclx.get("color_primaries") == NCLX_P3_D65:
        return display_p3_profile()
    return None

"""HEIF/AVIF (ISOBMFF) structure, read without a decoder: what `imaging` must know before decoding.

- Integrity: every box and every item extent must lie inside the file. libheif renders missing grid tiles
  of a truncated HEIC as solid colour without an error, so structure is the only reliable signal.
- The primary item's size (ispe), colour signalling (nclx primaries, ICC), irot/imir, and the orientation in
  the file's Exif item.
- For a primary image that is a grid of HEVC tiles (every iPhone photo: 48 tiles of 512x512), a plan to
  decode it one tile at a time: each tile becomes a tiny single-image HEIF file of its own. libheif would
  otherwise hold the whole decoded frame plus its colour-conversion intermediates (about 1.6x the RGB frame
  for an iPhone photo, 4.6x for a 10-bit camera HIF); tile by tile, a few tiles are alive at once.
"""

from __future__ import annotations

import struct

from portrait_studio.errors import CorruptImage

__all__ = ["Container", "GridPlan", "check_container"]

_ORIENTATION_TAG = 0x0112
# Properties a grid (or its tiles) may carry for us to decode it tile by tile; anything else (clap, imir,
# alpha planes, layered images...) goes to libheif whole. pixi/pasp/uuid do not change the pixels we need.
_GRID_PROPERTIES = frozenset({b"ispe", b"colr", b"pixi", b"irot", b"pasp", b"uuid"})
_TILE_PROPERTIES = frozenset({b"hvcC", b"ispe", b"colr", b"pixi", b"pasp"})
_ALPHA_AUX_TYPES = (b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha", b"urn:mpeg:hevc:2015:auxid:1")
# Each tile pays for a decoder of its own (about a millisecond). Phones stay far below this (a 12 MP iPhone
# photo has 48 tiles, a 200 MP one in 512 px tiles 768); a grid of thousands of tiny tiles goes to libheif.
_MAX_PLANNED_TILES = 1024


class GridPlan:
    """A grid primary image, decodable tile by tile (row-major, `rows` x `columns` tiles).

    The output is the top-left `output_width` x `output_height` of the tiled canvas; `quarter_turns` is the
    grid's irot (anticlockwise), which the caller applies since no decoder sees the grid as a whole.
    """

    __slots__ = (
        "_data",
        "_tiles",
        "columns",
        "icc",
        "output_height",
        "output_width",
        "quarter_turns",
        "rows",
        "tile_height",
        "tile_width",
    )

    def __init__(
        self,
        data: bytes,
        tiles: list[tuple[list[tuple[int, int]], list[bytes]]],
        *,
        rows: int,
        columns: int,
        output_size: tuple[int, int],
        tile_size: tuple[int, int],
        quarter_turns: int,
        icc: bytes | None,
    ) -> None:
        self._data = data
        self._tiles = tiles  # per tile: (extents in the file, its property boxes)
        self.rows, self.columns = rows, columns
        self.output_width, self.output_height = output_size
        self.tile_width, self.tile_height = tile_size
        self.quarter_turns = quarter_turns
        self.icc = icc  # the grid's own ICC profile (colr prof/rICC), if any

    def tile_file(self, index: int) -> bytes:
        """Tile `index` as a self-contained single-image HEIF file (ftyp, meta, mdat)."""
        extents, properties = self._tiles[index]
        payload = b"".join(self._data[first : first + length] for first, length in extents)
        return _single_image_heif(payload, properties)


class Container:
    """What we learn from a HEIF/AVIF box structure before handing it to a decoder.

    A plain class: each dataclass costs about a millisecond of import time on a cold start.
    """

    __slots__ = ("exif_orientation", "grid", "has_transform", "height", "icc", "nclx_primaries", "width")

    def __init__(
        self,
        width: int | None = None,
        height: int | None = None,
        nclx_primaries: int | None = None,
        *,
        has_transform: bool = False,
        exif_orientation: int = 1,
    ) -> None:
        self.width = width  # primary item's ispe (grid size for grid images), before irot
        self.height = height
        self.nclx_primaries = nclx_primaries
        self.icc: bytes | None = None  # the primary item's ICC profile (colr prof/rICC)
        self.has_transform = has_transform  # the primary item carries irot or imir
        self.exif_orientation = exif_orientation  # from the file's Exif item, 1 when absent or unreadable
        self.grid: GridPlan | None = None  # set when the primary can be decoded tile by tile


class _Truncated(Exception):
    pass


def check_container(data: bytes) -> Container:
    """Walk the box structure: every box and every item extent must lie inside the file.

    libheif renders missing grid tiles of a truncated HEIC as solid colour without an error, so the
    only reliable signal is structural: an iloc extent or a top-level box (mdat) running past EOF.
    """
    try:
        return _parse_container(data)
    except (_Truncated, struct.error, IndexError, ValueError) as exc:
        raise CorruptImage() from exc


def _iter_boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, payload start, box end) for each box in [start, end); raises _Truncated past `end`."""
    boxes: list[tuple[bytes, int, int]] = []
    position = start
    while position < end:
        if end - position < 8:
            if start == 0:
                break  # a few padding bytes after the last top-level box are harmless
            raise _Truncated("box header cut off")
        size, box_type = struct.unpack_from(">I4s", data, position)
        header = 8
        if size == 1:
            if end - position < 16:
                raise _Truncated("box header cut off")
            (size,) = struct.unpack_from(">Q", data, position + 8)
            header = 16
        elif size == 0:
            size = end - position  # "extends to the end of the file"
        if size < header or position + size > end:
            raise _Truncated("box runs past its parent")
        boxes.append((box_type, position + header, position + size))
        position += size
    return boxes


def _parse_container(data: bytes) -> Container:
    top = _iter_boxes(data, 0, len(data))
    if not top or top[0][0] != b"ftyp":
        raise _Truncated("no ftyp")
    metas = [box for box in top if box[0] == b"meta"]
    if not metas:
        raise _Truncated("no meta box")
    _type, meta_start, meta_end = metas[0]
    children = {box_type: (start, end) for box_type, start, end in _iter_boxes(data, meta_start + 4, meta_end)}
    if b"iloc" not in children:
        raise _Truncated("no iloc box")
    idat = children.get(b"idat", (0, 0))
    extents = _check_iloc(data, *children[b"iloc"], idat=idat)
    primary = _read_pitm(data, *children[b"pitm"]) if b"pitm" in children else None
    item_types = _item_types(data, *children[b"iinf"]) if b"iinf" in children else {}
    container = Container()
    if primary is not None and b"iprp" in children:
        for prop_type, start, end in _item_properties(data, *children[b"iprp"], primary):
            if prop_type == b"ispe" and end - start >= 12:
                container.width, container.height = struct.unpack_from(">II", data, start + 4)
            elif prop_type == b"colr" and end - start >= 6 and data[start : start + 4] == b"nclx":
                (container.nclx_primaries,) = struct.unpack_from(">H", data, start + 4)
            elif prop_type == b"colr" and end - start > 4 and data[start : start + 4] in (b"prof", b"rICC"):
                container.icc = data[start + 4 : end]
            elif prop_type in (b"irot", b"imir"):
                container.has_transform = True
    exif_items = [item_id for item_id, item_type in item_types.items() if item_type == b"Exif"]
    if exif_items:
        payload = b"".join(data[first : first + length] for first, length in extents.get(exif_items[0], []))
        container.exif_orientation = _exif_item_orientation(payload)
    if primary is not None and item_types.get(primary) == b"grid" and b"iprp" in children and b"iref" in children:
        try:
            container.grid = _grid_plan(data, children, extents, item_types, primary, container)
        except (_Truncated, struct.error, IndexError, ValueError):
            container.grid = None  # a grid we do not understand: libheif decodes it whole and judges it
    return container


def _item_types(data: bytes, start: int, end: int) -> dict[int, bytes]:
    """Item ID -> item type ("hvc1", "grid", "Exif"...) from iinf/infe (versions 2 and 3 carry the type)."""
    version = data[start]
    first_entry = start + (6 if version == 0 else 8)
    found: dict[int, bytes] = {}
    for box_type, entry_start, entry_end in _iter_boxes(data, first_entry, end):
        if box_type != b"infe" or entry_end - entry_start < 12:
            continue
        entry_version = data[entry_start]
        if entry_version == 2:
            (item_id,) = struct.unpack_from(">H", data, entry_start + 4)
            item_type = data[entry_start + 8 : entry_start + 12]
        elif entry_version == 3 and entry_end - entry_start >= 14:
            (item_id,) = struct.unpack_from(">I", data, entry_start + 4)
            item_type = data[entry_start + 10 : entry_start + 14]
        else:
            continue
        found[int(item_id)] = bytes(item_type)
    return found


def _references(data: bytes, start: int, end: int) -> dict[tuple[bytes, int], list[int]]:
    """iref: (reference type, from item ID) -> [to item IDs], in file order."""
    version = data[start]
    id_format, id_size = (">H", 2) if version == 0 else (">I", 4)
    found: dict[tuple[bytes, int], list[int]] = {}
    for ref_type, ref_start, ref_end in _iter_boxes(data, start + 4, end):
        (from_id,) = struct.unpack_from(id_format, data, ref_start)
        (count,) = struct.unpack_from(">H", data, ref_start + id_size)
        if ref_start + id_size + 2 + count * id_size > ref_end:
            raise _Truncated("iref entry runs past its box")
        targets = [struct.unpack_from(id_format, data, ref_start + id_size + 2 + i * id_size)[0] for i in range(count)]
        found.setdefault((ref_type, int(from_id)), []).extend(int(target) for target in targets)
    return found


def _grid_plan(
    data: bytes,
    children: dict[bytes, tuple[int, int]],
    extents: dict[int, list[tuple[int, int]]],
    item_types: dict[int, bytes],
    primary: int,
    container: Container,
) -> GridPlan | None:
    """A tile-by-tile plan for a grid of HEVC tiles, or None when the grid needs libheif's whole decode."""
    iprp = children[b"iprp"]
    references = _references(data, *children[b"iref"])
    for (ref_type, from_id), targets in references.items():
        if ref_type == b"auxl" and primary in targets and _is_alpha(data, iprp, from_id):
            return None  # alpha plane: libheif combines it with the colour image
    quarter_turns = 0
    for prop_type, start, _end in _item_properties(data, *iprp, primary):
        if prop_type not in _GRID_PROPERTIES:
            return None
        if prop_type == b"irot":
            quarter_turns = data[start] & 3
    grid = b"".join(data[first : first + length] for first, length in extents.get(primary, []))
    flags, rows, columns = grid[1], grid[2] + 1, grid[3] + 1
    size_format = ">II" if flags & 1 else ">HH"
    output_width, output_height = struct.unpack_from(size_format, grid, 4)
    tile_ids = references.get((b"dimg", primary), [])
    if grid[0] != 0 or len(tile_ids) != rows * columns or len(tile_ids) > _MAX_PLANNED_TILES:
        return None
    tiles: list[tuple[list[tuple[int, int]], list[bytes]]] = []
    tile_size: tuple[int, int] | None = None
    for tile_id in tile_ids:
        if item_types.get(tile_id) != b"hvc1" or not extents.get(tile_id):
            return None
        boxes: list[bytes] = []
        size: tuple[int, int] | None = None
        for prop_type, start, end in _item_properties(data, *iprp, tile_id):
            if prop_type not in _TILE_PROPERTIES:
                return None
            if prop_type == b"ispe":
                size = struct.unpack_from(">II", data, start + 4)
            if prop_type in (b"hvcC", b"ispe", b"colr"):
                boxes.append(_box(prop_type, data[start:end]))
        boxes.sort(key=lambda box: box[4:8] != b"hvcC")  # the decoder configuration first, as the writer expects
        if size is None or (tile_size is not None and size != tile_size) or boxes[0][4:8] != b"hvcC":
            return None
        tile_size = size
        tiles.append((extents[tile_id], boxes))
    if tile_size is None:
        return None
    tile_width, tile_height = tile_size
    # The canvas is cropped to the output size; a grid claiming more or fewer tiles than that is not one
    # we decode piecewise (and a tile far larger than the photo would dodge the pixel limit).
    if not ((columns - 1) * tile_width < output_width <= columns * tile_width):
        return None
    if not ((rows - 1) * tile_height < output_height <= rows * tile_height):
        return None
    if (container.width, container.height) != (output_width, output_height):
        return None
    return GridPlan(
        data,
        tiles,
        rows=rows,
        columns=columns,
        output_size=(output_width, output_height),
        tile_size=tile_size,
        quarter_turns=quarter_turns,
        icc=container.icc,
    )


def _is_alpha(data: bytes, iprp: tuple[int, int], item_id: int) -> bool:
    for prop_type, start, end in _item_properties(data, *iprp, item_id):
        if prop_type == b"auxC" and data[start + 4 : end].rstrip(b"\0") in _ALPHA_AUX_TYPES:
            return True
    return False


def _box(box_type: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), box_type) + payload


def _full_box(box_type: bytes, version: int, payload: bytes) -> bytes:
    return _box(box_type, bytes([version, 0, 0, 0]) + payload)


def _single_image_heif(payload: bytes, properties: list[bytes]) -> bytes:
    """A minimal HEIF file whose one (primary) item is an HEVC image: `payload` with `properties` (hvcC first)."""
    ftyp = _box(b"ftyp", b"heic" + bytes(4) + b"mif1heic")
    hdlr = _full_box(b"hdlr", 0, bytes(4) + b"pict" + bytes(12) + b"\0")
    pitm = _full_box(b"pitm", 0, struct.pack(">H", 1))
    iinf = _full_box(b"iinf", 0, struct.pack(">H", 1) + _full_box(b"infe", 2, struct.pack(">HH", 1, 0) + b"hvc1\0"))
    # ipma: item 1 -> properties 1..n; the decoder configuration (hvcC) is essential.
    associations = bytes([0x81, *range(2, len(properties) + 1)])
    iprp = _box(
        b"iprp",
        _box(b"ipco", b"".join(properties))
        + _full_box(b"ipma", 0, struct.pack(">IHB", 1, 1, len(properties)) + associations),
    )

    def meta(data_offset: int) -> bytes:
        # iloc v0: 4-byte offsets and lengths, no base offset; one item, one extent.
        iloc = _full_box(
            b"iloc", 0, bytes([0x44, 0x00]) + struct.pack(">HHHHII", 1, 1, 0, 1, data_offset, len(payload))
        )
        return _full_box(b"meta", 0, hdlr + pitm + iinf + iloc + iprp)

    data_offset = len(ftyp) + len(meta(0)) + 8  # the mdat payload follows ftyp, meta and mdat's header
    return ftyp + meta(data_offset) + _box(b"mdat", payload)


def _exif_item_orientation(payload: bytes) -> int:
    """Orientation (IFD0 tag 0x0112) from a HEIF Exif item: a 4-byte TIFF-header offset, then TIFF."""
    try:
        (offset,) = struct.unpack_from(">I", payload, 0)
        tiff = payload[4 + offset :]
        order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
        if order is None:
            return 1
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for index in range(min(count, 512)):
            tag, kind = struct.unpack_from(order + "HH", tiff, ifd + 2 + 12 * index)
            if tag == _ORIENTATION_TAG and kind == 3:  # SHORT
                (value,) = struct.unpack_from(order + "H", tiff, ifd + 2 + 12 * index + 8)
                return int(value) if 1 <= value <= 8 else 1
    except struct.error:
        return 1
    return 1


def _read_pitm(data: bytes, start: int, end: int) -> int:
    version = data[start]
    if version == 0:
        return int(struct.unpack_from(">H", data, start + 4)[0])
    return int(struct.unpack_from(">I", data, start + 4)[0])


def _read_id(data: bytes, position: int, *, wide: bool) -> tuple[int, int]:
    """A 16-bit or (newer box versions) 32-bit field at `position`, and the position after it."""
    if wide:
        return int(struct.unpack_from(">I", data, position)[0]), position + 4
    return int(struct.unpack_from(">H", data, position)[0]), position + 2


def _read_uint(data: bytes, position: int, size: int) -> int:
    if size == 0:
        return 0
    if size not in (4, 8):
        raise _Truncated("bad field size")
    return int(struct.unpack_from(">I" if size == 4 else ">Q", data, position)[0])


def _check_iloc(data: bytes, start: int, end: int, *, idat: tuple[int, int]) -> dict[int, list[tuple[int, int]]]:
    """Check every item extent lies inside the file (or idat); returns item ID -> [(file offset, length)]."""
    extents: dict[int, list[tuple[int, int]]] = {}
    idat_start, idat_size = idat[0], idat[1] - idat[0]
    version = data[start]
    if version > 2:
        raise _Truncated("unknown iloc version")
    position = start + 4
    offset_size, length_size = data[position] >> 4, data[position] & 15
    base_offset_size, index_size = data[position + 1] >> 4, data[position + 1] & 15
    position += 2
    item_count, position = _read_id(data, position, wide=version >= 2)
    for _ in range(item_count):
        item_id, position = _read_id(data, position, wide=version >= 2)
        method = 0
        if version in (1, 2):
            method = struct.unpack_from(">H", data, position)[0] & 15
            position += 2
        (data_reference_index,) = struct.unpack_from(">H", data, position)
        position += 2
        base_offset = _read_uint(data, position, base_offset_size)
        position += base_offset_size
        (extent_count,) = struct.unpack_from(">H", data, position)
        position += 2
        for _ in range(extent_count):
            if version in (1, 2) and index_size:
                position += index_size
            extent_offset = _read_uint(data, position, offset_size)
            position += offset_size
            extent_length = _read_uint(data, position, length_size)
            position += length_size
            if position > end:
                raise _Truncated("iloc runs past its box")
            if data_reference_index != 0:
                continue  # data in another file: nothing in this file to check
            first = base_offset + extent_offset
            if method == 0:
                if first + extent_length > len(data):
                    raise _Truncated("item data past end of file")
                extents.setdefault(item_id, []).append((first, extent_length or len(data) - first))
            elif method == 1:
                if first + extent_length > idat_size:
                    raise _Truncated("item data past end of idat")
                extents.setdefault(item_id, []).append((idat_start + first, extent_length or idat_size - first))
    if position > end:
        raise _Truncated("iloc runs past its box")
    return extents


def _item_properties(data: bytes, start: int, end: int, item_id: int) -> list[tuple[bytes, int, int]]:
    """The properties (type, payload start, end) associated with `item_id` via ipma, in order."""
    children = _iter_boxes(data, start, end)
    ipco = next((box for box in children if box[0] == b"ipco"), None)
    if ipco is None:
        return []
    properties = _iter_boxes(data, ipco[1], ipco[2])
    found: list[tuple[bytes, int, int]] = []
    for box_type, box_start, box_end in children:
        if box_type != b"ipma":
            continue
        version, flags = data[box_start], int.from_bytes(data[box_start + 1 : box_start + 4], "big")
        position = box_start + 4
        (entry_count,) = struct.unpack_from(">I", data, position)
        position += 4
        for _ in range(entry_count):
            entry_id, position = _read_id(data, position, wide=version >= 1)
            count = data[position]
            position += 1
            for _ in range(count):
                if flags & 1:
                    index = struct.unpack_from(">H", data, position)[0] & 0x7FFF
                    position += 2
                else:
                    index = data[position] & 0x7F
                    position += 1
                if entry_id == item_id and 1 <= index <= len(properties):
                    found.append(properties[index - 1])
            if position > box_end:
                raise _Truncated("ipma runs past its box")
    return found

"""The photo gate against the shared corpus: every MANIFEST.json entry, plus face-gate cases built from it.

Corpus path: $PORTRAIT_CORPUS, else <repo>/../shared/corpus. Without it the module is skipped.
"""

from __future__ import annotations

import io
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFilter

from portrait_studio.config import Settings
from portrait_studio.errors import (
    CorruptImage,
    DuplicatePhoto,
    FaceCutOff,
    FaceTooSmall,
    MultipleFaces,
    NoFace,
    PhotoRejected,
    TooBlurry,
    TooManyPixels,
    UnsupportedFormat,
)
from portrait_studio.services import imaging
from portrait_studio.services.faces import assess_photo, find_duplicate, hamming_distance
from portrait_studio.services.heif_container import Container, check_container
from portrait_studio.services.imaging import NormalizedPhoto, normalize_photo
from portrait_studio.services.imaging_colour import display_p3_profile, icc_transform
from portrait_studio.services.photos import CheckedPhoto, check_photo

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("PORTRAIT_CORPUS") or REPO.parent / "shared" / "corpus")
if not (CORPUS / "MANIFEST.json").is_file():
    pytest.skip(
        f"photo corpus not found at {CORPUS} (set PORTRAIT_CORPUS to the directory holding MANIFEST.json)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.corpus

MANIFEST: list[dict[str, Any]] = json.loads((CORPUS / "MANIFEST.json").read_text())
BY_PATH = {entry["path"]: entry for entry in MANIFEST}
DEFAULT = Settings()
# Small files run the whole pipeline too, so decoding and face counts are checked on every file.
PERMISSIVE = Settings(min_short_side_px=1)
DOMAIN_REFUSALS = {"unsupported_format", "corrupt", "too_many_pixels"}
FORBIDDEN_BYTES = (b"Exif\x00\x00", b"http://ns.adobe.com/xap", b"ICC_PROFILE", b"GPS")
JFIF_KEYS = {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi"}


def ids(entry: dict[str, Any]) -> str:
    return str(entry["path"])


@cache
def raw(path: str) -> bytes:
    return (CORPUS / path).read_bytes()


@cache
def normalized(path: str, permissive: bool = True) -> NormalizedPhoto | PhotoRejected:
    try:
        return normalize_photo(raw(path), PERMISSIVE if permissive else DEFAULT)
    except PhotoRejected as rejection:
        return rejection


@cache
def checked(path: str, permissive: bool = False) -> CheckedPhoto | PhotoRejected:
    """check_photo without other uploads, sharing the normalization with `normalized` (same steps)."""
    entry = BY_PATH.get(path, {})
    short_side = min(entry.get("width") or 0, entry.get("height") or 0)
    if not permissive and short_side >= DEFAULT.min_short_side_px:
        return checked(path, permissive=True)  # the size floor is the only difference between the two
    if not permissive:
        try:
            return check_photo(raw(path), DEFAULT)
        except PhotoRejected as rejection:
            return rejection
    result = normalized(path)
    if isinstance(result, PhotoRejected):
        return result
    try:
        return CheckedPhoto(normalized=result, quality=assess_photo(result.jpeg, PERMISSIVE))
    except PhotoRejected as rejection:
        return rejection


def code(outcome: object) -> str:
    return outcome.code if isinstance(outcome, PhotoRejected) else "accepted"


def jpeg(im: Image.Image) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def photo(path: str) -> Image.Image:
    result = normalized(path)
    assert isinstance(result, NormalizedPhoto), result
    return Image.open(io.BytesIO(result.jpeg)).convert("RGB")


# --- every manifest entry --------------------------------------------------------------------------
@pytest.mark.parametrize("entry", MANIFEST, ids=ids)
def test_decodes_as_expected_and_output_is_clean(entry: dict[str, Any]) -> None:
    expected = entry["expected"]["decodes"]
    result = normalized(entry["path"])  # anything but a PhotoRejected propagates and fails the test
    if isinstance(result, PhotoRejected):
        if entry.get("format") == "GIF":
            assert isinstance(result, UnsupportedFormat)  # decodable, refused by policy
        else:
            assert expected is not True, f"refused a decodable file: {result.code}"
        return
    assert expected is not False, "decoded a file that must be refused"
    assert entry.get("format") != "GIF"
    assert max(result.width, result.height) <= DEFAULT.max_side_px
    for needle in FORBIDDEN_BYTES:
        assert needle not in result.jpeg, needle
    out = Image.open(io.BytesIO(result.jpeg))
    assert out.format == "JPEG"
    assert out.mode == "RGB"
    assert (out.width, out.height) == (result.width, result.height)
    assert len(out.getexif()) == 0
    assert set(out.info) <= JFIF_KEYS, out.info.keys()
    source_longest = max(entry.get("width") or 0, entry.get("height") or 0)
    if source_longest and source_longest <= DEFAULT.max_side_px:
        assert max(result.width, result.height) == source_longest  # never upscaled, never shrunk


@pytest.mark.parametrize("entry", MANIFEST, ids=ids)
def test_verdict_matches_expected_faces(entry: dict[str, Any]) -> None:
    """With production settings: 0 faces -> no_face, 1 -> accepted, >= 2 -> multiple_faces, unless the
    photo was refused earlier (too small, not an allowed format)."""
    faces = entry["expected"]["faces"]
    verdict = code(checked(entry["path"]))
    if faces is None:
        assert verdict in DOMAIN_REFUSALS, verdict
    elif entry.get("format") == "GIF":
        assert verdict == "unsupported_format"
    elif faces == 0:
        assert verdict in {"no_face", "too_small"} | ({"corrupt"} if entry["expected"]["decodes"] is None else set())
    elif faces == 1:
        assert verdict in {"accepted", "too_small"}, verdict
    else:
        assert verdict == "multiple_faces", verdict


@pytest.mark.parametrize(
    "entry", [e for e in MANIFEST if e["expected"]["decodes"] and e.get("format") != "GIF"], ids=ids
)
def test_face_count_on_every_decodable_file(entry: dict[str, Any]) -> None:
    """Same rule without the size floor, so the small files' faces (Grace Hopper, 128 px) count too."""
    faces = entry["expected"]["faces"]
    verdict = code(checked(entry["path"], permissive=True))
    assert verdict == {0: "no_face", 1: "accepted"}.get(faces, "multiple_faces"), verdict


def test_production_verdicts_for_the_face_photos() -> None:
    verdicts = {path: code(checked(path)) for path in BY_PATH if path.startswith("faces/")}
    assert verdicts == {
        "faces/astronaut.png": "accepted",
        "faces/obama_portrait.jpg": "accepted",
        "faces/biden_portrait.jpg": "accepted",
        "faces/biden_second.jpg": "accepted",
        "faces/obama_oval_office.jpg": "accepted",
        "faces/obama_podium.jpg": "accepted",
        "faces/hopper.jpg": "too_small",
        "faces/obama_and_biden_group.jpg": "multiple_faces",
        "faces/two_people_composite.jpg": "multiple_faces",
        "faces/three_faces_composite.jpg": "multiple_faces",
        "faces/obama_orient6_gps.jpg": "accepted",
        "faces/astronaut_selfie_orient6_gps.heic": "accepted",
        "faces/noface_chelsea_cat.png": "too_small",
        "faces/noface_rocket.jpg": "too_small",
        "faces/noface_landscape_irvine.avif": "too_small",
        "faces/noface_market_mexico.avif": "no_face",
    }


# --- orientation --------------------------------------------------------------------------------------
@pytest.mark.parametrize("orientation", range(1, 9))
def test_landscape_orientations_display_upright(orientation: int) -> None:
    """All eight files show the same landscape photo (with a different digit) once oriented."""
    path = f"jpeg/landscape_orient{orientation}.jpg"
    im = photo(path)
    assert im.size == (1024, 683)
    reference = np.asarray(photo("jpeg/landscape_orient1.jpg")).astype(np.int16)
    difference = float(np.abs(np.asarray(im).astype(np.int16) - reference).mean())
    # The digit differs; a wrong rotation or mirror would differ everywhere (mean diff > 30).
    assert difference < 12, difference
    if orientation != 1:
        for method in Image.Transpose:
            flipped = np.asarray(im.transpose(method).resize((1024, 683))).astype(np.int16)
            assert float(np.abs(flipped - reference).mean()) > difference


def test_obama_orient6_face_is_found_only_because_orientation_is_applied() -> None:
    result = checked("faces/obama_orient6_gps.jpg")
    assert isinstance(result, CheckedPhoto), code(result)
    assert (result.normalized.width, result.normalized.height) == (820, 1024)
    original = checked("faces/obama_portrait.jpg")
    assert isinstance(original, CheckedPhoto)
    assert hamming_distance(result.quality.phash, original.quality.phash) <= 2
    sideways = photo("faces/obama_orient6_gps.jpg").transpose(Image.Transpose.ROTATE_90)
    with pytest.raises(NoFace):
        assess_photo(jpeg(sideways), DEFAULT)


def test_iphone_heic_is_rotated_once_and_stays_portrait() -> None:
    result = normalized("heic/iphone13promax_irot90_exiforient6.heic")
    assert isinstance(result, NormalizedPhoto)
    assert (result.width, result.height) == (768, 1024)


GRID_HEICS = [
    "heic/iphone13promax_irot90_exiforient6.heic",
    "heic/iphone13pro_pug_depth_gps.heic",
    "heic/vision_pro_spatial_2images.heic",
    "heic/canon_10bit_3thumbs.hif",
    "heic/xiaomi_gps.heic",
]


@pytest.mark.parametrize("path", GRID_HEICS)
def test_grid_heic_tile_by_tile_matches_libheifs_whole_decode(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Phones' grid HEICs take the tile-by-tile path (a fraction of the memory) and lose nothing by it."""
    assert check_container(raw(path)).grid is not None
    tiled = normalized(path)

    def without_grid(blob: bytes) -> Container:
        container = check_container(blob)
        container.grid = None
        return container

    monkeypatch.setattr(imaging, "check_container", without_grid)
    whole = normalize_photo(raw(path), PERMISSIVE)
    assert isinstance(tiled, NormalizedPhoto)
    assert (tiled.width, tiled.height) == (whole.width, whole.height)
    difference = np.abs(
        np.asarray(Image.open(io.BytesIO(tiled.jpeg)), dtype=np.float32)
        - np.asarray(Image.open(io.BytesIO(whole.jpeg)), dtype=np.float32)
    )
    # Identical but for rounding where the rotation comes before (libheif) or after (us) the resize.
    assert difference.mean() < 1.5
    assert np.percentile(difference, 99) <= 8


@pytest.mark.parametrize(
    ("path", "size"),
    [
        ("avif/ronda_irot90.avif", (576, 1024)),
        ("avif/rot1mir0.avif", (640, 427)),
        ("heic/canon_10bit_3thumbs.hif", (1024, 684)),
        ("faces/astronaut_selfie_orient6_gps.heic", (1024, 1024)),
        ("webp/hopper_orient6.webp", (128, 128)),
    ],
)
def test_container_orientation_sizes(path: str, size: tuple[int, int]) -> None:
    result = normalized(path)
    assert isinstance(result, NormalizedPhoto)
    assert (result.width, result.height) == size


def test_heic_selfie_is_upright_like_the_png() -> None:
    heic, png = checked("faces/astronaut_selfie_orient6_gps.heic"), checked("faces/astronaut.png")
    assert isinstance(heic, CheckedPhoto)
    assert isinstance(png, CheckedPhoto)
    assert hamming_distance(heic.quality.phash, png.quality.phash) <= 2


@pytest.mark.parametrize("path", ["jpeg/hopper_orient3.jpg", "jpeg/hopper_orient6.jpg", "jpeg/hopper_orient8.jpg"])
def test_hopper_orientations_match_the_upright_hopper(path: str) -> None:
    upright = np.asarray(photo("faces/hopper.jpg")).astype(np.int16)
    assert float(np.abs(np.asarray(photo(path)).astype(np.int16) - upright).mean()) < 12


# --- damage and limits --------------------------------------------------------------------------------
def test_silently_corrupt_truncated_heic_is_refused() -> None:
    import pillow_heif

    data = raw("bad/truncated_60pct.heic")
    heif = pillow_heif.open_heif(data)
    assert len(heif[heif.primary_index].data) > 0  # libheif says nothing is wrong...
    with pytest.raises(CorruptImage):  # ...the structure says otherwise
        normalize_photo(data, PERMISSIVE)


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("bad/png_bomb_60000x60000.png", TooManyPixels),
        ("bad/gif_bomb.gif", UnsupportedFormat),
        ("bad/gif_hopper.gif", UnsupportedFormat),
        ("bad/empty.jpg", UnsupportedFormat),
        ("bad/text_renamed.heic", UnsupportedFormat),
        ("bad/unsupported.svg", UnsupportedFormat),
        ("bad/truncated_half.jpg", CorruptImage),
        ("bad/skimage_truncated.jpg", CorruptImage),
        ("bad/truncated_header_only.heic", CorruptImage),
        ("bad/corrupted.heic", CorruptImage),
    ],
)
def test_bad_files_get_the_right_refusal(path: str, error: type[PhotoRejected]) -> None:
    with pytest.raises(error):
        normalize_photo(raw(path), PERMISSIVE)


def test_polyglot_payload_is_dropped() -> None:
    result = normalized("bad/polyglot_jpeg_zip.jpg")
    assert isinstance(result, NormalizedPhoto)
    assert b"PK\x03\x04" not in result.jpeg


def test_heic_named_jpg_is_sniffed_as_heif() -> None:
    result = normalized("bad/heic_named_as.jpg")
    assert isinstance(result, NormalizedPhoto)
    assert result.source_format == "heif"


# --- colour -------------------------------------------------------------------------------------------
def test_iphone_display_p3_is_converted_and_our_p3_matches_apples() -> None:
    import pillow_heif

    heif = pillow_heif.open_heif(raw("heic/iphone13promax_irot90_exiforient6.heic"))
    apple = icc_transform(bytes(heif.info["icc_profile"]), "RGB")
    ours = icc_transform(display_p3_profile(), "RGB")
    assert apple is not None  # Display P3 is not treated as sRGB
    assert ours is not None
    probe = Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    difference = np.abs(np.asarray(apple.apply(probe)).astype(int) - np.asarray(ours.apply(probe)).astype(int))
    assert difference.max() <= 1


def test_srgb_tagged_photos_skip_the_identity_transform() -> None:
    with Image.open(CORPUS / "faces/obama_portrait.jpg") as im:
        assert icc_transform(im.info["icc_profile"], "RGB") is None


# --- the face gate on real faces ----------------------------------------------------------------------
def test_accepted_quality_fields() -> None:
    result = checked("faces/obama_portrait.jpg")
    assert isinstance(result, CheckedPhoto)
    quality = result.quality
    assert (quality.width, quality.height) == (820, 1024)
    assert quality.face_fraction >= DEFAULT.face_min_fraction
    assert quality.sharpness >= DEFAULT.blur_min_variance
    assert -1.0 <= quality.yaw_hint <= 1.0
    assert len(quality.phash) == 16
    int(quality.phash, 16)
    box = quality.face
    assert box.left >= 0 and box.left + box.width <= quality.width
    assert box.top >= 0 and box.top + box.height <= quality.height


@pytest.mark.parametrize("radius", [0.0, 1.0])
def test_slight_blur_is_accepted(radius: float) -> None:
    im = photo("faces/obama_portrait.jpg").filter(ImageFilter.GaussianBlur(radius))
    assert assess_photo(jpeg(im), DEFAULT).sharpness >= DEFAULT.blur_min_variance


@pytest.mark.parametrize(("path", "radius"), [("faces/obama_portrait.jpg", 3.5), ("faces/biden_portrait.jpg", 2.5)])
def test_blurry_face_is_refused(path: str, radius: float) -> None:
    im = photo(path).filter(ImageFilter.GaussianBlur(radius))
    with pytest.raises(TooBlurry):
        assess_photo(jpeg(im), DEFAULT)


@pytest.mark.parametrize("side", ["left", "right"])
def test_face_cut_by_the_frame_is_refused(side: str) -> None:
    im = photo("faces/obama_portrait.jpg")
    quality = assess_photo(jpeg(im), DEFAULT)
    face = quality.face
    cut = int(0.2 * face.width)  # a fifth of the face outside the photo
    box = (
        (face.left + cut, 0, im.width, im.height) if side == "left" else (0, 0, face.left + face.width - cut, im.height)
    )
    with pytest.raises(FaceCutOff):
        assess_photo(jpeg(im.crop(box)), DEFAULT)


def test_face_with_a_small_margin_is_not_cut_off() -> None:
    im = photo("faces/obama_portrait.jpg")
    face = assess_photo(jpeg(im), DEFAULT).face
    margin = int(0.3 * face.width)
    box = (face.left - margin, face.top - margin, face.left + face.width + margin, im.height)
    assess_photo(jpeg(im.crop(box)), DEFAULT)


def test_small_face_is_reported_as_too_small_not_missing() -> None:
    canvas = Image.new("RGB", (1024, 768), (128, 128, 128))
    canvas.paste(photo("faces/obama_portrait.jpg").resize((250, 312)), (400, 200))
    with pytest.raises(FaceTooSmall):
        assess_photo(jpeg(canvas), DEFAULT)


def test_two_portraits_side_by_side_are_multiple_faces() -> None:
    left, right = photo("faces/obama_portrait.jpg"), photo("faces/biden_portrait.jpg").resize((451, 1024))
    canvas = Image.new("RGB", (left.width + right.width, 1024), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    with pytest.raises(MultipleFaces):
        assess_photo(jpeg(canvas), DEFAULT)


def test_yaw_hint_sign_follows_the_head_turn() -> None:
    biden = photo("faces/biden_portrait.jpg")
    turned = assess_photo(jpeg(biden), DEFAULT).yaw_hint
    mirrored = assess_photo(jpeg(biden.transpose(Image.Transpose.FLIP_LEFT_RIGHT)), DEFAULT).yaw_hint
    assert turned < -0.3 < 0.3 < mirrored  # Biden's official portrait looks towards the image's left
    frontal = assess_photo(jpeg(photo("faces/obama_portrait.jpg")), DEFAULT).yaw_hint
    assert abs(frontal) < 0.4


# --- duplicates ---------------------------------------------------------------------------------------
def test_same_photo_in_another_format_or_orientation_is_a_duplicate() -> None:
    first = checked("faces/obama_portrait.jpg")
    assert isinstance(first, CheckedPhoto)
    with pytest.raises(DuplicatePhoto):
        check_photo(raw("faces/obama_orient6_gps.jpg"), DEFAULT, {"first": first.quality.phash})
    png = checked("faces/astronaut.png")
    assert isinstance(png, CheckedPhoto)
    with pytest.raises(DuplicatePhoto):
        check_photo(raw("faces/astronaut_selfie_orient6_gps.heic"), DEFAULT, {"png": png.quality.phash})


def test_different_people_are_not_duplicates() -> None:
    hashes = {}
    for path in ("faces/obama_portrait.jpg", "faces/biden_portrait.jpg", "faces/astronaut.png"):
        result = checked(path)
        assert isinstance(result, CheckedPhoto)
        assert find_duplicate(result.quality.phash, hashes, DEFAULT.duplicate_max_distance) is None
        hashes[path] = result.quality.phash
    distances = [hamming_distance(a, b) for a in hashes.values() for b in hashes.values() if a != b]
    assert min(distances) > 3 * DEFAULT.duplicate_max_distance


# --- the CLI runs the same gate -------------------------------------------------------------------------
def test_cli_json_verdicts_duplicates_and_output(tmp_path: Path) -> None:
    from portrait_studio.cli_normalize import run

    names = ["faces/obama_portrait.jpg", "faces/obama_orient6_gps.jpg", "bad/gif_hopper.gif", "faces/hopper.jpg"]
    out_dir = tmp_path / "out"
    stdout = io.StringIO()
    assert run([*(str(CORPUS / name) for name in names), "--json", "--out", str(out_dir)], stdout=stdout) == 0
    rows = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert [row["code"] for row in rows] == ["accepted", "duplicate", "unsupported_format", "too_small"]
    assert list(rows[0]) == ["file", "accepted", "code", "width", "height", "faces", "ms", "message"]
    assert (
        rows[0]["accepted"] is True and rows[0]["faces"] == 1 and (rows[0]["width"], rows[0]["height"]) == (820, 1024)
    )
    assert rows[3]["accepted"] is False and (rows[3]["width"], rows[3]["height"]) == (128, 128)
    written = sorted(out_dir.iterdir())
    assert [path.name for path in written] == ["000_obama_portrait.jpg"]
    assert b"Exif\x00\x00" not in written[0].read_bytes()


def test_cli_table_and_usage_errors(tmp_path: Path) -> None:
    from portrait_studio.cli_normalize import run

    stdout = io.StringIO()
    assert run([str(CORPUS / "faces/noface_market_mexico.avif")], stdout=stdout) == 0
    header, row = stdout.getvalue().splitlines()
    assert header.split()[:7] == ["file", "accepted", "code", "width", "height", "faces", "ms"]
    assert " no_face " in row and " no " in row
    assert run([]) == 2
    assert run([str(tmp_path / "missing.jpg")]) == 2
    (tmp_path / "file").write_bytes(b"")
    assert run([str(CORPUS / "faces/hopper.jpg"), "--out", str(tmp_path / "file")]) == 2

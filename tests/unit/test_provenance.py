"""Every stored headshot says it is AI-made: IPTC XMP plus a signed C2PA manifest, same pixels, nothing personal."""

from __future__ import annotations

import io
import json
import re
import struct
import tomllib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from infra.local.c2pa_chain import LocalChain, make_local_chain
from portrait_studio.config import PHOTOMAKER_VERSION, Settings
from portrait_studio.errors import ProvenanceFailed
from portrait_studio.services import provenance
from portrait_studio.services.generation import GenerationService
from portrait_studio.services.provenance import (
    MODEL,
    PRODUCT_VERSION,
    TRAINED_ALGORITHMIC_MEDIA,
    ProvenanceStamp,
    SignerMaterial,
)
from portrait_studio.wiring import Container
from tests.unit.conftest import World
from tests.unit.helpers import finish_all, generating_job, run_queues

c2pa = pytest.importorskip("c2pa")

ROOT = Path(__file__).resolve().parents[2]
UNTRUSTED = "signingCredential.untrusted"  # what a test root gets: not on the C2PA trust list


@pytest.fixture(scope="module")
def chain() -> LocalChain:
    return make_local_chain()


@pytest.fixture(scope="module")
def stamp(chain: LocalChain) -> ProvenanceStamp:
    material = SignerMaterial(chain.private_key_pem, chain.certificate_chain_pem)
    return ProvenanceStamp(lambda: material, model_version=PHOTOMAKER_VERSION)


def picture(size: tuple[int, int] = (256, 256)) -> Image.Image:
    return Image.merge(
        "RGB", [Image.linear_gradient("L").resize(size), Image.effect_noise(size, 40), Image.new("L", size, 90)]
    )


def personal_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Apple"  # Make
    exif[0x0110] = "iPhone 15"  # Model
    exif[0x013B] = "Jane Doe"  # Artist
    exif.get_ifd(0x8825)[2] = (52.0, 31.0, 12.0)  # GPS latitude
    return exif


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def read(data: bytes, mime: str, context: Any = None) -> Any:
    return c2pa.Reader(mime, io.BytesIO(data), context=context)


def failures(reader: Any) -> set[str]:
    results = reader.get_validation_results() or {}
    return {item["code"] for item in results.get("activeManifest", {}).get("failure", [])}


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def jpeg_scan(data: bytes) -> bytes:
    """Everything from SOS on: the compressed image data."""
    pos = 2
    while data[pos + 1] != 0xDA:
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return data[pos:]


SAMPLES = {
    "png": ("image/png", lambda: encode(picture(), "PNG", pnginfo=_png_text(), exif=personal_exif())),
    "jpeg": ("image/jpeg", lambda: encode(picture(), "JPEG", quality=90, exif=personal_exif(), comment=b"Jane")),
    "webp": ("image/webp", lambda: encode(picture(), "WEBP", quality=90, exif=personal_exif())),
    "webp-lossless-alpha": ("image/webp", lambda: encode(picture().convert("RGBA"), "WEBP", lossless=True)),
}


def _png_text() -> Any:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "Jane Doe")
    info.add_itxt("Description", "selfie at home")
    return info


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_a_stamped_image_carries_a_valid_manifest_and_the_same_pixels(stamp: ProvenanceStamp, sample: str) -> None:
    mime, make = SAMPLES[sample]
    original = make()
    stamped = stamp.stamp(original, mime)

    with Image.open(io.BytesIO(original)) as before, Image.open(io.BytesIO(stamped)) as after:
        assert (after.format, after.size, after.mode) == (before.format, before.size, before.mode)
        assert after.tobytes() == before.tobytes()
        assert not after.getexif()  # no EXIF at all: no camera, no GPS, no artist
        xmp = after.info.get("xmp")
    assert isinstance(xmp, bytes | str)
    xmp_text = xmp.decode() if isinstance(xmp, bytes) else xmp
    assert f'Iptc4xmpExt:DigitalSourceType="{TRAINED_ALGORITHMIC_MEDIA}"' in xmp_text
    for personal in (b"Jane", b"Apple", b"iPhone", b"selfie"):
        assert personal not in stamped

    reader = read(stamped, mime)
    # A test root is not on the C2PA trust list: the one failure is that, never the signature or a hash.
    assert failures(reader) == {UNTRUSTED}
    assert reader.get_validation_state() == "Valid"
    manifest = reader.get_active_manifest()
    assert manifest["claim_generator_info"][0]["name"] == "Portrait Studio"
    assert manifest["claim_generator_info"][0]["version"] == PRODUCT_VERSION
    assert "thumbnail" not in manifest  # the headshot is its own preview
    (actions,) = [a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions")]
    (action,) = actions["data"]["actions"]
    assert action["action"] == "c2pa.created"
    assert action["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert action["softwareAgent"] == {"name": MODEL, "version": PHOTOMAKER_VERSION}
    assert action["parameters"]["model"] == MODEL and action["parameters"]["version"] == PHOTOMAKER_VERSION
    assert manifest["signature_info"]["alg"].lower() == "es256"


def test_the_compressed_data_is_copied_not_re_encoded(stamp: ProvenanceStamp) -> None:
    png = SAMPLES["png"][1]()
    stamped = stamp.stamp(png, "image/png")
    assert [b for k, b in png_chunks(stamped) if k == b"IDAT"] == [b for k, b in png_chunks(png) if k == b"IDAT"]
    kinds = [k for k, _ in png_chunks(stamped)]
    assert kinds[0] == b"IHDR" and kinds.index(b"iTXt") < kinds.index(b"IDAT")  # our XMP, before the image data
    assert kinds.index(b"caBX") < kinds.index(b"IDAT")  # the C2PA manifest store
    assert not {b"tEXt", b"zTXt", b"eXIf"} & set(kinds) and kinds.count(b"iTXt") == 1
    jpeg = SAMPLES["jpeg"][1]()
    assert jpeg_scan(stamp.stamp(jpeg, "image/jpeg")) == jpeg_scan(jpeg)


def test_with_the_root_as_trust_anchor_the_credential_is_trusted(stamp: ProvenanceStamp, chain: LocalChain) -> None:
    """What a viewer shows once the signer's CA is on its trust list (docs/provenance.md)."""
    stamped = stamp.stamp(SAMPLES["png"][1](), "image/png")
    context = c2pa.Context(c2pa.Settings.from_json(json.dumps({"trust": {"trust_anchors": chain.root_pem}})))
    reader = read(stamped, "image/png", context)
    assert reader.get_validation_state() == "Trusted"
    assert failures(reader) == set()


def test_a_changed_pixel_breaks_the_manifest(stamp: ProvenanceStamp) -> None:
    stamped = bytearray(stamp.stamp(SAMPLES["png"][1](), "image/png"))
    idat = stamped.index(b"IDAT")
    stamped[idat + 20] ^= 0x01
    reader = read(bytes(stamped), "image/png")
    assert reader.get_validation_state() == "Invalid"
    assert "assertion.dataHash.mismatch" in failures(reader)


def test_a_key_that_does_not_match_the_certificate_is_refused(chain: LocalChain) -> None:
    other = make_local_chain()
    wrong = ProvenanceStamp(
        lambda: SignerMaterial(other.private_key_pem, chain.certificate_chain_pem), model_version=PHOTOMAKER_VERSION
    )
    with pytest.raises(ProvenanceFailed):
        wrong.stamp(SAMPLES["png"][1](), "image/png")


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"\x89PNG\r\n\x1a\nnot really", "image/png"),  # truncated
        (b"GIF89a....", "image/gif"),  # a type we do not stamp
        (b"\xff\xd8\xff\xe0 a jpeg", "image/png"),  # a type that does not match the bytes
    ],
)
def test_what_cannot_be_stamped_is_one_domain_error(stamp: ProvenanceStamp, data: bytes, mime: str) -> None:
    with pytest.raises(ProvenanceFailed) as raised:
        stamp.stamp(data, mime)
    assert raised.value.code == "provenance_failed"


def test_signer_material_that_is_not_pem_is_one_domain_error() -> None:
    broken = ProvenanceStamp(lambda: SignerMaterial("not a key", "not a chain"), model_version=PHOTOMAKER_VERSION)
    with pytest.raises(ProvenanceFailed):
        broken.stamp(SAMPLES["png"][1](), "image/png")
    assert "not a key" not in repr(SignerMaterial("not a key", "chain"))  # keys stay out of logs and tracebacks


def test_a_deployment_is_named_when_its_release_decides_the_version() -> None:
    (action,) = provenance.manifest_definition(PHOTOMAKER_VERSION, "acme/photomaker")["assertions"][0]["data"][
        "actions"
    ]
    assert action["softwareAgent"] == {"name": MODEL, "version": "deployment acme/photomaker"}
    assert action["parameters"] == {"model": MODEL, "provider": "replicate.com", "deployment": "acme/photomaker"}


def test_the_product_version_is_pyprojects() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == PRODUCT_VERSION


# --- wiring and collect ----------------------------------------------------------------------------
class Secrets:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.read: list[str] = []

    def get(self, name: str) -> str:
        self.read.append(name)
        return self.values[name]


def test_wiring_reads_the_signer_from_the_named_parameters_only_when_stamping(chain: LocalChain) -> None:
    settings = Settings(c2pa_signing_key_param="/t/key", c2pa_certificate_chain_param="/t/chain")
    secrets = Secrets({"/t/key": chain.private_key_pem, "/t/chain": chain.certificate_chain_pem})
    container = Container(settings=settings, secrets=secrets)
    stamp = container.generation.collector.provenance
    assert isinstance(stamp, ProvenanceStamp)
    assert secrets.read == []  # not at cold start: only collect ever signs
    stamped = stamp.stamp(SAMPLES["png"][1](), "image/png")
    assert sorted(set(secrets.read)) == ["/t/chain", "/t/key"]
    assert failures(read(stamped, "image/png")) == {UNTRUSTED}


def with_stamp(world: World, stamp: ProvenanceStamp) -> None:
    w = world
    w.generation = GenerationService(
        w.settings, w.store, w.blobs, w.queue, w.generator, w.downloader, w.clock, w.metrics, stamp
    )


def test_collect_stores_every_result_stamped(world: World, stamp: ProvenanceStamp) -> None:
    with_stamp(world, stamp)
    job_id = generating_job(world)
    world.generation.dispatch(job_id)
    finish_all(world, job_id)
    run_queues(world)
    results = {k: v for k, v in world.blobs.objects.items() if re.search(r"/results/", k)}
    assert len(results) == world.settings.images_target
    for data, content_type, _ in results.values():
        assert content_type == "image/png"
        assert failures(read(data, "image/png")) == {UNTRUSTED}


def test_a_stamping_failure_stores_nothing_and_fails_the_collect(world: World) -> None:
    broken = ProvenanceStamp(lambda: SignerMaterial("no", "no"), model_version=PHOTOMAKER_VERSION)
    with_stamp(world, broken)
    job_id = generating_job(world)
    world.generation.dispatch(job_id)
    finish_all(world, job_id)
    with pytest.raises(ProvenanceFailed):  # the message is retried by its queue: never an unmarked result
        run_queues(world)
    assert not [k for k in world.blobs.objects if "/results/" in k]

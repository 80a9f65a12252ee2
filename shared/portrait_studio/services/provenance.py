"""AI provenance on every stored headshot: IPTC XMP saying "made by a trained model", and a signed C2PA manifest.

The XMP is spliced into the container as bytes, never by re-encoding, so a result keeps the exact pixels and
compressed data Replicate made; existing metadata blocks (EXIF, XMP, IPTC, text, comments) are dropped so
nothing but ours travels with a headshot. Then c2pa-python signs a manifest over the whole file, XMP included:
one `c2pa.created` action with the IPTC digital source type and PhotoMaker as the software agent.
"""

from __future__ import annotations

import io
import json
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from portrait_studio.errors import ProvenanceFailed

PRODUCT = "Portrait Studio"
PRODUCT_VERSION = "0.1.0"  # pyproject's version (a test keeps them equal): the layer ships no package metadata
MODEL = "tencentarc/photomaker"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
XMP = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    f'<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="{IPTC_EXT_NS}"'
    f' Iptc4xmpExt:DigitalSourceType="{TRAINED_ALGORITHMIC_MEDIA}"/>'
    "</rdf:RDF></x:xmpmeta>"
    '<?xpacket end="r"?>'
).encode()

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_METADATA_CHUNKS = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}
JPEG_METADATA_MARKERS = {0xE1, 0xED, 0xFE}  # APP1 (EXIF, XMP), APP13 (Photoshop/IPTC), COM
WEBP_METADATA_CHUNKS = {b"EXIF", b"XMP "}
FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}


@dataclass(frozen=True)
class SignerMaterial:
    """What signs: an EC P-256 private key and its certificate chain (leaf first), both PEM."""

    private_key_pem: str = field(repr=False)
    certificate_chain_pem: str


class ProvenanceStamp:
    """Marks a generated image as AI-made: `stamp(image, content_type)` returns the same image with XMP and C2PA.

    `signer_material` is called at the first stamp and again on each later one; it is expected to be cheap and
    cached (the SecretStore is), so the SSM values are read only when a result is stored and a rotated key is
    picked up when the cache refreshes. The c2pa signer is rebuilt only when the material changes.
    """

    def __init__(
        self,
        signer_material: Callable[[], SignerMaterial],
        *,
        model_version: str,
        deployment: str | None = None,
    ) -> None:
        self._material = signer_material
        self._manifest = json.dumps(manifest_definition(model_version, deployment))
        self._lock = threading.Lock()  # one Signer, shared by the local stack's function threads
        self._signer: Any = None
        self._signed_with: SignerMaterial | None = None
        self._context: Any = None

    def stamp(self, image: bytes, content_type: str) -> bytes:
        mime = content_type.split(";")[0].strip().lower()
        kind = FORMATS.get(mime)
        if kind is None or sniff(image) != kind:
            raise ProvenanceFailed(f"cannot stamp {mime or 'an unknown type'}: not a {'/'.join(FORMATS)} image")
        try:
            marked = with_xmp(image, kind)
        except (ValueError, struct.error) as error:
            raise ProvenanceFailed("the image's container could not be parsed") from error
        material = self._material()
        try:
            import c2pa

            with self._lock:
                signer, context = self._signer_for(material)
                out = io.BytesIO()
                with c2pa.Builder.from_json(self._manifest, context) as builder:
                    builder.sign(signer, mime, io.BytesIO(marked), out)
        except ProvenanceFailed:
            raise
        except Exception as error:  # c2pa raises C2paError subclasses, ctypes/OS errors more rarely
            raise ProvenanceFailed(f"C2PA signing failed: {type(error).__name__}") from error
        return out.getvalue()

    def _signer_for(self, material: SignerMaterial) -> tuple[Any, Any]:
        import c2pa

        if self._signer is None or material != self._signed_with:
            if self._signer is not None:
                self._signer.close()
            info = c2pa.C2paSignerInfo(
                c2pa.C2paSigningAlg.ES256,
                material.certificate_chain_pem.encode(),
                material.private_key_pem.encode(),
                None,  # no timestamp authority: the certificate's validity period bounds the claim
            )
            self._signer = c2pa.Signer.from_info(info)
            self._signed_with = material
        if self._context is None:
            # No claim thumbnail: the headshot is its own preview, and a JPEG copy would add ~20 % to each file.
            settings = c2pa.Settings.from_json(json.dumps({"builder": {"thumbnail": {"enabled": False}}}))
            self._context = c2pa.Context(settings)
        return self._signer, self._context


def manifest_definition(model_version: str, deployment: str | None) -> dict[str, Any]:
    # With a deployment, its release decides the version; the deployment is what we can name for certain.
    agent_version = f"deployment {deployment}" if deployment else model_version
    parameters: dict[str, str] = {"model": MODEL, "provider": "replicate.com"}
    parameters.update({"deployment": deployment} if deployment else {"version": model_version})
    return {
        "claim_generator_info": [{"name": PRODUCT, "version": PRODUCT_VERSION}],
        "title": "AI-generated headshot",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            "softwareAgent": {"name": MODEL, "version": agent_version},
                            "parameters": parameters,
                        }
                    ]
                },
            }
        ],
    }


def sniff(data: bytes) -> str | None:
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def with_xmp(data: bytes, kind: str) -> bytes:
    """The image with its metadata blocks replaced by our XMP; image data copied byte for byte."""
    if kind == "png":
        return _png_with_xmp(data)
    if kind == "jpeg":
        return _jpeg_with_xmp(data)
    return _webp_with_xmp(data)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_with_xmp(data: bytes) -> bytes:
    # XMP goes in an uncompressed iTXt chunk "XML:com.adobe.xmp", right after IHDR (it must precede IDAT).
    xmp = _png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + XMP)
    parts = [PNG_MAGIC]
    pos = len(PNG_MAGIC)
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise ValueError("truncated PNG chunk")
        if kind not in PNG_METADATA_CHUNKS:
            parts.append(data[pos:end])
        if kind == b"IHDR":
            parts.append(xmp)
        pos = end
        if kind == b"IEND":
            break
    if len(parts) < 3:
        raise ValueError("PNG without IHDR")
    return b"".join(parts)


def _jpeg_with_xmp(data: bytes) -> bytes:
    # Segments up to SOS are copied unless they carry metadata; from SOS on (the scan data) everything is copied.
    xmp_body = b"http://ns.adobe.com/xap/1.0/\x00" + XMP
    xmp = b"\xff\xe1" + struct.pack(">H", len(xmp_body) + 2) + xmp_body
    parts = [b"\xff\xd8"]
    pos = 2
    inserted = False
    while True:
        if data[pos] != 0xFF:
            raise ValueError("JPEG marker expected")
        while data[pos + 1] == 0xFF:  # fill bytes
            pos += 1
        marker = data[pos + 1]
        if marker == 0xDA:  # SOS
            if not inserted:
                parts.append(xmp)
            parts.append(data[pos:])
            return b"".join(parts)
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if end > len(data):
            raise ValueError("truncated JPEG segment")
        if not inserted and marker != 0xE0:  # after JFIF's APP0, which must come first
            parts.append(xmp)
            inserted = True
        if marker not in JPEG_METADATA_MARKERS:
            parts.append(data[pos:end])
        pos = end


def _webp_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")


def _webp_with_xmp(data: bytes) -> bytes:
    # XMP needs the extended format: a VP8X header chunk with the XMP flag, the XMP chunk last.
    chunks: list[tuple[bytes, bytes]] = []
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if pos + 8 + size > len(data):
            raise ValueError("truncated WebP chunk")
        chunks.append((kind, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size % 2)
    if not chunks:
        raise ValueError("WebP without chunks")
    chunks = [(kind, body) for kind, body in chunks if kind not in WEBP_METADATA_CHUNKS]
    if chunks[0][0] == b"VP8X":
        header = bytearray(chunks[0][1])
        header[0] = (header[0] & ~0x08) | 0x04  # EXIF gone, XMP present
        chunks[0] = (b"VP8X", bytes(header))
    else:
        width, height, alpha = _webp_simple_canvas(*chunks[0])
        flags = 0x04 | (0x10 if alpha else 0)
        canvas = struct.pack("<I", flags) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        chunks.insert(0, (b"VP8X", canvas))
    body = b"WEBP" + b"".join(_webp_chunk(kind, payload) for kind, payload in chunks) + _webp_chunk(b"XMP ", XMP)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _webp_simple_canvas(kind: bytes, body: bytes) -> tuple[int, int, bool]:
    if kind == b"VP8L":  # signature 0x2f, then 14-bit width-1, 14-bit height-1, 1-bit alpha hint
        (bits,) = struct.unpack("<I", body[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)
    if kind == b"VP8 ":  # frame tag (3 bytes), start code (3), then 14-bit width and height
        width, height = struct.unpack("<HH", body[6:10])
        return width & 0x3FFF, height & 0x3FFF, False
    raise ValueError("unknown WebP bitstream")

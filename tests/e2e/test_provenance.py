"""Delivered headshots, downloaded as a client does, carry the AI provenance (docs/provenance.md)."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from infra.local.client import PortraitClient
from portrait_studio.services.provenance import MODEL, TRAINED_ALGORITHMIC_MEDIA
from tests.e2e.conftest import GOOD

pytestmark = pytest.mark.e2e
c2pa = pytest.importorskip("c2pa")


def test_every_delivered_headshot_verifies_as_ai_made(client: PortraitClient) -> None:
    job = client.create_job(GOOD, subject="person", styles=["corporate"])
    client.upload_all(job, GOOD)
    assert client.submit(job).status_code == 202
    client.pay(job)
    view = client.wait_for(job, ("ready", "partial", "failed"), timeout_s=180)
    urls = [url for style in view["styles"] for url in style["results"]]
    assert view["status"] == "ready" and urls, view
    for url in urls:
        data = httpx.get(url, timeout=30).content
        reader = c2pa.Reader("image/png", io.BytesIO(data))
        results = reader.get_validation_results() or {}
        # The local stack signs with a test root no viewer trusts: that is the only failure allowed.
        failures = {item["code"] for item in results.get("activeManifest", {}).get("failure", [])}
        assert failures == {"signingCredential.untrusted"}, url
        assert reader.get_validation_state() == "Valid"
        manifest = reader.get_active_manifest()
        assert manifest["claim_generator_info"][0]["name"] == "Portrait Studio"
        (actions,) = [a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions")]
        (action,) = actions["data"]["actions"]
        assert (action["action"], action["digitalSourceType"]) == ("c2pa.created", TRAINED_ALGORITHMIC_MEDIA)
        assert action["softwareAgent"]["name"] == MODEL
        with Image.open(io.BytesIO(data)) as image:
            assert (image.format, image.size) == ("PNG", (1024, 1024))
            assert TRAINED_ALGORITHMIC_MEDIA in str(image.info.get("xmp", ""))
            assert not image.getexif()

"""Headshots people make their own, on the page (issue 21): the selfie guide before upload, the backdrop choice,
the variety hint after intake, the LinkedIn square and More like this after delivery.

Runs against the whole local stack with the end-to-end tests' fast timings (the Replicate emulator steps every
0.1 s). What is asserted is what a person sees. Screenshots of each step: test-artifacts/browser/.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageEnhance, ImageOps

from infra.local.client import running_stack
from tests.browser.test_web import (
    DESKTOP,
    PHONE,
    SAMPLES,
    assert_no_raw_json,
    file_row,
    load_every_result,
    pay_through_page,
    saved_job,
    wait_until_ready,
)
from tests.e2e.conftest import FAST  # fast timings: a round of More like this takes seconds

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the Playwright driver is not installed: pip install playwright==1.65.2"
)
expect = sync_api.expect

pytestmark = pytest.mark.browser

VARIED = [SAMPLES / "person-a-1.jpg", SAMPLES / "person-a-2.jpg", SAMPLES / "person-a-3.heic"]  # yaw spread 1.56
LOW_VARIETY_TEXT = "Photos from a few different angles give better results."
MORE_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def stack(chromium_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """This module's own stack, with fast timings (started after the skip checks)."""
    with running_stack(tmp_path_factory.mktemp("personal-stack"), env=FAST) as state:
        yield state


def one_pose(folder: Path) -> list[Path]:
    """Three photos of one pose: samples/person-a-1.jpg framed three ways (yaw_hint 0.234, 0.195, 0.0: spread
    0.234, under services/variety.py's 0.35), different enough not to be refused as duplicates."""
    with Image.open(SAMPLES / "person-a-1.jpg") as opened:
        source = ImageOps.exif_transpose(opened).convert("RGB")
    width, height = source.size
    paths = []
    for i, (left, top, right, bottom, light) in enumerate(
        [(0, 0, 1, 1, 1.0), (0.06, 0.04, 0.97, 0.98, 1.15), (0.02, 0.08, 0.92, 1, 0.85)], start=1
    ):
        framed = source.crop((int(left * width), int(top * height), int(right * width), int(bottom * height)))
        path = folder / f"same-pose-{i}.jpg"
        ImageEnhance.Brightness(framed).enhance(light).save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def api_view(stack: dict[str, Any], page: Any) -> dict[str, Any]:
    job = saved_job(page)
    assert job
    response = httpx.get(
        f"{stack['api_url']}/jobs/{job['jobId']}", headers={"Authorization": f"Bearer {job['token']}"}, timeout=30
    )
    response.raise_for_status()
    view: dict[str, Any] = response.json()
    return view


def upload(page: Any, photos: list[Path]) -> None:
    page.get_by_label("Choose photos").set_input_files([str(p) for p in photos])
    expect(page.locator("#file-list li")).to_have_count(len(photos))
    page.get_by_role("button", name="Upload and create my headshots").click()
    for photo in photos:
        expect(file_row(page, photo.name)).to_contain_text("Accepted", timeout=60_000)


def test_the_selfie_guide_comes_before_the_upload_and_fits_a_phone(
    stack: dict[str, Any], open_page: Callable[..., Any], shoot: Callable[..., Path]
) -> None:
    page, watch = open_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page.goto(stack["web_url"])
    guide = page.get_by_role("region", name=re.compile("^Before you start"))
    expect(guide).to_be_visible()
    for tip in (
        "3–10 photos of you alone",
        "Different angles",
        "Different light and expressions",
        "Face uncovered",
        "No sunglasses, hats or heavy filters.",
        "Recent",
    ):
        expect(guide).to_contain_text(tip)
    expect(guide.locator("li")).to_have_count(5)
    # Before the photo picker, on the page and in reading order.
    assert page.evaluate(
        """() => {
            const guide = document.getElementById('selfie-guide');
            const picker = document.getElementById('file-input');
            return Boolean(guide.compareDocumentPosition(picker) & Node.DOCUMENT_POSITION_FOLLOWING);
        }"""
    )
    guide_box = guide.bounding_box()
    picker_box = page.locator("#file-input-label").bounding_box()
    assert guide_box and picker_box and guide_box["y"] + guide_box["height"] <= picker_box["y"]
    # A phone: nothing sideways, every tip inside the screen; the pictures are decoration, the words say it all.
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    for i in range(5):
        box = guide.locator("li").nth(i).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert guide.locator("svg").evaluate_all("(icons) => icons.every((i) => i.getAttribute('aria-hidden') === 'true')")
    # The keyboard still goes from the skip link straight to the photo picker (nothing in the guide takes focus).
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Choose photos")).to_be_focused()
    shoot(page, "guide-phone")

    # Once the photos are in, the guide has done its job.
    upload(page, VARIED)
    expect(page.get_by_role("link", name="Pay $12.90")).to_be_visible(timeout=60_000)
    expect(guide).to_be_hidden()
    watch.assert_clean()


def test_photos_of_one_pose_get_a_hint_that_does_not_block_paying(
    stack: dict[str, Any], open_page: Callable[..., Any], shoot: Callable[..., Path], tmp_path: Path
) -> None:
    page, watch = open_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page.goto(stack["web_url"])
    page.get_by_label("A colour:").check()
    page.get_by_label("Backdrop colour").fill("#2e7d32")
    upload(page, one_pose(tmp_path))

    pay = page.get_by_role("link", name="Pay $12.90")
    expect(pay).to_be_visible(timeout=60_000)
    hint = page.locator("#job-hints")
    expect(hint).to_be_visible()
    expect(hint).to_contain_text(LOW_VARIETY_TEXT)
    expect(hint.locator('[data-code="low_variety"]')).to_have_count(1)
    expect(pay).to_be_enabled()  # advice only: paying stays one tap away
    expect(page.locator("#backdrop-line")).to_have_text("Backdrop: Solid colour (#2e7d32).")
    assert api_view(stack, page)["hints"] == [
        {
            "code": "low_variety",
            "message": "Your photos all show your face from the same angle. " + LOW_VARIETY_TEXT,
        }
    ]
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    shoot(page, "variety-hint")
    assert_no_raw_json(page)
    watch.assert_clean()


def test_office_backdrop_linkedin_square_and_more_like_this(
    stack: dict[str, Any], open_page: Callable[..., Any], shoot: Callable[..., Path]
) -> None:
    page, watch = open_page(viewport=DESKTOP)
    page.goto(stack["web_url"])
    page.get_by_label("Office").check()
    upload(page, VARIED)
    expect(page.get_by_role("link", name="Pay $12.90")).to_be_visible(timeout=60_000)
    expect(page.locator("#job-hints")).to_be_hidden()  # the samples are from different angles
    expect(page.locator("#backdrop-line")).to_have_text("Backdrop: Office.")
    pay_through_page(page, shoot)
    wait_until_ready(page)
    expect(page.locator("#backdrop-line")).to_have_text("Backdrop: Office.")
    delivered = load_every_result(page)
    assert delivered >= 30
    rounds = page.locator("#more-rounds")
    expect(rounds).to_have_text("More like this: 2 rounds left. Each makes 4 more headshots like the one you pick.")
    expect(page.get_by_role("button", name=re.compile("^More like "))).to_have_count(delivered)
    shoot(page, "delivered")
    # On a phone: two headshots a row, each button finger-sized and inside its headshot's tile, nothing sideways.
    page.set_viewport_size(PHONE)
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    first = page.locator("#gallery li").first
    tile, button = first.bounding_box(), first.get_by_role("button", name=re.compile("^More like this")).bounding_box()
    assert tile and button and button["height"] >= 44
    assert tile["x"] <= button["x"] and button["x"] + button["width"] <= tile["x"] + tile["width"] <= PHONE["width"]
    shoot(page, "delivered-phone", full_page=False)
    page.set_viewport_size(DESKTOP)

    # The LinkedIn square of one headshot: an 800 × 800 image, saved under a clear name.
    with page.expect_download() as square:
        page.get_by_role("link", name="LinkedIn square of corporate headshot 1 (800 × 800)").click()
    assert square.value.suggested_filename == "headshot-corporate-01-linkedin.jpg"
    with Image.open(square.value.path()) as crop:
        assert crop.size == (800, 800) and crop.format == "JPEG"

    # More like this, from the keyboard: the job makes 4 more, they appear in the gallery, one round is left.
    more = page.get_by_role("button", name="More like this: creative headshot 1")
    more.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#job-status")).to_contain_text("Making 4 more like creative headshot 1", timeout=15_000)
    expect(page.get_by_role("button", name=re.compile("^More like "))).to_have_count(0)  # none while it works
    shoot(page, "more-generating")
    wait_until_ready(page)
    expect(page.locator("#job-status")).to_have_text(f"Your {delivered + 4} headshots are ready.")
    assert load_every_result(page) == delivered + 4
    creative = page.locator("#gallery .style-group", has=page.locator("#gallery-title-creative"))
    expect(creative.locator(".more-tag:visible", has_text="New: more like this")).to_have_count(4)
    expect(page.locator("#gallery").locator(".more-tag:visible", has_text="New: more like this")).to_have_count(4)
    expect(rounds).to_have_text("More like this: 1 round left. Each makes 4 more headshots like the one you pick.")
    expect(page.get_by_role("button", name=re.compile("^More like "))).to_have_count(delivered + 4)
    view = api_view(stack, page)
    assert view["more_rounds_left"] == 1 and view["images_done"] == delivered + 4
    shoot(page, "more-delivered")

    # Meanwhile the last round is asked for elsewhere (the private link on a phone): the page, which does not
    # know yet, says why it cannot in the API's words, then catches up and offers no more rounds.
    job = saved_job(page)
    assert job
    started = httpx.post(
        f"{stack['api_url']}/jobs/{job['jobId']}/more",
        headers={"Authorization": f"Bearer {job['token']}"},
        json={"result": view["styles"][0]["items"][0]["result"]},
        timeout=30,
    )
    assert started.status_code == 202, started.text
    page.get_by_role("button", name="More like this: formal headshot 2").click()
    error = page.locator("#more-error")
    # job_not_finished while the other round runs (more_limit_reached should it already be delivered).
    not_finished = "More like this is possible once your headshots are ready."
    limit_reached = "This job has used its rounds of More like this."
    expect(error).to_have_text(re.compile(f"^({re.escape(not_finished)}|{re.escape(limit_reached)})$"))
    expect(page.get_by_role("button", name=re.compile("^More like "))).to_have_count(0, timeout=15_000)
    wait_until_ready(page)
    expect(page.locator("#gallery").locator(".more-tag:visible", has_text="New: more like this")).to_have_count(
        8, timeout=MORE_TIMEOUT_MS
    )
    expect(rounds).to_have_text("You have used every round of More like this for this job.")
    expect(page.get_by_role("button", name=re.compile("^More like "))).to_have_count(0)
    expect(error).to_be_hidden()
    assert api_view(stack, page)["more_rounds_left"] == 0
    shoot(page, "no-rounds-left")
    assert_no_raw_json(page)
    watch.assert_clean()

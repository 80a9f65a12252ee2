"""The web page, as a person uses it: see the price, pick photos (HEIC too), watch uploads and verdicts, replace a
refused photo, pay on the (emulated) Stripe Checkout page, watch the headshots arrive, download them one by one and
all at once, delete everything.

Runs against the whole local stack (moto S3 on another origin, so the uploads and downloads cross origins
exactly as they do against R2). Screenshots of each step: test-artifacts/browser/.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.local.client import content_type_of
from infra.local.template import ROOT

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the Playwright driver is not installed: pip install playwright==1.65.2"
)
expect = sync_api.expect

pytestmark = pytest.mark.browser

SAMPLES = ROOT / "samples"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JOB_TIMEOUT_MS = 90_000
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def file_row(page: Any, name: str) -> Any:
    return page.locator("#file-list li", has_text=name)


def wait_for(page: Any, script: str, timeout_s: float = 30.0) -> Any:
    """Poll a JS function until it returns something truthy (the page's CSP forbids wait_for_function's eval)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = page.evaluate(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for: {script}")
        page.wait_for_timeout(200)


def pay_through_page(
    page: Any, shoot: Callable[..., Path], promotion_code: str | None = None, keyboard: bool = False
) -> None:
    """Photos accepted: "Pay $12.90" → Stripe Checkout (the local emulator's hosted page) → email, code, Pay → back."""
    pay = page.get_by_role("link", name="Pay $12.90")
    expect(pay).to_be_visible(timeout=60_000)
    expect(page.locator("#job-status")).to_contain_text("Your photos are accepted")
    expect(page.locator("#countdown")).to_contain_text("Checkout stays open until")
    shoot(page, "awaiting-payment")
    web_origin = page.evaluate("() => window.location.origin")
    if keyboard:
        expect(pay).to_be_focused()  # the page moves to it when the photos are accepted
        page.keyboard.press("Enter")
    else:
        pay.click()
    page.wait_for_url(re.compile(r"/c/pay/"))
    expect(page.get_by_role("heading", name="Pay Portrait Studio")).to_be_visible()
    page.get_by_label("Email").fill("buyer@example.com")
    if promotion_code:
        page.get_by_label("Promotion code").fill(promotion_code)
        page.get_by_role("button", name="Apply").click()
        expect(page.get_by_role("table", name="Order summary")).to_contain_text("−$3.00")
        expect(page.get_by_role("button", name="Pay $9.90")).to_be_visible()
    shoot(page, "checkout")
    page.get_by_role("button", name=re.compile(r"^Pay \$")).click()
    page.wait_for_url(f"{web_origin}/**")
    # The page tidies ?checkout=success away and finds the job again from this tab's sessionStorage.
    wait_for(page, "() => !window.location.search")


def wait_until_ready(page: Any) -> None:
    expect(page.locator("#job-status")).to_contain_text("headshots are ready", timeout=JOB_TIMEOUT_MS)


def load_every_result(page: Any) -> int:
    """Results load lazily as they scroll into view: load them all and check each one decoded."""
    page.evaluate("() => document.querySelectorAll('#gallery img').forEach((img) => { img.loading = 'eager'; })")
    count = int(
        wait_for(
            page,
            """() => {
                const images = Array.from(document.querySelectorAll('#gallery img'));
                return images.length && images.every((img) => img.complete && img.naturalWidth > 0) && images.length;
            }""",
        )
    )
    # Decoded too, so that a full-page screenshot paints the ones below the fold.
    page.evaluate("() => Promise.all(Array.from(document.querySelectorAll('#gallery img'), (img) => img.decode()))")
    return count


LIKENESS_NOTE = "Pick the one that looks most like you, not the most flattering: they are ordered by likeness."


def gallery_by_style(page: Any) -> dict[str, list[dict[str, Any]]]:
    """Each style's results as the page shows them, in order: the image's path, likeness text, badge."""
    return dict(
        page.evaluate(
            """() => Object.fromEntries(Array.from(document.querySelectorAll('#gallery .style-group'), (group) => [
                group.querySelector('h3').id.replace('gallery-title-', ''),
                Array.from(group.querySelectorAll('li'), (li) => {
                    const badge = li.querySelector('.closest-badge');
                    return {
                        path: new URL(li.querySelector('img').src).pathname,
                        likeness: li.querySelector('.likeness').textContent,
                        badge: badge.hidden ? '' : badge.textContent,
                        caption: li.querySelector('figcaption').innerText,
                    };
                }),
            ]))"""
        )
    )


def assert_ordered_by_likeness(page: Any, stack: dict[str, Any]) -> None:
    """Issue #12: each style's results, the most like you first, each with its likeness in words and the closest
    ones badged, exactly as GET /jobs/{id} ranks them."""
    job = saved_job(page)
    assert job
    view = httpx.get(
        f"{stack['api_url']}/jobs/{job['jobId']}", headers={"Authorization": f"Bearer {job['token']}"}, timeout=30
    ).json()
    shown = gallery_by_style(page)
    for style in view["styles"]:
        items = style["items"]
        assert items, style
        rows = shown[style["style"]]
        assert [row["path"] for row in rows] == [httpx.URL(item["url"]).path for item in items]
        numbers = [int(row["likeness"].removeprefix("Likeness ")) for row in rows]
        assert numbers == [item["likeness"] for item in items]
        assert numbers == sorted(numbers, reverse=True), numbers
        assert all(f"Likeness {n}" in row["caption"] for n, row in zip(numbers, rows, strict=True))
        badged = [row["badge"] == "Closest to you" for row in rows]
        assert badged == [item["closest"] for item in items]
        assert badged[:2] == [True, True] and not any(badged[2:]), badged
    note = page.locator("#likeness-note")
    expect(note).to_have_text(LIKENESS_NOTE)
    first = page.locator("#gallery .style-group").first.locator("li").first
    expect(first.get_by_text("Closest to you")).to_be_visible()
    expect(first.get_by_text(re.compile(r"^Likeness \d{1,3}$"))).to_be_visible()


def saved_job(page: Any) -> dict[str, Any] | None:
    raw = page.evaluate("() => sessionStorage.getItem('portrait-studio.job')")
    return json.loads(raw) if raw else None


def assert_no_raw_json(page: Any) -> None:
    text = page.inner_text("body")
    assert '{"error"' not in text and '"message"' not in text and "Traceback" not in text


def delete_everything(page: Any, shoot: Callable[..., Path]) -> str:
    page.get_by_role("button", name="Delete everything now").click()
    dialog = page.locator("#confirm-delete")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Keep my headshots")).to_be_focused()
    shoot(page, "confirm-delete", full_page=False)
    dialog.get_by_role("button", name="Yes, delete everything").click()
    receipt = page.locator("#receipt")
    expect(receipt).to_have_text(re.compile(r"^del_[0-9a-z]+$"), timeout=30_000)
    expect(page.get_by_role("heading", name="Everything is deleted")).to_be_focused()
    shoot(page, "deleted")
    return str(receipt.inner_text())


def test_whole_job_from_photos_to_deletion(
    stack: dict[str, Any], open_page: Callable[..., Any], shoot: Callable[..., Path]
) -> None:
    page, watch = open_page(viewport=DESKTOP)
    page.goto(stack["web_url"])
    expect(page.get_by_role("heading", name="1. Choose your photos")).to_be_visible()
    shoot(page, "empty")

    # Three photos, one of them an iPhone HEIC and one without a face.
    first = [SAMPLES / "person-a-1.jpg", SAMPLES / "person-a-3.heic", SAMPLES / "no-face.jpg"]
    page.get_by_label("Choose photos").set_input_files([str(p) for p in first])
    expect(page.locator("#file-list li")).to_have_count(3)
    heic = file_row(page, "person-a-3.heic")
    expect(heic).to_contain_text(f"{round((SAMPLES / 'person-a-3.heic').stat().st_size / 1024)} KB")
    expect(heic).to_contain_text("no preview")
    expect(heic.locator("img")).to_have_count(0)  # the browser cannot show HEIC: name and size instead
    expect(file_row(page, "person-a-1.jpg").get_by_role("img", name="Preview of person-a-1.jpg")).to_be_visible()
    page.get_by_label("Business casual").uncheck()
    page.get_by_label("Business casual").check()
    page.get_by_label("A person").check()
    shoot(page, "picked")

    page.get_by_role("button", name="Upload and create my headshots").click()
    # Verdicts arrive per file: two accepted, the landscape refused with the API's words and hint.
    refused = file_row(page, "no-face.jpg")
    expect(refused).to_contain_text("Refused: We could not find a face in this photo.", timeout=30_000)
    expect(refused.locator(".file-hint")).to_have_text(re.compile(r"\w+"))
    expect(file_row(page, "person-a-3.heic")).to_contain_text("Accepted")
    expect(file_row(page, "person-a-1.jpg")).to_contain_text("Accepted")
    uploads = page.locator("#file-list progress")
    expect(uploads).to_have_count(3)
    assert all(uploads.nth(i).evaluate("(bar) => bar.value") == 100 for i in range(3))
    # Fewer than 3 usable photos: the page asks for replacements.
    expect(page.get_by_role("heading", name="1. Add more photos")).to_be_visible()
    expect(page.locator("#job-message")).to_contain_text("add at least 1 more")
    shoot(page, "verdicts")

    page.get_by_label("Choose photos").set_input_files(str(SAMPLES / "person-a-2.jpg"))
    expect(file_row(page, "person-a-2.jpg")).to_contain_text("Ready to upload")
    page.get_by_role("button", name="Upload and submit again").click()
    expect(file_row(page, "person-a-2.jpg")).to_contain_text("Accepted", timeout=30_000)
    pay_through_page(page, shoot)
    expect(page.locator("#payment-line")).to_have_text("Paid $12.90.", timeout=30_000)
    expect(file_row(page, "person-a-2.jpg")).to_contain_text("Accepted")  # the photos, found again after checkout
    expect(page.locator("#style-progress li")).to_have_count(4, timeout=30_000)  # progress per style
    expect(page.locator("#elapsed")).to_have_text(re.compile(r"\d+ s$"))
    shoot(page, "generating")

    wait_until_ready(page)
    assert load_every_result(page) >= 30
    for style in ("Corporate", "Business casual", "Creative", "Formal"):
        expect(page.get_by_role("heading", name=re.compile(f"^{style}"))).to_be_visible()
    alts = page.locator("#gallery img").evaluate_all("(images) => images.map((img) => img.alt)")
    assert all(re.fullmatch(r"[A-Z][a-z ]+ headshot \d+", alt) for alt in alts), alts
    expect(page.locator("#countdown")).to_contain_text(re.compile(r"deleted in 4[78] h \d{1,2} min"))
    assert_ordered_by_likeness(page, stack)
    shoot(page, "gallery")

    # One image: saved under a clear name, a real PNG (a CORS GET from the bucket's origin).
    with page.expect_download() as one:
        page.get_by_role("link", name="Download corporate headshot 1").click()
    assert one.value.suggested_filename == "headshot-corporate-01.png"
    assert Path(one.value.path()).read_bytes().startswith(PNG_SIGNATURE)

    # Download all: a zip of every result, and the link behind it works on its own.
    with page.expect_download() as everything:
        page.get_by_role("button", name="Download all (zip)").click()
    with zipfile.ZipFile(everything.value.path()) as archive:
        members = [n for n in archive.namelist() if n.endswith(".png")]
    assert len(members) >= 30
    link = page.locator("#archive-link")
    expect(link).to_be_visible()
    fetched = httpx.get(str(link.get_attribute("href")), timeout=60)
    assert fetched.status_code == 200
    assert zipfile.is_zipfile(io.BytesIO(fetched.content))
    shoot(page, "archive")

    # The token lives in this tab's sessionStorage only: a reload finds the job again.
    job = saved_job(page)
    assert job and job["token"] and job["jobId"]
    assert page.evaluate("() => localStorage.length") == 0
    assert page.context.cookies() == []
    page.reload()
    wait_until_ready(page)
    expect(page.locator("#gallery img")).to_have_count(len(alts))

    receipt = delete_everything(page, shoot)
    assert receipt.startswith("del_")
    assert saved_job(page) is None
    expect(page.locator("#gallery img")).to_have_count(0)
    gone = httpx.get(f"{stack['api_url']}/jobs/{job['jobId']}", headers={"Authorization": f"Bearer {job['token']}"})
    assert gone.status_code == 404
    assert_no_raw_json(page)
    watch.assert_clean()


def test_phone_viewport_drag_and_drop_and_keyboard(
    stack: dict[str, Any], open_page: Callable[..., Any], shoot: Callable[..., Path]
) -> None:
    page, watch = open_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page.goto(stack["web_url"])
    no_sideways_scroll = "() => document.documentElement.scrollWidth <= window.innerWidth"
    assert page.evaluate(no_sideways_scroll)

    # Keyboard: skip link first, then the photo picker (a real, labelled file input).
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Choose photos")).to_be_focused()
    box = page.locator("#file-input-label").bounding_box()
    assert box and box["height"] >= 44 and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    # Every control has a name.
    unnamed = page.evaluate(
        """() => Array.from(document.querySelectorAll('input, button, select, textarea'))
              .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                              && !el.textContent.trim())
              .map((el) => el.id || el.outerHTML)"""
    )
    assert unnamed == []
    shoot(page, "empty")

    # Drag and drop person A's three samples and the one without a face onto the drop zone.
    dropped = ["no-face.jpg", "person-a-1.jpg", "person-a-2.jpg", "person-a-3.heic"]
    files = [
        {"name": p.name, "type": content_type_of(p), "data": base64.b64encode(p.read_bytes()).decode()}
        for p in (SAMPLES / name for name in dropped)
    ]
    page.evaluate(
        """(files) => {
            const transfer = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], f.name, { type: f.type }));
            }
            const zone = document.getElementById('dropzone');
            for (const type of ['dragenter', 'dragover', 'drop']) {
                zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }));
            }
        }""",
        files,
    )
    expect(page.locator("#file-list li")).to_have_count(4)
    assert page.evaluate(no_sideways_scroll)
    shoot(page, "dropped")

    expect(page.locator("#price-line")).to_contain_text("$12.90")
    page.get_by_role("button", name="Upload and create my headshots").tap()
    expect(file_row(page, "no-face.jpg")).to_contain_text("Refused", timeout=30_000)
    pay = page.get_by_role("link", name="Pay $12.90")
    expect(pay).to_be_visible(timeout=60_000)
    box = pay.bounding_box()
    assert box and box["height"] >= 44 and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert page.evaluate(no_sideways_scroll)
    pay_through_page(page, shoot, keyboard=True)
    expect(page.locator("#payment-line")).to_have_text("Paid $12.90.", timeout=30_000)
    wait_until_ready(page)
    assert load_every_result(page) >= 30
    assert page.evaluate(no_sideways_scroll)
    widths = page.locator("#gallery img").evaluate_all("(images) => images.map((i) => i.getBoundingClientRect().right)")
    assert max(widths) <= PHONE["width"]
    expect(page.get_by_role("button", name="Download all (zip)")).to_be_visible()
    expect(page.locator("#countdown")).to_contain_text(re.compile(r"deleted in 4[78] h \d{1,2} min"))
    shoot(page, "gallery")

    delete_everything(page, shoot)
    assert page.evaluate(no_sideways_scroll)
    watch.assert_clean()


def test_api_errors_are_shown_in_the_apis_words(
    stack: dict[str, Any], open_page: Callable[..., Any], shoot: Callable[..., Path]
) -> None:
    page, watch = open_page(viewport=DESKTOP)
    page.goto(stack["web_url"])
    picker = page.get_by_label("Choose photos")
    alert = page.locator("#pick-error")

    # Too few photos: said before anything is sent.
    picker.set_input_files(str(SAMPLES / "person-a-1.jpg"))
    page.get_by_role("button", name="Upload and create my headshots").click()
    expect(alert).to_have_text("Choose at least 3 photos (you have 1).")

    picker.set_input_files([str(SAMPLES / "person-a-2.jpg"), str(SAMPLES / "person-a-3.heic")])
    # An error the API words: shown as its error.message, nothing else.
    words = "Too many new jobs from here in the last hour. Please try again later."
    body = json.dumps({"error": {"code": "rate_limited", "message": words}})
    page.route("**/jobs", lambda route: route.fulfill(status=429, content_type="application/json", body=body))
    page.get_by_role("button", name="Upload and create my headshots").click()
    expect(alert).to_have_text(words)
    shoot(page, "api-error")
    page.unroute("**/jobs")

    # A crash behind the gateway (a bare 500 without our error shape): a plain sentence, no raw JSON.
    crash = '{"message":"Internal Server Error"}'
    page.route("**/jobs", lambda route: route.fulfill(status=500, content_type="application/json", body=crash))
    page.get_by_role("button", name="Upload and create my headshots").click()
    expect(alert).to_have_text("Something went wrong on our side. Please try again in a moment.")
    assert_no_raw_json(page)
    page.unroute("**/jobs")
    assert saved_job(page) is None
    watch.assert_clean()


def test_price_then_pay_with_a_promotion_code(
    stack: dict[str, Any], open_page: Callable[..., Any], shoot: Callable[..., Path]
) -> None:
    """Issue #13: the price before upload; "Pay $12.90" once the photos are accepted; SAVE3 at checkout; back on the
    page, what was paid (the promotion applied), then the headshots."""
    page, watch = open_page(viewport=DESKTOP)
    page.goto(stack["web_url"])
    price = page.locator("#price-line")
    expect(price).to_have_text(re.compile(r"^32 headshots for \$12\.90\. You pay only after your photos are checked"))
    shoot(page, "price")

    photos = [SAMPLES / "person-a-1.jpg", SAMPLES / "person-a-2.jpg", SAMPLES / "person-a-3.heic"]
    page.get_by_label("Choose photos").set_input_files([str(p) for p in photos])
    expect(page.locator("#file-list li")).to_have_count(3)
    page.get_by_role("button", name="Upload and create my headshots").click()
    for photo in photos:
        expect(file_row(page, photo.name)).to_contain_text("Accepted", timeout=60_000)
    expect(page.locator("#style-progress li")).to_have_count(0)  # nothing is made before the payment

    pay_through_page(page, shoot, promotion_code="SAVE3")
    paid = page.locator("#payment-line")
    expect(paid).to_have_text("Paid $9.90 ($3.00 off with a promotion code).", timeout=30_000)
    expect(page.get_by_role("link", name=re.compile("^Pay"))).to_be_hidden()
    expect(page.locator("#style-progress li")).to_have_count(4, timeout=30_000)
    shoot(page, "paid")

    wait_until_ready(page)
    assert load_every_result(page) >= 30
    expect(paid).to_be_visible()
    expect(page.locator("#refund-line")).to_be_hidden()
    shoot(page, "ready")
    delete_everything(page, shoot)
    assert_no_raw_json(page)
    watch.assert_clean()


def _view(status: str, **fields: Any) -> dict[str, Any]:
    """A job as GET /jobs/{id} shows it, for states the local stack reaches only slowly (or by the clock)."""
    view: dict[str, Any] = {
        "job_id": "job_page_states",
        "status": status,
        "subject": "person",
        "created_at": "2030-01-01T10:00:00Z",
        "expires_at": "2099-01-01T10:00:00Z",
        "files": [{"file_id": f"f{n}", "name": f"photo-{n}.jpg", "status": "accepted"} for n in (1, 2, 3)],
        "usable_files": 3,
        "styles": [],
        "images_done": 0,
        "images_expected": 32,
        "message": None,
        "failure_reason": None,
        "checkout_url": None,
        "checkout_expires_at": None,
        "payment": None,
        "refund": None,
    }
    view.update(fields)
    return view


def test_checkout_states_and_refunds(
    stack: dict[str, Any], open_page: Callable[..., Any], shoot: Callable[..., Path]
) -> None:
    """Preparing checkout, a canceled checkout (Pay again), refunds on their way and made, an expired checkout."""
    page, watch = open_page(viewport=PHONE, is_mobile=True, has_touch=True)
    web = stack["web_url"].rstrip("/")
    current: dict[str, Any] = {"status": 200, "body": {}}

    def answer(route: Any) -> None:
        if current["status"] == 200:
            route.fulfill(status=200, content_type="application/json", body=json.dumps(current["body"]))
        else:
            body = {"error": {"code": "job_not_found", "message": "No such job."}}
            route.fulfill(status=current["status"], content_type="application/json", body=json.dumps(body))

    page.route("**/jobs/job_page_states", answer)
    page.goto(web + "/")
    expect(page.locator("#price-line")).to_contain_text("$12.90")
    job = {"jobId": "job_page_states", "token": "t0ken", "submittedAt": None}
    page.evaluate("(job) => sessionStorage.setItem('portrait-studio.job', JSON.stringify(job))", job)

    # Stripe was unreachable: no checkout yet.
    closes = "2099-01-01T10:30:00Z"
    current["body"] = _view("awaiting_payment", checkout_expires_at=closes)
    page.reload()
    expect(page.locator("#pay-preparing")).to_have_text("Preparing checkout…")
    expect(page.get_by_role("link", name=re.compile("^Pay"))).to_be_hidden()

    # Checkout opened (polled again: the page looks every few seconds).
    checkout = f"{web}/checkout-stand-in"
    current["body"] = _view("awaiting_payment", checkout_url=checkout, checkout_expires_at=closes)
    pay = page.get_by_role("link", name="Pay $12.90")
    expect(pay).to_have_attribute("href", checkout, timeout=15_000)
    expect(page.locator("#pay-preparing")).to_be_hidden()

    # Back from checkout without paying: still awaiting payment, Pay again.
    page.goto(web + "/?checkout=canceled")
    expect(page.locator("#pay-note")).to_contain_text("nothing was charged")
    expect(pay).to_be_visible()
    assert page.evaluate("() => window.location.search") == ""
    shoot(page, "canceled")

    # Partial: a refund on its way, then made.
    payment = {
        "amount_subtotal": 1290,
        "amount_discount": 300,
        "amount_total": 990,
        "currency": "usd",
        "paid_at": "2030-01-01T10:05:00Z",
    }
    refund = {"amount": 483, "currency": "usd", "reason": "partial", "status": "pending", "refunded_at": None}
    partial = {"payment": payment, "images_done": 20, "failure_reason": "Some styles did not work out."}
    current["body"] = _view("partial", refund=refund, **partial)
    page.goto(web + "/?checkout=success")
    expect(page.locator("#payment-line")).to_have_text("Paid $9.90 ($3.00 off with a promotion code).")
    refund_line = page.locator("#refund-line")
    expect(refund_line).to_have_text("Refund of $4.83 on its way because only 20 of 32 headshots could be made.")
    refunded = refund | {"status": "refunded", "refunded_at": "2030-01-01T11:00:00Z"}
    current["body"] = _view("partial", refund=refunded, **partial)
    page.reload()
    made = re.compile(r"^\$4\.83 refunded on .+ because only 20 of 32 headshots could be made\.")
    expect(refund_line).to_have_text(made)
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    shoot(page, "refunded")

    # A full refund for a failed job.
    failed_refund = refunded | {"amount": 990, "reason": "failed"}
    current["body"] = _view("failed", payment=payment, refund=failed_refund, failure_reason="Nothing could be made.")
    page.reload()
    expect(refund_line).to_contain_text("because we could not make your headshots")

    # Unpaid until the checkout expired: the job is gone, and the page says why.
    current["body"] = _view("awaiting_payment", checkout_url=checkout, checkout_expires_at=closes)
    page.reload()
    expect(pay).to_be_visible()
    current["status"] = 404
    page.reload()
    heading = page.get_by_role("heading", name="Your checkout expired")
    expect(heading).to_be_focused()
    expect(page.locator("#deleted-text")).to_contain_text("we deleted your photos")
    shoot(page, "expired")
    assert saved_job(page) is None
    page.get_by_role("button", name="Start over").click()
    expect(page.get_by_role("heading", name="1. Choose your photos")).to_be_visible()
    assert_no_raw_json(page)
    watch.assert_clean()


def test_identity_refusals_and_results_by_likeness(
    stack: dict[str, Any], open_page: Callable[..., Any], shoot: Callable[..., Path]
) -> None:
    """Issue #12 on the page: photos of different people (the job back to collecting, intake_error
    no_single_person), somebody else's photo refused (different_person), results ordered by likeness."""
    page, watch = open_page(viewport=PHONE, is_mobile=True, has_touch=True)
    web = stack["web_url"].rstrip("/")
    current: dict[str, Any] = {"body": {}}
    page.route(
        "**/jobs/job_page_identity",
        lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(current["body"])),
    )
    portrait = (SAMPLES / "person-a-1.jpg").read_bytes()
    page.route("**/fake-results/**", lambda route: route.fulfill(status=200, content_type="image/jpeg", body=portrait))
    page.goto(web + "/")
    expect(page.locator("#price-line")).to_contain_text("$12.90")
    job = {"jobId": "job_page_identity", "token": "t0ken", "submittedAt": 1}
    page.evaluate("(job) => sessionStorage.setItem('portrait-studio.job', JSON.stringify(job))", job)
    no_sideways_scroll = "() => document.documentElement.scrollWidth <= window.innerWidth"

    # No single person in the photos: the API's words, prominently, where photos are added; add others.
    words = (
        "These photos seem to show different people, so we cannot tell which one is you. Remove the photos that"
        " are not of you, or add more photos of yourself, then submit again."
    )
    intake = {"code": "no_single_person", "message": words}
    current["body"] = _view("collecting", intake_error=intake, message=words)
    page.reload()
    alert = page.locator("#intake-error")
    expect(alert).to_have_text(words)
    expect(alert).to_have_attribute("role", "alert")
    expect(page.get_by_role("heading", name="1. Add more photos")).to_be_visible()
    expect(page.locator("#job-status")).to_contain_text("more than one person")
    expect(page.locator("#job-message")).to_be_hidden()  # said once
    expect(page.locator("#pick-summary")).to_have_text("Add photos of yourself only, then submit again.")
    expect(page.get_by_role("button", name="Upload and submit again")).to_be_visible()
    page.get_by_label("Choose photos").set_input_files([str(SAMPLES / "person-a-2.jpg"), str(SAMPLES / "person-b.png")])
    expect(file_row(page, "person-b.png")).to_contain_text("Ready to upload")
    page.get_by_role("button", name="Remove person-b.png").click()
    expect(file_row(page, "person-b.png")).to_have_count(0)
    expect(page.locator("#pick-summary")).to_have_text("1 new photo of yourself chosen.")
    assert page.evaluate(no_sideways_scroll)
    shoot(page, "no-single-person")

    # The photos already checked can be removed too (DELETE /jobs/{id}/files/{file_id}): gone on 204, announced;
    # a refusal (409 while the job is being checked) is said in the API's words and the photo stays.
    deletes: list[tuple[str, str, str | None]] = []
    conflict = "Photos can be removed only while you are adding photos, not while checked."

    def on_delete(route: Any) -> None:
        request = route.request
        deletes.append((request.method, request.url.rsplit("/", 1)[-1], request.headers.get("authorization")))
        if request.url.endswith("/f2"):
            error = {"error": {"code": "job_state_conflict", "message": conflict}}
            route.fulfill(status=409, content_type="application/json", body=json.dumps(error))
            return
        body = current["body"]
        current["body"] = {**body, "files": [f for f in body["files"] if f["file_id"] != "f3"], "usable_files": 2}
        route.fulfill(status=204)

    page.route("**/jobs/job_page_identity/files/*", on_delete)
    for name in ("photo-1.jpg", "photo-2.jpg", "photo-3.jpg"):
        expect(file_row(page, name)).to_contain_text("Accepted")
        expect(page.get_by_role("button", name=f"Remove {name}")).to_be_visible()
    page.get_by_role("button", name="Remove photo-3.jpg").click()
    expect(file_row(page, "photo-3.jpg")).to_have_count(0)
    expect(page.locator("#files-status")).to_have_text("photo-3.jpg removed.")
    expect(page.locator("#files-status")).to_have_attribute("aria-live", "polite")
    expect(page.locator("#files-title")).to_have_text("Your photos: 2 usable")
    page.get_by_role("button", name="Remove photo-2.jpg").click()
    expect(page.locator("#pick-error")).to_have_text(conflict)
    expect(file_row(page, "photo-2.jpg")).to_contain_text("Accepted")
    assert deletes == [("DELETE", "f3", "Bearer t0ken"), ("DELETE", "f2", "Bearer t0ken")]
    page.wait_for_timeout(300)  # a look after the removal: photo-3 stays gone
    expect(file_row(page, "photo-3.jpg")).to_have_count(0)
    expect(file_row(page, "person-a-2.jpg")).to_contain_text("Ready to upload")
    shoot(page, "removed-uploaded")
    page.unroute("**/jobs/job_page_identity/files/*")

    # Somebody else's photo: refused like any other, with its message and hint.
    files = [
        {"file_id": "f1", "name": "photo-1.jpg", "status": "accepted"},
        {"file_id": "f2", "name": "photo-2.jpg", "status": "accepted"},
        {
            "file_id": "f3",
            "name": "photo-3.jpg",
            "status": "refused",
            "accepted": False,
            "code": "different_person",
            "message": "This photo seems to show somebody else than your other photos.",
            "hint": "Use only photos of yourself: every headshot is made to look like the person in them.",
        },
    ]
    current["body"] = _view(
        "collecting",
        files=files,
        usable_files=2,
        message="2 usable photo(s) so far: add at least 1 more and submit again.",
    )
    page.reload()
    other = file_row(page, "photo-3.jpg")
    expect(other).to_contain_text("Refused: This photo seems to show somebody else than your other photos.")
    expect(other.get_by_role("button", name="Remove photo-3.jpg")).to_be_visible()  # refused: removable too
    expect(other.locator(".file-hint")).to_have_text(re.compile(r"^Use only photos of yourself"))
    expect(other).to_have_attribute("data-code", "different_person")
    expect(page.locator("#intake-error")).to_be_hidden()
    shoot(page, "different-person")

    # Ready: each style's results the most like you first, even if they came in another order.
    def item(name: str, likeness: int, closest: bool) -> dict[str, Any]:
        return {"url": f"{web}/fake-results/{name}.jpg?sig=1", "likeness": likeness, "closest": closest}

    items = [item("c", 70, False), item("a", 91, True), item("b", 88, True), item("d", 64, False)]
    style = {"style": "corporate", "expected": 4, "done": 4, "results": [i["url"] for i in items], "items": items}
    current["body"] = _view("ready", styles=[style], images_done=4, images_expected=4)
    page.reload()
    expect(page.locator("#job-status")).to_have_text("Your 4 headshots are ready.")
    expect(page.locator("#file-list button")).to_have_count(3)
    expect(page.locator("#file-list button:visible")).to_have_count(0)  # nothing removable once it is made
    rows = page.locator("#gallery li")
    expect(rows).to_have_count(4)
    shown = gallery_by_style(page)["corporate"]
    assert [row["path"] for row in shown] == [
        "/fake-results/a.jpg",
        "/fake-results/b.jpg",
        "/fake-results/c.jpg",
        "/fake-results/d.jpg",
    ]
    assert [row["likeness"] for row in shown] == ["Likeness 91", "Likeness 88", "Likeness 70", "Likeness 64"]
    assert [row["badge"] for row in shown] == ["Closest to you", "Closest to you", "", ""]
    expect(rows.first.get_by_role("img")).to_have_attribute("alt", "Corporate headshot 1")
    expect(page.locator("#likeness-note")).to_have_text(LIKENESS_NOTE)
    described = rows.first.locator(".closest-badge").evaluate("(badge) => badge.getAttribute('aria-describedby')")
    assert described == "likeness-note"
    assert page.evaluate(no_sideways_scroll)
    shoot(page, "by-likeness")
    assert_no_raw_json(page)
    watch.assert_clean()


CORPUS_FACES = Path("/work/shared/corpus/faces")


def test_remove_photos_of_somebody_else_then_submit_again(
    stack: dict[str, Any], open_page: Callable[..., Any], shoot: Callable[..., Path]
) -> None:
    """Photos of three people: the job comes back to collecting (no_single_person). Remove the two that are not
    of you (uploaded and checked: DELETE /jobs/{id}/files/{file_id}), add two of yourself, submit: accepted."""
    astronaut = CORPUS_FACES / "astronaut.png"
    if not astronaut.exists():
        pytest.skip(f"the face corpus is absent ({astronaut})")
    page, watch = open_page(viewport=DESKTOP)
    page.goto(stack["web_url"])
    page.get_by_label("Choose photos").set_input_files(
        [str(SAMPLES / "person-a-1.jpg"), str(SAMPLES / "person-b.png"), str(astronaut)]
    )
    expect(page.locator("#file-list li")).to_have_count(3)
    page.get_by_role("button", name="Upload and create my headshots").click()

    alert = page.locator("#intake-error")
    expect(alert).to_contain_text("different people", timeout=60_000)
    expect(alert).to_contain_text("Remove the photos that are not of you")
    expect(page.get_by_role("heading", name="1. Add more photos")).to_be_visible()
    for name in ("person-a-1.jpg", "person-b.png", "astronaut.png"):
        expect(page.get_by_role("button", name=f"Remove {name}")).to_be_visible()
    shoot(page, "no-single-person")

    announced = page.locator("#files-status")
    for name in ("person-b.png", "astronaut.png"):
        page.get_by_role("button", name=f"Remove {name}").click()
        expect(file_row(page, name)).to_have_count(0)
        expect(announced).to_have_text(f"{name} removed.")
    expect(page.locator("#pick-error")).to_be_hidden()
    job = saved_job(page)
    assert job
    headers = {"Authorization": f"Bearer {job['token']}"}
    view = httpx.get(f"{stack['api_url']}/jobs/{job['jobId']}", headers=headers, timeout=30).json()
    assert [f["name"] for f in view["files"]] == ["person-a-1.jpg"], view["files"]
    shoot(page, "removed")

    page.get_by_label("Choose photos").set_input_files(
        [str(SAMPLES / "person-a-2.jpg"), str(SAMPLES / "person-a-3.heic")]
    )
    expect(file_row(page, "person-a-3.heic")).to_contain_text("Ready to upload")
    page.get_by_role("button", name="Upload and submit again").click()
    expect(page.get_by_role("link", name="Pay $12.90")).to_be_visible(timeout=60_000)
    expect(alert).to_be_hidden()
    for name in ("person-a-1.jpg", "person-a-2.jpg", "person-a-3.heic"):
        expect(file_row(page, name)).to_contain_text("Accepted")
    expect(page.locator("#file-list li")).to_have_count(3)
    expect(page.locator("#file-list button:visible")).to_have_count(0)  # nothing removable once accepted
    shoot(page, "accepted")
    assert_no_raw_json(page)
    watch.assert_clean()
    httpx.delete(f"{stack['api_url']}/jobs/{job['jobId']}", headers=headers, timeout=30)


PRIVATE_LINK = re.compile(r"^(http://[^/?#]+)/#job=([0-9a-f]+)&token=([A-Za-z0-9_-]+)$")


def private_link(page: Any) -> tuple[str, str, str]:
    """The private link the page shows: (link, job id, token); never a query string."""
    field = page.get_by_label("Private link to this job")
    expect(field).to_have_value(PRIVATE_LINK)
    link = str(field.input_value())
    match = PRIVATE_LINK.match(link)
    assert match and "?" not in link
    return link, match.group(2), match.group(3)


def emailed_link(stack: dict[str, Any], job_id: str, timeout_s: float = 90.0) -> str | None:
    """The private link in the job's outcome email, as the local stack captured it (GET /_local/mail); None
    when this stack has no mail capture."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(f"{stack['api_url']}/_local/mail", timeout=30)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        for mail in response.json():
            links = [html.unescape(href) for href in re.findall(r'href="([^"]+)"', mail.get("html") or "")]
            mine = [link for link in links if f"#job={job_id}&" in link]
            if mine:
                assert "buyer@example.com" in str(mail["to"]), mail["to"]
                return mine[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no email with the private link of {job_id} after {timeout_s:.0f}s")
        time.sleep(1)


def results_shown(page: Any) -> list[str]:
    return list(page.locator("#gallery img").evaluate_all("(images) => images.map((i) => new URL(i.src).pathname)"))


def test_private_link_to_come_back_later(
    stack: dict[str, Any], open_page: Callable[..., Any], shoot: Callable[..., Path]
) -> None:
    """Issue #15: the job's private link (fragment only), copied and rotated with the keyboard on a phone; opened
    in other browsers (fresh storage) it restores the job view; after rotation the old link is dead, the new works."""
    page, watch = open_page(
        viewport=PHONE, is_mobile=True, has_touch=True, permissions=["clipboard-read", "clipboard-write"]
    )
    page.goto(stack["web_url"])
    no_sideways_scroll = "() => document.documentElement.scrollWidth <= window.innerWidth"
    expect(page.locator("#private-link")).to_be_hidden()  # no job yet
    photos = [SAMPLES / "person-a-1.jpg", SAMPLES / "person-a-2.jpg", SAMPLES / "person-a-3.heic"]
    page.get_by_label("Choose photos").set_input_files([str(p) for p in photos])
    page.get_by_role("button", name="Upload and create my headshots").tap()
    link, job_id, token = private_link(page)  # shown as soon as the job exists
    saved = saved_job(page)
    assert saved and (saved["jobId"], saved["token"]) == (job_id, token)
    expect(page.get_by_text("Anyone with this link can see and delete this job")).to_be_visible()
    pay_through_page(page, shoot)
    wait_until_ready(page)
    assert private_link(page)[0] == link
    load_every_result(page)
    shown = results_shown(page)
    assert len(shown) >= 30

    # The phone: the field and both buttons fit, nothing scrolls sideways.
    for target in ("#private-link-url", "#copy-link", "#rotate-link"):
        box = page.locator(target).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (target, box)
        assert box["height"] >= 44, (target, box)
    assert page.evaluate(no_sideways_scroll)
    page.locator("#private-link").scroll_into_view_if_needed()
    shoot(page, "private-link", full_page=False)

    # Another browser (fresh storage): the same job view, and the link leaves the address bar at once.
    other, other_watch = open_page(viewport=DESKTOP)
    other.goto(link)
    wait_until_ready(other)
    assert other.evaluate("() => window.location.hash") == ""
    assert other.url == f"{stack['web_url'].rstrip('/')}/"
    restored = saved_job(other)
    assert restored and (restored["jobId"], restored["token"]) == (job_id, token)
    expect(other.locator("#payment-line")).to_have_text("Paid $12.90.")
    expect(other.locator("#gallery img")).to_have_count(len(shown))
    assert results_shown(other) == shown
    expect(other.locator("#file-list li")).to_have_count(3)
    assert private_link(other)[0] == link
    shoot(other, "opened-elsewhere")

    # The outcome email's link (its own token, in the fragment) opens the same job too.
    mailed = emailed_link(stack, job_id)
    if mailed is not None:
        inbox, inbox_watch = open_page(viewport=PHONE, is_mobile=True, has_touch=True)
        inbox.goto(mailed)
        wait_until_ready(inbox)
        assert inbox.evaluate("() => window.location.hash") == ""
        expect(inbox.locator("#gallery img")).to_have_count(len(shown))
        inbox_watch.assert_clean()

    # Copy with the keyboard: Tab from the link to "Copy link", Enter.
    page.get_by_label("Private link to this job").focus()
    page.keyboard.press("Tab")
    copy = page.get_by_role("button", name="Copy link")
    expect(copy).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#link-status")).to_have_text("Link copied.")
    assert page.evaluate("() => navigator.clipboard.readText()") == link

    # A new link with the keyboard: Tab to "Make a new link", Space. The old token is dead at once.
    page.keyboard.press("Tab")
    rotate = page.get_by_role("button", name="Make a new link")
    expect(rotate).to_be_focused()
    page.keyboard.press("Space")
    expect(page.locator("#link-status")).to_contain_text("New link made: the old one no longer works.")
    new_link, new_job_id, new_token = private_link(page)
    assert new_job_id == job_id and new_token != token and new_link != link
    assert (saved_job(page) or {}).get("token") == new_token
    api = stack["api_url"]
    assert httpx.get(f"{api}/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"}).status_code == 404
    assert httpx.get(f"{api}/jobs/{job_id}", headers={"Authorization": f"Bearer {new_token}"}).status_code == 200
    expect(page.get_by_role("heading", name=re.compile("^Corporate"))).to_be_visible()  # this page goes on
    page.reload()
    wait_until_ready(page)
    assert page.evaluate(no_sideways_scroll)
    shoot(page, "rotated", full_page=False)

    # The old link, opened in a fresh browser: the job cannot be reached, and the page says why.
    stale, stale_watch = open_page(viewport=PHONE, is_mobile=True, has_touch=True)
    stale.goto(link)
    expect(stale.get_by_role("heading", name="This link no longer works")).to_be_focused()
    expect(stale.locator("#deleted-text")).to_contain_text("a new private link was made for it")
    expect(stale.locator("#gallery img")).to_have_count(0)
    assert saved_job(stale) is None
    assert stale.evaluate(no_sideways_scroll)
    shoot(stale, "old-link")

    # The first browser still holds the old token: its next look says the link no longer works.
    other.reload()
    expect(other.get_by_role("heading", name="This job is gone")).to_be_visible()
    if mailed is not None:  # a new link kills the emailed one too
        emailed_again, emailed_watch = open_page(viewport=DESKTOP)
        emailed_again.goto(mailed)
        expect(emailed_again.get_by_role("heading", name="This link no longer works")).to_be_visible()
        emailed_watch.assert_clean()

    # The new link, in a fresh browser: the job.
    fresh, fresh_watch = open_page(viewport=DESKTOP)
    fresh.goto(new_link)
    wait_until_ready(fresh)
    assert results_shown(fresh) == shown

    delete_everything(page, shoot)
    for watched in (watch, other_watch, stale_watch, fresh_watch):
        watched.assert_clean()

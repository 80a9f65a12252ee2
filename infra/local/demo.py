"""`make demo`: start the local stack, run one whole headshot job from the sample selfies, save the
results in demo-output/ with a summary, stop the stack."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import httpx

from infra.local.client import PortraitClient, running_stack
from infra.local.template import ROOT

SAMPLES = ROOT / "samples"


def run_demo(output: Path, state_dir: Path) -> int:
    files = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".heic", ".webp"))
    with running_stack(state_dir) as stack:
        client = PortraitClient(stack["api_url"])
        print(
            f"local stack up at {stack['api_url']}; uploading {len(files)} photos: {', '.join(p.name for p in files)}"
        )
        started = time.monotonic()
        job = client.create_job(files, subject="person")
        client.upload_all(job, files)
        submitted = client.submit(job)
        submitted.raise_for_status()
        price = client.http.get("/price").json()
        print(f"photos checked; paying ${price['amount'] / 100:.2f} on the local Stripe checkout with SAVE3")
        client.pay(job, promotion_code="SAVE3", email="demo@example.com")
        view = client.wait_for(job, ("ready", "partial", "failed", "collecting"), timeout_s=600)
        elapsed = time.monotonic() - started
        if output.exists():
            shutil.rmtree(output)
        output.mkdir(parents=True)
        per_style = {}
        for style in view["styles"]:
            folder = output / style["style"]
            folder.mkdir()
            for n, url in enumerate(style["results"], start=1):
                (folder / f"{n:02d}.png").write_bytes(httpx.get(url, timeout=60).content)
            per_style[style["style"]] = len(style["results"])
        summary = {
            "job_id": job.job_id,
            "status": view["status"],
            "seconds": round(elapsed, 1),
            "images": sum(per_style.values()),
            "images_per_style": per_style,
            "paid": view.get("payment"),
            "refund": view.get("refund"),
            "photos": [
                {"name": f["name"], "accepted": f["accepted"], "code": f["code"], "message": f["message"]}
                for f in view["files"]
            ],
            "note": "Local previews from the Replicate emulator, built from your photos: not AI output.",
        }
        (output / "summary.json").write_text(json.dumps(summary, indent=2))
        client.close()
    print(f"\njob {summary['status']} in {summary['seconds']} s: {summary['images']} images")
    if summary["paid"]:
        paid = summary["paid"]
        print(f"  paid ${paid['amount_total'] / 100:.2f} (${paid['amount_discount'] / 100:.2f} off with SAVE3)")
    for style, count in per_style.items():
        print(f"  {style:16} {count} images")
    for photo in summary["photos"]:
        verdict = "accepted" if photo["accepted"] else f"refused ({photo['code']}): {photo['message']}"
        print(f"  photo {photo['name']:16} {verdict}")
    print(f"results in {output}/ (summary.json has the details)")
    return 0 if summary["status"] == "ready" and summary["images"] >= 30 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=ROOT / "demo-output")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local" / "demo")
    args = parser.parse_args(argv)
    return run_demo(args.output, args.state_dir)


if __name__ == "__main__":
    sys.exit(main())

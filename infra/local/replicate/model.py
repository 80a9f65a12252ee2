"""PhotoMaker without a model: a prediction's outputs as labelled previews of its reference photo.

The fault plan decides what a run gives: a failure, NSFW-dropped outputs, outputs showing somebody else or no
face at all. The PNGs are kept in a bounded cache, and drawn again on request once evicted.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Final

from PIL import Image

from infra.local.replicate.reference import fetch_reference
from infra.local.replicate.render import backdrop, load_reference, other_person, render_preview
from infra.local.replicate.schema import DEFAULT_STYLE
from infra.local.replicate.state import Prediction

NSFW_ERROR: Final = "All generated images contained NSFW content. Try running it again with a different prompt."
INJECTED_ERROR: Final = "Prediction interrupted; please retry (code: PA)"
_RENDER_CACHE_SIZE: Final = 48


class PreviewModel:
    """Runs a prediction (outside the lock: drawing takes a while) and serves its outputs' PNGs."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock  # the emulator's: it guards the render cache and the predictions' logs
        self._renders: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    def run(self, record: Prediction, base_url: str) -> tuple[str, list[str] | None, str | None]:
        """(status, output URLs under `base_url`, error) of one run."""
        plan = record.plan
        if plan.fail:
            self._append_log(record, "Injected failure (emulator fault profile: fail_rate).\n")
            return "failed", None, INJECTED_ERROR
        model_input = record.data["input"]
        total = int(model_input.get("num_outputs", 1))
        kept = [n for n in range(total) if n not in plan.dropped]
        if plan.dropped:
            self._append_log(record, f"NSFW content detected in {len(plan.dropped)} image(s) (emulator fault).\n")
        if not kept:
            return "failed", None, NSFW_ERROR
        if faceless := [n for n in kept if n in plan.faceless]:
            self._append_log(record, f"No face in {len(faceless)} image(s) (emulator fault: faceless_rate).\n")
        if drifted := [n for n in kept if n in plan.drifted and n not in plan.faceless]:
            self._append_log(
                record, f"Somebody else in {len(drifted)} image(s) (emulator fault: identity_drift_rate).\n"
            )
        record.reference = fetch_reference(str(model_input["input_image"]))
        base = load_reference(record.reference)
        for n in kept:
            self._remember_render(record.id, n, self._render(record, base, n))
        return "succeeded", [f"{base_url}/files/{record.id}/{n}.png" for n in kept], None

    def output_png(self, record: Prediction, index: int, base_url: str) -> bytes | None:
        """Output `index`'s PNG (drawn again if evicted); None when the prediction lists no such output."""
        with self._lock:
            wanted = f"{base_url}/files/{record.id}/{index}.png"
            listed = wanted in (record.data.get("output") or [])
            cached = self._renders.get((record.id, index))
        if not listed:
            return None
        return cached if cached is not None else self._render_again(record, index)

    def _render_again(self, record: Prediction, index: int) -> bytes:
        png = self._render(record, load_reference(record.reference), index)
        self._remember_render(record.id, index, png)
        return png

    def _render(self, record: Prediction, base: Image.Image, index: int) -> bytes:
        model_input = record.data["input"]
        total = int(model_input.get("num_outputs", 1))
        style = str(model_input.get("style_name", DEFAULT_STYLE))
        prompt = str(model_input["prompt"])
        seed = record.seed + index
        # The faults replace what the output shows; the banner and caption stay as on any other output.
        if index in record.plan.faceless:
            base = backdrop(prompt, style, seed)
        elif index in record.plan.drifted:
            base = other_person()
        return render_preview(base, prompt, style, seed, index, total)

    def _remember_render(self, prediction_id: str, index: int, png: bytes) -> None:
        # Bounded: 32 headshots at ~3 MB each would otherwise pin a lot of memory for the whole session.
        with self._lock:
            self._renders[(prediction_id, index)] = png
            self._renders.move_to_end((prediction_id, index))
            while len(self._renders) > _RENDER_CACHE_SIZE:
                self._renders.popitem(last=False)

    def _append_log(self, record: Prediction, line: str) -> None:
        with self._lock:
            record.data["logs"] += line

"""Generation: plan the slots, create PhotoMaker predictions, take webhooks, collect, top up, reconcile."""

from __future__ import annotations

import hashlib
import io
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from portrait_studio import keys
from portrait_studio.config import Settings
from portrait_studio.errors import GeneratorRejectedInput, OutputInvalid
from portrait_studio.models import (
    STYLES,
    FileStatus,
    Job,
    JobStatus,
    Prediction,
    SlotStatus,
    Style,
    UploadFile,
    slot_key,
)
from portrait_studio.ports import BlobStore, Clock, Downloader, Generator, JobStore, Metrics, Queue, RemotePrediction

TRIGGER_WORD = "img"
MAX_REFERENCES = 4
WEBHOOK_EVENTS = ("start", "completed")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OUTPUT_SIZE = (1024, 1024)
IN_FLIGHT = (SlotStatus.STARTING, SlotStatus.PROCESSING)


# --- styles and prompts ---------------------------------------------------------------------------
@dataclass(frozen=True)
class StyleBook:
    style_name: str
    negative_prompt: str
    prompts: Mapping[str, tuple[str, ...]]
    labels: Mapping[str, str]


@lru_cache(maxsize=1)
def load_styles() -> StyleBook:
    data = tomllib.loads(resources.files("portrait_studio").joinpath("styles.toml").read_text("utf-8"))
    styles = data["styles"]
    return StyleBook(
        style_name=data["style_name"],
        negative_prompt=" ".join(data["negative_prompt"].split()),
        prompts={name: tuple(spec["prompts"]) for name, spec in styles.items()},
        labels={name: spec["label"] for name, spec in styles.items()},
    )


def build_prompt(template: str, subject: str) -> str:
    """`{subject}` is followed by the trigger word exactly once, as PhotoMaker requires."""
    prompt = template.format(subject=subject)
    if trigger_count(prompt) != 1 or f"{subject} {TRIGGER_WORD}" not in prompt:
        raise ValueError(f"prompt must contain '{subject} {TRIGGER_WORD}' exactly once")
    return prompt


def trigger_count(text: str) -> int:
    return len(re.findall(rf"\b{TRIGGER_WORD}\b", text))


def planned_slots(styles: Sequence[str], settings: Settings) -> list[tuple[str, int]]:
    """The base plan: ceil(target / outputs) predictions spread round-robin over the chosen styles.

    Four styles give two predictions each (one per prompt); fewer styles get more predictions each,
    so the job still yields the target number of images.
    """
    total = math.ceil(settings.images_target / settings.outputs_per_prediction)
    counts = dict.fromkeys(styles, 0)
    plan = []
    for i in range(total):
        style = styles[i % len(styles)]
        plan.append((style, counts[style]))
        counts[style] += 1
    return plan


def expected_per_style(styles: Sequence[str], settings: Settings) -> dict[str, int]:
    expected = dict.fromkeys(styles, 0)
    for style, _ in planned_slots(styles, settings):
        expected[style] += settings.outputs_per_prediction
    return expected


def slot_seed(job_id: str, slot: str, attempt: int) -> int:
    digest = hashlib.sha256(f"{job_id}/{slot}/{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2_147_483_647


def select_references(files: Iterable[UploadFile], limit: int = MAX_REFERENCES) -> list[UploadFile]:
    """The best photos by face size and sharpness, then greedily for variety of pose."""
    candidates = [f for f in files if f.status == FileStatus.ACCEPTED and f.quality is not None]

    def quality(f: UploadFile) -> float:
        assert f.quality is not None
        return min(f.quality.face_fraction, 0.6) / 0.6 + min(f.quality.sharpness, 500.0) / 500.0

    chosen: list[UploadFile] = []
    remaining = sorted(candidates, key=quality, reverse=True)
    while remaining and len(chosen) < limit:

        def score(f: UploadFile) -> float:
            assert f.quality is not None
            if not chosen:
                return quality(f)
            variety = min(abs(f.quality.yaw_hint - c.quality.yaw_hint) for c in chosen if c.quality)
            return quality(f) + variety

        best = max(remaining, key=score)
        chosen.append(best)
        remaining.remove(best)
    return chosen


def photomaker_input(
    prompt: str, references: Sequence[str], seed: int, num_outputs: int, settings: Settings
) -> dict[str, Any]:
    """The model's input, checked against its schema before anything is sent."""
    book = load_styles()
    if not 1 <= len(references) <= MAX_REFERENCES:
        raise GeneratorRejectedInput("PhotoMaker takes 1 to 4 reference images")
    if trigger_count(prompt) != 1:
        raise GeneratorRejectedInput("the prompt must contain the trigger word exactly once")
    if trigger_count(book.negative_prompt):
        raise GeneratorRejectedInput("the negative prompt must not contain the trigger word")
    if not 1 <= num_outputs <= 4:
        raise GeneratorRejectedInput("num_outputs must be 1-4")
    body: dict[str, Any] = {
        "prompt": prompt,
        "negative_prompt": book.negative_prompt,
        "style_name": book.style_name,
        "num_steps": settings.num_steps,
        "style_strength_ratio": settings.style_strength_ratio,
        "guidance_scale": settings.guidance_scale,
        "num_outputs": num_outputs,
        "seed": seed,
    }
    for i, url in enumerate(references):
        body["input_image" if i == 0 else f"input_image{i + 1}"] = url
    return body


# --- the service ----------------------------------------------------------------------------------
@dataclass
class DispatchResult:
    created: int = 0
    skipped: int = 0
    gave_up: int = 0


class _NullMetrics:
    def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        return None


@dataclass
class GenerationService:
    settings: Settings
    store: JobStore
    blobs: BlobStore
    queue: Queue
    generator: Generator
    downloader: Downloader
    clock: Clock
    metrics: Metrics = _NullMetrics()  # noqa: RUF009 - stateless

    # --- dispatch ----------------------------------------------------------------------------------
    def dispatch(self, job_id: str, slots: Sequence[str] | None = None) -> DispatchResult:
        """Create the predictions of the given slots (default: the base plan). Idempotent per slot.

        Raises GeneratorRateLimited / GeneratorUnavailable so the caller can re-queue the message with a
        delay; slots already created stay created and are skipped next time.
        """
        result = DispatchResult()
        job = self.store.get_job(job_id)
        if not isinstance(job, Job) or job.status != JobStatus.GENERATING:
            return result
        now = self.clock.now()
        files = self.store.list_files(job_id)
        references = select_references(files)
        if not references:
            self._finish(job_id, force_reason="None of the photos could be used.")
            return result
        url_ttl = min(self.settings.reference_url_ttl_s, max(60, int((job.expires_at - now).total_seconds())))
        reference_urls = [self.blobs.presign_get(keys.reference(job_id, f.file_id), url_ttl) for f in references]
        existing = {s.slot: s for s in self.store.list_slots(job_id)}
        wanted = list(slots) if slots else [slot_key(style, k) for style, k in planned_slots(job.styles, self.settings)]
        book = load_styles()
        for slot in wanted:
            current = existing.get(slot)
            if current is not None and (current.prediction_id or current.status.is_terminal):
                result.skipped += 1
                continue
            style, k = slot.split("#")
            attempts = current.attempts if current else 0
            seed = slot_seed(job_id, slot, attempts)
            num_outputs = current.num_outputs if current else self.settings.outputs_per_prediction
            claim = Prediction(
                job_id=job_id,
                slot=slot,
                style=_as_style(style),
                prompt_index=int(k) % len(book.prompts[style]),
                seed=seed,
                num_outputs=num_outputs,
                attempts=attempts,
                claimed_at=now,
                topup=current.topup if current else False,
            )
            if not self.store.claim_slot(claim, stale_before=now - timedelta(seconds=self.settings.claim_stale_s)):
                result.skipped += 1
                continue
            prompt = build_prompt(book.prompts[style][claim.prompt_index], job.subject)
            body = photomaker_input(prompt, reference_urls, seed, num_outputs, self.settings)
            webhook = f"{self.settings.webhook_url}?{urlencode({'job': job_id, 'slot': slot})}"
            try:
                remote = self.generator.create(self.settings.photomaker_version, body, webhook, WEBHOOK_EVENTS)
            except GeneratorRejectedInput as exc:
                self.store.update_slot(job_id, slot, status=SlotStatus.GAVE_UP, error=exc.message)
                self.metrics.count("PredictionsRejected")
                result.gave_up += 1
                continue
            except Exception:
                # Release the claim at once, so the redelivered message can take the slot again.
                self.store.update_slot(job_id, slot, claimed_at=now - timedelta(days=1))
                raise
            self.store.update_slot(
                job_id,
                slot,
                prediction_id=remote.id,
                status=SlotStatus.STARTING,
                created_at=self.clock.now(),
                attempts=attempts + 1,
            )
            self.metrics.count("PredictionsCreated")
            result.created += 1
        if result.gave_up:
            self.finish_if_done(job_id)
        return result

    # --- webhook -----------------------------------------------------------------------------------
    def record_event(self, job_id: str, slot: str, body: Mapping[str, Any]) -> str:
        """Apply a verified webhook. Returns what happened: progress, completed, noop or unknown."""
        remote = RemotePrediction.from_api(body)
        current = self.store.get_slot(job_id, slot) if keys.is_valid_id(job_id) else None
        if current is None or not remote.id or current.prediction_id != remote.id:
            return "unknown"
        return self._apply(current, remote)

    def _apply(self, current: Prediction, remote: RemotePrediction) -> str:
        if current.status.is_terminal or current.status.has_prediction_outcome:
            return "noop"
        if remote.status in ("starting", "processing"):
            if remote.status == "processing" and current.status in (SlotStatus.CLAIMED, SlotStatus.STARTING):
                moved = self.store.update_slot(
                    current.job_id,
                    current.slot,
                    expect=(SlotStatus.CLAIMED, SlotStatus.STARTING),
                    status=SlotStatus.PROCESSING,
                )
                return "progress" if moved else "noop"
            return "noop"
        if remote.status not in ("succeeded", "failed", "canceled", "aborted"):
            return "noop"
        moved = self.store.update_slot(
            current.job_id,
            current.slot,
            expect=(SlotStatus.CLAIMED, *IN_FLIGHT),
            status=SlotStatus(remote.status),
            outputs=remote.output,
            predict_time=remote.predict_time,
            error=(remote.error or "")[:500] or None,
        )
        if not moved:
            return "noop"
        self.queue.send(self.settings.collect_queue_url, {"job_id": current.job_id, "slot": current.slot})
        return "completed"

    # --- collect -----------------------------------------------------------------------------------
    def collect(self, job_id: str, slot: str) -> int:
        """Copy a finished prediction's outputs into the bucket (Replicate deletes them after an hour)."""
        job = self.store.get_job(job_id)
        if not isinstance(job, Job) or job.status != JobStatus.GENERATING:
            return 0  # deleted or finished: late results are dropped, never written
        current = self.store.get_slot(job_id, slot)
        if current is None:
            return 0
        stored = 0
        if current.status == SlotStatus.SUCCEEDED:
            stored = self._copy_outputs(job, current)
            dropped = current.num_outputs - stored
            if dropped:
                self.metrics.count("OutputsDropped", dropped)
            self.store.add_collected(job_id, slot, stored, current.predict_time)
            if not self._still_generating(job_id):
                self._delete_results_of(job_id, current)  # the job was deleted while we copied
                return 0
        elif current.status in (SlotStatus.FAILED, SlotStatus.ABORTED, SlotStatus.CANCELED):
            self.metrics.count("PredictionsFailed")
            self._retry_or_give_up(job, current)
        self.finish_if_done(job_id)
        return stored

    def _copy_outputs(self, job: Job, slot: Prediction) -> int:
        from PIL import Image

        style, k = slot.slot.split("#")
        stored = 0
        for i, url in enumerate(slot.outputs[: slot.num_outputs]):
            key = keys.result(job.job_id, style, int(k) * self.settings.outputs_per_prediction + i + 1)
            if self.blobs.size(key) is not None:
                stored += 1
                continue
            try:
                data, content_type = self.downloader.fetch(url, self.settings.max_output_bytes)
                if not data.startswith(PNG_MAGIC) or content_type.split(";")[0].strip() not in ("image/png", ""):
                    raise OutputInvalid()
                with Image.open(io.BytesIO(data)) as image:
                    if image.format != "PNG" or image.size != OUTPUT_SIZE:
                        raise OutputInvalid()
            except OutputInvalid:
                continue
            self.blobs.put(key, data, "image/png")
            stored += 1
        return stored

    def _still_generating(self, job_id: str) -> bool:
        job = self.store.get_job(job_id)
        return isinstance(job, Job) and job.status in (JobStatus.GENERATING, JobStatus.READY)

    def _delete_results_of(self, job_id: str, slot: Prediction) -> None:
        style, k = slot.slot.split("#")
        base = int(k) * self.settings.outputs_per_prediction
        self.blobs.delete([keys.result(job_id, style, base + i + 1) for i in range(slot.num_outputs)])

    def _retry_or_give_up(self, job: Job, slot: Prediction) -> None:
        if slot.attempts < self.settings.max_attempts_per_slot:
            released = self.store.update_slot(
                job.job_id,
                slot.slot,
                expect=(slot.status,),
                status=SlotStatus.CLAIMED,
                prediction_id=None,
                claimed_at=self.clock.now() - timedelta(days=1),
                outputs=[],
            )
            if released:
                self.queue.send(self.settings.dispatch_queue_url, {"job_id": job.job_id, "slots": [slot.slot]})
        else:
            self.store.update_slot(job.job_id, slot.slot, expect=(slot.status,), status=SlotStatus.GAVE_UP)

    # --- finishing ---------------------------------------------------------------------------------
    def finish_if_done(self, job_id: str) -> None:
        job = self.store.get_job(job_id)
        if not isinstance(job, Job) or job.status != JobStatus.GENERATING:
            return
        slots = self.store.list_slots(job_id)
        if not slots or any(not s.status.is_terminal for s in slots):
            return
        images = sum(s.images_collected for s in slots)
        if images >= self.settings.images_target:
            self._finish(job_id)
            return
        if job.topups_used < self.settings.max_topup_predictions:
            self._top_up(job, slots, images)
            return
        self._finish(job_id)

    def _top_up(self, job: Job, slots: Sequence[Prediction], images: int) -> None:
        """Ask for more images: full predictions, as many as the yield seen so far says are needed."""
        missing = self.settings.images_target - images
        per = self.settings.outputs_per_prediction
        asked = sum(s.num_outputs for s in slots if s.status == SlotStatus.COLLECTED)
        yield_rate = images / asked if asked else 1.0
        needed = math.ceil(missing / max(0.25, yield_rate) / per)
        count = max(1, min(needed, self.settings.max_topup_predictions - job.topups_used))
        if not self.store.update_job(
            job.job_id,
            expect=[JobStatus.GENERATING],
            expect_fields={"topups_used": job.topups_used},
            topups_used=job.topups_used + count,
        ):
            return  # another worker topped up first
        expected = expected_per_style(job.styles, self.settings)
        have = dict.fromkeys(job.styles, 0)
        next_k = dict.fromkeys(job.styles, 0)
        for s in slots:
            have[s.style] = have.get(s.style, 0) + s.images_collected
            next_k[s.style] = max(next_k.get(s.style, 0), int(s.slot.split("#")[1]) + 1)
        new_slots = []
        now = self.clock.now()
        for _ in range(count):
            # The style furthest behind its share gets the next prediction.
            style = max(job.styles, key=lambda st: expected[st] - have[st])
            k = next_k[style]
            next_k[style] += 1
            have[style] += per
            slot = slot_key(style, k)
            self.store.claim_slot(
                Prediction(
                    job_id=job.job_id,
                    slot=slot,
                    style=style,
                    prompt_index=k % len(load_styles().prompts[style]),
                    seed=slot_seed(job.job_id, slot, 0),
                    num_outputs=per,
                    claimed_at=now - timedelta(days=1),  # released: dispatch may take it at once
                    topup=True,
                ),
                stale_before=now,
            )
            new_slots.append(slot)
        self.metrics.count("TopUps", count)
        self.queue.send(self.settings.dispatch_queue_url, {"job_id": job.job_id, "slots": new_slots})

    def _finish(self, job_id: str, force_reason: str | None = None) -> None:
        slots = self.store.list_slots(job_id)
        images = sum(s.images_collected for s in slots)
        now = self.clock.now()
        target = self.settings.images_target
        if force_reason is None and images > 0:
            note = None
            if images < target:
                note = f"We made {images} of {target} headshots: some images were filtered out or failed to generate."
            done = self.store.update_job(
                job_id, expect=[JobStatus.GENERATING], status=JobStatus.READY, finished_at=now, note=note
            )
            if done:
                job = self.store.get_job(job_id)
                if isinstance(job, Job) and job.generating_since:
                    self.metrics.count("TimeToReady", (now - job.generating_since).total_seconds(), "Seconds")
                if isinstance(job, Job):
                    self.metrics.count("PredictSeconds", job.predict_seconds, "Seconds")
                    self.metrics.count(
                        "EstimatedCostUSD", estimated_cost_usd(job.predict_seconds, self.settings), "None"
                    )
            return
        reason = force_reason or "No headshots could be generated from these photos. Please try other photos."
        self.store.update_job(
            job_id, expect=[JobStatus.GENERATING], status=JobStatus.FAILED, finished_at=now, failure_reason=reason
        )

    # --- reconcile ---------------------------------------------------------------------------------
    def reconcile(self) -> dict[str, int]:
        """Finish what webhooks did not: stale predictions are fetched and applied like a webhook."""
        summary = {"jobs": 0, "fetched": 0, "redispatched": 0, "recollected": 0, "timed_out": 0}
        now = self.clock.now()
        grace = timedelta(seconds=self.settings.reconcile_grace_s)
        for job_id in self.store.jobs_generating():
            job = self.store.get_job(job_id)
            if not isinstance(job, Job) or job.status != JobStatus.GENERATING:
                continue
            summary["jobs"] += 1
            slots = self.store.list_slots(job_id)
            started = job.generating_since or job.updated_at
            if now - started > timedelta(seconds=self.settings.max_generating_s):
                self._time_out(job, slots)
                summary["timed_out"] += 1
                continue
            redispatch = []
            for slot in slots:
                if slot.status in IN_FLIGHT and slot.prediction_id and (slot.created_at or now) <= now - grace:
                    remote = self.generator.get(slot.prediction_id)
                    summary["fetched"] += 1
                    if self._apply(slot, remote) == "completed":
                        summary["recollected"] += 1
                elif slot.status == SlotStatus.CLAIMED and slot.claimed_at <= now - timedelta(
                    seconds=self.settings.claim_stale_s
                ):
                    redispatch.append(slot.slot)
                elif slot.status.has_prediction_outcome and (slot.created_at or now) <= now - grace:
                    self.queue.send(self.settings.collect_queue_url, {"job_id": job_id, "slot": slot.slot})
                    summary["recollected"] += 1
            if redispatch:
                self.queue.send(self.settings.dispatch_queue_url, {"job_id": job_id, "slots": redispatch})
                summary["redispatched"] += len(redispatch)
            if not slots:
                self.queue.send(self.settings.dispatch_queue_url, {"job_id": job_id})
                summary["redispatched"] += 1
            self.finish_if_done(job_id)
        return summary

    def _time_out(self, job: Job, slots: Sequence[Prediction]) -> None:
        for slot in slots:
            if slot.prediction_id and slot.status in IN_FLIGHT:
                self.cancel_quietly(slot.prediction_id)
            if not slot.status.is_terminal:
                self.store.update_slot(job.job_id, slot.slot, status=SlotStatus.GAVE_UP, error="timed out")
        images = sum(s.images_collected for s in slots)
        if images:
            self._finish(job.job_id)
        else:
            self._finish(job.job_id, force_reason="Generation took too long and was stopped. Please try again.")

    def cancel_quietly(self, prediction_id: str) -> None:
        try:
            self.generator.cancel(prediction_id)
        except Exception:
            self.metrics.count("CancelFailed")


def _as_style(value: str) -> Style:
    if value not in STYLES:
        raise ValueError(f"unknown style {value}")
    return value  # type: ignore[return-value]


def estimated_cost_usd(predict_seconds: float, settings: Settings) -> float:
    return round(predict_seconds * settings.price_per_second_usd, 4)

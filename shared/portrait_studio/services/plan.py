"""The plan of a job's generation: styles and prompts, the slots owed, reference photos, the model input."""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any

from portrait_studio.config import Settings
from portrait_studio.errors import GeneratorRejectedInput
from portrait_studio.models import STYLES, FileStatus, Job, Prediction, Style, UploadFile, slot_key

TRIGGER_WORD = "img"
MAX_REFERENCES = 4


# --- styles and prompts ---------------------------------------------------------------------------
@dataclass(frozen=True)
class StyleBook:
    style_name: str
    negative_prompt: str
    prompts: Mapping[str, tuple[str, ...]]
    labels: Mapping[str, str]
    backdrops: Mapping[str, BackdropSpec]
    colors: Mapping[str, str]  # colour name → #rrggbb


@dataclass(frozen=True)
class BackdropSpec:
    label: str
    phrase: str  # what `{backdrop}` becomes; a solid one's `{color}` is the nearest colour name


@lru_cache(maxsize=1)
def load_styles() -> StyleBook:
    data = tomllib.loads(resources.files("portrait_studio").joinpath("styles.toml").read_text("utf-8"))
    styles = data["styles"]
    return StyleBook(
        style_name=data["style_name"],
        negative_prompt=" ".join(data["negative_prompt"].split()),
        prompts={name: tuple(spec["prompts"]) for name, spec in styles.items()},
        labels={name: spec["label"] for name, spec in styles.items()},
        backdrops={name: BackdropSpec(spec["label"], spec["phrase"]) for name, spec in data["backdrops"].items()},
        colors=dict(data["colors"]),
    )


def build_prompt(template: str, subject: str, backdrop: str) -> str:
    """`{subject}` is followed by the trigger word exactly once, as PhotoMaker requires; `backdrop` is the phrase
    of the job's backdrop (services/backdrops.py)."""
    prompt = template.format(subject=subject, backdrop=backdrop)
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


def select_references(
    files: Iterable[UploadFile], same_person_max_distance: float, limit: int = MAX_REFERENCES
) -> list[UploadFile]:
    """The photos most like the person (closest to their photos' consensus), then by face size and sharpness,
    then greedily for variety of pose. Accepted photos lie within `same_person_max_distance` (intake's
    identity_same_person_max_distance) of the consensus."""
    candidates = [f for f in files if f.status == FileStatus.ACCEPTED and f.quality is not None]

    def quality(f: UploadFile) -> float:
        assert f.quality is not None
        distance = f.quality.identity_distance if f.quality.identity_distance is not None else 0.3
        # Weighs twice: a photo unlike the person blurs the identity.
        closeness = 1.0 - min(distance, same_person_max_distance) / same_person_max_distance
        return 2 * closeness + min(f.quality.face_fraction, 0.6) / 0.6 + min(f.quality.sharpness, 500.0) / 500.0

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


def plan_size(styles: Sequence[str], settings: Settings) -> int:
    return len(planned_slots(styles, settings))


def prediction_budget(styles: Sequence[str], settings: Settings) -> int:
    """Predictions a job may create, retries and top-ups included: config, or 2.5x the plan by default (rounded up).

    Why 2.5x: at 2x a harsh fault profile (20 % failed predictions, 25 % of images dropped) left 7 % of jobs
    `partial`; the gate on real outputs drops more than the corpus suggested (docs/photos-and-identity.md,
    "How we check it's you")."""
    return settings.prediction_budget_per_job or (5 * plan_size(styles, settings) + 1) // 2


def new_slot(job: Job, style: Style, k: int, num_outputs: int, now: datetime, topup: bool = False) -> Prediction:
    """A planned slot: the `k`-th prediction of a style, owed and not yet created."""
    slot = slot_key(style, k)
    return Prediction(
        job_id=job.job_id,
        slot=slot,
        style=style,
        prompt_index=k % len(load_styles().prompts[style]),
        seed=slot_seed(job.job_id, slot, 0),
        num_outputs=num_outputs,
        changed_at=now,
        topup=topup,
    )


def base_plan(job: Job, settings: Settings, now: datetime) -> list[Prediction]:
    """Every slot of the base plan, written when generation starts."""
    per = settings.outputs_per_prediction
    return [new_slot(job, as_style(style), k, per, now) for style, k in planned_slots(job.styles, settings)]


def as_style(value: str) -> Style:
    if value not in STYLES:
        raise ValueError(f"unknown style {value}")
    return value  # type: ignore[return-value]

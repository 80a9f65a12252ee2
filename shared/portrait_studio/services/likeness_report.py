"""Is it them? Intake's person check on reference photos and collect's output gate on images, for support and
evaluation (`portrait-studio likeness`, `benchmarks/identity.py --real`).

The same functions production runs, in the same order: every reference through `check_photo` (the upload
gate, duplicates across the given references), the accepted ones described and put through
`check_one_person` (refused `different_person` / the job's `no_single_person`), the references collect would
choose (`select_references`) averaged into the consensus, and each output through `judge_output`.

Differences from production, on purpose: one reference is enough (intake needs `min_files`; with one photo it
is its own consensus, as in collect), and outputs need not be 1024x1024 PNGs (published research outputs are
JPEG crops of other sizes; `judge_output` reads PNG, JPEG or WebP up to 4 MP).

Privacy: descriptors live in local variables of `assess` and nowhere else; the report holds only verdicts,
distances and likeness scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from portrait_studio.config import Settings
    from portrait_studio.services.identity import Descriptor

__all__ = ["LikenessReport", "OutputVerdict", "ReferenceVerdict", "assess"]

# An output verdict when the references give no person to compare with (collect never meets this: intake
# refuses such a job before payment).
NOT_JUDGED = "not_judged"


class ReferenceVerdict(BaseModel):
    """`accepted`, an upload refusal code (`no_face`, `too_small`, `duplicate`...), `different_person`, or
    `no_single_person` (every accepted reference, when they agree on nobody)."""

    model_config = ConfigDict(frozen=True)
    file: str
    verdict: str
    # To the references' consensus (a derived number, never the descriptor); None when not compared.
    distance: float | None = None


class OutputVerdict(BaseModel):
    """`kept`, `no_face`, `extra_faces`, `not_like_you`, or `not_judged` (no person in the references)."""

    model_config = ConfigDict(frozen=True)
    file: str
    verdict: Literal["kept", "no_face", "extra_faces", "not_like_you", "not_judged"]
    distance: float | None
    likeness: int | None


class LikenessReport(BaseModel):
    model_config = ConfigDict(frozen=True)
    references: list[ReferenceVerdict]
    outputs: list[OutputVerdict]

    @property
    def single_person(self) -> bool:
        return any(r.verdict == "accepted" for r in self.references)


def assess(
    references: Sequence[tuple[str, bytes]], outputs: Sequence[tuple[str, bytes]], settings: Settings
) -> LikenessReport:
    """Verdicts for (name, bytes) references and outputs, in the order given."""
    from portrait_studio.errors import DifferentPerson, NoSinglePerson, PhotoRejected
    from portrait_studio.models import FileStatus, UploadFile
    from portrait_studio.services.identity import check_one_person, describe_photo
    from portrait_studio.services.photos import check_photo
    from portrait_studio.services.plan import select_references

    verdicts: list[str] = []
    hashes: dict[str, str] = {}
    files: dict[str, UploadFile] = {}
    descriptors: dict[str, Descriptor] = {}
    for index, (name, data) in enumerate(references):
        try:
            checked = check_photo(data, settings, hashes)
        except PhotoRejected as rejection:
            verdicts.append(rejection.code)
            continue
        key = str(index)
        hashes[key] = checked.quality.phash
        verdicts.append("accepted")
        files[key] = UploadFile(
            file_id=key,
            name=name,
            content_type="image/jpeg",
            declared_bytes=len(data),
            status=FileStatus.ACCEPTED,
            quality=checked.quality,
        )
        # As describe_references: the stored face box spares a detection; no readable face = left out.
        found = describe_photo(checked.normalized.jpeg, settings, checked.quality.face)
        if found is not None:
            descriptors[key] = found

    distances: dict[str, float] = {}
    if len(files) >= 2:  # intake: the person check needs two photos (normalization._check_one_person)
        check = check_one_person(descriptors, settings)
        if not check.single_person:
            verdicts = [NoSinglePerson.code if v == "accepted" else v for v in verdicts]
            files = {}
        else:
            distances = check.distances
            for key in check.outliers:
                verdicts[int(key)] = DifferentPerson.code
                del files[key]
            for key, f in files.items():
                assert f.quality is not None
                quality = f.quality.model_copy(update={"identity_distance": distances.get(key)})
                files[key] = f.model_copy(update={"quality": quality})

    # Collect: the chosen references' consensus (collect._PersonOnce).
    chosen = [
        f.file_id
        for f in select_references(files.values(), settings.identity_same_person_max_distance)
        if f.file_id in descriptors
    ]
    consensus = check_one_person({key: descriptors[key] for key in chosen}, settings)
    person = consensus.consensus
    if person is not None and not distances:
        distances = consensus.distances
    del descriptors

    judged = [_judge(name, data, person, settings) for name, data in outputs]
    return LikenessReport(
        references=[
            ReferenceVerdict(file=name, verdict=verdict, distance=distances.get(str(i)))
            for i, ((name, _), verdict) in enumerate(zip(references, verdicts, strict=True))
        ],
        outputs=judged,
    )


def _judge(name: str, data: bytes, person: Descriptor | None, settings: Settings) -> OutputVerdict:
    from portrait_studio.services.identity import judge_output

    if person is None:
        return OutputVerdict(file=name, verdict=NOT_JUDGED, distance=None, likeness=None)
    try:
        judgement = judge_output(data, person, settings)
    except ValueError:  # collect: an unreadable output counts as showing no face
        return OutputVerdict(file=name, verdict="no_face", distance=None, likeness=None)
    return OutputVerdict(
        file=name, verdict=judgement.drop or "kept", distance=judgement.distance, likeness=judgement.likeness
    )

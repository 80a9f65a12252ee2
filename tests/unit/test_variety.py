"""The low-variety hint: photos that all show one pose get a non-blocking word of advice, varied ones do not."""

from __future__ import annotations

import pytest

from portrait_studio.models import FaceBox, FileStatus, JobStatus, PhotoQuality
from portrait_studio.services.plan import base_plan, prediction_budget
from portrait_studio.services.variety import (
    LOW_VARIETY,
    LOW_VARIETY_MESSAGE,
    MIN_YAW_SPREAD,
    lacks_variety,
    photo_hints,
    yaw_spread,
)
from tests.unit.conftest import World
from tests.unit.helpers import accepted_job, create_job, paid_with_card

# Measured with intake's code on real photos (services/variety.py's docstring gives the sources).
ONE_PHOTO_RECROPPED = [0.234, 0.195, 0.0]  # samples/person-a-1.jpg framed three ways
SAME_PHOTO_REENCODED = [0.156, 0.156, 0.0]  # the corpus' Eileen Collins: PNG, progressive JPEG, HEIC
DISTINCT_BIDEN = [-0.977, -0.312]  # the least varied distinct photos of one person in the corpus
DISTINCT_SAMPLES = [0.234, -0.898, 0.664]  # samples/person-a-1.jpg, -2.jpg, -3.heic


@pytest.mark.parametrize("yaws", [ONE_PHOTO_RECROPPED, SAME_PHOTO_REENCODED, [0.0, 0.0, 0.0], [-0.5, -0.5, -0.4]])
def test_one_pose_lacks_variety(yaws: list[float]) -> None:
    assert lacks_variety(yaws)


@pytest.mark.parametrize("yaws", [DISTINCT_BIDEN, DISTINCT_SAMPLES, [0.0, 0.0, 0.0, 0.9]])
def test_distinct_poses_are_varied(yaws: list[float]) -> None:
    assert not lacks_variety(yaws)


@pytest.mark.parametrize("yaws", [[], [0.2]])
def test_a_single_photo_is_not_judged(yaws: list[float]) -> None:
    assert yaw_spread(yaws) is None
    assert not lacks_variety(yaws)


def test_the_threshold_sits_between_the_measured_figures() -> None:
    one_pose = max(yaw_spread(ONE_PHOTO_RECROPPED) or 0, yaw_spread(SAME_PHOTO_REENCODED) or 0)
    varied = yaw_spread(DISTINCT_BIDEN) or 0
    assert one_pose < MIN_YAW_SPREAD < varied
    assert yaw_spread([0.1, 0.1 + MIN_YAW_SPREAD]) == pytest.approx(MIN_YAW_SPREAD)
    assert not lacks_variety([0.0, MIN_YAW_SPREAD])  # exactly the threshold is enough variety


def set_yaws(world: World, job_id: str, yaws: list[float]) -> None:
    """Rewrite the accepted photos' pose hints in the fake store (intake writes a verdict only once)."""
    for f, yaw in zip(world.store.list_files(job_id), yaws, strict=True):
        assert f.quality is not None
        quality = f.quality.model_copy(update={"yaw_hint": yaw})
        world.store.files[job_id][f.file_id] = f.model_copy(update={"quality": quality})


def test_the_job_view_hints_at_one_pose_while_awaiting_payment_and_stops_once_paid(world: World) -> None:
    job_id, token = create_job(world, 3)
    accepted_job(world, job_id=job_id)
    set_yaws(world, job_id, DISTINCT_SAMPLES)
    view = world.jobs.view(job_id, token)
    assert view.status == JobStatus.AWAITING_PAYMENT and view.hints == []

    set_yaws(world, job_id, ONE_PHOTO_RECROPPED)
    view = world.jobs.view(job_id, token)
    assert [h.model_dump() for h in view.hints] == [{"code": LOW_VARIETY, "message": LOW_VARIETY_MESSAGE}]
    assert view.model_dump(mode="json")["hints"][0]["code"] == "low_variety"

    job = world.store.get_job(job_id)
    plan = base_plan(job, world.settings, world.clock.now())
    budget = prediction_budget(job.styles, world.settings)
    assert world.generation.lifecycle.start_generation(job_id, plan, budget, paid_with_card(world))
    assert world.jobs.view(job_id, token).hints == []  # paid: too late to change the photos, nothing to say


def test_refused_photos_do_not_count(world: World) -> None:
    files = world.store.list_files(create_job(world, 3)[0])
    quality_yaws = [0.0, 0.0, 0.9]
    judged = [
        f.model_copy(
            update={
                "status": FileStatus.ACCEPTED if i < 2 else FileStatus.REFUSED,
                "quality": PhotoQuality(
                    width=1024,
                    height=1024,
                    face=FaceBox(left=1, top=1, width=9, height=9),
                    face_fraction=0.3,
                    sharpness=100.0,
                    yaw_hint=yaw,
                ),
            }
        )
        for i, (f, yaw) in enumerate(zip(files, quality_yaws, strict=True))
    ]
    assert [h.code for h in photo_hints(JobStatus.COLLECTING, judged)] == [LOW_VARIETY]
    accepted = [f.model_copy(update={"status": FileStatus.ACCEPTED}) for f in judged]
    assert photo_hints(JobStatus.COLLECTING, accepted) == []
    assert photo_hints(JobStatus.READY, judged) == []

"""The backdrop choice: made before payment, validated by the API, carried by every prompt of the job."""

from __future__ import annotations

import json
from typing import Any

import pytest

from portrait_studio.errors import InvalidBackdrop
from portrait_studio.services.backdrops import nearest_color_name, parse_backdrop
from tests.unit.conftest import World
from tests.unit.helpers import generating_job
from tests.unit.test_handlers import call_api, event, installed, with_job  # noqa: F401  (installed: autouse)

PHOTOS = [{"name": "a.jpg", "content_type": "image/jpeg", "bytes": 10}] * 3


def create_with(**choice: Any) -> tuple[int, dict[str, Any]]:
    e = event("api_create_job.json")
    e["body"] = json.dumps({"files": PHOTOS, **choice})
    status, body, _ = call_api(e)
    return status, body


@pytest.mark.parametrize(
    "choice",
    [
        {"backdrop": "beach"},
        {"backdrop": "solid"},
        {"backdrop": "solid", "backdrop_color": "blue"},
        {"backdrop": "solid", "backdrop_color": "#12345g"},
        {"backdrop": "solid", "backdrop_color": "#123"},
        {"backdrop": "office", "backdrop_color": "#123456"},
        {"backdrop_color": "#123456"},
    ],
)
def test_an_unknown_backdrop_or_bad_colour_is_refused_with_the_allowed_values(choice: dict[str, str]) -> None:
    status, body = create_with(**choice)
    assert status == 400 and body["error"]["code"] == "invalid_backdrop"
    assert body["error"]["details"]["allowed"] == ["studio_grey", "office", "outdoors", "solid"]


def test_the_job_shows_its_backdrop_and_a_solid_colour_is_kept_normalized() -> None:
    status, created = create_with(backdrop="solid", backdrop_color=" #1F5FBF ")
    assert status == 201
    _, view, _ = call_api(with_job("api_get_job.json", created["job_id"], created["token"]))
    assert view["backdrop"] == {"kind": "solid", "label": "Solid colour", "color": "#1f5fbf"}

    _, plain = create_with()
    _, view, _ = call_api(with_job("api_get_job.json", plain["job_id"], plain["token"]))
    assert view["backdrop"] == {"kind": "studio_grey", "label": "Studio grey", "color": None}


@pytest.mark.parametrize(
    ("backdrop", "color", "words"),
    [
        ("office", None, "office"),
        ("outdoors", None, "outdoors"),
        ("studio_grey", None, "grey studio backdrop"),
        ("solid", "#0b1f8a", "solid navy blue backdrop"),
        ("solid", "#FFFFFF", "solid white backdrop"),
    ],
)
def test_every_prediction_of_the_job_carries_its_backdrop(
    world: World, backdrop: str, color: str | None, words: str
) -> None:
    job_id = generating_job(world, backdrop=backdrop, backdrop_color=color)
    assert world.generation.dispatch(job_id).created == 8
    prompts = [c["input"]["prompt"] for c in world.generator.created]
    assert len(prompts) == 8 and all(words in p for p in prompts), prompts


def test_a_colour_is_named_by_the_nearest_colour_clip_knows() -> None:
    assert nearest_color_name("#ff0000") in ("red",)
    assert nearest_color_name("#f7f7f7") == "white"
    assert nearest_color_name("#1e3a5f") == "dark blue"
    with pytest.raises(InvalidBackdrop):
        parse_backdrop("Office", None)  # values are exact, as the page sends them

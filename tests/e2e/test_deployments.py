"""A stack configured with a Replicate deployment creates every prediction through it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from infra.local.client import PortraitClient, running_stack
from portrait_studio.config import PHOTOMAKER_VERSION
from tests.e2e.conftest import FAST, GOOD, predictions

pytestmark = pytest.mark.e2e

DEPLOYMENT = "portrait-studio/photomaker"


@pytest.fixture(scope="module")
def deployed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("deployed")
    with running_stack(state, env={**FAST, "PORTRAIT_REPLICATE_DEPLOYMENT": DEPLOYMENT}) as info:
        yield info


def test_every_prediction_of_a_job_goes_through_the_deployment(deployed_stack: dict[str, Any]) -> None:
    with closing(PortraitClient(deployed_stack["api_url"])) as client:
        job = client.create_job(GOOD, subject="person")
        client.upload_all(job, GOOD)
        assert client.submit(job).status_code == 202
        client.pay(job)
        view = client.wait_for(job, ("ready", "partial", "failed"), timeout_s=180)
    assert view["status"] == "ready", view
    assert view["images_done"] >= 30

    created = predictions(deployed_stack)
    assert len(created) >= 8  # the whole plan, plus any retries
    assert {(p.get("deployment"), p["version"]) for p in created} == {(DEPLOYMENT, PHOTOMAKER_VERSION)}

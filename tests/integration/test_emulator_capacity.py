"""The Replicate emulator's capacity model: queueing for instances, cold boots, scale-up and scale-down, run times
scaled by the input, in emulated time that runs `time_scale` times faster than real, seen through the official
`replicate` client and the webhooks."""

from __future__ import annotations

import base64
import io
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from PIL import Image
from replicate.client import Client
from replicate.prediction import Prediction
from standardwebhooks import Webhook

from infra.local.replicate.capacity import IDLE_SHUTDOWN_S
from infra.local.replicate.emulator import ReplicateEmulator
from infra.local.replicate.model import NSFW_ERROR
from portrait_studio.clock import MovableClock
from tests.integration.emulators import PHOTOMAKER_VERSION as VERSION
from tests.integration.emulators import REPLICATE_TOKEN as TOKEN
from tests.integration.emulators import Delivery, Receiver, replicate_client
from tests.integration.test_replicate_emulator import PREDICTION_SCHEMA

pytestmark = pytest.mark.integration

EVENTS = ["start", "completed"]
PUBLISHED_RUN_S = 73.0  # PhotoMaker's published run time, taken as 4 outputs of 50 steps
SECONDS_PER_OUTPUT = PUBLISHED_RUN_S / 4
COLD_BOOT_S = 180.0
ONE_INSTANCE = {
    "instances_min": 0,
    "instances_max": 1,
    "cold_boot_s": COLD_BOOT_S,
    "seconds_per_output": SECONDS_PER_OUTPUT,
    "scale_up_s": 0,
}
DEFAULTS = {
    "instances_min": 0,
    "instances_max": None,
    "cold_boot_s": 0.0,
    "seconds_per_output": 0.0,
    "scale_up_s": 0.0,
    "time_scale": 1.0,
}
IDLE = {"booting": 0, "idle": 0, "busy": 0}


def _reference_uri() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (180, 150, 120)).save(buffer, "JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


REFERENCE = _reference_uri()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def emulator(make_replicate: Callable[..., ReplicateEmulator]) -> ReplicateEmulator:
    return make_replicate()


@pytest.fixture
def client(emulator: ReplicateEmulator) -> Client:
    return replicate_client(emulator, poll_interval_s=0.02)


# --------------------------------------------------------------------------- helpers


def _capacity(emulator: ReplicateEmulator, **profile: Any) -> dict[str, Any]:
    response = httpx.put(f"{emulator.url}/_emulator/capacity", json=profile)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def _view(emulator: ReplicateEmulator) -> dict[str, Any]:
    view: dict[str, Any] = httpx.get(f"{emulator.url}/_emulator/capacity").json()
    return view


def _create(
    client: Client, receiver: Receiver | None = None, tag: str = "", steps: int = 50, outputs: int = 4
) -> Prediction:
    model_input = {"prompt": "a headshot of a woman img", "input_image": REFERENCE, "num_steps": steps}
    hooks: dict[str, Any] = {}
    if receiver is not None:
        hooks = {"webhook": receiver.url(tag), "webhook_events_filter": EVENTS}
    prediction: Prediction = client.predictions.create(
        version=VERSION, input={**model_input, "num_outputs": outputs}, **hooks
    )
    return prediction


def _finished(client: Client, prediction: Prediction, timeout_s: float = 10.0) -> Prediction:
    deadline = time.monotonic() + timeout_s
    while prediction.status not in ("succeeded", "failed", "canceled"):
        assert time.monotonic() < deadline, f"prediction stuck in {prediction.status}"
        time.sleep(client.poll_interval)
        prediction.reload()
    return prediction


def _until(emulator: ReplicateEmulator, check: Callable[[dict[str, Any]], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check(view := _view(emulator)):
        assert time.monotonic() < deadline, f"capacity never got there: {view}"
        time.sleep(0.02)


def _t(stamp: str | None) -> datetime:
    assert stamp is not None
    return datetime.fromisoformat(stamp)


def _seconds(later: str | None, earlier: str | None) -> float:
    return (_t(later) - _t(earlier)).total_seconds()


def _statuses(deliveries: list[Delivery]) -> list[str]:
    return [d.payload["status"] for d in deliveries]


# --------------------------------------------------------------------------- queueing, boots, run times


def test_one_instance_boots_once_then_runs_predictions_one_after_another(
    emulator: ReplicateEmulator, client: Client, receiver: Receiver
) -> None:
    # 100×: the 180 s boot lasts 1.8 s real, so the three creates and the look below fit inside it even on a busy
    # machine (at 400× a CI run under load once saw the boot end before the look).
    _capacity(emulator, **ONE_INSTANCE, time_scale=100)
    shapes = [(50, 4), (25, 4), (50, 2)]  # (num_steps, num_outputs)
    created = [_create(client, receiver, f"p{n}", steps, outputs) for n, (steps, outputs) in enumerate(shapes)]
    assert [p.status for p in created] == ["starting"] * 3
    view = _view(emulator)
    assert view["instances"] == {**IDLE, "booting": 1}  # instances_max 1: one boot for all three
    assert view["queue_length"] == 3

    done = [_finished(client, p) for p in created]
    assert [p.status for p in done] == ["succeeded"] * 3
    assert _seconds(done[0].started_at, done[0].created_at) == pytest.approx(COLD_BOOT_S, abs=1e-3)
    for previous, current in itertools.pairwise(done):
        assert current.started_at == previous.completed_at  # the one instance takes the next at once
    for prediction, (steps, outputs) in zip(done, shapes, strict=True):
        expected = PUBLISHED_RUN_S * steps / 50 * outputs / 4
        assert prediction.metrics == {"predict_time": pytest.approx(expected, abs=1e-6)}
        assert _seconds(prediction.completed_at, prediction.started_at) == pytest.approx(expected, abs=1e-6)
        assert len(prediction.output or []) == outputs

    for n, prediction in enumerate(done):  # the webhooks carry the same emulated timestamps, and still verify
        start, completed = (d.payload for d in receiver.wait_for(f"p{n}", 2))
        assert (start["status"], start["started_at"]) == ("processing", prediction.started_at)
        assert (completed["status"], completed["completed_at"]) == ("succeeded", prediction.completed_at)
        Webhook(emulator.webhook_secret).verify(receiver.of(f"p{n}")[0].body, receiver.of(f"p{n}")[0].headers)
    _until(emulator, lambda v: v["instances"] == IDLE and v["queue_length"] == 0)  # no minimum: it shuts down


def test_warm_minimum_runs_two_at_once_without_a_boot(emulator: ReplicateEmulator, client: Client) -> None:
    # 40×: a 73 s run lasts 1.8 s real, so both are still busy when the three creates are done even under load (at
    # 400× a CI run under load once saw the first run end before the look).
    view = _capacity(emulator, **{**ONE_INSTANCE, "instances_min": 2, "instances_max": 2}, time_scale=40)
    assert view["instances"] == {**IDLE, "idle": 2}  # the minimum is up and warm from the start
    created = [_create(client) for _ in range(3)]
    assert [p.status for p in created] == ["starting"] * 3  # even on an idle instance, as Replicate answers
    assert _view(emulator)["instances"] == {**IDLE, "busy": 2}

    first, second, third = (_finished(client, p) for p in created)
    assert first.started_at == first.created_at
    assert second.started_at == second.created_at
    assert _t(second.started_at) < _t(first.completed_at)  # both ran at once
    assert third.started_at == first.completed_at  # the third waited for the first instance to be free
    for prediction in (first, second, third):
        assert prediction.metrics == {"predict_time": pytest.approx(PUBLISHED_RUN_S, abs=1e-6)}


def test_demand_scales_up_to_instances_max_after_scale_up_s_then_idle_instances_shut_down(
    emulator: ReplicateEmulator, client: Client
) -> None:
    boot_s, scale_up_s, run_s = 60.0, 30.0, 200.0
    profile = {
        "instances_min": 1,
        "instances_max": 3,
        "cold_boot_s": boot_s,
        "scale_up_s": scale_up_s,
        "seconds_per_output": run_s / 4,
        "time_scale": 200,
    }
    _capacity(emulator, **profile)
    created = [_create(client) for _ in range(4)]
    # One runs on the warm instance; three wait, and only two more instances fit under instances_max.
    _until(emulator, lambda v: v["instances"] == {"booting": 2, "idle": 0, "busy": 1} and v["queue_length"] == 3)

    first, second, third, fourth = (_finished(client, p) for p in created)
    assert first.started_at == first.created_at
    booted = _t(second.created_at) + timedelta(seconds=scale_up_s + boot_s)  # demand unmet since the second came
    assert _t(second.started_at) == booted
    assert _t(third.started_at) == booted
    assert fourth.started_at == first.completed_at  # no fourth instance: it waited for the first to be free
    for prediction in (first, second, third, fourth):
        assert prediction.metrics == {"predict_time": pytest.approx(run_s, abs=1e-6)}

    # Instances above instances_min shut down once idle for IDLE_SHUTDOWN_S; the warm minimum stays.
    _until(emulator, lambda v: v["instances"] == {**IDLE, "idle": 1})
    assert second.completed_at == third.completed_at
    assert _seconds(_view(emulator)["now"], second.completed_at) >= IDLE_SHUTDOWN_S


def test_cancel_frees_the_instance_for_the_next_and_drops_a_waiting_one(
    emulator: ReplicateEmulator, client: Client
) -> None:
    _capacity(emulator, **{**ONE_INSTANCE, "cold_boot_s": 0, "seconds_per_output": 3600}, time_scale=10)
    running, waiting, dropped = (_create(client) for _ in range(3))
    _until(emulator, lambda v: v["instances"]["busy"] == 1 and v["queue_length"] == 2)
    client.predictions.cancel(dropped.id)
    client.predictions.cancel(running.id)

    canceled = client.predictions.get(dropped.id)
    assert (canceled.status, canceled.started_at, canceled.metrics) == ("canceled", None, {})
    stopped = _finished(client, client.predictions.get(running.id))
    assert stopped.status == "canceled"
    assert stopped.metrics == {"predict_time": pytest.approx(_seconds(stopped.completed_at, stopped.started_at))}
    deadline = time.monotonic() + 5
    while (next_one := client.predictions.get(waiting.id)).status == "starting":
        assert time.monotonic() < deadline, "the waiting prediction never got the freed instance"
        time.sleep(0.02)
    assert next_one.status == "processing"
    assert next_one.started_at == stopped.completed_at


# --------------------------------------------------------------------------- the client's view, faults, clocks


def test_official_client_sees_starting_then_processing_then_succeeded(
    emulator: ReplicateEmulator, client: Client
) -> None:
    validator = Draft202012Validator(PREDICTION_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
    _capacity(emulator, **{**ONE_INSTANCE, "cold_boot_s": 60}, time_scale=100)  # 0.6 s boot, 0.73 s run
    created = _create(client)
    seen: list[dict[str, Any]] = []
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        while not seen or seen[-1]["status"] not in ("succeeded", "failed", "canceled"):
            assert len(seen) < 1000, "prediction never finished"
            seen.append(http.get(f"{emulator.url}/v1/predictions/{created.id}").json())
            time.sleep(0.01)
    for prediction in seen:
        assert [e.message for e in validator.iter_errors(prediction)] == []
        phase = prediction["status"]
        assert (prediction["started_at"] is None) == (phase == "starting")
        assert (prediction["completed_at"] is None) == (phase != "succeeded")
    statuses = [p["status"] for p in seen]
    assert statuses == sorted(statuses, key=["starting", "processing", "succeeded"].index)  # never backwards
    assert {"starting", "processing", "succeeded"} <= set(statuses)
    assert len({p["started_at"] for p in seen if p["started_at"]}) == 1  # set once, never moved

    waited = client.predictions.get(created.id)
    waited.wait()
    assert waited.status == "succeeded"
    assert _seconds(waited.started_at, waited.created_at) == pytest.approx(60, abs=1e-3)


def test_faults_still_apply_under_capacity(emulator: ReplicateEmulator, client: Client, receiver: Receiver) -> None:
    _capacity(emulator, **{**ONE_INSTANCE, "instances_max": 4, "cold_boot_s": 10}, time_scale=400)
    httpx.put(f"{emulator.url}/_emulator/faults", json={"fail_rate": 1}).raise_for_status()
    failed = _finished(client, _create(client, receiver, "fail"))
    httpx.put(f"{emulator.url}/_emulator/faults", json={"fail_rate": 0, "nsfw_drop_rate": 1}).raise_for_status()
    nsfw = _finished(client, _create(client, receiver, "nsfw"))
    faults = {"nsfw_drop_rate": 0, "missing_webhook_rate": 1, "duplicate_webhook_rate": 1}
    httpx.put(f"{emulator.url}/_emulator/faults", json=faults).raise_for_status()
    quiet = _finished(client, _create(client, receiver, "quiet"))

    assert failed.status == "failed"
    assert failed.metrics == {"predict_time": pytest.approx(PUBLISHED_RUN_S, abs=1e-6)}
    assert (nsfw.status, nsfw.error) == ("failed", NSFW_ERROR)
    assert quiet.status == "succeeded"
    assert _statuses(receiver.wait_for("fail", 2)) == ["processing", "failed"]
    assert _statuses(receiver.wait_for("nsfw", 2)) == ["processing", "failed"]
    time.sleep(0.3)  # a completed webhook, had one been sent, would be here by now
    quiet_hooks = receiver.of("quiet")
    assert _statuses(quiet_hooks) == ["processing", "processing"]  # the start twice (duplicated), no completed
    assert quiet_hooks[0].headers["webhook-id"] == quiet_hooks[1].headers["webhook-id"]


def test_emulated_time_runs_time_scale_times_faster_from_the_injected_clock(
    make_replicate: Callable[..., ReplicateEmulator],
) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    clock = MovableClock(start)
    emulator = make_replicate(clock=clock.now)
    assert _t(_view(emulator)["now"]) - clock.now() < timedelta(seconds=1)  # off: the injected clock as is

    real_start = time.monotonic()
    _capacity(emulator, **{**ONE_INSTANCE, "cold_boot_s": 3600}, time_scale=1000)
    time.sleep(0.3)
    lead = (_t(_view(emulator)["now"]) - clock.now()).total_seconds()
    assert 999 * 0.3 <= lead <= 999 * (time.monotonic() - real_start) + 1

    # At real speed, a moved injected clock (the local stack's /_local/clock) moves the model along with it.
    assert emulator.set_capacity({"time_scale": 1})["time_scale"] == 1.0
    client = Client(api_token=TOKEN, base_url=emulator.url)
    client.poll_interval = 0.02
    created = _create(client, outputs=1)
    time.sleep(0.2)
    assert client.predictions.get(created.id).status == "starting"  # booting for an hour
    clock.advance(3600)
    _until(emulator, lambda v: v["instances"]["busy"] == 1)
    clock.advance(SECONDS_PER_OUTPUT)
    done = _finished(client, created, timeout_s=3)
    assert _seconds(done.started_at, done.created_at) == pytest.approx(3600, abs=1e-3)
    assert done.metrics == {"predict_time": pytest.approx(SECONDS_PER_OUTPUT, abs=1e-6)}


# --------------------------------------------------------------------------- the control API


def test_capacity_api_validates_merges_and_resets(emulator: ReplicateEmulator, client: Client) -> None:
    url = f"{emulator.url}/_emulator/capacity"
    fresh = httpx.get(url).json()
    assert {k: v for k, v in fresh.items() if k != "now"} == {**DEFAULTS, "instances": IDLE, "queue_length": 0}
    changed = httpx.put(url, json={"instances_max": 2, "seconds_per_output": 3600}).json()
    assert {k: changed[k] for k in DEFAULTS} == {**DEFAULTS, "instances_max": 2, "seconds_per_output": 3600.0}
    assert httpx.put(url, json={"instances_min": 1}).json()["instances_max"] == 2  # PUT merges given keys

    bad_bodies: list[Any] = [
        {"instances_min": 3},  # more than instances_max
        {"instances_min": -1},
        {"instances_min": 1.5},
        {"instances_max": 0},
        {"cold_boot_s": -1},
        {"cold_boot_s": True},
        {"seconds_per_output": "18"},
        {"time_scale": 0},
        {"nope": 1},
        [1],
    ]
    for bad in bad_bodies:
        response = httpx.put(url, json=bad)
        assert response.status_code == 400, bad
        assert set(response.json()) == {"title", "detail", "status"}
        assert response.json()["status"] == 400
    assert httpx.put(url, content=b"{not json").status_code == 400
    with pytest.raises(ValueError, match="scale_up_s"):
        emulator.set_capacity({"scale_up_s": -1})
    assert httpx.get(url).json()["instances_min"] == 1  # a rejected PUT changes nothing

    # DELETE while the model holds a prediction (an hour-long run at real speed): it ends at once.
    held = _create(client, outputs=1)
    _until(emulator, lambda v: v["queue_length"] == 0 and v["instances"]["busy"] == 1)
    reset = httpx.delete(url).json()
    assert {k: v for k, v in reset.items() if k != "now"} == {**DEFAULTS, "instances": IDLE, "queue_length": 0}
    done = _finished(client, held, timeout_s=3)
    assert done.status == "succeeded"
    assert done.started_at == done.created_at  # the warm minimum took it at once
    after = _finished(client, _create(client, outputs=1), timeout_s=3)  # today's fast path again
    assert after.status == "succeeded"

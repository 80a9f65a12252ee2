"""Sequences the lifecycle model once found failing, replayed as they were printed, with every invariant checked
after each step (a run's examples depend on the process's hash seed, so a failure CI found may not come back)."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis.stateful import INVARIANT_MARKER

from tests.model.test_lifecycle_model import LifecycleModel


def invariants(state: LifecycleModel) -> list[Callable[[], None]]:
    """Every `@invariant` of the model, as hypothesis runs them after each step (none has a precondition)."""
    cls = type(state)
    return [getattr(state, name) for name in sorted(dir(cls)) if getattr(getattr(cls, name), INVARIANT_MARKER, None)]


def replay(steps: list[Callable[[LifecycleModel], None]]) -> None:
    state = LifecycleModel()
    for step in steps:
        step(state)
        for check in invariants(state):
            check()
    state.teardown()


def test_delete_during_a_stripe_outage_right_after_a_payment_started_the_job() -> None:
    """The job is `deleting` with its planned slots while Stripe is down: it owes its refund and its purge, which
    the reconciler finishes, not its slots (CI, December 2026)."""
    replay(
        [
            lambda s: s.a_call_will_fail(after_calls=0, dependency="blobs", mode="before"),
            lambda s: s.the_ledger_runs(),
            lambda s: s.the_reconciler_runs(fault=("store", 0, "before")),
            lambda s: s.stripe_is_down(calls=4),
            lambda s: s.a_job_awaits_payment(),
            lambda s: s.the_reconciler_runs(fault=("store", 0, "before")),
            lambda s: s.another_session_of_a_job_is_paid(pick=0),
            lambda s: s.a_stripe_event_arrives(fate="deliver", pick=0),
            lambda s: s.the_user_deletes_a_job(pick=0),
        ]
    )

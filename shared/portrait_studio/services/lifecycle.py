"""The job lifecycle: every job and slot state, every transition between them, in one place.

Each transition is a named method with its precondition (the states it may start from), applied as one
conditional write or one transaction, so a replayed or late message can never move anything backwards.
Services call these methods; nothing else writes a status. docs/architecture.md's state diagram is rendered from
`JOB_TRANSITIONS` and `SLOT_TRANSITIONS` (a test keeps them in step).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from portrait_studio.models import Job, JobStatus, Payment, Prediction, Refund, SlotStatus, UploadFile
from portrait_studio.ports import Clock, JobStore

J, S = JobStatus, SlotStatus


@dataclass(frozen=True)
class Transition:
    name: str
    sources: tuple[StrEnum, ...]
    target: StrEnum


def _table(*transitions: Transition) -> dict[str, Transition]:
    return {t.name: t for t in transitions}


JOB_TRANSITIONS = _table(
    Transition("submit", (J.COLLECTING,), J.NORMALIZING),
    Transition("ask_for_more_photos", (J.NORMALIZING,), J.COLLECTING),
    Transition("await_payment", (J.NORMALIZING,), J.AWAITING_PAYMENT),
    # Only a verified Stripe payment starts generation: no prediction without a recorded payment.
    Transition("start_generation", (J.AWAITING_PAYMENT,), J.GENERATING),
    Transition("finish_ready", (J.GENERATING,), J.READY),
    Transition("finish_partial", (J.GENERATING,), J.PARTIAL),
    Transition("finish_failed", (J.GENERATING,), J.FAILED),
    # "More like this": a delivered job generates again (a few slots), then ends as it was.
    Transition("more_like_this", (J.READY, J.PARTIAL), J.GENERATING),
)
# Deleting (DELETE or 48 h) is allowed from every state and leaves a tombstone: retention does it.
TOMBSTONES = (J.DELETED, J.EXPIRED)

IN_FLIGHT = (S.STARTING, S.PROCESSING)
RETRYABLE = (S.FAILED, S.CANCELED, S.ABORTED)
NOT_TERMINAL = tuple(s for s in S if not s.is_terminal)

SLOT_TRANSITIONS = _table(
    Transition("claim", (S.PLANNED,), S.CLAIMED),
    Transition("reclaim_stale", (S.CLAIMED,), S.CLAIMED),
    Transition("release", (S.CLAIMED,), S.PLANNED),
    Transition("record_created", (S.CLAIMED,), S.STARTING),
    Transition("mark_processing", (S.STARTING,), S.PROCESSING),
    Transition("record_succeeded", IN_FLIGHT, S.SUCCEEDED),
    Transition("record_failed", IN_FLIGHT, S.FAILED),
    Transition("record_canceled", IN_FLIGHT, S.CANCELED),
    Transition("record_aborted", IN_FLIGHT, S.ABORTED),
    Transition("mark_collected", (S.SUCCEEDED,), S.COLLECTED),
    Transition("retry", RETRYABLE, S.PLANNED),
    Transition("out_of_budget", (S.PLANNED, S.CLAIMED), S.GAVE_UP),
    Transition("give_up", NOT_TERMINAL, S.GAVE_UP),
)
OUTCOME_TRANSITION = {
    "succeeded": "record_succeeded",
    "failed": "record_failed",
    "canceled": "record_canceled",
    "aborted": "record_aborted",
}


@dataclass
class Lifecycle:
    store: JobStore
    clock: Clock

    # --- jobs --------------------------------------------------------------------------------------
    def submit(self, job_id: str, file_ids: Sequence[str], round: int, max_rounds: int | None = None) -> bool:
        """collecting → normalizing with the photos queued; refused (False) once the job has had `max_rounds`
        submits, checked in the same conditional write."""
        t = JOB_TRANSITIONS["submit"]
        return self.store.queue_files(
            job_id, file_ids, round, self.clock.now(), expect=t.sources, status=t.target, max_rounds=max_rounds
        )

    def ask_for_more_photos(
        self, job_id: str, checked: Sequence[UploadFile] = (), problem: str | None = None, round: int | None = None
    ) -> bool:
        """normalizing → collecting, with the verdicts decided across the photos (`checked`) in the same write;
        with `round`, only while the job is still in the round of photos the decision was made on."""
        t = JOB_TRANSITIONS["ask_for_more_photos"]
        return self.store.move_with_files(
            job_id, checked, expect=t.sources, round=round, status=t.target, intake_problem=problem
        )

    def await_payment(self, job_id: str, checked: Sequence[UploadFile] = (), round: int | None = None) -> bool:
        """normalizing → awaiting_payment: the photos are accepted (their verdicts across photos written with the
        move; with `round`, only while the job is still in that round); the checkout comes next."""
        t = JOB_TRANSITIONS["await_payment"]
        return self.store.move_with_files(
            job_id, checked, expect=t.sources, round=round, status=t.target, intake_problem=None
        )

    def record_checkout(self, job_id: str, session_id: str, url: str | None, expires_at: datetime) -> bool:
        """Not a status change: the job's one Checkout Session (the first recorded wins)."""
        return self.store.update_job(
            job_id,
            expect=[J.AWAITING_PAYMENT],
            expect_fields={"checkout_session_id": None},
            checkout_session_id=session_id,
            checkout_url=url,
            checkout_expires_at=expires_at,
        )

    def start_generation(
        self, job_id: str, plan: Sequence[Prediction], budget: int, payment: Payment, email: str | None = None
    ) -> bool:
        """awaiting_payment → generating with the payment (and the buyer's email address, for the outcome's
        email) recorded and every planned slot written, in one transaction: a replayed payment event finds the
        job generating and starts nothing."""
        t = JOB_TRANSITIONS["start_generation"]
        fields = {
            "generating_since": self.clock.now(),
            "prediction_budget": budget,
            "predictions_reserved": 0,
            "payment": payment,
            "checkout_session_id": payment.checkout_session_id,
            "checkout_url": None,  # spent: the page must not offer to pay again
            "email": email,
        }
        return self.store.start_generation(job_id, plan, expect=t.sources, status=t.target, **fields)

    def more_like_this(self, job: Job, slots: Sequence[Prediction], extra_budget: int) -> bool:
        """ready/partial → generating with the round's slots written and its predictions added to the budget, in
        one transaction, only if no other round started meanwhile (the allowance is counted in the same write)."""
        t = JOB_TRANSITIONS["more_like_this"]
        return self.store.start_round(
            job.job_id,
            slots,
            expect=t.sources,
            expect_rounds=job.more_rounds,
            status=t.target,
            more_rounds=job.more_rounds + 1,
            delivered_as=job.delivered_as or job.status.value,
            prediction_budget=job.prediction_budget + extra_budget,
            generating_since=self.clock.now(),  # the round has the same deadline as a whole job
            finished_at=None,
            dispatch_retry_at=None,
        )

    def finish(self, job_id: str, outcome: JobStatus, **fields: Any) -> bool:
        """generating → ready / partial / failed; a refund owed (`refund_due`) is written with the outcome, and
        the aftercare (refund, email) is due from then until done."""
        name = {J.READY: "finish_ready", J.PARTIAL: "finish_partial", J.FAILED: "finish_failed"}[outcome]
        return self._job(name, job_id, finished_at=self.clock.now(), aftercare_due=True, **fields)

    def claim_notification(self, job: Job, token_hash: str) -> bool:
        """Not a status change: the outcome's email is about to go (at most once per outcome), with the hash of
        the token its private link carries."""
        return self.store.update_job(
            job.job_id,
            expect=[job.status],
            expect_fields={"notified_outcome": None},
            notified_outcome=job.status.value,
            link_token_hashes=[*job.link_token_hashes, token_hash],
        )

    def end_aftercare(self, job_id: str) -> bool:
        """Not a status change: refund and email done; the address is forgotten with it."""
        return self.store.update_job(job_id, expect_fields={"aftercare_due": True}, aftercare_due=False, email=None)

    def record_refund(self, job_id: str, refund: Refund) -> bool:
        """Not a status change: the refund Stripe made (recorded once)."""
        return self.store.update_job(job_id, expect_fields={"refund": None}, refund=refund)

    def begin_deletion(self, job_id: str, tombstone: JobStatus, reason: str) -> bool:
        """Any state → deleted/expired, first of all: late webhooks and queued collects then drop their results.
        The record itself becomes a tombstone when everything is gone (retention); until then the reconciler
        finds it (a purge interrupted halfway is finished within a minute)."""
        assert tombstone in TOMBSTONES
        return self.store.update_job(job_id, status=tombstone, deletion_reason=reason)

    def record_deletion(self, job: Job, refund_due: int, refund_reason: str | None, receipt_id: str) -> bool:
        """DELETE by the owner: any state → deleted (a record still: `deleting` until the purge makes it a tombstone),
        with the refund it owes and its receipt, in one conditional write on the state it was read in, so the
        refund owed is computed from the job as it is. The reconciler finishes it (refund, then purge)."""
        expect_fields = {"refund": None} if job.refund is None else None
        fields: dict[str, Any] = {"deletion_reason": "user_request", "deletion_receipt": receipt_id}
        if refund_due:
            fields |= {"refund_due": refund_due, "refund_reason": refund_reason}
        return self.store.update_job(
            job.job_id, expect=[job.status], expect_fields=expect_fields, status=J.DELETED, **fields
        )

    def record_outside_refund(self, job: Job, refund: Refund) -> bool:
        """Not a status change: a refund made in Stripe's dashboard, found by the ledger (recorded once each)."""
        if any(r.refund_id == refund.refund_id for r in job.outside_refunds):
            return False
        return self.store.update_job(
            job.job_id,
            expect_fields={"outside_refunds": job.outside_refunds} if job.outside_refunds else None,
            outside_refunds=[*job.outside_refunds, refund],
        )

    def defer_dispatch(self, job_id: str, until: datetime) -> bool:
        """Not a status change: tells the reconciler that the job's planned slots have a dispatch coming."""
        return self.store.update_job(job_id, expect=[J.GENERATING], dispatch_retry_at=until)

    def _job(self, name: str, job_id: str, **fields: Any) -> bool:
        t = JOB_TRANSITIONS[name]
        return self.store.update_job(job_id, expect=t.sources, status=t.target, **fields)

    # --- slots -------------------------------------------------------------------------------------
    def top_up(self, job: Job, slots: Sequence[Prediction]) -> bool:
        """Add planned slots to a generating job; only the first of racing top-ups wins."""
        return self.store.add_slots(job.job_id, slots, expect_topups_used=job.topups_used, job_status=J.GENERATING)

    def claim(self, slot: Prediction, **fields: Any) -> Prediction | None:
        """planned → claimed, reserving one prediction of the job's budget (fails when it is spent).
        Returns the slot as claimed (with its new claim id), or None."""
        return self._claim("claim", slot, reserve=True, stale_before=None, **fields)

    def reclaim_stale(self, slot: Prediction, stale_before: datetime, **fields: Any) -> Prediction | None:
        """A claim older than `stale_before` whose dispatch died before recording a prediction: taken over. It
        reserves again: the first claim's prediction may exist (its create response lost), and the budget must
        count every prediction that may run."""
        return self._claim("reclaim_stale", slot, reserve=True, stale_before=stale_before, **fields)

    def _claim(
        self, name: str, slot: Prediction, reserve: bool, stale_before: datetime | None, **fields: Any
    ) -> Prediction | None:
        t = SLOT_TRANSITIONS[name]
        now = self.clock.now()
        fields |= {"claim_id": secrets.token_hex(8), "changed_at": now, "claimed_at": now}
        taken = self.store.claim_slot(
            slot.job_id,
            slot.slot,
            expect=t.sources,
            status=t.target,
            reserve=reserve,
            stale_before=stale_before,
            **fields,
        )
        return slot.model_copy(update={**fields, "status": t.target}) if taken else None

    def release(self, slot: Prediction) -> bool:
        """claimed → planned when the create call made nothing (429, 5xx): the reservation goes back."""
        t = SLOT_TRANSITIONS["release"]
        return self.store.release_slot(
            slot.job_id, slot.slot, expect=t.sources, status=t.target, changed_at=self.clock.now()
        )

    def record_created(self, slot: Prediction, prediction_id: str) -> bool:
        """claimed → starting with the prediction's id: from the create response, or adopted from the
        prediction's first webhook when the response was lost."""
        now = self.clock.now()
        return self._slot(
            "record_created", slot, prediction_id=prediction_id, created_at=now, attempts=slot.attempts + 1
        )

    def mark_processing(self, slot: Prediction) -> bool:
        return self._slot("mark_processing", slot)

    def record_outcome(self, slot: Prediction, outcome: str, **fields: Any) -> bool:
        return self._slot(OUTCOME_TRANSITION[outcome], slot, **fields)

    def mark_collected(
        self,
        slot: Prediction,
        results: list[int],
        predict_time: float | None,
        likeness: list[int] | None = None,
        drops: dict[str, int] | None = None,
        crops: list[int] | None = None,
    ) -> bool:
        """succeeded → collected, with the numbers of the results stored (the page reads them, not the bucket),
        their likeness, which have a LinkedIn-ready crop and what the output gate dropped."""
        t = SLOT_TRANSITIONS["mark_collected"]
        now = self.clock.now()
        return self.store.add_collected(
            slot.job_id,
            slot.slot,
            len(results),
            predict_time,
            expect=t.sources,
            status=t.target,
            changed_at=now,
            results=results,
            likeness=likeness or [],
            drops=drops or {},
            crops=crops or [],
        )

    def retry(self, slot: Prediction) -> bool:
        return self._slot("retry", slot, prediction_id=None, claimed_at=None, outputs=[])

    def out_of_budget(self, slot: Prediction) -> bool:
        """A slot with no prediction the job can no longer pay for (with the budget spent, nobody can claim it)."""
        return self._slot("out_of_budget", slot)  # keeps the last attempt's error: the reason it was needed

    def give_up(self, slot: Prediction, reason: str) -> bool:
        return self._slot("give_up", slot, error=reason[:500])

    def _slot(self, name: str, slot: Prediction, **fields: Any) -> bool:
        t = SLOT_TRANSITIONS[name]
        return self.store.update_slot(
            slot.job_id, slot.slot, expect=t.sources, status=t.target, changed_at=self.clock.now(), **fields
        )


def state_diagram() -> str:
    """The lifecycle as a Mermaid diagram (docs/architecture.md embeds it; a test checks it is current)."""
    lines = ["```mermaid", "stateDiagram-v2", "    direction LR", "    %% jobs"]
    lines += _edges(JOB_TRANSITIONS, "job_")
    lines += [f"    note right of job_{J.GENERATING}: any job state → {' / '.join(TOMBSTONES)} (DELETE, 48 h)"]
    lines.append("    %% slots (one PhotoMaker prediction each)")
    lines += _edges(SLOT_TRANSITIONS, "slot_")
    lines.append("```")
    return "\n".join(lines)


def _edges(table: dict[str, Transition], prefix: str) -> list[str]:
    edges = []
    for t in table.values():
        for source in t.sources:
            edges.append(f"    {prefix}{source} --> {prefix}{t.target}: {t.name}")
    return edges

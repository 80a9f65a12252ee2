"""What follows a job's end: the refund it is owed, then one email with the outcome and a private link.

The outcome write sets `aftercare_due`; `run` does what is left and clears it (at once from collect or the
reconciler that ended the job, else on the reconciler's next pass). The email is claimed before it is sent, so it
goes at most once per job and outcome; a bounce or a send error is counted, never retried into a second email,
and never fails the job. The address is forgotten when the aftercare ends.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from datetime import datetime

from portrait_studio.config import Settings
from portrait_studio.errors import NotificationFailed, PaymentProviderError, PaymentProviderUnavailable
from portrait_studio.models import Job, JobStatus
from portrait_studio.ports import Clock, JobStore, Metrics, Notifier, NullMetrics
from portrait_studio.services.finishing import images_of
from portrait_studio.services.jobs import hash_token, new_token
from portrait_studio.services.lifecycle import Lifecycle
from portrait_studio.services.payments import PaymentsService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str


def private_link(settings: Settings, job_id: str, token: str) -> str:
    """The job's page with its id and token in the fragment: browsers never send a fragment to a server."""
    return f"{settings.web_origin.rstrip('/')}/#job={job_id}&token={token}"


def _money(cents: int, currency: str) -> str:
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency.lower())
    return f"{symbol}{cents / 100:.2f}" if symbol else f"{cents / 100:.2f} {currency.upper()}"


def _when(moment: datetime) -> str:
    return moment.strftime("%d %B %Y, %H:%M UTC")


def outcome_email(job: Job, images: int, link: str, settings: Settings) -> Email:
    """The outcome in words, the private link, when everything is deleted and any refund. Nothing else: no photo,
    no presigned URL, no token outside the link."""
    target = settings.images_target
    refund = ""
    if job.refund_due and job.payment:
        amount = _money(job.refund_due, job.payment.currency)
        refund = f"We have refunded {amount} to your card; it can take 5-10 days to show on your statement."
    if job.status == JobStatus.READY:
        subject = f"Your {images} headshots are ready"
        lines = [f"Your {images} AI-generated headshots are ready.", "They are ordered by how much they look like you."]
    elif job.status == JobStatus.PARTIAL:
        subject = f"{images} of your {target} headshots are ready"
        lines = [f"We could make {images} of your {target} headshots.", job.failure_reason or "", refund]
    else:
        subject = "We could not make your headshots"
        lines = [job.failure_reason or "No headshots could be made.", refund]
    lines = [line for line in lines if line]
    deleted = f"Your photos and headshots are deleted on {_when(job.expires_at)}; download what you want to keep."
    private = "Anyone with this link can see and delete this job, so keep it to yourself:"
    text = "\n\n".join(["Hello,", *lines, f"{private}\n{link}", deleted, "Portrait Studio"]) + "\n"
    paragraphs = "".join(f"<p>{html.escape(line)}</p>" for line in ["Hello,", *lines])
    body = (
        f'{paragraphs}<p>{html.escape(private)}<br><a href="{html.escape(link)}">Open your headshots</a></p>'
        f"<p>{html.escape(deleted)}</p><p>Portrait Studio</p>"
    )
    return Email(subject=subject, text=text, html=f"<!doctype html><html><body>{body}</body></html>")


@dataclass
class Aftercare:
    settings: Settings
    store: JobStore
    clock: Clock
    payments: PaymentsService | None
    notifier: Notifier | None
    metrics: Metrics = field(default_factory=NullMetrics)

    def __post_init__(self) -> None:
        self.lifecycle = Lifecycle(self.store, self.clock)

    def run(self, job_id: str) -> bool:
        """Refund, then email, then done. False when something is left for the next pass (Stripe unreachable)."""
        job = self.store.get_job(job_id)
        if not isinstance(job, Job) or not job.aftercare_due:
            return True
        if job.refund_due and job.refund is None and self.payments is not None:
            try:
                self.payments.settle_refund(job_id)
            except (PaymentProviderUnavailable, PaymentProviderError) as exc:
                log.warning("refund not made yet (retried next pass): %s", exc.code)
                return False
            job = self.store.get_job(job_id)
            if not isinstance(job, Job):
                return True
        self._notify(job)
        self.lifecycle.end_aftercare(job_id)
        return True

    def _notify(self, job: Job) -> None:
        if not job.email or job.notified_outcome is not None or self.notifier is None:
            return
        token = new_token()
        if not self.lifecycle.claim_notification(job, hash_token(token)):
            return  # another pass sent it
        images = images_of(self.store.list_slots(job.job_id))
        email = outcome_email(job, images, private_link(self.settings, job.job_id, token), self.settings)
        try:
            self.notifier.send(job.email, email.subject, email.text, email.html)
        except NotificationFailed as exc:
            # Never the address: a bounce or refusal is counted and the job stays as it is.
            log.warning("outcome email not sent: %s", exc.message)
            self.metrics.count("EmailsFailed")
            return
        self.metrics.count("EmailsSent")

    def reconcile(self) -> dict[str, int]:
        """Every minute: finish the aftercare of jobs whose end was not followed through (a crash, an outage)."""
        summary = {"aftercare_done": 0, "aftercare_left": 0}
        for job_id in self.store.jobs_in_aftercare():
            try:
                done = self.run(job_id)
            except Exception:  # one job's trouble never stops the others: tried again next minute
                log.exception("aftercare failed")
                done = False
            summary["aftercare_done" if done else "aftercare_left"] += 1
        return summary

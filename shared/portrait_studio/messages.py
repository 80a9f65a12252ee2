"""Bodies of the SQS messages between functions."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from portrait_studio.models import UtcDatetime

Id = Annotated[str, Field(pattern=r"^[0-9a-f]{16,32}$")]
SlotName = Annotated[str, Field(pattern=r"^[a-z_]+#\d{1,3}$")]
PredictionId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class NormalizeMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    job_id: Id
    file_id: Id
    round: int = 0


class DispatchMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    job_id: Id
    slots: Annotated[list[SlotName], Field(max_length=64)] | None = None
    attempt: Annotated[int, Field(ge=0)] = 0  # deferrals so far (throttling), for the back-off
    turn_at: UtcDatetime | None = None  # a create turn in the global line this message holds (pacing)
    # Only this: stop a prediction nothing will collect (an orphan the webhook receiver found). Dispatch does it
    # because it holds the Replicate token; the receiver does not.
    cancel: PredictionId | None = None


class CollectMessage(BaseModel):
    """A slot to collect, or (`aftercare`) a job's refund and email: a job dispatch ended gets them here, where
    the Stripe key and the SES grant are."""

    model_config = ConfigDict(extra="ignore")
    job_id: Id
    slot: SlotName | None = None
    aftercare: bool = False

    @model_validator(mode="after")
    def _one_thing(self) -> CollectMessage:
        if (self.slot is None) == (not self.aftercare):
            raise ValueError("a collect message names a slot or asks for aftercare, not both")
        return self

"""Bodies of the SQS messages between functions."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from portrait_studio.models import UtcDatetime

Id = Annotated[str, Field(pattern=r"^[0-9a-f]{16,32}$")]
SlotName = Annotated[str, Field(pattern=r"^[a-z_]+#\d{1,3}$")]


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


class CollectMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    job_id: Id
    slot: SlotName

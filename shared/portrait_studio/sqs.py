"""What every SQS consumer does first: read the record's body as its message model."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

Message = TypeVar("Message", bound=BaseModel)


def parse_message(body: str, model: type[Message], logger: Any, message_id: str) -> Message | None:
    """The message, or None for a malformed one: logged and dropped, since retrying cannot fix it."""
    try:
        message = model.model_validate_json(body)
    except ValidationError:
        logger.error("dropping a malformed message", extra={"message_id": message_id})
        return None
    logger.set_correlation_id(getattr(message, "job_id", None))
    return message

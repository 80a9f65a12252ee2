"""DynamoDB's item values written straight into moto's responses: the same JSON, a fraction of the CPU.

moto serializes every response by walking botocore's output shape, so each attribute of each item returned is a
dozen method calls; on the local stack that walk was a fifth of the stack process's CPU in a whole job (py-spy),
most of it on queries returning a job's slots and results. An AttributeValue holding a string, a number, a boolean
or a set of strings or numbers is already exactly what the walk would write, so it is copied as is; maps, lists and
binary values (base64 on the wire) still take moto's own path. tests/integration/test_dynamodb_serializer.py
checks both paths write the same JSON for every kind of value.
"""

from __future__ import annotations

from functools import wraps
from typing import Any

_MARK = "_portrait_studio_direct_attribute_values"
_TEXT = {"S", "N"}
_FLAGS = {"BOOL", "NULL"}
_TEXT_SETS = {"SS", "NS"}


def written_as_is(value: Any) -> bool:
    """An AttributeValue that the shape walk would copy unchanged: {"S": str}, {"BOOL": bool}, {"SS": [str]}..."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    if kind in _TEXT:
        return isinstance(inner, str)
    if kind in _FLAGS:
        return isinstance(inner, bool)
    if kind in _TEXT_SETS:
        return isinstance(inner, list) and all(isinstance(member, str) for member in inner)
    return False


def write_attribute_values_directly() -> None:
    """Copy plain AttributeValues into moto's JSON responses in this process (idempotent)."""
    from moto.core.serialize import BaseJSONSerializer

    walk = BaseJSONSerializer._serialize_type_structure
    if getattr(walk, _MARK, False):
        return

    @wraps(walk)
    def serialize_type_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.name == "AttributeValue" and written_as_is(value):
            serialized[key] = dict(value)
            return
        walk(self, serialized, value, shape, key)

    setattr(serialize_type_structure, _MARK, True)
    BaseJSONSerializer._serialize_type_structure = serialize_type_structure  # type: ignore[method-assign]

"""The local stack's shortcut through moto's response serializer writes exactly the JSON moto's own walk writes."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from infra.local.dynamodb_serializer import write_attribute_values_directly, written_as_is

pytestmark = pytest.mark.integration

# Every kind of AttributeValue, nested too, as moto's backend hands them to the serializer.
ITEM: dict[str, Any] = {
    "pk": {"S": "JOB#abc"},
    "empty": {"S": ""},
    "count": {"N": "42"},
    "fraction": {"N": "-0.125"},
    "yes": {"BOOL": True},
    "no": {"BOOL": False},
    "nothing": {"NULL": True},
    "names": {"SS": ["a", "b"]},
    "numbers": {"NS": ["1", "2.5"]},
    "blob": {"B": b"\x00\x01binary"},
    "blobs": {"BS": [b"x", b"y"]},
    "list": {"L": [{"S": "u"}, {"N": "1"}, {"M": {"deep": {"L": [{"BOOL": True}]}}}]},
    "map": {"M": {"a": {"S": "b"}, "c": {"NULL": True}, "d": {"SS": ["e"]}}},
}


def serialized(result: dict[str, Any], operation: str) -> dict[str, Any]:
    from moto.core.serialize import JSONSerializer, XFormedAttributePicker
    from moto.core.utils import get_service_model

    serializer = JSONSerializer(
        operation_model=get_service_model("dynamodb").operation_model(operation),
        pretty_print=False,
        value_picker=XFormedAttributePicker(response_transformers=None),
    )
    response: dict[str, Any] = serializer.serialize(result)
    return response


@pytest.mark.parametrize(
    ("operation", "result"),
    [
        (
            "Query",
            {
                "Count": 2,
                "ScannedCount": 3,
                "Items": [ITEM, {"pk": {"S": "x"}}],
                "LastEvaluatedKey": {"pk": {"S": "x"}},
            },
        ),
        ("GetItem", {"Item": ITEM}),
        ("UpdateItem", {"Attributes": ITEM}),
        ("Scan", {"Count": 0, "ScannedCount": 0, "Items": []}),
    ],
)
def test_the_same_json_as_motos_walk(operation: str, result: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.core.serialize import BaseJSONSerializer

    write_attribute_values_directly()
    direct = serialized(result, operation)
    walk = BaseJSONSerializer._serialize_type_structure.__wrapped__  # moto's own
    monkeypatch.setattr(BaseJSONSerializer, "_serialize_type_structure", walk)
    walked = serialized(result, operation)
    assert (direct["status_code"], direct["headers"]) == (walked["status_code"], walked["headers"])
    assert json.loads(direct["body"]) == json.loads(walked["body"])


def test_only_plain_values_take_the_shortcut() -> None:
    assert all(written_as_is(value) for value in ({"S": ""}, {"N": "1"}, {"BOOL": False}, {"NULL": True}, {"NS": []}))
    for value in ({"B": b"x"}, {"BS": [b"x"]}, {"L": []}, {"M": {}}, {"N": 1}, {"S": "a", "N": "1"}, "S", None):
        assert not written_as_is(value), value


def test_items_of_every_kind_go_through_the_stack_and_back(moto_url: str) -> None:
    """Through boto3 and the moto server the stack runs (the shortcut applied by the session's moto fixture)."""
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_url)
    client.create_table(
        TableName="serializer-roundtrip",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.put_item(TableName="serializer-roundtrip", Item=ITEM)
    got = client.get_item(TableName="serializer-roundtrip", Key={"pk": {"S": "JOB#abc"}}, ConsistentRead=True)["Item"]
    # boto3 hands sets back as lists in whatever order; everything else exactly as written.
    for name in ("names", "numbers", "blobs"):
        (kind,) = got[name]
        assert sorted(got.pop(name)[kind]) == sorted(ITEM[name][kind])
    assert got == {k: v for k, v in ITEM.items() if k not in ("names", "numbers", "blobs")}

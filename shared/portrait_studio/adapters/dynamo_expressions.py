"""DynamoDB condition and update expressions for the job store's writes, and the transaction actions built
from them. Each builder adds its attribute names and values to the maps it is given, so several can share
one expression without clashing placeholders (#f… fields, #c… conditions, :e… expected statuses)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from portrait_studio.adapters.dynamo_items import META, attribute_value, job_pk
from portrait_studio.models import JobStatus

__all__ = ["conditional_update", "status_check", "status_in", "update_expression"]


def status_in(expect: Iterable[str], names: dict[str, str], values: dict[str, Any]) -> str:
    """The condition `status IN (...)`, its names and values added to the expression's maps."""
    options = []
    for i, expected in enumerate(expect):
        values[f":e{i}"] = str(expected)
        options.append(f":e{i}")
    names["#status"] = "status"
    return f"#status IN ({', '.join(options)})"


def update_expression(fields: Mapping[str, Any], names: dict[str, str], values: dict[str, Any]) -> str:
    """SET for values, REMOVE for None; names and values added to the expression's maps."""
    sets, removes = [], []
    for i, (name, value) in enumerate(fields.items()):
        names[f"#f{i}"] = name
        if value is None:
            removes.append(f"#f{i}")
        else:
            values[f":f{i}"] = attribute_value(value)
            sets.append(f"#f{i} = :f{i}")
    expression = ""
    if sets:
        expression += "SET " + ", ".join(sets)
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    return expression.strip()


def conditional_update(
    table_name: str,
    pk: str,
    sk: str,
    expect: Iterable[str],
    fields: Mapping[str, Any],
    extra_condition: str | None = None,
    job: bool = False,
) -> dict[str, Any]:
    """A transaction's update of an existing item whose status is one of `expect`."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {":job": "job"} if job else {}
    condition = ["attribute_exists(pk)", status_in(expect, names, values)]
    if extra_condition:
        condition.append(extra_condition)
    expression = update_expression(fields, names, values)
    update: dict[str, Any] = {
        "TableName": table_name,
        "Key": {"pk": pk, "sk": sk},
        "UpdateExpression": expression,
        "ConditionExpression": " AND ".join(condition),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    return {"Update": update}


def status_check(table_name: str, job_id: str, status: JobStatus) -> dict[str, Any]:
    """A transaction's check that the job is (still) in a status."""
    return {
        "ConditionCheck": {
            "TableName": table_name,
            "Key": {"pk": job_pk(job_id), "sk": META},
            "ConditionExpression": "#status = :status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":status": status.value},
        }
    }

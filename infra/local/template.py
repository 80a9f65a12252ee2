"""Reads `template.yaml` so the local stack takes its routes, queues, tables and schedules from it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


# libyaml's parser when PyYAML has it (its wheels do): the same documents, 17x faster on template.yaml.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CfnLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """SafeLoader that keeps CloudFormation short tags (`!Ref X` → {"Ref": "X"})."""


def _construct(loader: Any, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct)  # type: ignore[no-untyped-call]


def load_template(path: Path | None = None) -> dict[str, Any]:
    with (path or ROOT / "template.yaml").open() as handle:
        data: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return data


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway form: /jobs/{id}
    function: str

    @property
    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\{([^}/]+)\}", r"(?P<\1>[^/]+)", self.path)
        return re.compile(f"^{regex}$")

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class QueueSource:
    function: str
    queue: str  # logical id
    batch_size: int
    maximum_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency of the event source mapping


@dataclass(frozen=True)
class Schedule:
    function: str
    name: str
    expression: str
    input: dict[str, Any] | None


@dataclass
class LocalTemplate:
    raw: dict[str, Any]
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    queue_sources: list[QueueSource] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path | None = None) -> LocalTemplate:
        import json

        raw = load_template(path)
        self = cls(raw=raw)
        for logical_id, resource in raw.get("Resources", {}).items():
            kind = resource.get("Type")
            props = resource.get("Properties", {}) or {}
            if kind == "AWS::Serverless::Function":
                self.functions[logical_id] = props
                for event_name, event in (props.get("Events") or {}).items():
                    spec = event.get("Properties", {}) or {}
                    if event["Type"] == "HttpApi":
                        self.routes.append(Route(spec["Method"].upper(), spec["Path"], logical_id))
                    elif event["Type"] == "SQS":
                        queue = spec["Queue"]
                        queue_id = queue["Fn::GetAtt"][0] if isinstance(queue, dict) else queue
                        self.queue_sources.append(
                            QueueSource(logical_id, queue_id, int(spec.get("BatchSize", 10)), _cap(spec))
                        )
                    elif event["Type"] == "Schedule":
                        payload = spec.get("Input")
                        self.schedules.append(
                            Schedule(logical_id, event_name, spec["Schedule"], json.loads(payload) if payload else None)
                        )
            elif kind == "AWS::Lambda::EventSourceMapping":  # SQS sources (a SAM SQS event would grant every queue)
                function, queue = props["FunctionName"], props["EventSourceArn"]
                self.queue_sources.append(
                    QueueSource(function["Ref"], queue["Fn::GetAtt"][0], int(props.get("BatchSize", 10)), _cap(props))
                )
            elif kind == "AWS::SQS::Queue":
                self.queues[logical_id] = props
            elif kind == "AWS::DynamoDB::Table":
                self.tables[logical_id] = props
        return self

    def handler_path(self, function: str) -> Path:
        props = self.functions[function]
        code_uri = props.get("CodeUri") or self.raw.get("Globals", {}).get("Function", {}).get("CodeUri")
        module = (props.get("Handler") or "app.lambda_handler").split(".")[0]
        return ROOT / str(code_uri) / f"{module}.py"

    def handler_name(self, function: str) -> str:
        return str((self.functions[function].get("Handler") or "app.lambda_handler").split(".")[-1])


def _cap(properties: dict[str, Any]) -> int | None:
    scaling = properties.get("ScalingConfig") or {}
    return int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None

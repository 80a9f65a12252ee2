"""Each function's IAM role as SAM deploys it, resolved to the local stack's resources, and evaluated.

`Roles.from_template()` translates `template.yaml` offline with the SAM translator (the one `sam deploy` runs),
takes every function's execution role — its inline policies and the AWS managed policies SAM attaches (their
documents from moto's copy of AWS's managed-policy data) — and resolves `Ref`, `Fn::GetAtt`, `Fn::Sub`,
`Fn::If`, ... to the local stack's names and ARNs. `Roles.allows(function, action, resource)` is IAM's
identity-policy evaluation for one request: an explicit Deny wins, else some Allow must match both the action
and the resource (wildcards `*` and `?`, actions case-insensitive); no Allow is an implicit deny.

Conditions: the template's only ones are `kms:ViaService` on kms:Decrypt, and SSM decrypts inside moto with
no KMS call; so a conditional Allow never matches and a conditional Deny always does (stricter, never looser).
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local.template import ROOT

MANAGED_POLICY_ARN = re.compile(r"^arn:aws:iam::aws:policy/(?:.*/)?(?P<name>[^/]+)$")
NO_VALUE = object()


class _OfflinePolicyLoader:
    """The translator only needs the ARNs of AWS managed policies it may attach: no IAM call."""

    def load(self) -> dict[str, str]:
        names = {
            "AWSLambdaBasicExecutionRole": "service-role/",
            "AWSXrayWriteOnlyAccess": "",
            "AWSLambdaSQSQueueExecutionRole": "service-role/",
            "AWSLambdaDynamoDBExecutionRole": "service-role/",
            "AWSLambdaVPCAccessExecutionRole": "service-role/",
        }
        return {name: f"arn:aws:iam::aws:policy/{path}{name}" for name, path in names.items()}


def translate(template_path: Path | None = None, region: str = "us-east-1") -> dict[str, Any]:
    """The CloudFormation template SAM would deploy (local code paths stand in for `sam package`'s S3 URIs)."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.yaml_helper import yaml_parse

    template = yaml_parse((template_path or ROOT / "template.yaml").read_text())
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = "s3://bucket/function.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = "s3://bucket/layer.zip"
    # The translator asks a boto3 session only for the region (pseudo parameters), never for credentials.
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    policies = _OfflinePolicyLoader().load()
    translated: dict[str, Any] = translator.translate(
        template, parameter_values={}, get_managed_policy_map=lambda: policies
    )
    return translated


def managed_policy_document(arn: str) -> dict[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    found = MANAGED_POLICY_ARN.match(arn)
    policies = json.loads(aws_managed_policies_data)
    if not found or found["name"] not in policies:
        raise KeyError(f"unknown AWS managed policy {arn}: the local stack cannot know what it allows")
    document: dict[str, Any] = policies[found["name"]]["Document"]
    return document


@dataclass
class Resolver:
    """Resolves CloudFormation intrinsics against the local stack: parameters, pseudo parameters, resources."""

    parameters: Mapping[str, Any]
    conditions: Mapping[str, Any]
    ref: Callable[[str], str]
    get_att: Callable[[str, str], str]
    _condition_values: dict[str, bool] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key.startswith("Fn::") or key == "Condition":
                return self._function(key, arg)
        return {k: r for k, r in ((k, self.resolve(v)) for k, v in value.items()) if r is not NO_VALUE}

    def condition(self, name: str) -> bool:
        if name not in self._condition_values:
            self._condition_values[name] = bool(self.resolve(self.conditions[name]))
        return self._condition_values[name]

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        return self.ref(name)

    def _function(self, key: str, arg: Any) -> Any:
        if key == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.get_att(logical, attribute)
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(self._sub_variable(m.group(1), variables)), text)
        if key == "Fn::If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(name) else when_false)
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Equals":
            left, right = self.resolve(arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(arg)[0]
        if key == "Fn::And":
            return all(self.resolve(arg))
        if key == "Fn::Or":
            return any(self.resolve(arg))
        if key == "Fn::Join":
            separator, parts = arg
            return separator.join(str(p) for p in self.resolve(parts))
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::Split":
            separator, text = arg
            return str(self.resolve(text)).split(separator)
        raise ValueError(f"the local stack cannot resolve {key} in a role policy")

    def _sub_variable(self, name: str, variables: Mapping[str, Any]) -> Any:
        if name in variables:
            return variables[name]
        if "." in name:
            logical, attribute = name.split(".", 1)
            return self.get_att(logical, attribute)
        return self._ref(name)


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    not_actions: bool = False
    conditions: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Statement:
        not_actions = "NotAction" in raw
        actions = raw.get("NotAction" if not_actions else "Action", [])
        resources = raw.get("Resource", "*")
        return cls(
            effect=raw["Effect"],
            actions=tuple(_listed(actions)),
            resources=tuple(_listed(resources)),
            not_actions=not_actions,
            conditions=raw.get("Condition") or {},
        )

    def matches(self, action: str, resource: str) -> bool:
        named = any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in self.actions)
        if named == self.not_actions:
            return False
        if not any(_resource_matches(pattern, resource) for pattern in self.resources):
            return False
        # Conditions are not evaluated: a conditional Allow never matches, a conditional Deny always does.
        return self.effect == "Deny" or not self.conditions


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _resource_matches(pattern: str, resource: str) -> bool:
    # IAM ARN globbing: `*` and `?` match within and across segments; nothing else is special.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, resource) is not None


@dataclass
class Role:
    name: str
    statements: list[Statement]

    def allows(self, action: str, resource: str) -> bool:
        matching = [s for s in self.statements if s.matches(action, resource)]
        return any(s.effect == "Allow" for s in matching) and not any(s.effect == "Deny" for s in matching)

    def grants(self) -> set[tuple[str, str]]:
        """Every (action, resource) pair an Allow names, for the written grants table."""
        return {(a, r) for s in self.statements if s.effect == "Allow" for a in s.actions for r in s.resources}


class Roles:
    """Every function's execution role, resolved to local resources."""

    def __init__(self, roles: Mapping[str, Role]) -> None:
        self.roles = dict(roles)

    def allows(self, function: str, action: str, resource: str) -> bool:
        return self.roles[function].allows(action, resource)

    def role_arn(self, function: str, account: str) -> str:
        return f"arn:aws:iam::{account}:role/{self.roles[function].name}"

    @classmethod
    def from_translated(cls, translated: Mapping[str, Any], resolver: Resolver) -> Roles:
        resources = translated["Resources"]
        roles: dict[str, Role] = {}
        for logical, resource in resources.items():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            role_ref = resource["Properties"]["Role"]
            role_logical = role_ref["Fn::GetAtt"][0]
            role_props = resources[role_logical]["Properties"]
            statements: list[Statement] = []
            for arn in resolver.resolve(copy.deepcopy(role_props.get("ManagedPolicyArns", []))):
                statements += _statements(managed_policy_document(arn))
            for policy in role_props.get("Policies", []):
                statements += _statements(resolver.resolve(copy.deepcopy(policy["PolicyDocument"])))
            roles[logical] = Role(name=role_logical, statements=statements)
        return cls(roles)


def _statements(document: Mapping[str, Any]) -> Iterable[Statement]:
    raw = document.get("Statement", [])
    return [Statement.parse(s) for s in ([raw] if isinstance(raw, dict) else raw)]

"""Environments cannot cross: every secret name a deployed function is given, or may read, resolves under its own
environment's /portrait-studio/<env>/ prefix, for every environment samconfig.toml deploys."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_template import FUNCTIONS, function_props, statements, template

ROOT = Path(__file__).resolve().parents[2]
SUB_VARIABLE = re.compile(r"\$\{([\w:]+)\}")
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}


def environments() -> dict[str, dict[str, str]]:
    """Each samconfig environment's parameter overrides (what `sam deploy --config-env <env>` passes)."""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    found = {}
    for env, commands in config.items():
        if not isinstance(commands, dict) or "deploy" not in commands:
            continue
        overrides = commands["deploy"]["parameters"].get("parameter_overrides", "")
        found[env] = dict(item.split("=", 1) for item in shlex.split(overrides))
    return found


def resolve(node: Any, parameters: dict[str, str]) -> str:
    """A Ref or Sub of parameters (and pseudo parameters) as CloudFormation would resolve it."""
    if isinstance(node, str):
        return node
    if "Ref" in node:
        return parameters[node["Ref"]]
    if "Fn::Sub" in node:
        return SUB_VARIABLE.sub(lambda m: PSEUDO.get(m.group(1)) or parameters[m.group(1)], node["Fn::Sub"])
    raise AssertionError(f"cannot resolve {node}")


def parameter_values(overrides: dict[str, str]) -> dict[str, str]:
    defaults = {name: str(p.get("Default", "")) for name, p in template()["Parameters"].items()}
    return defaults | overrides


def secret_names(function: str, parameters: dict[str, str]) -> set[str]:
    """The SSM parameter names a function is told of (its *_PARAM variables) and may read (its IAM grants)."""
    names = set()
    for key, value in function_props(function)["Environment"]["Variables"].items():
        if key.endswith("_PARAM"):
            names.add(resolve(value, parameters))
    for st in statements(function):
        if any(str(a).startswith("ssm:") for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])):
            for res in st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]:
                arn = resolve(res, parameters)
                names.add(arn.split(":parameter", 1)[1])
    return names


def test_samconfig_deploys_prod_and_staging_under_their_own_names() -> None:
    envs = environments()
    assert set(envs) >= {"default", "staging"}
    assert envs["default"].get("Environment") == "prod"
    assert envs["staging"].get("Environment") == "staging"


@pytest.mark.parametrize("config_env", sorted(environments()))
def test_every_secret_resolves_under_its_own_environment(config_env: str) -> None:
    parameters = parameter_values(environments()[config_env])
    env = parameters["Environment"]
    for function in FUNCTIONS:
        names = secret_names(function, parameters)
        assert names, function
        stray = sorted(n for n in names if not n.startswith(f"/portrait-studio/{env}/"))
        assert stray == [], f"{config_env} ({env}): {function} names secrets of another environment"


def test_no_parameter_but_environment_can_move_a_secret_name() -> None:
    """Crossing must be impossible, not merely absent from today's samconfig: only Environment shapes the names."""
    for function in FUNCTIONS:
        nodes = [v for k, v in function_props(function)["Environment"]["Variables"].items() if k.endswith("_PARAM")]
        nodes += [r for st in statements(function) if "ssm:GetParameter" in str(st["Action"]) for r in st["Resource"]]
        for node in nodes:
            assert set(node) == {"Fn::Sub"}, (function, node)
            variables = set(SUB_VARIABLE.findall(node["Fn::Sub"])) - set(PSEUDO)
            assert variables == {"Environment"}, (function, node)
            assert "/portrait-studio/${Environment}/" in node["Fn::Sub"], (function, node)

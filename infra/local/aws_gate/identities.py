"""Who is calling, locally: each function's execution role and keys, its event source's, the stack's own.

Every function process gets an access key of its own (its role, as Lambda hands a function its role's
session credentials), each queue poller the key of its function's event source mapping (Lambda polls with
the function's role), and the stack's set-up and operator commands the admin key. The roles are the
template's, translated by SAM and resolved to the local names and ARNs here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.local.aws_gate.gate import Caller
from infra.local.aws_gate.iam import Resolver, Roles, translate

ADMIN_KEY = "testing"  # the stack's own set-up calls and the operator CLI: what `aws configure` would be locally
LOCAL_SECRET = "local-secret"  # noqa: S105 - moto checks no signature; the key id alone names the caller
EVENT_SOURCE_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


def enforced() -> bool:
    """IAM is enforced unless `PORTRAIT_LOCAL_IAM=off` (for debugging only)."""
    return os.environ.get("PORTRAIT_LOCAL_IAM", "on").strip().lower() not in ("off", "0", "false", "no")


class LocalIdentities:
    def __init__(
        self,
        template_path: Path | None,
        functions: list[str],
        parameters: Mapping[str, str],
        names: Mapping[str, str],
        arns: Mapping[str, str],
    ) -> None:
        """`parameters`: local values for the template's parameters; `names`/`arns`: each resource's local
        `Ref` and `Arn`, by logical id."""
        translated = translate(template_path)
        values: dict[str, Any] = {}
        for name, spec in (translated.get("Parameters") or {}).items():
            values[name] = parameters.get(name, str(spec.get("Default", f"local-{name}")))
        values.update(
            {
                "AWS::Region": parameters["AWS::Region"],
                "AWS::AccountId": parameters["AWS::AccountId"],
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::StackName": "portrait-studio-local",
            }
        )
        self.parameters = values
        resolver = Resolver(
            parameters=values,
            conditions=translated.get("Conditions") or {},
            ref=lambda logical: names.get(logical, logical),
            get_att=lambda logical, attribute: arns.get(logical, f"arn:aws:local:::{logical}/{attribute}"),
        )
        self.roles = Roles.from_translated(translated, resolver)
        missing = set(functions) - set(self.roles.roles)
        if missing:
            raise RuntimeError(f"no execution role found for {sorted(missing)}")

    @staticmethod
    def key_of(function: str) -> str:
        return f"LOCAL-{function}"

    @staticmethod
    def event_source_key_of(function: str) -> str:
        return f"LOCAL-ESM-{function}"

    def credentials_for(self, function: str) -> dict[str, str]:
        """The environment Lambda gives `function`'s process for its role."""
        return {"AWS_ACCESS_KEY_ID": self.key_of(function), "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET}

    def callers(self) -> dict[str, Caller]:
        callers = {ADMIN_KEY: Caller("admin")}
        for function in self.roles.roles:
            callers[self.key_of(function)] = Caller("function", function)
            callers[self.event_source_key_of(function)] = Caller("event_source", function)
        return callers

    def check_event_source(self, function: str, queue_arn: str) -> None:
        """As `CreateEventSourceMapping` does at deploy: the function's role must let Lambda poll its queue."""
        missing = [a for a in EVENT_SOURCE_ACTIONS if not self.roles.allows(function, a, queue_arn)]
        if missing:
            raise RuntimeError(
                f"{function}'s role cannot be given its queue {queue_arn}: it lacks {', '.join(missing)} "
                "(CloudFormation would fail creating the event source mapping)"
            )

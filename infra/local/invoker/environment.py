"""The process environment of one function on the local stack: what its template gives it, plus what Lambda sets.

Deployed, a function sees only the variables of `Globals.Function.Environment` and its own `Environment`,
and the ones the Lambda runtime adds; so does its local worker process. The local-only exceptions, each
because a deployed function would not need it:
- `LOCAL_ENDPOINT_VARIABLES`: where the emulated services listen (deployed, the defaults are the real ones);
- test tunables: `PORTRAIT_*` variables in the stack's own environment that name a `Settings` field the template
  sets for no function (the e2e tests start the stack with shortened timings that way).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from infra.local.invoker.spec import FunctionSpec
from infra.local.template import ROOT, LocalTemplate

# Deployed, these keep their defaults (AWS's and Replicate's and Stripe's endpoints, R2's `auto` region).
LOCAL_ENDPOINT_VARIABLES = (
    "PORTRAIT_AWS_ENDPOINT_URL",
    "PORTRAIT_R2_REGION",
    "PORTRAIT_REPLICATE_API_URL",
    "PORTRAIT_STRIPE_API_URL",
)
PYTHON_RUNTIME = "python3.12"


def function_setting(template: LocalTemplate, function: str, name: str, default: Any) -> Any:
    """A function property as SAM reads it: the function's own, else `Globals.Function`'s, else `default`."""
    props = template.functions[function]
    if name in props:
        return props[name]
    return template.raw.get("Globals", {}).get("Function", {}).get(name, default)


def template_variables(template: LocalTemplate, function: str) -> dict[str, Any]:
    """The variables the template sets for `function` (Globals first, the function's own override them)."""
    globals_ = (template.raw.get("Globals", {}).get("Function", {}).get("Environment") or {}).get("Variables", {})
    own = (template.functions[function].get("Environment") or {}).get("Variables", {})
    return {**globals_, **own}


def all_template_variables(template: LocalTemplate) -> set[str]:
    names: set[str] = set()
    for function in template.functions:
        names |= set(template_variables(template, function))
    return names


def local_tunables(template: LocalTemplate, stack_environ: Mapping[str, str]) -> dict[str, str]:
    """`PORTRAIT_*` settings from the stack's own environment that no function's template sets: timings and
    limits a test shortens. A name the template sets is the template's to give, never passed this way."""
    from portrait_studio.config import Settings

    fields = {f"PORTRAIT_{name.upper()}" for name in Settings.model_fields}
    wired = all_template_variables(template) | set(LOCAL_ENDPOINT_VARIABLES)
    return {name: value for name, value in stack_environ.items() if name in fields - wired}


def function_environment(
    template: LocalTemplate,
    function: str,
    local_values: Mapping[str, str],
    credentials: Mapping[str, str],
    stack_environ: Mapping[str, str],
    region: str,
) -> dict[str, str]:
    """The whole environment of `function`'s worker process (`env=` of its Popen, nothing inherited)."""
    variables: dict[str, str] = {}
    for name, value in template_variables(template, function).items():
        if name.startswith("PORTRAIT_"):
            if name not in local_values:
                raise RuntimeError(f"template.yaml sets {name} for {function}; the local stack has no value for it")
            variables[name] = local_values[name]
        elif isinstance(value, str | int | float):
            variables[name] = str(value)
        else:
            raise RuntimeError(f"template.yaml sets {name} for {function} to {value!r}: no local value")
    memory = int(function_setting(template, function, "MemorySize", 128))
    handler = str(function_setting(template, function, "Handler", "app.lambda_handler"))
    today = datetime.now(UTC).strftime("%Y/%m/%d")
    lambda_set = {
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{today}/[$LATEST]{uuid.uuid4().hex}",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{PYTHON_RUNTIME}",
        "LAMBDA_TASK_ROOT": str(template.handler_path(function).parent),
        "_HANDLER": handler,
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        # The stack's PATH (tools the layer would ship are found there) and the layer's code, as /opt/python.
        "PATH": stack_environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "PYTHONPATH": f"{ROOT / 'shared'}:{ROOT}",
    }
    local_only = {name: local_values[name] for name in LOCAL_ENDPOINT_VARIABLES if name in local_values}
    return {
        **local_tunables(template, stack_environ),
        **local_only,
        **variables,
        **lambda_set,
        **{k: v for k, v in credentials.items() if k in _CREDENTIAL_NAMES},
    }


_CREDENTIAL_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def function_concurrency(template: LocalTemplate, function: str, local_cap: int) -> int:
    """How many invocations of `function` may run at once: its reserved concurrency, an SQS source's
    `ScalingConfig.MaximumConcurrency`, and the local cap (the machine's cores), whichever is least."""
    limits = [local_cap]
    reserved = function_setting(template, function, "ReservedConcurrentExecutions", None)
    if reserved is not None:
        limits.append(int(reserved))
    limits += [
        s.maximum_concurrency for s in template.queue_sources if s.function == function and s.maximum_concurrency
    ]
    return max(1, min(limits))


def function_spec(
    template: LocalTemplate,
    function: str,
    environment: dict[str, str],
    local_cap: int,
    timeout_cap_s: float | None = None,
) -> FunctionSpec:
    """What `function` runs with. `timeout_cap_s` shortens its Timeout (never lengthens it): the stack's queues
    have a shorter visibility timeout than the template's, and AWS requires a queue's visibility timeout to be at
    least the Timeout of the function it feeds."""
    timeout_s = float(function_setting(template, function, "Timeout", 3))
    return FunctionSpec(
        name=function,
        handler_file=template.handler_path(function),
        handler_name=template.handler_name(function),
        timeout_s=min(timeout_s, timeout_cap_s) if timeout_cap_s else timeout_s,
        memory_mb=int(function_setting(template, function, "MemorySize", 128)),
        environment=environment,
        concurrency=function_concurrency(template, function, local_cap),
    )

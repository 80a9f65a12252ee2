"""template.yaml: lint-clean, and the shape DESIGN.md promises (routes, queues, DLQs, alarms, schedules,
tables, runtimes, least-privilege IAM, no secrets). Fast: parses YAML and runs cfn-lint in-process."""

from __future__ import annotations

import json
import re
import string
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from portrait_studio.config import Settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


# ---------------------------------------------------------------------------------------------------
# A YAML loader that understands CloudFormation short tags (!Ref, !Sub, !GetAtt, !If, ...) and turns
# them into the long form ({"Ref": ...}, {"Fn::Sub": ...}, {"Fn::GetAtt": [resource, attribute]}).
# ---------------------------------------------------------------------------------------------------
class CfnLoader(yaml.SafeLoader):  # type: ignore[misc]  # (Any without types-pyyaml)
    """SafeLoader plus CloudFormation's intrinsic-function tags."""


CFN_TAGS = (
    "Ref", "Condition", "GetAtt", "Sub", "If", "Not", "Equals", "And", "Or", "Join", "Select", "Split",
    "FindInMap", "Base64", "Cidr", "ImportValue", "GetAZs", "Transform", "ToJsonString", "Length",
)  # fmt: skip


def _construct_cfn_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


for _tag in CFN_TAGS:
    CfnLoader.add_constructor(f"!{_tag}", lambda loader, node, _t=_tag: _construct_cfn_tag(loader, _t, node))


def load_cfn_yaml(text: str) -> dict[str, Any]:
    data = yaml.load(text, Loader=CfnLoader)  # noqa: S506 - a SafeLoader subclass
    assert isinstance(data, dict)
    return data


# ---------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------
@cache
def template() -> dict[str, Any]:
    return load_cfn_yaml(TEMPLATE.read_text())


def resources(kind: str | None = None) -> dict[str, dict[str, Any]]:
    res: dict[str, dict[str, Any]] = template()["Resources"]
    return {name: r for name, r in res.items() if kind is None or r["Type"] == kind}


def _merge_globals(glob: Any, local: Any) -> Any:
    """SAM's Globals rules: maps merge, lists are globals + local, scalars are overridden."""
    if isinstance(glob, dict) and isinstance(local, dict):
        merged = dict(glob)
        for key, value in local.items():
            merged[key] = _merge_globals(glob[key], value) if key in glob else value
        return merged
    if isinstance(glob, list) and isinstance(local, list):
        return glob + local
    return local


def function_props(name: str) -> dict[str, Any]:
    """A function's properties with Globals.Function applied."""
    glob = template().get("Globals", {}).get("Function", {})
    merged: dict[str, Any] = _merge_globals(glob, resources()[name]["Properties"])
    return merged


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def get_att(resource: str, attribute: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [resource, attribute]}


def events(function: str, kind: str) -> dict[str, dict[str, Any]]:
    evs = function_props(function).get("Events", {})
    return {name: ev["Properties"] for name, ev in evs.items() if ev["Type"] == kind}


def statements(function: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for policy in function_props(function).get("Policies", []):
        if isinstance(policy, dict) and "Statement" in policy:
            out.extend(policy["Statement"])
    return out


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)


FUNCTIONS = {
    # logical id: (code dir, timeout, memory)
    "ApiFunction": ("api", 15, 512),
    "WebhookFunction": ("webhook", 10, 256),
    "NormalizeFunction": ("normalize", 120, 4096),
    "DispatchFunction": ("dispatch", 60, 512),
    "CollectFunction": ("collect", 120, 1024),
    "ReconcileFunction": ("reconcile", 120, None),
    "ExpirySweepFunction": ("expiry_sweep", 900, 1024),
}
QUEUES = {"NormalizeQueue": "NormalizeFunction", "DispatchQueue": "DispatchFunction", "CollectQueue": "CollectFunction"}
# Secrets by their name under /portrait-studio/${Environment}/ (no parameter can point one elsewhere).
R2_PARAMS = {"r2-access-key-id", "r2-secret-access-key"}
C2PA_PARAMS = {"c2pa-signing-key", "c2pa-certificate-chain"}
SECRET_PARAMS = R2_PARAMS | C2PA_PARAMS | {"replicate-api-token", "replicate-webhook-secret"}


# ---------------------------------------------------------------------------------------------------
# Lint
# ---------------------------------------------------------------------------------------------------
def test_loader_understands_short_tags() -> None:
    doc = load_cfn_yaml(
        "a: !Ref X\nb: !GetAtt Q.Arn\nc: !Sub 'x-${Y}'\n"
        "d: !If [C, [!Ref Z], !Ref AWS::NoValue]\ne: !Not [!Equals [1, 2]]\n"
    )
    assert doc["a"] == {"Ref": "X"}
    assert doc["b"] == {"Fn::GetAtt": ["Q", "Arn"]}
    assert doc["c"] == {"Fn::Sub": "x-${Y}"}
    assert doc["d"] == {"Fn::If": ["C", [{"Ref": "Z"}], {"Ref": "AWS::NoValue"}]}
    assert doc["e"] == {"Fn::Not": [{"Fn::Equals": [1, 2]}]}


def test_cfn_lint_reports_no_errors_or_warnings() -> None:
    from cfnlint.api import lint

    matches = lint(TEMPLATE.read_text())
    problems = [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches if m.rule.id[0] in "EW"]
    assert problems == []


def _resource_refs(node: Any, names: set[str]) -> set[str]:
    """Resources a node depends on through Ref, Fn::GetAtt and Fn::Sub."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _resource_refs(item, names)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
            elif key == "Fn::Sub":
                text, local_vars = (value, {}) if isinstance(value, str) else (value[0], value[1])
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)} - set(local_vars)
                found |= _resource_refs(local_vars, names)
            else:
                found |= _resource_refs(value, names)
    return found & names


def test_no_circular_dependencies_including_sam_generated_ones() -> None:
    """cfn-lint validates the SAM template without translating it, so it cannot see that an HttpApi's routes
    point at its functions: a function that references the HttpApi (e.g. a global PORTRAIT_WEBHOOK_URL) is a
    cycle that only `sam deploy` would find. Model that implied edge and look for cycles."""
    names = set(resources())
    deps: dict[str, set[str]] = {}
    for name, res in resources().items():
        body = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function":  # its events become separate resources that depend on it
            body = {k: v for k, v in function_props(name).items() if k != "Events"}
        deps[name] = _resource_refs(body, names) | set(as_list(res.get("DependsOn", [])))
    for name in resources("AWS::Serverless::Function"):
        for props in events(name, "HttpApi").values():
            api = props.get("ApiId", {}).get("Ref", "ServerlessHttpApi")
            deps.setdefault(api, set()).add(name)

    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(deps.get(node, ())):
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, node])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(deps):
        if start not in state:
            assert visit(start, []) is None, f"dependency cycle: {' -> '.join(visit(start, []) or [])}"


# ---------------------------------------------------------------------------------------------------
# Functions, routes, schedules
# ---------------------------------------------------------------------------------------------------
def test_exactly_the_expected_functions() -> None:
    assert set(resources("AWS::Serverless::Function")) == set(FUNCTIONS)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_runtime_build_and_sizing(name: str) -> None:
    code_dir, timeout, memory = FUNCTIONS[name]
    props = function_props(name)
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]
    assert props["Handler"] == "app.lambda_handler"
    assert props["CodeUri"] == f"functions/{code_dir}/"
    assert props["Timeout"] == timeout
    if memory is not None:
        assert props["MemorySize"] == memory
    assert ref("SharedLayer") in props["Layers"]
    assert ref("DepsLayer") in props["Layers"]
    env = props["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "portrait-studio"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "PortraitStudio"
    assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"
    # Built by functions/<dir>/Makefile, so `sam build` needs no python3.12 and no Docker.
    assert resources()[name]["Metadata"]["BuildMethod"] == "makefile"
    makefile = ROOT / "functions" / code_dir / "Makefile"
    assert re.search(rf"^build-{name}:", makefile.read_text(), re.MULTILINE), f"{makefile} lacks build-{name}"


def test_every_runtime_and_architecture_is_python312_arm64() -> None:
    for res in resources().values():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::LayerVersion":
            assert props["CompatibleRuntimes"] == ["python3.12"]
            assert props["CompatibleArchitectures"] == ["arm64"]
            assert res["Metadata"]["BuildArchitecture"] == "arm64"
    for name in FUNCTIONS:
        assert function_props(name)["Runtime"] == "python3.12"
        assert function_props(name)["Architectures"] == ["arm64"]


EXPECTED_ROUTES = {
    ("POST", "/jobs"): "ApiFunction",
    ("POST", "/jobs/{id}/files"): "ApiFunction",
    ("DELETE", "/jobs/{id}/files/{file_id}"): "ApiFunction",
    ("POST", "/jobs/{id}/submit"): "ApiFunction",
    ("GET", "/jobs/{id}"): "ApiFunction",
    ("GET", "/jobs/{id}/archive"): "ApiFunction",
    ("POST", "/jobs/{id}/more"): "ApiFunction",
    ("POST", "/jobs/{id}/token"): "ApiFunction",
    ("DELETE", "/jobs/{id}"): "ApiFunction",
    ("GET", "/openapi.json"): "ApiFunction",
    ("GET", "/price"): "ApiFunction",
    ("POST", "/webhooks/stripe"): "ApiFunction",  # it deletes an expired checkout's photos: R2 keys
    ("POST", "/webhooks/replicate"): "WebhookFunction",
}


def test_http_routes_are_exactly_the_documented_ones() -> None:
    routes: dict[tuple[str, str], str] = {}
    for name in FUNCTIONS:
        for props in events(name, "HttpApi").values():
            assert props["ApiId"] == ref("HttpApi")
            key = (props["Method"].upper(), props["Path"])
            assert key not in routes, f"route {key} defined twice"
            routes[key] = name
    assert routes == EXPECTED_ROUTES


def test_local_only_clock_route_is_absent() -> None:
    """`/_local/clock` belongs to the local stack's gateway only; it must never be deployable."""
    assert "_local" not in TEMPLATE.read_text()


def test_http_api_cors_and_throttling() -> None:
    api = resources()["HttpApi"]
    assert api["Type"] == "AWS::Serverless::HttpApi"
    props = api["Properties"]
    assert props["CorsConfiguration"]["AllowOrigins"] == [ref("WebOrigin")]
    assert "*" not in json.dumps(props["CorsConfiguration"])
    throttle = props["DefaultRouteSettings"]
    assert throttle["ThrottlingBurstLimit"] > 0
    assert throttle["ThrottlingRateLimit"] > 0


def test_schedules() -> None:
    reconcile = events("ReconcileFunction", "Schedule")
    assert [p["Schedule"] for p in reconcile.values()] == ["rate(1 minute)", "cron(15 4 * * ? *)"]
    # The daily ledger runs in the reconciler (it holds the Stripe key), on an input of its own.
    assert [json.loads(p.get("Input", "{}")) for p in reconcile.values()] == [{}, {"mode": "ledger"}]
    # The time bound (every job terminal within max_generating_s) is computed from this period.
    settings = Settings()
    assert settings.reconcile_every_s == 60
    assert settings.max_generating_s > 2 * settings.reconcile_every_s + settings.reconcile_grace_s
    sweep = {p["Schedule"]: json.loads(p["Input"]) for p in events("ExpirySweepFunction", "Schedule").values()}
    assert sweep == {"rate(1 hour)": {"mode": "sweep"}, "cron(30 3 * * ? *)": {"mode": "audit"}}
    scheduled = {name for name in FUNCTIONS if events(name, "Schedule")}
    assert scheduled == {"ReconcileFunction", "ExpirySweepFunction"}


# ---------------------------------------------------------------------------------------------------
# Queues
# ---------------------------------------------------------------------------------------------------
EXPECTED_BATCH = {"NormalizeFunction": 2, "DispatchFunction": 1, "CollectFunction": 4}


def sqs_sources() -> list[dict[str, Any]]:
    """Event source mappings, not SAM `SQS` events: SAM would attach AWSLambdaSQSQueueExecutionRole (receive and
    delete on every queue of the account)."""
    return [r["Properties"] for r in resources("AWS::Lambda::EventSourceMapping").values()]


def test_sqs_event_sources_report_partial_batch_failures() -> None:
    consumers: dict[str, str] = {}
    for name in FUNCTIONS:
        assert events(name, "SQS") == {}, f"{name}: a SAM SQS event grants receive on every queue"
    for props in sqs_sources():
        name = props["FunctionName"]["Ref"]
        assert props.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], name
        assert props["BatchSize"] == EXPECTED_BATCH[name]
        queue = props["EventSourceArn"]["Fn::GetAtt"]
        assert queue[1] == "Arn"
        consumers[queue[0]] = name
    assert consumers == QUEUES


def test_visibility_timeout_is_at_least_six_times_the_consumer_timeout() -> None:
    for props in sqs_sources():
        queue = resources()[props["EventSourceArn"]["Fn::GetAtt"][0]]["Properties"]
        assert queue["VisibilityTimeout"] >= 6 * function_props(props["FunctionName"]["Ref"])["Timeout"]


def test_every_queue_has_a_dead_letter_queue_and_every_dlq_an_alarm() -> None:
    queues = resources("AWS::SQS::Queue")
    dlqs = {q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] for q in queues.values()
            if "RedrivePolicy" in q["Properties"]}  # fmt: skip
    assert set(queues) == set(QUEUES) | dlqs, "a queue is neither a source with a DLQ nor a DLQ"
    alarms = resources("AWS::CloudWatch::Alarm")
    for name in QUEUES:
        base = name.removesuffix("Queue")
        props = queues[name]["Properties"]
        assert props["RedrivePolicy"] == {
            "deadLetterTargetArn": get_att(f"{base}DeadLetterQueue", "Arn"),
            "maxReceiveCount": 5,
        }
        assert props["SqsManagedSseEnabled"] is True
        dlq = queues[f"{base}DeadLetterQueue"]["Properties"]
        assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
        assert dlq["SqsManagedSseEnabled"] is True
        assert dlq["MessageRetentionPeriod"] > props.get("MessageRetentionPeriod", 4 * 24 * 3600)
        alarm = alarms[f"{base}DeadLetterAlarm"]["Properties"]
        assert alarm["Namespace"] == "AWS/SQS"
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": get_att(f"{base}DeadLetterQueue", "QueueName")}]
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["Threshold"] == 0
        # Notifications only when a topic is given.
        assert alarm["AlarmActions"]["Fn::If"][0] == "HasAlarmTopic"
        assert alarm["AlarmActions"]["Fn::If"][1] == [ref("AlarmTopicArn")]


# ---------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------
def test_jobs_table() -> None:
    props = resources("AWS::DynamoDB::Table")["JobsTable"]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    attrs = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert attrs == {"pk": "S", "sk": "S", "expiry_hour": "S", "active_status": "S", "job_id": "S"}
    gsis = {g["IndexName"]: g for g in props["GlobalSecondaryIndexes"]}
    assert set(gsis) == {"by_expiry_hour", "by_active_status"}
    for index, hash_key in (("by_expiry_hour", "expiry_hour"), ("by_active_status", "active_status")):
        assert gsis[index]["KeySchema"] == [
            {"AttributeName": hash_key, "KeyType": "HASH"},
            {"AttributeName": "job_id", "KeyType": "RANGE"},
        ]
        assert gsis[index]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    # Backups would keep deleted records restorable past the 48-hour promise.
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is False
    assert props["SSESpecification"] == {"SSEEnabled": True}


def test_idempotency_table() -> None:
    props = resources("AWS::DynamoDB::Table")["IdempotencyTable"]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}


# ---------------------------------------------------------------------------------------------------
# Environment and parameters
# ---------------------------------------------------------------------------------------------------
GLOBAL_ENV = {
    "PORTRAIT_ENVIRONMENT": ref("Environment"),
    "PORTRAIT_R2_ENDPOINT_URL": ref("R2Endpoint"),
    "PORTRAIT_BUCKET": ref("R2Bucket"),
    "PORTRAIT_TABLE_NAME": ref("JobsTable"),
    "PORTRAIT_IDEMPOTENCY_TABLE_NAME": ref("IdempotencyTable"),
    "PORTRAIT_NORMALIZE_QUEUE_URL": ref("NormalizeQueue"),
    "PORTRAIT_DISPATCH_QUEUE_URL": ref("DispatchQueue"),
    "PORTRAIT_COLLECT_QUEUE_URL": ref("CollectQueue"),
    "PORTRAIT_REPLICATE_TOKEN_PARAM": {"Fn::Sub": "/portrait-studio/${Environment}/replicate-api-token"},
    "PORTRAIT_WEBHOOK_SECRET_PARAM": {"Fn::Sub": "/portrait-studio/${Environment}/replicate-webhook-secret"},
    "PORTRAIT_R2_ACCESS_KEY_ID_PARAM": {"Fn::Sub": "/portrait-studio/${Environment}/r2-access-key-id"},
    "PORTRAIT_R2_SECRET_ACCESS_KEY_PARAM": {"Fn::Sub": "/portrait-studio/${Environment}/r2-secret-access-key"},
    "PORTRAIT_PHOTOMAKER_VERSION": ref("PhotomakerVersion"),
    "PORTRAIT_REPLICATE_DEPLOYMENT": ref("ReplicateDeployment"),
    "PORTRAIT_WEB_ORIGIN": ref("WebOrigin"),
}


def test_environment_variables() -> None:
    global_env = template()["Globals"]["Function"]["Environment"]["Variables"]
    for key, value in GLOBAL_ENV.items():
        assert global_env[key] == value, key
    assert "PORTRAIT_WEBHOOK_URL" not in global_env  # would be a cycle through HttpApi's routes
    webhook_url = "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/webhooks/replicate"
    for name in FUNCTIONS:
        env = function_props(name)["Environment"]["Variables"]
        if name in ("DispatchFunction", "ReconcileFunction"):
            assert env["PORTRAIT_WEBHOOK_URL"] == {"Fn::Sub": webhook_url}
        else:
            assert "PORTRAIT_WEBHOOK_URL" not in env


def test_every_portrait_variable_is_a_settings_field() -> None:
    """Settings ignores unknown variables, so a typo here would silently fall back to a local default."""
    config = pytest.importorskip("portrait_studio.config")
    known = {f"PORTRAIT_{name.upper()}" for name in config.Settings.model_fields}
    for name in FUNCTIONS:
        portrait = {k for k in function_props(name)["Environment"]["Variables"] if k.startswith("PORTRAIT_")}
        assert portrait <= known, f"{name}: not Settings fields: {sorted(portrait - known)}"


def test_parameters() -> None:
    params = template()["Parameters"]
    assert params["Environment"]["Default"] == "prod"
    assert params["PhotomakerVersion"]["Default"] == "ddfc2b08d209f9fa8c1eca692712918bd449f695dabb4a958da31802a9570fe4"
    assert params["AlarmTopicArn"]["Default"] == ""
    assert params["ReplicateDeployment"]["Default"] == ""  # the pinned version, no deployment
    for name in ("R2Endpoint", "R2Bucket", "WebOrigin"):
        assert name in params
    # Secret names derive from Environment (tests/unit/test_environments.py): no parameter names a secret.
    assert not [name for name in params if name.endswith("Param")]


@pytest.mark.parametrize(
    "value", ["", "portrait-studio/photomaker", "Acme/photo_maker.v2", "acme", "acme/", "/photomaker", "a/b/c", "a b/c"]
)
def test_the_deployment_parameter_and_the_settings_accept_the_same_values(value: str) -> None:
    """Empty means no deployment; whatever CloudFormation lets through must be a deployment Settings takes."""
    template_accepts = re.fullmatch(template()["Parameters"]["ReplicateDeployment"]["AllowedPattern"], value)
    try:
        deployment = Settings(replicate_deployment=value).replicate_deployment
    except ValueError:
        settings_accept = False
    else:
        settings_accept = True
        assert deployment == (value or None)
    assert bool(template_accepts) == settings_accept


TOKEN_PATTERNS = (
    r"r8_[A-Za-z0-9]{16,}",  # Replicate API token
    r"whsec_[A-Za-z0-9+/=]{8,}",  # Standard Webhooks secret
    r"(AKIA|ASIA)[0-9A-Z]{16}",  # AWS access key id
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
)
PUBLIC_DEFAULTS = {"PhotomakerVersion"}  # a public model version id on Replicate


def test_no_plain_text_secret_in_the_template() -> None:
    text = TEMPLATE.read_text()
    for pattern in TOKEN_PATTERNS:
        assert not re.search(pattern, text), f"something like a secret ({pattern}) is in template.yaml"
    for name, param in template()["Parameters"].items():
        default = str(param.get("Default", ""))
        if name in PUBLIC_DEFAULTS:
            continue
        assert not re.search(r"[A-Za-z0-9+_=]{24,}", default), f"parameter {name} has a token-like default"
        if name in SECRET_PARAMS or re.search(r"secret|token|password|key", name, re.IGNORECASE):
            assert default.startswith("/") or default == "", f"{name} must default to an SSM parameter name"
    env = template()["Globals"]["Function"]["Environment"]["Variables"]
    for key, value in env.items():
        if re.search(r"SECRET|TOKEN|PASSWORD|ACCESS_KEY", key):
            assert key.endswith("_PARAM"), f"{key} must carry a parameter name"
            assert isinstance(value, dict), f"{key} must reference a template parameter"


# ---------------------------------------------------------------------------------------------------
# IAM: least privilege
# ---------------------------------------------------------------------------------------------------
STRIPE_PARAMS = {"stripe-secret-key", "stripe-webhook-secret"}
EXPECTED_SSM = {
    # The Replicate token only to cancel on DELETE; Stripe's webhook secret: the Stripe webhook is served here.
    "ApiFunction": R2_PARAMS | {"replicate-api-token"} | STRIPE_PARAMS,
    "WebhookFunction": {"replicate-webhook-secret"},
    "NormalizeFunction": R2_PARAMS,  # it decodes untrusted images: no payment key
    "DispatchFunction": R2_PARAMS | {"replicate-api-token"},
    # It stamps every result (services/provenance.py) and refunds a job that ends short.
    "CollectFunction": R2_PARAMS | C2PA_PARAMS | {"stripe-secret-key"},
    # A timed-out job's outputs are stored (stamped) by the reconciler; stuck uploads, expired checkouts deleted.
    "ReconcileFunction": R2_PARAMS | C2PA_PARAMS | {"replicate-api-token", "stripe-secret-key"},
    "ExpirySweepFunction": R2_PARAMS | {"replicate-api-token"},
}
EXPECTED_SEND = {
    "ApiFunction": {"NormalizeQueue", "DispatchQueue"},  # dispatch: a paid job starts
    "WebhookFunction": {"CollectQueue", "DispatchQueue"},  # dispatch: an orphan's cancel
    "NormalizeFunction": set(),
    "DispatchFunction": {"DispatchQueue", "CollectQueue"},  # collect: the aftercare of a job dispatch ended
    "CollectFunction": {"DispatchQueue"},
    "ReconcileFunction": {"CollectQueue", "DispatchQueue"},
    "ExpirySweepFunction": set(),
}


SSM_ARN_PREFIX = r"arn:\$\{AWS::Partition\}:ssm:\$\{AWS::Region\}:\$\{AWS::AccountId\}:"
SSM_PARAMETER_ARN = SSM_ARN_PREFIX + r"parameter/portrait-studio/\$\{Environment\}/([a-z0-9-]+)"


def ssm_params_granted(function: str) -> set[str]:
    granted: set[str] = set()
    for st in statements(function):
        if any(a.startswith("ssm:") for a in as_list(st["Action"])):
            for res in as_list(st["Resource"]):
                arn = res["Fn::Sub"]
                match = re.fullmatch(SSM_PARAMETER_ARN, arn)
                assert match, f"{function}: SSM resource {arn} is not one named parameter"
                granted.add(match.group(1))
    return granted


def queues_sendable(function: str) -> set[str]:
    return {
        res["Fn::GetAtt"][0]
        for st in statements(function)
        if "sqs:SendMessage" in as_list(st["Action"])
        for res in as_list(st["Resource"])
    }


def tables_granted(function: str) -> set[str]:
    tables: set[str] = set()
    for st in statements(function):
        if any(a.startswith("dynamodb:") for a in as_list(st["Action"])):
            for res in as_list(st["Resource"]):
                tables.add(res["Fn::GetAtt"][0] if "Fn::GetAtt" in res else res["Fn::Sub"].split(".")[0][2:])
    return tables


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_least_privilege(name: str) -> None:
    assert ssm_params_granted(name) == EXPECTED_SSM[name]
    assert queues_sendable(name) == EXPECTED_SEND[name]
    # Webhook receivers apply each event once (Replicate's in WebhookFunction, Stripe's in ApiFunction).
    once = name in ("WebhookFunction", "ApiFunction")
    assert tables_granted(name) == ({"JobsTable", "IdempotencyTable"} if once else {"JobsTable"})
    for policy in function_props(name).get("Policies", []):
        assert not isinstance(policy, str), f"{name}: managed policy {policy} is too broad"
    for st in statements(name):
        assert st["Effect"] == "Allow"
        for action in as_list(st["Action"]):
            assert "*" not in action, f"{name}: wildcard action {action}"
            assert not action.startswith("s3:"), f"{name}: R2 is not reached through S3 IAM"
        assert "*" not in as_list(st["Resource"]), f"{name}: Resource '*'"
        if "kms:Decrypt" in as_list(st["Action"]):
            assert as_list(st["Action"]) == ["kms:Decrypt"]
            via = st["Condition"]["StringEquals"]["kms:ViaService"]
            assert via == {"Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"}
    has_ssm = bool(EXPECTED_SSM[name])
    has_kms = any("kms:Decrypt" in as_list(st["Action"]) for st in statements(name))
    assert has_kms == has_ssm, f"{name}: SecureStrings need kms:Decrypt via SSM (and nothing else does)"


def test_dispatch_can_delay_its_own_messages() -> None:
    assert "DispatchQueue" in queues_sendable("DispatchFunction")  # a delayed new message, not a visibility change


def test_webhook_function_cannot_read_the_bucket_keys() -> None:
    granted = ssm_params_granted("WebhookFunction")
    assert not granted & R2_PARAMS
    assert "replicate-api-token" not in granted
    text = json.dumps(function_props("WebhookFunction")["Policies"])
    for param in R2_PARAMS:
        assert param not in text


def test_only_the_webhook_function_reads_the_webhook_secret() -> None:
    readers = {name for name in FUNCTIONS if "replicate-webhook-secret" in ssm_params_granted(name)}
    assert readers == {"WebhookFunction"}


# ---------------------------------------------------------------------------------------------------
# Layers, build files, outputs, R2 rules
# ---------------------------------------------------------------------------------------------------
def test_layers_build_with_makefiles() -> None:
    layers = resources("AWS::Serverless::LayerVersion")
    assert set(layers) == {"SharedLayer", "DepsLayer"}
    assert layers["SharedLayer"]["Properties"]["ContentUri"] == "shared/"
    assert layers["DepsLayer"]["Properties"]["ContentUri"] == "layers/deps/"
    for layer in layers.values():
        assert layer["Metadata"]["BuildMethod"] == "makefile"
    makefile_dir = layers["SharedLayer"]["Metadata"].get("ContextPath", "shared")
    makefile = (ROOT / makefile_dir / "Makefile").read_text()
    assert re.search(r"^build-SharedLayer:", makefile, re.MULTILINE)
    assert "python/" in makefile
    deps_makefile = (ROOT / "layers/deps/Makefile").read_text()
    assert re.search(r"^build-DepsLayer:", deps_makefile, re.MULTILINE)
    for flag in ("--platform manylinux2014_aarch64", "--implementation cp", "--python-version 3.12",
                 "--only-binary=:all:", "--require-hashes", "-r requirements.lock"):  # fmt: skip
        assert flag in deps_makefile


def _requirement_lines(text: str) -> set[str]:
    return {line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()}


def test_layer_requirements_match_pyproject_runtime_pins() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = set(pyproject["project"]["dependencies"])
    layer = _requirement_lines((ROOT / "layers/deps/requirements.txt").read_text())
    # Every runtime pin, onnxruntime included, ships in the DepsLayer; the face models it runs are not a
    # dependency but package data of portrait_studio, so they ship in the SharedLayer (tests/unit/test_locks.py).
    assert layer == pins
    assert any(pin.startswith("onnxruntime==") for pin in layer)
    assert all("==" in pin for pin in layer)


def test_outputs() -> None:
    outputs = template()["Outputs"]
    expected = {"ApiUrl", "WebhookUrl", "JobsTableName", "NormalizeQueueUrl", "DispatchQueueUrl", "CollectQueueUrl"}
    assert expected <= set(outputs)
    assert outputs["JobsTableName"]["Value"] == ref("JobsTable")
    assert outputs["WebhookUrl"]["Value"]["Fn::Sub"].endswith("/webhooks/replicate")
    for queue in QUEUES:
        assert outputs[f"{queue}Url"]["Value"] == ref(queue)


def test_r2_lifecycle_rule() -> None:
    rules = json.loads((ROOT / "infra/r2/lifecycle.json").read_text())["Rules"]
    jobs = [r for r in rules if r["Filter"].get("Prefix") == "jobs/" and r["Status"] == "Enabled"]
    assert len(jobs) == 1
    assert jobs[0]["Expiration"]["Days"] <= 2
    assert jobs[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1


def test_r2_cors_rule_allows_only_the_web_origin() -> None:
    text = string.Template((ROOT / "infra/r2/cors.json").read_text()).substitute(
        PORTRAIT_WEB_ORIGIN="https://studio.example"
    )
    rules = json.loads(text)["CORSRules"]
    for rule in rules:
        assert rule["AllowedOrigins"] == ["https://studio.example"]
        assert set(rule["AllowedMethods"]) <= {"PUT", "GET", "HEAD"}
        assert "*" not in rule["AllowedHeaders"]


def test_only_the_functions_that_end_jobs_send_email_and_only_as_the_mail_identity() -> None:
    senders = {}
    for name in FUNCTIONS:
        for st in statements(name):
            actions = as_list(st["Action"])
            if any(a.startswith("ses:") for a in actions):
                assert actions == ["ses:SendEmail"], name
                senders[name] = st["Resource"]
    assert set(senders) == {"CollectFunction", "ReconcileFunction"}
    for resources in senders.values():
        identity = resources[0]["Fn::Sub"]
        assert identity.endswith(":identity/${MailIdentity}")
        assert resources[1]["Fn::If"][0] == "HasMailConfigurationSet"

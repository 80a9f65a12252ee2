"""The local stack's IAM evaluation: what AWS's identity-policy evaluation decides, on the template's real roles."""

from __future__ import annotations

import pytest

from infra.local.aws_gate.iam import Resolver, Role, Statement
from infra.local.aws_gate.identities import LocalIdentities
from infra.local.aws_gate.request import read_request
from infra.local.template import LocalTemplate

REGION, ACCOUNT = "us-east-1", "123456789012"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/portrait-studio-local-JobsTable"


def role(*statements: dict[str, object]) -> Role:
    return Role("TestRole", [Statement.parse(s) for s in statements])


def test_an_explicit_deny_wins_and_no_allow_is_a_deny() -> None:
    subject = role(
        {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "dynamodb:Scan", "Resource": TABLE},
    )
    assert subject.allows("dynamodb:GetItem", TABLE)
    assert not subject.allows("dynamodb:Scan", TABLE)
    assert not subject.allows("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:q")


def test_actions_ignore_case_and_resources_glob_with_star_and_question_mark() -> None:
    subject = role({"Effect": "Allow", "Action": ["DynamoDB:Get*"], "Resource": f"{TABLE}/index/by_?xpiry_hour"})
    assert subject.allows("dynamodb:GetItem", f"{TABLE}/index/by_expiry_hour")
    assert not subject.allows("dynamodb:GetItem", TABLE)  # the table is not its index
    assert not subject.allows("dynamodb:GetItem", f"{TABLE}/index/by_active_status")


def test_not_action_and_conditions_the_stack_cannot_evaluate_never_allow() -> None:
    everything_but_iam = role({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert everything_but_iam.allows("sqs:SendMessage", "*")
    assert not everything_but_iam.allows("iam:CreateUser", "*")
    conditional = role(
        {"Effect": "Allow", "Action": "ses:SendEmail", "Resource": "*", "Condition": {"StringEquals": {"a": "x"}}}
    )
    assert not conditional.allows("ses:SendEmail", "arn:aws:ses:us-east-1:123456789012:identity/x")


def test_intrinsics_resolve_to_local_names() -> None:
    resolver = Resolver(
        parameters={"Environment": "local", "AWS::Region": REGION, "Mail": ""},
        conditions={"HasMail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Mail"}, ""]}]}},
        ref=lambda logical: f"name-of-{logical}",
        get_att=lambda logical, attribute: f"arn-of-{logical}-{attribute}",
    )
    value = resolver.resolve(
        [
            {"Fn::Sub": "arn:aws:ssm:${AWS::Region}:x:parameter/portrait-studio/${Environment}/key"},
            {"Fn::GetAtt": ["Queue", "Arn"]},
            {"Fn::Sub": ["${T}/index/*", {"T": {"Ref": "Table"}}]},
            {"Fn::If": ["HasMail", "configuration-set", {"Ref": "AWS::NoValue"}]},
        ]
    )
    assert value == [
        "arn:aws:ssm:us-east-1:x:parameter/portrait-studio/local/key",
        "arn-of-Queue-Arn",
        "name-of-Table/index/*",
    ]


@pytest.fixture(scope="module")
def identities() -> LocalIdentities:
    template = LocalTemplate.read()
    tables = {t: f"portrait-studio-local-{t}" for t in template.tables}
    return LocalIdentities(
        None,
        list(template.functions),
        {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "MailIdentity": "portrait-studio.local",
            "Environment": "local",
        },
        names=tables,
        arns={
            **{t: f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{n}" for t, n in tables.items()},
            **{q: f"arn:aws:sqs:{REGION}:{ACCOUNT}:portrait-studio-local-{q}" for q in template.queues},
        },
    )


def test_every_function_of_the_template_has_its_translated_role(identities: LocalIdentities) -> None:
    assert set(identities.roles.roles) == set(LocalTemplate.read().functions)
    token = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/portrait-studio/local/replicate-api-token"
    assert identities.roles.allows("DispatchFunction", "ssm:GetParameter", token)  # the local environment's secret
    assert not identities.roles.allows("WebhookFunction", "ssm:GetParameter", token)


def test_a_queue_function_can_be_given_its_queue_and_not_a_missing_grant(identities: LocalIdentities) -> None:
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:portrait-studio-local-DispatchQueue"
    identities.check_event_source("DispatchFunction", queue)
    with pytest.raises(RuntimeError, match="lacks sqs:ReceiveMessage"):
        identities.check_event_source("ApiFunction", queue)


def test_requests_name_the_actions_iam_authorizes() -> None:
    def read(
        target: str, body: str, headers: dict[str, str] | None = None, service: str = "x"
    ) -> list[tuple[str, str]]:
        auth = {"authorization": f"AWS4-HMAC-SHA256 Credential=LOCAL-X/20261205/{REGION}/{service}/aws4_request, ..."}
        return list(read_request("POST", target, {**auth, **(headers or {})}, body.encode(), REGION, ACCOUNT).checks)

    sqs = {"x-amz-target": "AmazonSQS.DeleteMessageBatch"}
    assert read("/", '{"QueueUrl": "http://h/123456789012/q", "Entries": []}', sqs) == [
        ("sqs:DeleteMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:q")
    ]
    ssm = {"x-amz-target": "AmazonSSM.GetParameters"}
    assert read("/", '{"Names": ["/a/b", "/c"]}', ssm) == [
        ("ssm:GetParameters", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/a/b"),
        ("ssm:GetParameters", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/c"),
    ]
    sent = '{"FromEmailAddress": "Studio <a@mail.example>", "ConfigurationSetName": "cs"}'
    ses = read("/v2/email/outbound-emails", sent, service="ses")
    assert ses == [
        ("ses:SendEmail", f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/mail.example"),
        ("ses:SendEmail", f"arn:aws:ses:{REGION}:{ACCOUNT}:configuration-set/cs"),
    ]

"""AWS quotas and name rules checked on synthesized templates (``dpc_central.quotas``).

(a) Each quota on a small template built to reach it: at the limit it passes, one over
it is refused with the resource, the figure and the limit named. (b) The CLI refuses such
an assembly with exit 2, one line per violation, before any deploy. The organisation at
scale is in ``tests/test_quotas_scale.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dpc_central.quotas import QUOTAS, Report, check_templates

Tpl = dict[str, Any]
Stacks = list[tuple[str, Tpl, int]]


def _one(resources: dict[str, Any], **sections: Any) -> Stacks:
    tpl: Tpl = {"Resources": resources, **sections}
    return [("s", tpl, len(json.dumps(tpl)))]


def _doc(pad: int, statements: int = 1) -> dict[str, Any]:
    st = [{"Sid": f"S{i}", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*",
           "Principal": {"AWS": "arn:aws:iam::123456789012:root"}} for i in range(statements)]
    st[0]["Sid"] = "S" + "a" * pad
    return {"Version": "2012-10-17", "Statement": st}


def _res(kind: str, **props: Any) -> dict[str, Any]:
    return {"Type": kind, "Properties": props}


#: quota key -> builder of the stacks whose figure for that quota grows by one with ``k``.
BUILDERS: dict[str, Callable[[int], Stacks]] = {
    "cfn.resources": lambda k: _one({f"H{i}": {"Type": "AWS::CloudFormation::WaitConditionHandle"}
                                     for i in range(k)}),
    "cfn.parameters": lambda k: _one({}, Parameters={f"P{i}": {"Type": "String"}
                                                     for i in range(k)}),
    "cfn.outputs": lambda k: _one({}, Outputs={f"O{i}": {"Value": "x"} for i in range(k)}),
    "cfn.mappings": lambda k: _one({}, Mappings={f"M{i}": {"a": {"b": "c"}} for i in range(k)}),
    "cfn.template_bytes": lambda k: [("s", {"Resources": {}}, k)],
    # Two stacks of one account add inline policies to the same named role.
    "iam.role_inline_chars": lambda k: [
        (f"s{j}", {"Resources": {"P": _res("AWS::IAM::Policy", PolicyName="p",
                                           Roles=["dpc-emr-service-role"],
                                           PolicyDocument=_doc(k if j else 0))}}, 10)
        for j in range(2)],
    "iam.managed_policy_chars": lambda k: _one({"M": _res("AWS::IAM::ManagedPolicy",
                                                          PolicyDocument=_doc(k))}),
    "iam.managed_per_role": lambda k: _one({"R": _res(
        "AWS::IAM::Role", RoleName="r", AssumeRolePolicyDocument=_doc(0),
        ManagedPolicyArns=[f"arn:aws:iam::aws:policy/P{i}" for i in range(k)])}),
    "iam.trust_policy_chars": lambda k: _one({"R": _res("AWS::IAM::Role", RoleName="r",
                                                        AssumeRolePolicyDocument=_doc(k))}),
    "sqs.policy_bytes": lambda k: _one({"Q": _res("AWS::SQS::QueuePolicy", Queues=["q"],
                                                  PolicyDocument=_doc(k))}),
    "sqs.policy_statements": lambda k: _one({"Q": _res("AWS::SQS::QueuePolicy", Queues=["q"],
                                                       PolicyDocument=_doc(0, k + 1))}),
    "sns.policy_bytes": lambda k: _one({"T": _res("AWS::SNS::TopicPolicy", Topics=["t"],
                                                  PolicyDocument=_doc(k))}),
    "sns.policy_statements": lambda k: _one({"T": _res("AWS::SNS::TopicPolicy", Topics=["t"],
                                                       PolicyDocument=_doc(0, k + 1))}),
    "kms.policy_bytes": lambda k: _one({"K": _res("AWS::KMS::Key", KeyPolicy=_doc(k))}),
    "s3.policy_bytes": lambda k: _one({"B": _res("AWS::S3::BucketPolicy", Bucket="b",
                                                 PolicyDocument=_doc(k))}),
    "secretsmanager.policy_chars": lambda k: _one({"P": _res(
        "AWS::SecretsManager::ResourcePolicy", SecretId="s", ResourcePolicy=_doc(k))}),
    "lambda.policy_bytes": lambda k: _one({"P": _res(
        "AWS::Lambda::Permission", FunctionName="f", Action="lambda:InvokeFunction",
        Principal="sns.amazonaws.com",
        SourceArn="arn:aws:sns:us-east-1:123456789012:t" + "a" * k)}),
    "lambda.environment_bytes": lambda k: _one({"F": _res(
        "AWS::Lambda::Function", Role="arn:aws:iam::123456789012:role/r",
        Code={"ZipFile": "x"}, Environment={"Variables": {"A": "a" * k}})}),
    "events.bus_policy_chars": lambda k: _one({"P": _res(
        "AWS::Events::EventBusPolicy", EventBusName="b", StatementId="s",
        Statement={"Effect": "Allow", "Action": "events:PutEvents", "Resource": "*",
                   "Principal": {"AWS": "arn:aws:iam::123456789012:root" + "a" * k}})}),
    # Rules on one bus from two stacks of the same account add up.
    "events.rules_per_bus": lambda k: [
        (f"s{j}", {"Resources": {f"R{i}": _res("AWS::Events::Rule", EventBusName="dpc-bus",
                                               EventPattern={"source": ["x"]})
                                 for i in range(k // 2 if j else k - k // 2)}}, 10)
        for j in range(2)],
    "events.targets_per_rule": lambda k: _one({"R": _res(
        "AWS::Events::Rule", EventPattern={"source": ["x"]},
        Targets=[{"Id": f"t{i}", "Arn": "arn:aws:sqs:us-east-1:123456789012:q"}
                 for i in range(k)])}),
    "sfn.definition_bytes": lambda k: _one({"M": _res(
        "AWS::StepFunctions::StateMachine", RoleArn="arn:aws:iam::123456789012:role/r",
        DefinitionString=json.dumps({"Comment": "a" * k, "StartAt": "A",
                                     "States": {"A": {"Type": "Succeed"}}}))}),
}


def _figures(report: Report, key: str) -> list[int]:
    return [int(u.figure) for u in report.usages if u.quota.key == key]


def _at(key: str, target: int) -> Stacks:
    """The stacks whose figure for ``key`` is exactly ``target``."""
    build = BUILDERS[key]
    base = max(_figures(check_templates(build(0)), key), default=0)
    stacks = build(target - base)
    assert max(_figures(check_templates(stacks), key)) == target
    return stacks


def test_every_counted_quota_has_a_test_and_an_aws_document() -> None:
    counted = {k for k, q in QUOTAS.items() if q.limit}
    assert counted == set(BUILDERS)
    for q in QUOTAS.values():
        title, url = q.doc
        assert title and url.startswith("https://docs.aws.amazon.com/")


@pytest.mark.parametrize("key", sorted(BUILDERS))
def test_a_stack_at_the_limit_passes_and_one_over_is_refused(key: str) -> None:
    limit = QUOTAS[key].limit
    assert [v for v in check_templates(_at(key, limit)).violations
            if v.quota.key == key] == []
    over = [v for v in check_templates(_at(key, limit + 1)).violations if v.quota.key == key]
    assert len(over) == 1
    assert over[0].figure == limit + 1
    line = over[0].line()
    assert f"{limit + 1:,} > {limit:,}" in line and "fix: " in line
    assert QUOTAS[key].doc[0] in line


def test_a_source_arn_with_a_wildcard_account_breaks_the_lambda_permission_schema() -> None:
    """The AddPermission API and the resource schema want 12 digits (or nothing) as the
    SourceArn's account: ``*`` is refused (cfn-lint's W1032)."""
    def perm(arn: Any) -> Stacks:
        return _one({"P": _res("AWS::Lambda::Permission", FunctionName="f",
                               Action="lambda:InvokeFunction", Principal="sns.amazonaws.com",
                               SourceArn=arn)})

    ok = check_templates(perm("arn:aws:sns:eu-west-1:123456789012:dpc-*"))
    assert ok.violations == []
    bad = check_templates(perm({"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"},
                                                  ":sns:eu-west-1:*:dpc-*"]]}))
    assert [(v.resource, v.quota.key) for v in bad.violations] == [
        ("P.SourceArn", "schema.pattern")]


def test_names_longer_than_the_resource_type_allows_are_refused() -> None:
    def role(name: str) -> Stacks:
        return _one({"R": _res("AWS::IAM::Role", RoleName=name,
                               AssumeRolePolicyDocument=_doc(0))})

    assert check_templates(role("r" * 64)).violations == []
    (v,) = check_templates(role("r" * 65)).violations
    assert (v.resource, v.quota.key) == ("R.RoleName", "schema.length")
    (v,) = check_templates(role("dpc role")).violations
    assert v.quota.key == "schema.pattern"


def test_values_known_only_at_deploy_are_measured_but_not_held_to_patterns() -> None:
    """A parameter read from SSM or a generated name has no value yet: the name rules
    skip it (it would be a guess), the sizes count a stand-in of typical length."""
    stacks = _one({"R": _res("AWS::IAM::Role", RoleName={"Ref": "Name"},
                             AssumeRolePolicyDocument=_doc(0))},
                  Parameters={"Name": {"Type": "AWS::SSM::Parameter::Value<String>",
                                       "Default": "/dpc/name"}})
    assert check_templates(stacks).violations == []


# -- the CLI --------------------------------------------------------------------------------

def _assembly(out: Path, stacks: Stacks) -> Path:
    out.mkdir(parents=True)
    artifacts = {}
    for name, tpl, _ in stacks:
        (out / f"{name}.template.json").write_text(json.dumps(tpl))
        artifacts[name] = {"type": "aws:cloudformation:stack",
                           "properties": {"templateFile": f"{name}.template.json"}}
    (out / "manifest.json").write_text(json.dumps({"version": "55.0.0",
                                                   "artifacts": artifacts}))
    return out


def test_dpc_synth_refuses_an_assembly_over_a_quota_one_line_per_violation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dpc_core.cli.main import main

    stacks = [*_at("sqs.policy_statements", 21),
              ("t", _at("events.targets_per_rule", 6)[0][1], 10)]
    out = _assembly(tmp_path / "asm", stacks)
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--project", str(tmp_path), "--app", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.startswith("  ")]
    assert len(lines) == 2
    assert "s/Q: SQS queue policy statements 21 > 20" in lines[0]
    assert "t/R: targets per rule 6 > 5" in lines[1]


def test_dpc_synth_accepts_an_assembly_within_every_quota(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dpc_core.cli.main import main

    out = _assembly(tmp_path / "asm", _at("sqs.policy_statements", 20))
    main(["synth", "--project", str(tmp_path), "--app", str(out)])
    captured = capsys.readouterr()
    assert "broken" not in captured.err and "synthesized s -> " in captured.out


def test_deploy_checks_quotas_before_the_toolkit_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The refusal comes before ``cdk deploy``: the toolkit is never started."""
    import dpc_central.cli as cli
    from dpc_core.cli.main import main

    started: list[Any] = []
    monkeypatch.setattr(cli, "preflight", lambda region: {"account": "1" * 12, "arn": "a"})
    monkeypatch.setattr(cli, "_toolkit", lambda *a, **k: started.append(a))
    out = _assembly(tmp_path / "asm", _at("lambda.environment_bytes", 4_097))
    with pytest.raises(SystemExit) as exc:
        main(["deploy", "--project", str(tmp_path), "--app", str(out), "--yes"])
    assert exc.value.code == 2 and started == []
    assert "Lambda environment variables, in aggregate 4,097 > 4,096" in capsys.readouterr().err


def test_setup_user_account_refuses_a_stack_over_a_quota(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The same check runs on the team account's stack (here against a resources quota
    lowered to 10, so the real stack breaks it)."""
    import dataclasses

    import dpc_central.quotas as quotas
    from dpc_core.cli.main import main

    monkeypatch.setitem(quotas.QUOTAS, "cfn.resources",
                        dataclasses.replace(QUOTAS["cfn.resources"], limit=10))
    with pytest.raises(SystemExit) as exc:
        main(["setup-user-account", "--central-account", "999999999999", "--synth-only",
              "--lambda-deps", "none", "--lambda-layer",
              "arn:aws:lambda:eu-west-1:999999999999:layer:deps:1", "--region", "eu-west-1",
              "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "dpc-user-account/(template): resources per stack" in err


# -- cfn-lint: the warnings that mean a refusal fail CI -------------------------------------

def test_cfn_lint_reports_the_warnings_that_mean_cloudformation_refuses(tmp_path: Path) -> None:
    """W1032 (a joined SourceArn with `*` as account) is a warning to cfn-lint and a
    refusal to Lambda's AddPermission: the project's cfn-lint check reports it."""
    from dpc_central.testing import cfn_lint

    def template(account: str) -> Path:
        f = tmp_path / f"{account.strip('*') or 'star'}.json"
        f.write_text(json.dumps({"Resources": {"P": _res(
            "AWS::Lambda::Permission", FunctionName="f", Action="lambda:InvokeFunction",
            Principal="sns.amazonaws.com",
            SourceArn={"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"},
                                         f":sns:eu-west-1:{account}:dpc-*"]]})}}))
        return f

    assert cfn_lint(template("123456789012")) == []
    assert [line.split()[0] for line in cfn_lint(template("*"))] == ["W1032"]


def test_every_refusing_warning_is_a_cfn_lint_rule() -> None:
    import cfnlint.rules as pkg

    from dpc_central.testing import REFUSING_WARNINGS

    base = Path(next(iter(pkg.__path__)))
    text = "\n".join(f.read_text() for f in base.rglob("*.py"))
    for rule in REFUSING_WARNINGS:
        assert f'id = "{rule}"' in text, rule

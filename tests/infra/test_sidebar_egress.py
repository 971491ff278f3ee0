"""The sidebar function's fixed egress IP (``sidebar.egress``): off, no environment has a VPC; on, the
sidebar function alone runs in a VPC's private subnets behind a NAT gateway with an Elastic IP of the
stack's own, HTTPS out only, with flow logs, and the stack outputs the IPs to list in WeCom (企业可信IP).

The "on" stacks are synthesized in-process with cdk-nag's packs attached, exactly as ``app.build_app``
does: a finding that is not acknowledged fails the synth, so a fixture that returns is a clean nag run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from cdk_nag import AwsSolutionsChecks, ServerlessChecks
from pydantic import ValidationError

from app import feature_flags
from infra.config import EnvironmentConfig, SidebarSettings, load_environment
from infra.stack import AftersyncStack
from infra.wiring import DOMAINS, ResourceRefs, change_routes, deployed_functions, function_environment
from shared.constants import Env
from shared.read.sidebar_config import SidebarConfig
from tests.infra.conftest import ROOT, resources

ENVS = ("dev", "staging", "prod")
VPC_ACCESS = "service-role/AWSLambdaVPCAccessExecutionRole"
TENANTS = {"demo": {"corp_id": "ww5a1dbd0c0ffee001", "agent_id": 1000002, "users": {"ZhangSan": "agent"}}}


def with_egress(env: str, egress: dict[str, Any], tenants: dict[str, Any] | None = None) -> EnvironmentConfig:
    """The environment of cdk.json with ``sidebar.egress`` (and, where it has none, sidebar tenants) set."""
    raw = load_environment(env).model_dump(mode="json", exclude_defaults=True, exclude={"name"})
    sidebar = raw.setdefault("sidebar", {})
    if tenants is not None:
        sidebar["tenants"] = tenants
    sidebar["egress"] = egress
    return EnvironmentConfig.model_validate({"name": env, **raw})


def synth(cfg: EnvironmentConfig, outdir: Path) -> Path:
    app = cdk.App(outdir=str(outdir), context=feature_flags())
    AftersyncStack(app, cfg.stack_name, cfg=cfg, env=cdk.Environment(region=cfg.region))
    cdk.Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True),
        ServerlessChecks(app, verbose=True, write_suppressions_to_cloud_formation=True),
    )
    app.synth()  # raises on any cdk-nag finding that is not acknowledged
    return outdir / f"{cfg.stack_name}.template.json"


@pytest.fixture(scope="module")
def one_nat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dev (its demo tenant) with the option on: two zones, one NAT gateway."""
    return synth(with_egress("dev", {"static_ip": True}), tmp_path_factory.mktemp("egress-one-nat"))


@pytest.fixture(scope="module")
def nat_per_az(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prod (retain) given a sidebar tenant, with a NAT gateway in each of its two zones."""
    cfg = with_egress("prod", {"static_ip": True, "azs": 2, "nat_per_az": True}, tenants=TENANTS)
    return synth(cfg, tmp_path_factory.mktemp("egress-nat-per-az"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def our_functions(template: dict[str, Any], cfg: EnvironmentConfig) -> dict[str, dict[str, Any]]:
    by_name = {f["Properties"]["FunctionName"]: f for f in resources(template, "AWS::Lambda::Function").values()}
    return {name: by_name[cfg.resource(name)] for name in deployed_functions(cfg)}


def managed_policies(template: dict[str, Any], function: dict[str, Any]) -> list[str]:
    role = template["Resources"][function["Properties"]["Role"]["Fn::GetAtt"][0]]
    return [arn["Fn::Join"][1][-1].split(":policy/")[1] for arn in role["Properties"]["ManagedPolicyArns"]]


def private_subnets(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        k: v for k, v in resources(template, "AWS::EC2::Subnet").items() if not v["Properties"]["MapPublicIpOnLaunch"]
    }


def default_route_of(template: dict[str, Any], subnet_id: str) -> dict[str, Any]:
    """The 0.0.0.0/0 route of the subnet's route table."""
    [table] = [
        a["Properties"]["RouteTableId"]["Ref"]
        for a in resources(template, "AWS::EC2::SubnetRouteTableAssociation").values()
        if a["Properties"]["SubnetId"] == {"Ref": subnet_id}
    ]
    [route] = [
        r["Properties"]
        for r in resources(template, "AWS::EC2::Route").values()
        if r["Properties"]["RouteTableId"] == {"Ref": table} and r["Properties"]["DestinationCidrBlock"] == "0.0.0.0/0"
    ]
    return route


def zone_of(template: dict[str, Any], subnet_id: str) -> Any:
    return template["Resources"][subnet_id]["Properties"]["AvailabilityZone"]


# ---- off: every environment of cdk.json today --------------------------------------------------------


def test_no_environment_in_cdk_json_turns_the_option_on() -> None:
    # prod has no sidebar tenant, so nothing there calls WeCom; dev's and staging's are not real WeCom apps
    assert {env: load_environment(env).sidebar.egress.static_ip for env in ENVS} == dict.fromkeys(ENVS, False)


@pytest.mark.parametrize("env", ENVS)
def test_without_the_option_there_is_no_vpc_and_no_function_in_one(templates: dict[str, Any], env: str) -> None:
    template = templates[env]
    cfg = load_environment(env)
    assert [r["Type"] for r in template["Resources"].values() if r["Type"].startswith("AWS::EC2::")] == []
    functions = our_functions(template, cfg)
    assert [name for name, f in functions.items() if "VpcConfig" in f["Properties"]] == []
    assert managed_policies(template, functions["sidebar"]) == ["service-role/AWSLambdaBasicExecutionRole"]
    assert "SidebarTrustedIps" not in template["Outputs"]


# ---- on, one NAT gateway -----------------------------------------------------------------------------


def test_with_the_option_the_sidebar_alone_runs_in_the_private_subnets_of_two_zones(one_nat: Path) -> None:
    template = load(one_nat)
    cfg = with_egress("dev", {"static_ip": True})
    assert len(resources(template, "AWS::EC2::VPC")) == 1
    functions = our_functions(template, cfg)
    in_vpc = {name: f["Properties"]["VpcConfig"] for name, f in functions.items() if "VpcConfig" in f["Properties"]}
    assert list(in_vpc) == ["sidebar"]
    private = private_subnets(template)
    assert len(private) == 2 and len(resources(template, "AWS::EC2::Subnet")) == 4  # a public one per zone
    assert sorted(s["Ref"] for s in in_vpc["sidebar"]["SubnetIds"]) == sorted(private)
    assert sorted(json.dumps(zone_of(template, s)) for s in private) == sorted(
        json.dumps({"Fn::Select": [n, {"Fn::GetAZs": ""}]}) for n in (0, 1)
    )
    [group] = in_vpc["sidebar"]["SecurityGroupIds"]
    assert group["Fn::GetAtt"][1] == "GroupId"
    security_group = template["Resources"][group["Fn::GetAtt"][0]]["Properties"]
    assert [
        {k: rule[k] for k in ("IpProtocol", "FromPort", "ToPort", "CidrIp")}
        for rule in security_group["SecurityGroupEgress"]
    ] == [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0"}]
    assert "SecurityGroupIngress" not in security_group
    assert resources(template, "AWS::EC2::SecurityGroupIngress") == {}
    assert resources(template, "AWS::EC2::SecurityGroupEgress") == {}
    # the function's environment carries its own config, not the stack's egress option
    variables = functions["sidebar"]["Properties"]["Environment"]["Variables"]
    assert SidebarConfig.model_validate_json(variables[Env.SIDEBAR]) == SidebarConfig.model_validate(
        cfg.sidebar.model_dump(exclude={"egress"})
    )
    assert "egress" not in variables[Env.SIDEBAR]


def test_both_zones_go_out_through_one_nat_gateway_with_the_stack_s_elastic_ip_and_its_output(one_nat: Path) -> None:
    template = load(one_nat)
    [(ip_id, ip)] = resources(template, "AWS::EC2::EIP").items()
    assert ip["Properties"]["Domain"] == "vpc"
    assert ip["DeletionPolicy"] == "Delete"  # dev: removal_policy destroy
    [(nat_id, nat)] = resources(template, "AWS::EC2::NatGateway").items()
    assert nat["Properties"]["AllocationId"] == {"Fn::GetAtt": [ip_id, "AllocationId"]}
    public_subnet = nat["Properties"]["SubnetId"]["Ref"]
    assert template["Resources"][public_subnet]["Properties"]["MapPublicIpOnLaunch"] is True
    assert "GatewayId" in default_route_of(template, public_subnet)  # the NAT's subnet goes out by the IGW
    for subnet in private_subnets(template):
        assert default_route_of(template, subnet) == {
            "DestinationCidrBlock": "0.0.0.0/0",
            "NatGatewayId": {"Ref": nat_id},
            "RouteTableId": default_route_of(template, subnet)["RouteTableId"],
        }
    output = template["Outputs"]["SidebarTrustedIps"]
    assert output["Value"] == {"Fn::GetAtt": [ip_id, "PublicIp"]}
    assert "企业可信IP" in output["Description"]


def test_dynamodb_goes_through_a_gateway_endpoint_and_nothing_through_an_interface_endpoint(one_nat: Path) -> None:
    template = load(one_nat)
    [endpoint] = resources(template, "AWS::EC2::VPCEndpoint").values()
    props = endpoint["Properties"]
    assert props["VpcEndpointType"] == "Gateway"
    assert props["ServiceName"] == {"Fn::Join": ["", ["com.amazonaws.", {"Ref": "AWS::Region"}, ".dynamodb"]]}
    private_tables = sorted(default_route_of(template, s)["RouteTableId"]["Ref"] for s in private_subnets(template))
    assert sorted(t["Ref"] for t in props["RouteTableIds"]) == private_tables


def test_the_vpc_s_flow_logs_go_to_a_log_group_with_the_environment_s_retention(one_nat: Path) -> None:
    template = load(one_nat)
    cfg = load_environment("dev")
    [vpc_id] = resources(template, "AWS::EC2::VPC")
    [flow_log] = resources(template, "AWS::EC2::FlowLog").values()
    props = flow_log["Properties"]
    assert (props["ResourceType"], props["ResourceId"], props["TrafficType"]) == ("VPC", {"Ref": vpc_id}, "ALL")
    assert props["LogDestinationType"] == "cloud-watch-logs"
    log_group = template["Resources"][props["LogGroupName"]["Ref"]]
    assert log_group["Properties"]["RetentionInDays"] == cfg.log_retention_days
    assert log_group["Properties"]["LogGroupName"] == f"/aws/vpc/flow-logs/{cfg.resource('sidebar')}"


def test_only_the_sidebar_s_role_may_manage_network_interfaces_and_says_why(one_nat: Path) -> None:
    template = load(one_nat)
    cfg = with_egress("dev", {"static_ip": True})
    functions = our_functions(template, cfg)
    with_vpc_access = [name for name, f in functions.items() if VPC_ACCESS in managed_policies(template, f)]
    assert with_vpc_access == ["sidebar"]
    suppressed = {
        rule["id"]: rule["reason"] for rule in functions["sidebar"]["Metadata"]["cdk_nag"]["rules_to_suppress"]
    }
    reason = suppressed[f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{VPC_ACCESS}]"]
    assert "network interfaces" in reason


def test_cfn_lint_passes_on_the_templates_with_the_option_on(one_nat: Path, nat_per_az: Path) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--config-file",
            str(ROOT / ".cfnlintrc.yaml"),
            "--",
            str(one_nat),
            str(nat_per_az),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- on, a NAT gateway per zone ------------------------------------------------------------------------


def test_a_nat_gateway_per_zone_gives_each_zone_its_own_ip_and_the_output_lists_both(nat_per_az: Path) -> None:
    template = load(nat_per_az)
    ips = resources(template, "AWS::EC2::EIP")
    assert len(ips) == 2
    assert {ip["DeletionPolicy"] for ip in ips.values()} == {"Retain"}  # prod: the IPs listed in WeCom stay
    nats = resources(template, "AWS::EC2::NatGateway")
    assert sorted(n["Properties"]["AllocationId"]["Fn::GetAtt"][0] for n in nats.values()) == sorted(ips)
    nat_zones = {nat_id: zone_of(template, n["Properties"]["SubnetId"]["Ref"]) for nat_id, n in nats.items()}
    assert len({json.dumps(z) for z in nat_zones.values()}) == 2
    for subnet in private_subnets(template):
        nat_id = default_route_of(template, subnet)["NatGatewayId"]["Ref"]
        assert nat_zones[nat_id] == zone_of(template, subnet)  # a zone's subnet goes out by its own NAT
    value = template["Outputs"]["SidebarTrustedIps"]["Value"]
    assert value == {"Fn::Join": [";", [{"Fn::GetAtt": [ip_id, "PublicIp"]} for ip_id in ips]]}


# ---- the option's config ---------------------------------------------------------------------------------


def test_the_option_defaults_to_off_with_two_zones_and_one_nat() -> None:
    egress = SidebarSettings().egress
    assert (egress.static_ip, egress.azs, egress.nat_per_az) == (False, 2, False)


@pytest.mark.parametrize(
    ("egress", "message"),
    [
        ({"static_ip": True, "azs": 0}, "sidebar.egress.azs"),
        ({"static_ip": True, "azs": 4}, "sidebar.egress.azs"),
        ({"static_ip": True, "ip": "1.2.3.4"}, "sidebar.egress.ip"),
    ],
)
def test_a_bad_egress_option_fails_naming_the_field(egress: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        with_egress("dev", egress)
    assert [".".join(map(str, e["loc"])) for e in caught.value.errors()] == [message]


def test_a_static_ip_without_a_sidebar_tenant_is_refused() -> None:
    with pytest.raises(ValidationError, match="no sidebar tenant calls WeCom"):
        with_egress("prod", {"static_ip": True})
    assert with_egress("prod", {"static_ip": True}, tenants=TENANTS).sidebar.egress.static_ip


def test_the_egress_option_stays_out_of_the_function_s_environment_and_its_2_kb() -> None:
    refs = ResourceRefs(
        *(f"ref-{n}" for n in range(7)),
        {domain: f"ref-{domain}" for domain in DOMAINS},
        {r.queue_purpose: f"ref-{r.queue_purpose}" for r in change_routes(load_environment("dev"))},
    )
    cfg = with_egress("dev", {"static_ip": True, "azs": 3, "nat_per_az": True})
    sidebar_json = function_environment("sidebar", cfg, refs)[Env.SIDEBAR]
    assert json.loads(sidebar_json) == json.loads(load_environment("dev").sidebar.function_json())
    assert "egress" not in sidebar_json
    SidebarConfig.model_validate_json(sidebar_json)  # what the function reads (extra keys forbidden)
    # a users map that just fits 2 KB still fits with the option on: the option is not in the environment
    users = {f"user{n:05d}": "agent" for n in range(99)}
    base = {"tenants": {"demo": {"corp_id": "ww1", "agent_id": 1, "users": users}}}
    assert len(SidebarSettings.model_validate(base).function_json()) == 2041
    on = SidebarSettings.model_validate({**base, "egress": {"static_ip": True, "nat_per_az": True}})
    assert len(on.model_dump_json(exclude_defaults=True)) > 2048 and len(on.function_json()) == 2041
    users["user00099"] = "agent"  # one more does not fit
    with pytest.raises(ValidationError, match="over 2048 bytes"):
        SidebarSettings.model_validate(base)

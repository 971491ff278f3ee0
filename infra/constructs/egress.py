"""A fixed egress IP for the sidebar function (``sidebar.egress.static_ip``), so WeCom accepts its calls.

A WeCom self-built app created since 2022-06-20 answers its server API (gettoken, auth/getuserinfo,
ticket/get) only from the IPs listed as the app's trusted IPs (企业可信IP), else errcode 60020; a Lambda
function outside a VPC has no fixed address. Here: a VPC whose private subnets reach the internet through
a NAT gateway (one, or one per zone) with an Elastic IP of the stack's own; the sidebar function, and no
other, runs in those subnets, in a security group that allows HTTPS out and nothing else.

- The Elastic IPs are resources of their own (not the VPC construct's), handed to the NAT gateways by
  allocation id: a change to the VPC (another zone, a NAT per zone) keeps the IPs already listed in WeCom.
  They follow the environment's removal policy (prod keeps them when the stack goes).
- DynamoDB through a gateway endpoint (free; the reads and the read audit stay off the NAT and its
  per-GB charge). Secrets Manager through the NAT: an interface endpoint costs about $0.01 an hour per
  zone, more than the NAT's processing of a few cached secret reads (docs/sidebar.md, "Fixed egress IP").
- Flow logs of all traffic to a log group with the environment's log retention.
- DNS needs no rule: security groups do not filter traffic to the VPC's Amazon DNS resolver.
"""

from __future__ import annotations

from aws_cdk import CfnTag, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import EnvironmentConfig
from infra.constructs.compute import retention

HTTPS = 443


class SidebarNetwork(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, cfg: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        egress = cfg.sidebar.egress
        removal = RemovalPolicy.RETAIN if cfg.removal_policy == "retain" else RemovalPolicy.DESTROY
        # The zones the Vpc construct would pick for max_azs (an environment-agnostic synth knows two)
        zones = Stack.of(self).availability_zones[: egress.azs]
        nat_count = len(zones) if egress.nat_per_az else 1
        self.ips: list[ec2.CfnEIP] = []
        for n in range(1, nat_count + 1):
            ip = ec2.CfnEIP(
                self, f"Ip{n}", domain="vpc", tags=[CfnTag(key="Name", value=cfg.resource(f"sidebar-egress-{n}"))]
            )
            ip.apply_removal_policy(removal)
            self.ips.append(ip)

        self.flow_logs = logs.LogGroup(
            self,
            "FlowLogs",
            log_group_name=f"/aws/vpc/flow-logs/{cfg.resource('sidebar')}",
            retention=retention(cfg.log_retention_days),
            removal_policy=removal,
        )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            vpc_name=cfg.resource("sidebar"),
            ip_addresses=ec2.IpAddresses.cidr("10.0.0.0/16"),
            availability_zones=zones,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=24),
            ],
            nat_gateways=nat_count,
            nat_gateway_provider=ec2.NatProvider.gateway(eip_allocation_ids=[ip.attr_allocation_id for ip in self.ips]),
            gateway_endpoints={
                "DynamoDb": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.DYNAMODB,
                    subnets=[ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)],
                )
            },
            flow_logs={
                "All": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.flow_logs),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
            # Nothing is placed in the default security group; restricting it takes a custom-resource
            # function (another runtime and role to keep up) for no change in what can reach what.
            restrict_default_security_group=False,
        )
        self.subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.security_group = ec2.SecurityGroup(
            self,
            "FunctionSecurityGroup",
            vpc=self.vpc,
            description=f"{cfg.resource('sidebar')}: HTTPS out (WeCom, DynamoDB, Secrets Manager), nothing in",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS), "HTTPS to WeCom's API (through the NAT) and AWS's"
        )

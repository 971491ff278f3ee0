"""One stack per environment; it only composes the constructs."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Fn, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.config import EnvironmentConfig
from infra.constructs.alarms import Alarms
from infra.constructs.api import WebhookApi
from infra.constructs.compute import Compute
from infra.constructs.egress import SidebarNetwork
from infra.constructs.messaging import Messaging
from infra.constructs.storage import Storage


class AftersyncStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, cfg: EnvironmentConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description=f"Aftersync after-sales sync hub ({cfg.name})", **kwargs)
        key = kms.Key(
            self,
            "Key",
            alias=f"alias/{cfg.resource('key')}",
            enable_key_rotation=True,
            description="Encrypts Aftersync tables, queues, archive and function environments",
            removal_policy=RemovalPolicy.RETAIN if cfg.removal_policy == "retain" else RemovalPolicy.DESTROY,
        )
        storage = Storage(self, "Storage", cfg=cfg, key=key)
        messaging = Messaging(self, "Messaging", cfg=cfg, key=key)
        # sidebar.egress.static_ip: the sidebar function calls WeCom from the NAT's Elastic IPs (企业可信IP)
        network = SidebarNetwork(self, "SidebarNetwork", cfg=cfg) if cfg.sidebar.egress.static_ip else None
        compute = Compute(
            self, "Compute", cfg=cfg, key=key, storage=storage, messaging=messaging, sidebar_network=network
        )
        api = WebhookApi(
            self,
            "Webhooks",
            cfg=cfg,
            ingest=compute.functions["ingest"],
            lookup=compute.functions["lookup"],
            sidebar=compute.functions["sidebar"],
        )
        alarms = Alarms(self, "Alarms", cfg=cfg, key=key, messaging=messaging, functions=compute.functions, api=api.api)

        CfnOutput(self, "WebhookUrl", value=api.url, description="POST /webhooks/{source}/{tenant}")
        CfnOutput(self, "StateTable", value=storage.state_table.table_name)
        CfnOutput(self, "ViewTable", value=storage.view_table.table_name)
        CfnOutput(self, "ArchiveBucket", value=storage.archive.bucket_name)
        CfnOutput(self, "IdempotencyTable", value=storage.idempotency_table.table_name)  # for backfills
        CfnOutput(self, "Dashboard", value=alarms.dashboard.dashboard_name)
        if network is not None:
            CfnOutput(
                self,
                "SidebarTrustedIps",
                value=Fn.join(";", [ip.attr_public_ip for ip in network.ips]),
                description="Paste into the WeCom app's trusted IPs (企业可信IP): the sidebar function's egress IPs",
            )
        for severity, topic in alarms.topics.items():
            CfnOutput(self, f"AlarmTopic{severity.title()}", value=topic.topic_arn)
        # Every queue, for `aftersync dlq` / `replay` against a deployed stack (the description names it)
        for purpose, queue in {
            **messaging.queues,
            **{f"{k}-dlq": v for k, v in messaging.dlqs.items()},
            "publish-dlq": messaging.stream_dlq,
            "events-dlq": messaging.events_dlq,
            "alarm-topics-dlq": alarms.topics_dlq,
        }.items():
            CfnOutput(
                self,
                f"Queue{purpose.title().replace('-', '')}",
                value=queue.queue_url,
                description=f"queue:{purpose}",
            )

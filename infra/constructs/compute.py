"""The Lambda functions: shared defaults in one place, each function with only the grants it uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.config import EnvironmentConfig
from infra.constructs.dependencies import dependencies_layer, function_code
from infra.constructs.messaging import Messaging
from infra.constructs.nag import acknowledge
from infra.constructs.storage import Storage
from infra.wiring import (
    DOMAINS,
    FUNCTIONS,
    LAMBDA_ENVIRONMENT_BYTES,
    ResourceRefs,
    change_routes,
    deployed_environment_bytes,
    deployed_functions,
    function_environment,
    function_memory_mb,
    queue_batching,
    queues,
    stream_batching,
)
from shared.constants import (
    AUDIT_BATCH_PREFIX,
    AUDIT_SK_PREFIX,
    RAW_BATCH_PREFIX,
    STATE_SK,
    TTL_PRINCIPAL,
    sidebar_key_secret_name,
)
from shared.errors import ConfigurationError
from shared.read.view import VIEW_ENTITY_TYPES

if TYPE_CHECKING:
    from infra.constructs.egress import SidebarNetwork

# 3.13, not 3.14: the asset's bytecode is compiled by an interpreter of the runtime's version
# (infra/constructs/dependencies.py), and the project's machines have a 3.13 one, not a 3.14 one.
RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64


class Compute(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: EnvironmentConfig,
        key: kms.IKey,
        storage: Storage,
        messaging: Messaging,
        sidebar_network: SidebarNetwork | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.cfg = cfg
        self.sidebar_network = sidebar_network  # sidebar.egress.static_ip: the sidebar function's VPC
        refs = ResourceRefs(
            idempotency_table=storage.idempotency_table.table_name,
            state_table=storage.state_table.table_name,
            archive_bucket=storage.archive.bucket_name,
            inbox_queue_url=messaging.queues["inbox"].queue_url,
            quarantine_queue_url=messaging.queues["quarantine"].queue_url,
            event_bus=messaging.bus.event_bus_name,
            view_table=storage.view_table.table_name,
            domain_queue_urls={domain: messaging.queues[domain].queue_url for domain in DOMAINS},
            change_queue_urls={
                r.queue_purpose: messaging.queues[r.queue_purpose].queue_url for r in change_routes(cfg)
            },
            alarms_queue_url=messaging.queues["alarms"].queue_url,
        )
        layer_arn = ssm.StringParameter.value_for_string_parameter(
            self,
            f"/aws/service/powertools/python/arm64/{RUNTIME.name}/{cfg.powertools_layer_version}",
        )
        self.powertools = lambda_.LayerVersion.from_layer_version_arn(self, "Powertools", layer_arn)
        self.dependencies = dependencies_layer(self, "Dependencies", RUNTIME, ARCHITECTURE)
        # Only the project's own code ships in the asset; Powertools (with pydantic and the X-Ray SDK)
        # comes from the official layer, boto3 from the runtime.
        self.code = function_code(RUNTIME)
        purposes = {spec.purpose for spec in queues(cfg) if spec.consumer}
        for setting, keys, known in (
            ("consumer_concurrency", cfg.consumer_concurrency, purposes),
            ("consumer_batching", cfg.consumer_batching, purposes),
            ("function_memory_mb", cfg.function_memory_mb, set(deployed_functions(cfg))),
            ("reserved_concurrency", cfg.reserved_concurrency, set(deployed_functions(cfg))),
        ):
            unknown = sorted(set(keys) - known)
            if unknown:
                raise ConfigurationError(f"{setting}: {unknown} are not among {sorted(known)}")
        check_environment_sizes(cfg)
        self.functions: dict[str, lambda_.Function] = {
            name: self._function(name, function_environment(name, cfg, refs), key) for name in deployed_functions(cfg)
        }
        fn = self.functions

        # each function's grants, one concern per method: what it reads, writes, sends and decrypts
        self._grant_ingest(fn, storage, messaging, key)
        self._grant_normalise(fn, storage, messaging, key)
        self._grant_sync(fn, storage, messaging, key)
        self._grant_publish(fn, storage, messaging, key)
        self._grant_audit_archive(fn, storage, messaging, key)
        self._grant_project(fn, storage, messaging, key)
        self._grant_lookup(fn, storage, key)
        self._grant_sidebar(fn, storage, key)
        self._grant_deliver(fn, storage, messaging, key)
        self._grant_notify(fn, storage, messaging, key)
        self._grant_automate(fn, storage, messaging, key)
        self._grant_amazon_intake(fn, storage, messaging, key)
        self._grant_reconcile(fn, storage, messaging, key)
        key.grant_encrypt_decrypt(fn["sync"])
        key.grant_encrypt_decrypt(fn["ingest"])

    def _grant_ingest(
        self, fn: dict[str, lambda_.Function], storage: Storage, messaging: Messaging, key: kms.IKey
    ) -> None:
        cfg = self.cfg
        # ingest: admission records (a conditional put; a delete gives up a claim whose send failed),
        # the inbox, the archive for an envelope too large for a message, the sources' signing secrets
        storage.idempotency_table.grant(fn["ingest"], "dynamodb:PutItem", "dynamodb:DeleteItem")
        self._archive_objects(fn["ingest"], storage, "s3:PutObject", "raw/")
        messaging.queues["inbox"].grant_send_messages(fn["ingest"])
        self._secrets(fn["ingest"], f"{cfg.secrets_prefix}/sources/*")

    def _grant_normalise(
        self, fn: dict[str, lambda_.Function], storage: Storage, messaging: Messaging, key: kms.IKey
    ) -> None:
        # normalise: inbox -> archive (one batch object per inbox batch, before the ack) -> bus (batched);
        # reads large bodies back from the archive; quarantines failures
        self._consume(fn["normalise"], messaging, "inbox")
        self._archive_objects(fn["normalise"], storage, "s3:GetObject", "raw/")
        self._archive_objects(fn["normalise"], storage, "s3:PutObject", RAW_BATCH_PREFIX)
        for domain in DOMAINS:  # its observations straight to their domain's queue, not through the bus
            messaging.queues[domain].grant_send_messages(fn["normalise"])
        messaging.queues["quarantine"].grant_send_messages(fn["normalise"])
        # schema drift: the known shapes and drift records (read once per container, written when they
        # change; a drift's shape and records in one transaction), its warnings to notify's queue
        fn["normalise"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem"],
                resources=[storage.state_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["ops#schema#*"]}},
            )
        )
        messaging.queues["alarms"].grant_send_messages(fn["normalise"])

    def _grant_sync(
        self, fn: dict[str, lambda_.Function], storage: Storage, messaging: Messaging, key: kms.IKey
    ) -> None:
        cfg = self.cfg
        # sync: one event source per domain queue; conditional state + audit writes; quarantine
        for domain in DOMAINS:
            self._consume(fn["sync"], messaging, domain)
        messaging.queues["quarantine"].grant_send_messages(fn["sync"])
        self._secrets(fn["sync"], f"{cfg.secrets_prefix}/tenants/*")
        storage.state_table.grant(
            fn["sync"],
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:ConditionCheckItem",
            "dynamodb:BatchGetItem",  # identity index lookups
            "dynamodb:UpdateItem",  # identity key claims and customer profiles
        )

    def _grant_publish(
        self, fn: dict[str, lambda_.Function], storage: Storage, messaging: Messaging, key: kms.IKey
    ) -> None:
        # publish: the state table's stream, audit inserts only -> each change to the queues that take it
        self._stream_consumer(
            "publish",
            fn["publish"],
            storage,
            messaging,
            {
                "eventName": lambda_.FilterRule.is_equal("INSERT"),
                "dynamodb": {"Keys": {"sk": {"S": lambda_.FilterRule.begins_with(AUDIT_SK_PREFIX)}}},
            },
        )
        for route in change_routes(self.cfg):
            messaging.queues[route.queue_purpose].grant_send_messages(fn["publish"])

    def _grant_project(
        self, fn: dict[str, lambda_.Function], storage: Storage, messaging: Messaging, key: kms.IKey
    ) -> None:
        cfg = self.cfg
        # project: the state table's stream, state items and audit inserts (and an identity profile gaining
        # or losing its alias) -> the customer view, in the view table. Reads states (a shipment's order, an
        # audit record's entity) and identity profiles in the state table, and writes nothing there; reads
        # and writes the view table's items: views, the entities' owner pointers and selectors (the
        # pointer, E# items of one entity in one TransactWriteItems).
        self._stream_consumer(
            "project",
            fn["project"],
            storage,
            messaging,
            {
                "eventName": lambda_.FilterRule.or_("INSERT", "MODIFY"),
                "dynamodb": {"Keys": {"sk": {"S": lambda_.FilterRule.is_equal(STATE_SK)}}},
            },
            {
                "eventName": lambda_.FilterRule.is_equal("INSERT"),
                "dynamodb": {"Keys": {"sk": {"S": lambda_.FilterRule.begins_with(AUDIT_SK_PREFIX)}}},
            },
            *(
                {
                    "eventName": lambda_.FilterRule.or_("INSERT", "MODIFY"),
                    "dynamodb": {
                        "Keys": {"sk": {"S": lambda_.FilterRule.is_equal("PROFILE")}},
                        image: {"alias_of": {"S": lambda_.FilterRule.exists()}},
                    },
                }
                for image in ("NewImage", "OldImage")
            ),
        )
        fn["project"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:BatchGetItem"],
                resources=[storage.state_table.table_arn],
                conditions={
                    "ForAllValues:StringLike": {
                        "dynamodb:LeadingKeys": [*(f"*#{t}#*" for t in VIEW_ENTITY_TYPES), "*#idprofile#*"]
                    }
                },
            )
        )
        # the view is its own table (nothing but the view in it): no write on the state table at all
        storage.view_table.grant(
            fn["project"],
            "dynamodb:GetItem",
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        )
        self._secrets(fn["project"], f"{cfg.secrets_prefix}/tenants/*")
        key.grant_encrypt_decrypt(fn["project"])

    def _grant_lookup(self, fn: dict[str, lambda_.Function], storage: Storage, key: kms.IKey) -> None:
        cfg = self.cfg
        # lookup (the read side's API): reads a selector item (view table) or an identity key (state table),
        # then the customer's view (view table); writes one read-audit record per lookup (state table);
        # reads the readers' secrets and the tenants' salts.
        storage.view_table.grant(fn["lookup"], "dynamodb:BatchGetItem", "dynamodb:Query")
        fn["lookup"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:BatchGetItem"],  # the identity index's key items (a lookup's first call)
                resources=[storage.state_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["*#idkey#*"]}},
            )
        )
        fn["lookup"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:PutItem"],
                resources=[storage.state_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["*#reads#*"]}},
            )
        )
        self._secrets(fn["lookup"], f"{cfg.secrets_prefix}/readers/*")
        self._secrets(fn["lookup"], f"{cfg.secrets_prefix}/tenants/*")
        key.grant_encrypt_decrypt(fn["lookup"])

    def _grant_sidebar(self, fn: dict[str, lambda_.Function], storage: Storage, key: kms.IKey) -> None:
        cfg = self.cfg
        # sidebar (the WeCom page and the screen pop): the lookup's reads and read-audit writes; the readers'
        # secrets (a screen pop's key or link), the tenants' salts, the WeCom apps' corp secrets and the
        # session signing key. Its only outbound calls are to WeCom's API, through SafeHttp.
        storage.view_table.grant(fn["sidebar"], "dynamodb:BatchGetItem", "dynamodb:Query")
        fn["sidebar"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:BatchGetItem"],  # the identity index's key items (a lookup's first call)
                resources=[storage.state_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["*#idkey#*"]}},
            )
        )
        fn["sidebar"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:PutItem"],
                resources=[storage.state_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["*#reads#*"]}},
            )
        )
        self._secrets(fn["sidebar"], f"{cfg.secrets_prefix}/readers/*")
        self._secrets(fn["sidebar"], f"{cfg.secrets_prefix}/tenants/*")
        self._secrets(fn["sidebar"], f"{cfg.secrets_prefix}/wecom-app/*")
        self._secret(fn["sidebar"], sidebar_key_secret_name(cfg.secrets_prefix))
        key.grant_encrypt_decrypt(fn["sidebar"])

    def _grant_audit_archive(
        self, fn: dict[str, lambda_.Function], storage: Storage, messaging: Messaging, key: kms.IKey
    ) -> None:
        # audit-archive: TTL removals of audit and decision records -> archive bucket, as batch objects
        # (audit/batches/): big batches gathered for up to a minute (nothing waits on an archived record),
        # so a PutObject carries many records
        self._stream_consumer(
            "audit-archive",
            fn["audit-archive"],
            storage,
            messaging,
            {
                "eventName": lambda_.FilterRule.is_equal("REMOVE"),
                "userIdentity": {
                    "type": lambda_.FilterRule.is_equal("Service"),
                    "principalId": lambda_.FilterRule.is_equal(TTL_PRINCIPAL),
                },
            },
        )
        self._archive_objects(fn["audit-archive"], storage, "s3:PutObject", AUDIT_BATCH_PREFIX)
        key.grant_encrypt_decrypt(fn["audit-archive"])

    def _grant_deliver(
        self, fn: dict[str, lambda_.Function], storage: Storage, messaging: Messaging, key: kms.IKey
    ) -> None:
        cfg = self.cfg
        # deliver: one queue per target; reads state and acks, writes acks, reads target credentials.
        # A rate-limited target's queue runs only the containers its limit needs (the first half of its
        # rate limiting; the second: slots leased per block from a counter per second, see circuit.py)
        for target in (t for t in cfg.targets if t.push_changes):
            self._consume(
                fn["deliver"], messaging, f"deliver-{target.name}", max_concurrency=target.queue_concurrency()
            )
            # a record that waits (open circuit, rate limit) or retries goes back as a delayed copy
            messaging.queues[f"deliver-{target.name}"].grant_send_messages(fn["deliver"])
        storage.state_table.grant(fn["deliver"], "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:GetItem")
        # its circuits, rate-limit leases (a counter per target and second) and robot-minute counters, and
        # nothing else, are updated in place
        fn["deliver"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"],
                resources=[storage.state_table.table_arn],
                conditions={
                    "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["ops#circuit#*", "ops#rate#*", "ops#wecom#*"]}
                },
            )
        )
        self._secrets(fn["deliver"], f"{cfg.secrets_prefix}/targets/*")
        key.grant_encrypt_decrypt(fn["deliver"])

    def _grant_notify(
        self, fn: dict[str, lambda_.Function], storage: Storage, messaging: Messaging, key: kms.IKey
    ) -> None:
        cfg = self.cfg
        # notify: the alarms queue in batches of up to 100 gathered over 10 s (one digest per batch and
        # robot); its own minute counters in the state table (and nothing else there); robot keys
        self._consume(fn["notify"], messaging, "alarms")
        fn["notify"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"],
                resources=[storage.state_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["ops#wecom#*"]}},
            )
        )
        self._secrets(fn["notify"], f"{cfg.secrets_prefix}/wecom/*")
        # an alarm waiting for its robot's next free slot goes back as a delayed copy of its message
        messaging.queues["alarms"].grant_send_messages(fn["notify"])
        key.grant_encrypt_decrypt(fn["notify"])

    def _grant_automate(
        self, fn: dict[str, lambda_.Function], storage: Storage, messaging: Messaging, key: kms.IKey
    ) -> None:
        cfg = self.cfg
        # automate: after-sales changes -> rules; reads the case, claims/marks its action ledger items,
        # calls the role targets with their credentials, writes results back to the bus
        self._consume(fn["automate"], messaging, "automation")
        # a change whose action another worker holds waits as a delayed copy of its message
        messaging.queues["automation"].grant_send_messages(fn["automate"])
        storage.state_table.grant(fn["automate"], "dynamodb:GetItem")
        fn["automate"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:PutItem", "dynamodb:UpdateItem"],
                resources=[storage.state_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["ops#action#*"]}},
            )
        )
        if cfg.dispatch:  # agents' workload and ticket assignments, and nothing else, for dispatch
            fn["automate"].add_to_role_policy(
                iam.PolicyStatement(
                    actions=[
                        "dynamodb:PutItem",
                        "dynamodb:UpdateItem",
                        "dynamodb:DeleteItem",
                        "dynamodb:BatchGetItem",
                        "dynamodb:Query",
                    ],
                    resources=[storage.state_table.table_arn],
                    conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["ops#dispatch#*"]}},
                )
            )
        self._secrets(fn["automate"], f"{cfg.secrets_prefix}/targets/*")
        messengers = [t for t in cfg.targets if t.name in cfg.customer_notifications]
        if any(t.kind == "sms" for t in messengers):
            fn["automate"].add_to_role_policy(
                iam.PolicyStatement(actions=["sns:Publish"], resources=["*"])  # SMS: a phone number has no ARN
            )
            # ...and that "*" must not reach a topic (the alarm topics page on-call): an explicit Deny on
            # every topic ARN leaves only the phone numbers, which have none.
            fn["automate"].add_to_role_policy(
                iam.PolicyStatement(
                    effect=iam.Effect.DENY,
                    actions=["sns:Publish"],
                    resources=[f"arn:{Stack.of(self).partition}:sns:*:*:*"],
                )
            )
        senders = sorted({t.sender for t in messengers if t.kind == "email" and t.sender})
        if senders:
            stack = Stack.of(self)
            identities = sorted({*senders, *(sender.split("@", 1)[1] for sender in senders)})
            fn["automate"].add_to_role_policy(
                iam.PolicyStatement(  # sending as a verified address, or as any address of a verified domain
                    actions=["ses:SendEmail"],
                    resources=[
                        stack.format_arn(service="ses", resource="identity", resource_name=i) for i in identities
                    ],
                )
            )
        messaging.bus.grant_put_events_to(fn["automate"])
        key.grant_encrypt_decrypt(fn["automate"])

    def _grant_amazon_intake(
        self, fn: dict[str, lambda_.Function], storage: Storage, messaging: Messaging, key: kms.IKey
    ) -> None:
        # amazon-intake: the SP-API notification queue -> admission record, inbox (like ingest); quarantine
        if "amazon-intake" in fn:
            self._consume(fn["amazon-intake"], messaging, "amazon")
            storage.idempotency_table.grant(fn["amazon-intake"], "dynamodb:PutItem", "dynamodb:DeleteItem")
            self._archive_objects(fn["amazon-intake"], storage, "s3:PutObject", "raw/")
            messaging.queues["inbox"].grant_send_messages(fn["amazon-intake"])
            messaging.queues["quarantine"].grant_send_messages(fn["amazon-intake"])
            key.grant_encrypt_decrypt(fn["amazon-intake"])

    def _grant_reconcile(
        self, fn: dict[str, lambda_.Function], storage: Storage, messaging: Messaging, key: kms.IKey
    ) -> None:
        cfg = self.cfg
        # reconcile: its schedule's queue -> the platform's API (its pull credentials) -> compare with the
        # state (read only) -> dedupe, archive, inbox (like ingest); its own watermark items
        if "reconcile" in fn:
            self._consume(fn["reconcile"], messaging, "reconcile")
            storage.idempotency_table.grant(fn["reconcile"], "dynamodb:PutItem", "dynamodb:DeleteItem")
            storage.state_table.grant(fn["reconcile"], "dynamodb:GetItem", "dynamodb:BatchGetItem")
            fn["reconcile"].add_to_role_policy(
                iam.PolicyStatement(
                    actions=["dynamodb:PutItem"],
                    resources=[storage.state_table.table_arn],
                    conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["ops#reconcile#*"]}},
                )
            )
            self._archive_objects(fn["reconcile"], storage, "s3:PutObject", "raw/")
            messaging.queues["inbox"].grant_send_messages(fn["reconcile"])
            self._secrets(fn["reconcile"], f"{cfg.secrets_prefix}/pull/*")
            key.grant_encrypt_decrypt(fn["reconcile"])

    def _function(self, name: str, environment: dict[str, str], key: kms.IKey) -> lambda_.Function:
        spec = FUNCTIONS[name]
        log_group = logs.LogGroup(
            self,
            f"Logs-{name}",
            log_group_name=f"/aws/lambda/{self.cfg.resource(name)}",
            retention=retention(self.cfg.log_retention_days),
        )
        function = lambda_.Function(
            self,
            f"Fn-{name}",
            function_name=self.cfg.resource(name),
            description=spec.description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=spec.handler,
            code=self.code,
            layers=[self.powertools, self.dependencies],
            memory_size=function_memory_mb(self.cfg, name),
            reserved_concurrent_executions=self.cfg.reserved_concurrency.get(name),
            timeout=Duration.seconds(spec.timeout_seconds or self.cfg.consumer_timeout_seconds),
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            log_group=log_group,
            environment={**environment, **runtime_environment(self.cfg)},
            environment_encryption=key,
            **self._network(name),
        )
        acknowledge(
            function,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray trace writes (xray:PutTraceSegments/PutTelemetryRecords), dynamodb:ListStreams and "
            "(automate only) sns:Publish of an SMS to a phone number have no resource-level permissions.",
        )
        for action in ("kms:ReEncrypt*", "kms:GenerateDataKey*"):
            acknowledge(
                function,
                f"AwsSolutions-IAM5[Action::{action}]",
                "CDK's KMS grant on the environment's own key (the only resource in the statement); the "
                "wildcard covers the variants SSE needs for this key.",
            )
        for rule in ("AwsSolutions-L1", "Serverless-LambdaLatestVersion"):
            acknowledge(
                function,
                rule,
                "Python 3.13, one release behind 3.14 and supported by Lambda into 2029: the asset ships "
                "bytecode compiled by an interpreter of the runtime's own version (no compile at each cold "
                "start), and the project's build machines have 3.13, not 3.14 (RUNTIME in compute.py).",
            )
        acknowledge(
            function,
            "Serverless-LambdaDLQ",
            "Not invoked asynchronously: API Gateway invokes it synchronously or an event source mapping "
            "polls it; failed records go to the source queue's DLQ or the stream's on-failure queue.",
        )
        acknowledge(
            function,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "The AWS-managed basic execution role only allows writing this function's logs.",
        )
        if self._network(name):
            acknowledge(
                function,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]",
                "The AWS-managed VPC access role only lets Lambda create, describe and delete the function's "
                "network interfaces in its VPC (a fixed egress IP for WeCom's trusted-IP rule).",
            )
        return function

    def _network(self, name: str) -> dict[str, Any]:
        """Where a function runs: the sidebar in its VPC's private subnets when it has a fixed egress IP
        (infra/constructs/egress.py); every other function, and the sidebar by default, outside any VPC."""
        network = self.sidebar_network
        if name != "sidebar" or network is None:
            return {}
        return {"vpc": network.vpc, "vpc_subnets": network.subnets, "security_groups": [network.security_group]}

    def _stream_consumer(
        self, name: str, function: lambda_.Function, storage: Storage, messaging: Messaging, *patterns: dict[str, Any]
    ) -> None:
        """A reader of the state table's stream: filtered, bisecting, with an on-failure queue; its batch,
        window and batches per shard at once (parallelization factor) from the environment's sizing."""
        batching = stream_batching(self.cfg, name)
        function.add_event_source(
            sources.DynamoEventSource(
                storage.state_table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=batching.batch_size,
                max_batching_window=Duration.seconds(batching.window_seconds) if batching.window_seconds else None,
                parallelization_factor=batching.parallelization_factor,
                bisect_batch_on_error=True,
                retry_attempts=10,
                max_record_age=Duration.hours(24),
                report_batch_item_failures=True,
                on_failure=sources.SqsDlq(messaging.stream_dlq),
                filters=[lambda_.FilterCriteria.filter(pattern) for pattern in patterns],
            )
        )

    def _consume(
        self, function: lambda_.Function, messaging: Messaging, purpose: str, max_concurrency: int | None = None
    ) -> None:
        batching = queue_batching(self.cfg, purpose)  # sized per environment (cdk.json consumer_batching)
        source = sources.SqsEventSource(
            messaging.queues[purpose],
            batch_size=batching.batch_size,
            max_batching_window=Duration.seconds(batching.window_seconds),
            report_batch_item_failures=True,
            max_concurrency=max_concurrency or self.cfg.consumer_concurrency.get(purpose),
        )
        function.add_event_source(source)
        # On a record's last allowed receive the consumer dead-letters it itself, with the reason.
        messaging.dlqs[purpose].grant_send_messages(function)
        acknowledge(
            function,
            "Serverless-LambdaEventSourceMappingDestination",
            "SQS event source mappings take no on-failure destination; the consumer dead-letters a record with "
            f"its reason on receive {self.cfg.max_receive_count}, and the queue's redrive policy is the safety net.",
        )

    def _secrets(self, function: lambda_.Function, name_pattern: str) -> None:
        stack = Stack.of(self)
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"],
                resources=[
                    stack.format_arn(
                        service="secretsmanager",
                        resource="secret",
                        resource_name=name_pattern,
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        acknowledge(
            function,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:{stack.region}:<AWS::AccountId>:secret:{name_pattern}]",
            f"Secrets are per source/target and tenant; adding a tenant adds a secret under {name_pattern} "
            "without a deploy. Read-only, and only this environment's prefix.",
        )

    def _secret(self, function: lambda_.Function, name: str) -> None:
        """One secret by its name (Secrets Manager appends ``-`` and six random characters to its ARN; ``*``
        rather than ``??????``: the sandbox's AWS stand-in cannot read ``?`` in a policy)."""
        stack = Stack.of(self)
        pattern = f"{name}-*"
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"],
                resources=[
                    stack.format_arn(
                        service="secretsmanager",
                        resource="secret",
                        resource_name=pattern,
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        acknowledge(
            function,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:{stack.region}:<AWS::AccountId>:secret:{pattern}]",
            "One secret by name: the wildcard stands for the random characters Secrets Manager appends to its ARN.",
        )

    def _archive_objects(self, function: lambda_.Function, storage: Storage, action: str, prefix: str) -> None:
        function.add_to_role_policy(
            iam.PolicyStatement(actions=[action], resources=[storage.archive.arn_for_objects(f"{prefix}*")])
        )
        logical_id = Stack.of(self).get_logical_id(storage.archive.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            function,
            f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/{prefix}*]",
            f"Objects are keyed by shard, tenant, entity, source or time under {prefix}; "
            "the function uses only that prefix.",
        )


def retention(days: int) -> logs.RetentionDays:
    by_days = {
        1: "ONE_DAY",
        3: "THREE_DAYS",
        5: "FIVE_DAYS",
        7: "ONE_WEEK",
        14: "TWO_WEEKS",
        30: "ONE_MONTH",
        60: "TWO_MONTHS",
        90: "THREE_MONTHS",
        120: "FOUR_MONTHS",
        150: "FIVE_MONTHS",
        180: "SIX_MONTHS",
        365: "ONE_YEAR",
        400: "THIRTEEN_MONTHS",
        545: "EIGHTEEN_MONTHS",
        731: "TWO_YEARS",
        1827: "FIVE_YEARS",
        3653: "TEN_YEARS",
    }
    return getattr(logs.RetentionDays, by_days[days])  # type: ignore[no-any-return]


def check_environment_sizes(cfg: EnvironmentConfig) -> None:
    """Refuse, at synth, a configuration whose variables would not fit a function's 4 KB (a deploy would
    fail late, in CloudFormation): e.g. publish carries a route per pushing target."""
    runtime = sum(len(k.encode()) + len(v.encode()) for k, v in runtime_environment(cfg).items())
    for name in deployed_functions(cfg):
        size = deployed_environment_bytes(name, cfg) + runtime
        if size > LAMBDA_ENVIRONMENT_BYTES:
            raise ConfigurationError(
                f"{cfg.name}: the {name} function's variables would take {size} bytes, over Lambda's "
                f"{LAMBDA_ENVIRONMENT_BYTES}; fewer targets that push changes (publish carries a route for each), "
                "or shorter field maps, sidebar users or routing patterns"
            )


def runtime_environment(cfg: EnvironmentConfig) -> dict[str, str]:
    """Every function's runtime variables. Logs at INFO, a ``debug_log_sample_rate`` share of
    invocations at DEBUG. Lambda's own trace (active tracing) is always on; the X-Ray
    SDK in the function only with ``tracing: sdk`` (its import is a large part of a cold start). No
    pydantic plugins are used, so pydantic need not scan every installed package for them."""
    return {
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "POWERTOOLS_LOGGER_SAMPLE_RATE": f"{cfg.debug_log_sample_rate:g}",
        "POWERTOOLS_TRACE_DISABLED": "false" if cfg.tracing == "sdk" else "true",
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
    }

"""State, customer-view, idempotency and raw-archive storage, encrypted with the environment's KMS key."""

from __future__ import annotations

from typing import Any, Literal

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import EnvironmentConfig
from infra.constructs.nag import acknowledge


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, cfg: EnvironmentConfig, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.RETAIN if cfg.removal_policy == "retain" else RemovalPolicy.DESTROY

        # One table for state, audit and delivery acks: state and its audit record share an item
        # collection so one transaction writes both; the stream is the outbox for entity.changed.
        self.state_table = self._keyed_table(
            "State", cfg, "state", key, removal, stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES
        )  # stream images: new, the outbox; old, the expiring audit record
        # The customer view (shared/read/view.py): derived from the state table by functions/project, read
        # by lookup and sidebar. Its own table, so its writes never take the state table's capacity (sync's);
        # no stream (nothing consumes its changes); TTL on "expires_at" removes a moved entity's tombstone.
        self.view_table = self._keyed_table("View", cfg, "view", key, removal)
        # Admission records of ingest (shared/adapters/idempotency.py): one small item per delivery,
        # keyed by its dedupe key (spread: no hot key); expired through TTL on "expiration".
        self.idempotency_table = dynamodb.Table(
            self,
            "Idempotency",
            table_name=cfg.resource("idempotency"),
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute="expiration",
            removal_policy=removal,
        )

        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # S3 server access logging cannot write to SSE-KMS buckets
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))],
            removal_policy=removal,
            auto_delete_objects=False,
        )
        acknowledge(
            self.access_logs,
            "AwsSolutions-S1",
            "This is the access-log bucket itself; logging it to itself would loop.",
        )
        self.archive = s3.Bucket(
            self,
            "Archive",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="archive/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=Duration.days(30),
                        ),
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                            transition_after=Duration.days(90),
                        ),
                    ],
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
            removal_policy=removal,
        )

    def _keyed_table(
        self,
        construct_id: str,
        cfg: EnvironmentConfig,
        which: Literal["state", "view"],
        key: kms.IKey,
        removal: RemovalPolicy,
        **extra: Any,
    ) -> dynamodb.Table:
        """A pk/sk table under the environment's key, recoverable, with TTL on ``expires_at``, on demand or
        provisioned with auto scaling as the environment says."""
        table = dynamodb.Table(
            self,
            construct_id,
            table_name=cfg.resource(which),
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            **_capacity(cfg, which),
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute="expires_at",
            removal_policy=removal,
            **extra,
        )
        _auto_scale(table, cfg, which)
        return table


def _capacity(cfg: EnvironmentConfig, table: Literal["state", "view"]) -> dict[str, Any]:
    """On demand unless the environment provisions the table (``table_capacity``): then it starts at the
    minimum its auto scaling keeps (``_auto_scale``)."""
    provisioned = cfg.table_capacity.get(table)
    if provisioned is None:
        return {"billing_mode": dynamodb.BillingMode.PAY_PER_REQUEST}
    return {
        "billing_mode": dynamodb.BillingMode.PROVISIONED,
        "write_capacity": provisioned.write.min,
        "read_capacity": provisioned.read.min,
    }


def _auto_scale(table: dynamodb.Table, cfg: EnvironmentConfig, which: Literal["state", "view"]) -> None:
    """Application Auto Scaling on the table's consumed capacity, between the environment's bounds, at its
    target utilisation (AWS's recommended 70 % by default)."""
    provisioned = cfg.table_capacity.get(which)
    if provisioned is None:
        return
    target = provisioned.target_utilization_percent
    writes = table.auto_scale_write_capacity(min_capacity=provisioned.write.min, max_capacity=provisioned.write.max)
    writes.scale_on_utilization(target_utilization_percent=target)
    reads = table.auto_scale_read_capacity(min_capacity=provisioned.read.min, max_capacity=provisioned.read.max)
    reads.scale_on_utilization(target_utilization_percent=target)

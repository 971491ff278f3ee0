"""Event bus, routing rules and the queues between functions — every consumer queue with a DLQ."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import EnvironmentConfig
from infra.constructs.nag import acknowledge
from infra.wiring import queues, routes

RETENTION = Duration.days(14)


class Messaging(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, cfg: EnvironmentConfig, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.cfg = cfg
        # EventBridge must be able to use the key to write to the encrypted queues.
        key.grant_encrypt_decrypt(iam.ServicePrincipal("events.amazonaws.com"))

        self.queues: dict[str, sqs.Queue] = {}
        self.dlqs: dict[str, sqs.Queue] = {}
        # Visibility >= 6x the consumer timeout: a batch still running is never handed out twice.
        visibility = Duration.seconds(6 * cfg.consumer_timeout_seconds)
        attempts = {f"deliver-{t.name}": t.retry.max_attempts for t in cfg.targets}  # each target its own budget
        for spec in queues(cfg):
            dlq = None
            if spec.consumer:
                dlq = self.dead_letter_queue(f"{spec.purpose}-dlq", key)
                self.dlqs[spec.purpose] = dlq
            # A queue an outside service writes to uses SQS-managed encryption: the writer cannot use
            # this environment's key, and granting it the key would widen the key's reach.
            queue = sqs.Queue(
                self,
                f"Queue-{spec.purpose}",
                queue_name=cfg.resource(spec.purpose),
                encryption=sqs.QueueEncryption.SQS_MANAGED if spec.external_writer else sqs.QueueEncryption.KMS,
                encryption_master_key=None if spec.external_writer else key,
                enforce_ssl=True,
                retention_period=RETENTION,
                visibility_timeout=visibility,
                dead_letter_queue=sqs.DeadLetterQueue(
                    queue=dlq, max_receive_count=attempts.get(spec.purpose, cfg.max_receive_count)
                )
                if dlq
                else None,
            )
            if not spec.consumer:
                acknowledge(
                    queue,
                    "AwsSolutions-SQS3",
                    "The quarantine is itself a dead-letter store: operators inspect and replay it; "
                    "nothing consumes it.",
                )
                acknowledge(
                    queue,
                    "Serverless-SQSRedrivePolicy",
                    "Quarantine is a terminal store read by operators, not consumed.",
                )
            if spec.external_writer:
                queue.add_to_resource_policy(
                    iam.PolicyStatement(
                        sid="AllowExternalWriter",
                        principals=[iam.ArnPrincipal(spec.external_writer)],
                        actions=["sqs:SendMessage", "sqs:GetQueueAttributes"],
                        resources=[queue.queue_arn],
                    )
                )
            self.queues[spec.purpose] = queue

        # Stream failures (publish) and undeliverable rule targets land here.
        self.stream_dlq = self.dead_letter_queue("publish-dlq", key)
        self.events_dlq = self.dead_letter_queue("events-dlq", key)

        self.bus = events.EventBus(self, "Bus", event_bus_name=cfg.resource("bus"))
        self.bus.archive(
            "Archive",
            archive_name=cfg.resource("bus-archive"),
            event_pattern=events.EventPattern(account=[self.bus.env.account]),
            retention=Duration.days(30),
        )
        for route in routes(cfg):
            rule = events.Rule(
                self,
                f"Rule-{route.purpose}",
                rule_name=cfg.resource(route.purpose),
                event_bus=self.bus,
                event_pattern=_pattern(route.pattern),
            )
            rule.add_target(
                targets.SqsQueue(
                    self.queues[route.queue_purpose],
                    dead_letter_queue=self.events_dlq,
                    retry_attempts=185,
                    max_event_age=Duration.hours(24),
                )
            )

        if cfg.dispatch:  # the shift-end check of ticket dispatch, on the automation queue
            schedule = events.Rule(
                self,
                "Rule-dispatch-check",
                rule_name=cfg.resource("dispatch-check"),
                schedule=events.Schedule.rate(Duration.minutes(cfg.dispatch_check_minutes)),
            )
            schedule.add_target(
                targets.SqsQueue(
                    self.queues["automation"],
                    dead_letter_queue=self.events_dlq,
                    retry_attempts=185,
                    max_event_age=Duration.hours(1),
                )
            )

        for job in cfg.reconcile:  # each scheduled pull: one message per run on the reconcile queue
            pull = events.Rule(
                self,
                f"Rule-reconcile-{job.source}-{job.tenant}",
                rule_name=cfg.resource(f"reconcile-{job.source}-{job.tenant}")[:64],
                schedule=events.Schedule.rate(Duration.minutes(job.every_minutes)),
            )
            pull.add_target(
                targets.SqsQueue(
                    self.queues["reconcile"],
                    message=events.RuleTargetInput.from_object({"source": job.source, "tenant": job.tenant}),
                    dead_letter_queue=self.events_dlq,
                    retry_attempts=185,
                    max_event_age=Duration.minutes(job.every_minutes),
                )
            )

    def dead_letter_queue(self, purpose: str, key: kms.IKey) -> sqs.Queue:
        queue = sqs.Queue(
            self,
            f"Queue-{purpose}",
            queue_name=self.cfg.resource(purpose),
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=RETENTION,
        )
        acknowledge(
            queue,
            "AwsSolutions-SQS3",
            "This queue is a dead-letter queue; a DLQ of a DLQ would hide failures.",
        )
        acknowledge(
            queue,
            "Serverless-SQSRedrivePolicy",
            "This queue is a dead-letter queue; alarms watch it instead.",
        )
        return queue


def _pattern(pattern: dict[str, object]) -> events.EventPattern:
    return events.EventPattern(
        source=pattern.get("source"),  # type: ignore[arg-type]
        detail_type=pattern.get("detail-type"),  # type: ignore[arg-type]
        detail=pattern.get("detail"),  # type: ignore[arg-type]
    )

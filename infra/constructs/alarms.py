"""Alarms, their routing to WeCom, and the pipeline dashboard — per environment, from cdk.json.

The dashboard has a row per stage (ingest, normalise, sync, deliver) and one for the read side: the
lookup API's answers (``LookupServed`` / ``LookupNotFound`` / ``LookupRefused``, emitted by
``functions/lookup``) and the lookup function's errors and p99 duration.

CloudWatch alarm -> SNS topic (critical or warning) -> the alarms queue -> notify λ -> WeCom robots.
The queue between SNS and the function lets a burst of alarm changes be read as one batch (one
digest per robot), lets changes that hit the robot's limit wait their turn, and has a DLQ, so no
alarm is dropped silently. Missing data is never an alarm (NOT_BREACHING); every alarm also sends
its recovery (OK).
"""

from __future__ import annotations

import math

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import EnvironmentConfig
from infra.constructs.messaging import Messaging
from infra.wiring import DOMAINS
from shared.constants import ALARM_TOPIC_SUFFIXES, metrics_namespace
from shared.observability import SERVICE

SUCCESS_RATE = "(FILL(processed, 0) - FILL(quarantined, 0)) / (FILL(processed, 0) + FILL(failed, 0))"


class Alarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: EnvironmentConfig,
        key: kms.IKey,
        messaging: Messaging,
        functions: dict[str, lambda_.Function],
        api: apigw.RestApi,
    ) -> None:
        super().__init__(scope, construct_id)
        self.cfg = cfg
        self.period = Duration.minutes(cfg.alarms.period_minutes)
        # CloudWatch publishes to the encrypted topics, SNS writes to the encrypted alarms queue.
        key.grant_encrypt_decrypt(iam.ServicePrincipal("cloudwatch.amazonaws.com"))
        key.grant_encrypt_decrypt(iam.ServicePrincipal("sns.amazonaws.com"))
        self.topics = {
            severity: sns.Topic(
                self,
                f"Topic-{severity}",
                topic_name=cfg.resource(suffix),
                display_name=f"Aftersync {cfg.name} {severity} alarms",
                master_key=key,
                enforce_ssl=True,
            )
            for severity, suffix in ALARM_TOPIC_SUFFIXES.items()
        }
        # What SNS cannot hand to the alarms queue waits in a DLQ (itself alarmed) instead of vanishing.
        self.topics_dlq = messaging.dead_letter_queue("alarm-topics-dlq", key)
        for topic in self.topics.values():
            topic.add_subscription(
                subscriptions.SqsSubscription(messaging.queues["alarms"], dead_letter_queue=self.topics_dlq)
            )
        self.alarms: list[cw.Alarm] = []

        # The sync success rate: records every consumer handled, against the ones that failed
        # (retried or dead-lettered) or were quarantined.
        rate = cw.MathExpression(
            expression=f"IF((FILL(processed, 0) + FILL(failed, 0)) > 0, {SUCCESS_RATE})",
            using_metrics={
                "processed": self.metric("RecordProcessed"),
                "failed": self.metric("RecordFailed"),
                "quarantined": self.metric("EventQuarantined"),
            },
            label="sync success rate",
            period=self.period,
        )
        self.success_rate = rate
        self.alarm(
            "sync-success-rate",
            "critical",
            rate,
            cfg.success_rate_threshold,
            cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            f"Share of records handled without failure or quarantine fell below {cfg.success_rate_threshold:.3%}",
        )

        # Any message in any DLQ (and in the quarantine): something needs an operator.
        dead_letters: dict[str, sqs.IQueue] = {
            **{f"{purpose}-dlq": q for purpose, q in messaging.dlqs.items()},
            "publish-dlq": messaging.stream_dlq,
            "events-dlq": messaging.events_dlq,
            "alarm-topics-dlq": self.topics_dlq,
        }
        for name, queue in sorted(dead_letters.items()):
            self.alarm(
                f"{name}-not-empty",
                "critical",
                queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(1), statistic="Maximum"),
                0,
                cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                f"Messages in {queue.queue_name}: see `aftersync dlq show {name}`, fix, then `aftersync dlq redrive`",
            )
        self.alarm(
            "quarantine-not-empty",
            "warning",
            messaging.queues["quarantine"].metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            0,
            cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            "Verified deliveries that could not be normalised or merged are waiting in the quarantine",
        )
        # Work waiting too long in a working queue.
        for purpose, queue in sorted(messaging.queues.items()):
            if purpose in messaging.dlqs:
                self.alarm(
                    f"{purpose}-oldest-message-age",
                    "warning",
                    queue.metric_approximate_age_of_oldest_message(period=Duration.minutes(1), statistic="Maximum"),
                    cfg.alarms.max_message_age_seconds,
                    cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    f"The oldest message in {queue.queue_name} waited over {cfg.alarms.max_message_age_seconds} s",
                )
        for name, function in sorted(functions.items()):
            self.alarm(
                f"{name}-errors",
                "warning",
                function.metric_errors(period=self.period, statistic="Sum"),
                0,
                cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                f"{function.function_name} raised errors (crashes, timeouts; failed records are counted apart)",
            )
            self.alarm(
                f"{name}-throttles",
                "warning",
                function.metric_throttles(period=self.period, statistic="Sum"),
                0,
                cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                f"{function.function_name} was throttled",
            )
        self.alarm(
            "api-5xx",
            "critical",
            api.metric_server_error(period=self.period, statistic="Sum"),
            0,
            cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            "The webhook API answered 5xx: platforms will retry, some give up",
        )
        surge = cw.MathExpression(
            expression=f"IF(requests >= {cfg.alarms.api_4xx_min_requests}, errors / requests)",
            using_metrics={
                "errors": api.metric_client_error(period=self.period, statistic="Sum"),
                "requests": api.metric_count(period=self.period, statistic="Sum"),
            },
            label="API 4xx share",
            period=self.period,
        )
        self.alarm(
            "api-4xx-surge",
            "warning",
            surge,
            cfg.alarms.api_4xx_rate,
            cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            f"Over {cfg.alarms.api_4xx_rate:.0%} of webhooks refused: a rotated secret, a new topic, or an attack",
        )
        # Deliveries waiting on a target (open circuit, rate limit): each wait sends a new copy of its
        # message, so the queue's oldest-message age restarts; WaitingAge says how old the waiting change
        # is. A copy comes back within 15 minutes, so any breaching point in the last 15 minutes alarms.
        waiting_window = max(1, math.ceil(15 / self.cfg.alarms.period_minutes))
        self.alarm(
            "deliveries-waiting",
            "warning",
            self.metric("WaitingAge", "Maximum"),
            cfg.alarms.max_message_age_seconds * 1000,
            cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            f"A change has waited over {cfg.alarms.max_message_age_seconds} s for its target "
            "(circuit open or rate limited): see the DeliveryDeferred count per target",
            evaluation_periods=waiting_window,
            datapoints_to_alarm=1,
        )
        self.alarm(
            "freshness-p99",
            "warning",
            self.metric("Freshness", "p99"),
            cfg.alarms.freshness_p99_seconds * 1000,
            cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            f"p99 from a change at its source to its delivery is over {cfg.alarms.freshness_p99_seconds} s",
        )
        self.alarm(
            "wecom-undeliverable",
            "critical",
            self.metric("WeComUndeliverable"),
            0,
            cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            "A WeCom robot refused alarm messages for good (errcode 93000: its key is invalid)",
        )
        if cfg.reconcile:
            self.alarm(
                "webhooks-missed",
                "warning",
                self.metric("ReconcileMissed"),
                0,
                cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                "A scheduled pull found changes no webhook had brought (now fed in): a platform's webhook "
                "subscription or our endpoint is losing events",
            )
        self.dashboard = self._dashboard(messaging, functions, api, dead_letters)

    def metric(self, name: str, statistic: str = "Sum") -> cw.Metric:
        return cw.Metric(
            namespace=metrics_namespace(self.cfg.name),
            metric_name=name,
            dimensions_map={"service": SERVICE},
            statistic=statistic,
            period=self.period,
        )

    def alarm(
        self,
        name: str,
        severity: str,
        metric: cw.IMetric,
        threshold: float,
        operator: cw.ComparisonOperator,
        description: str,
        evaluation_periods: int | None = None,
        datapoints_to_alarm: int | None = None,
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            f"Alarm-{name}",
            alarm_name=self.cfg.resource(name),
            alarm_description=f"[{severity}] {description}",
            metric=metric,
            threshold=threshold,
            comparison_operator=operator,
            evaluation_periods=evaluation_periods or max(self.cfg.alarms.datapoints_to_alarm, 1),
            datapoints_to_alarm=datapoints_to_alarm or self.cfg.alarms.datapoints_to_alarm,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        action = cw_actions.SnsAction(self.topics[severity])
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        self.alarms.append(alarm)
        return alarm

    def _dashboard(
        self,
        messaging: Messaging,
        functions: dict[str, lambda_.Function],
        api: apigw.RestApi,
        dead_letters: dict[str, sqs.IQueue],
    ) -> cw.Dashboard:
        def graph(title: str, metrics: list[cw.IMetric], width: int = 8) -> cw.GraphWidget:
            return cw.GraphWidget(title=title, left=metrics, width=width, height=6)

        queues = messaging.queues
        dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=self.cfg.resource("pipeline"))
        dashboard.add_widgets(
            cw.TextWidget(markdown=f"# Aftersync {self.cfg.name}: the pipeline stage by stage", width=24, height=1)
        )
        dashboard.add_widgets(
            graph(
                "1 · Ingest: webhooks",
                [self.metric(n) for n in ("WebhookAccepted", "WebhookDuplicate", "WebhookRejected", "WebhookPing")],
            ),
            graph(
                "1 · Ingest: API answers", [api.metric_count(), api.metric_client_error(), api.metric_server_error()]
            ),
            graph("1 · Ingest: API latency p99", [api.metric_latency(statistic="p99")]),
        )
        dashboard.add_widgets(
            graph("2 · Normalise", [self.metric("EventNormalised"), self.metric("EventQuarantined")]),
            graph(
                "2 · Inbox queue",
                [
                    queues["inbox"].metric_approximate_number_of_messages_visible(),
                    queues["inbox"].metric_approximate_age_of_oldest_message(),
                ],
            ),
            graph(
                "3 · Sync: state", [self.metric(n) for n in ("StateChanged", "StateUnchanged", "StateConflictRetry")]
            ),
        )
        dashboard.add_widgets(
            graph(
                "3 · Sync: domain queues", [queues[d].metric_approximate_number_of_messages_visible() for d in DOMAINS]
            ),
            graph("4 · Deliver", [self.metric("DeliverySucceeded"), self.metric("DeliveryFailed")]),
            graph("4 · Freshness (ms)", [self.metric("Freshness", "p50"), self.metric("Freshness", "p99")]),
        )
        lookup = functions["lookup"]
        dashboard.add_widgets(  # the read side: what the lookup API answered, and its function's health
            graph(
                "5 · Read side: lookups",
                [
                    self.metric("LookupServed").with_(label="served (200)"),
                    self.metric("LookupNotFound").with_(label="not found (404)"),
                    self.metric("LookupRefused").with_(label="refused (401)"),
                ],
            ),
            graph("5 · Read side: lookup errors", [lookup.metric_errors(period=self.period, label="errors")]),
            graph(
                "5 · Read side: lookup duration p99 (ms)",
                [lookup.metric_duration(statistic="p99", period=self.period, label="p99")],
            ),
        )
        dashboard.add_widgets(
            graph("Sync success rate", [self.success_rate]),
            graph(
                "Dead letters",
                [q.metric_approximate_number_of_messages_visible(label=n) for n, q in sorted(dead_letters.items())],
            ),
            graph(
                "Lambda errors and throttles",
                [m for f in functions.values() for m in (f.metric_errors(), f.metric_throttles())],
            ),
        )
        dashboard.add_widgets(cw.AlarmStatusWidget(alarms=list(self.alarms), title="Alarms", width=24, height=6))
        return dashboard

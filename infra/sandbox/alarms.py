"""CloudWatch alarms, evaluated in the sandbox the way CloudWatch would.

moto stores alarms but does not evaluate them, so the sandbox does: over a sliding window of the
metrics the handlers emitted (their EMF output, captured by the Lambda runtime stand-in) it computes
the same sync success rate as the stack's metric-math alarm, and it watches every DLQ's depth. On a
state change it publishes the message CloudWatch would publish to the alarm's SNS topic — from there
the real path runs: SNS -> the alarms queue -> the notify function -> the (fake) WeCom robot.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3

from infra.config import EnvironmentConfig
from infra.sandbox.resources import ACCOUNT

PERIOD_SECONDS = 5.0  # the sandbox's alarm period (CloudWatch's is minutes; a demo cannot wait that long)


class SandboxAlarms(threading.Thread):
    def __init__(
        self,
        cfg: EnvironmentConfig,
        emf: list[dict[str, Any]],
        depths: Callable[[], dict[str, int]],
        topics: dict[str, str],
        period: float = PERIOD_SECONDS,
    ) -> None:
        super().__init__(name="sandbox-alarms", daemon=True)
        self.cfg = cfg
        self.emf = emf
        self.depths = depths
        self.topics = topics
        self.period = period
        self.state: dict[str, str] = {}
        self.published: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self.busy = False  # read by Sandbox.drain, like the pollers'

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            self.evaluate(time.time())

    def success_rate(self, now: float) -> float | None:
        """(processed - quarantined) / (processed + failed) over the last period: the stack's expression."""
        totals = {"RecordProcessed": 0.0, "RecordFailed": 0.0, "EventQuarantined": 0.0}
        for record in list(self.emf):
            if now - self.period <= record["_aws"]["Timestamp"] / 1000 <= now:
                for directive in record["_aws"]["CloudWatchMetrics"]:
                    for metric in directive["Metrics"]:
                        if metric["Name"] in totals and directive["Dimensions"] == [["service"]]:
                            value = record[metric["Name"]]
                            totals[metric["Name"]] += sum(value) if isinstance(value, list) else value
        processed, failed, quarantined = totals["RecordProcessed"], totals["RecordFailed"], totals["EventQuarantined"]
        if processed + failed <= 0:
            return None  # no data: not breaching
        return (processed - quarantined) / (processed + failed)

    def evaluate(self, now: float) -> None:
        rate = self.success_rate(now)
        threshold = self.cfg.success_rate_threshold
        self._set(
            "sync-success-rate",
            "critical",
            breaching=rate is not None and rate < threshold,
            value=rate,
            threshold=threshold,
            operator="LessThanThreshold",
            now=now,
        )
        for purpose, depth in self.depths().items():
            if purpose.endswith("-dlq"):
                self._set(
                    f"{purpose}-not-empty",
                    "critical",
                    breaching=depth > 0,
                    value=float(depth),
                    threshold=0,
                    operator="GreaterThanThreshold",
                    now=now,
                )

    def _set(
        self,
        name: str,
        severity: str,
        *,
        breaching: bool,
        value: float | None,
        threshold: float,
        operator: str,
        now: float,
    ) -> None:
        new = "ALARM" if breaching else "OK"
        old = self.state.get(name, "OK")
        self.state[name] = new
        if new == old:
            return
        alarm_name = self.cfg.resource(name)
        at = datetime.fromtimestamp(now, UTC)
        shown = "n/a" if value is None else f"{value:.4g}"
        verb = "was less than" if operator == "LessThanThreshold" else "was greater than"
        message = {
            "AlarmName": alarm_name,
            "AlarmDescription": f"[{severity}] sandbox evaluation of {alarm_name}",
            "AWSAccountId": ACCOUNT,
            "AlarmArn": f"arn:aws:cloudwatch:{self.cfg.region}:{ACCOUNT}:alarm:{alarm_name}",
            "NewStateValue": new,
            "OldStateValue": old,
            "NewStateReason": (
                f"Threshold Crossed: 1 out of the last 1 datapoints [{shown} ({at:%d/%m/%y %H:%M:%S})] "
                f"{verb if breaching else 'was not beyond'} the threshold ({threshold:g})."
            ),
            "StateChangeTime": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000",
            "Region": self.cfg.region,
            "Trigger": {"Threshold": threshold, "ComparisonOperator": operator, "EvaluationPeriods": 1},
        }
        boto3.client("sns").publish(TopicArn=self.topics[severity], Message=json.dumps(message), Subject=alarm_name)
        self.published.append(message)

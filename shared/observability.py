"""The one Logger, Tracer and Metrics of every function.

Metrics go to the namespace ``Aftersync/<env>`` (``POWERTOOLS_METRICS_NAMESPACE``, set per environment
by the stack and the sandbox), with the single dimension ``service=aftersync``: the alarms and the
dashboard address them by exactly that.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

SERVICE = "aftersync"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Aftersync"), service=SERVICE)


def count_by(name: str, dimension: str, value: str) -> None:
    """One count with an extra dimension (per target, per rejection reason), beside the totals."""
    with single_metric(
        name=name, unit=MetricUnit.Count, value=1, namespace=metrics.namespace, default_dimensions={"service": SERVICE}
    ) as metric:
        metric.add_dimension(name=dimension, value=value)

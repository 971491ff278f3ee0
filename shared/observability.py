"""The one Logger, Tracer and Metrics of every function.

Metrics go to the namespace ``Aftersync/<env>`` (``POWERTOOLS_METRICS_NAMESPACE``, set per environment
by the stack and the sandbox), with the single dimension ``service=aftersync``: the alarms and the
dashboard address them by exactly that.
"""

from __future__ import annotations

import logging
import os
import traceback
from types import TracebackType
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from shared.masking import describe

if TYPE_CHECKING:
    from aws_lambda_powertools.logging.types import LogStackTrace

SERVICE = "aftersync"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class NoValuesFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON log lines, with a logged exception's traceback (the frames: code, not data) but
    not its text: ``int()``'s ``ValueError`` or pydantic's error text quotes the payload, and payloads
    hold personal data. Each exception in the chain is shown by ``shared.masking.describe`` instead.
    (Powertools' batch processor logs every failed record's exception this way.)"""

    def formatException(self, ei: ExcInfo) -> str:
        error = ei[1]
        if error is None:
            return super().formatException(ei)
        chain: list[BaseException] = []
        current: BaseException | None = error
        while current is not None and all(current is not seen for seen in chain):
            chain.append(current)
            current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
        parts = []
        for exc in reversed(chain):
            frames = "".join(traceback.format_tb(exc.__traceback__))
            kind, what = type(exc).__name__, describe(exc)
            parts.append(f"Traceback (most recent call last):\n{frames}{kind}{'' if what == kind else ': ' + what}")
        return "\n\nThe above exception led to the following:\n\n".join(parts)

    def _serialize_stacktrace(self, log_record: logging.LogRecord) -> LogStackTrace | None:
        trace = super()._serialize_stacktrace(log_record)
        if trace is not None and isinstance(log_record.exc_info, tuple) and log_record.exc_info[1] is not None:
            trace["value"] = describe(log_record.exc_info[1])  # Powertools would put the exception's text here
        return trace


logger = Logger(service=SERVICE, logger_formatter=NoValuesFormatter())
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Aftersync"), service=SERVICE)


def count_by(name: str, dimension: str, value: str) -> None:
    """One count with an extra dimension (per target, per rejection reason), beside the totals."""
    with single_metric(
        name=name, unit=MetricUnit.Count, value=1, namespace=metrics.namespace, default_dimensions={"service": SERVICE}
    ) as metric:
        metric.add_dimension(name=dimension, value=value)

"""The one Logger, Tracer and Metrics of every function.

Metrics go to the namespace ``Aftersync/<env>`` (``POWERTOOLS_METRICS_NAMESPACE``, set per environment
by the stack and the sandbox), with the single dimension ``service=aftersync``: the alarms and the
dashboard address them by exactly that.

The Tracer is Powertools' own, created only where tracing is on: the X-Ray SDK it loads costs more at
each cold start than all our modules together, so where an environment traces with Lambda's own
segments alone (``tracing: lambda`` in cdk.json, ``POWERTOOLS_TRACE_DISABLED=true``) the SDK is never
imported.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Mapping
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import strtobool

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


Handler = TypeVar("Handler", bound=Callable[..., Any])

# What the X-Ray SDK records where tracing is on: AWS calls and our outbound HTTP (urllib3 over
# http.client). Not Powertools' default of every library the SDK knows, which imports and patches more.
TRACED_MODULES = ("botocore", "httplib")


def tracing_disabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Powertools' rule: off when ``POWERTOOLS_TRACE_DISABLED`` is true, or outside Lambda (no
    ``LAMBDA_TASK_ROOT``: tests, the sandbox) or in SAM local / Chalice."""
    if strtobool(environ.get(constants.TRACER_DISABLED_ENV, "false")):
        return True
    in_lambda = bool(environ.get(constants.LAMBDA_TASK_ROOT_ENV))
    return not in_lambda or bool(environ.get(constants.SAM_LOCAL_ENV) or environ.get(constants.CHALICE_LOCAL_ENV))


class LazyTracer:
    """``tracer.capture_lambda_handler`` as Powertools has it, with the Tracer (and the X-Ray SDK) made
    only if tracing is on when the handler is decorated, that is when its module is imported."""

    @cached_property
    def tracer(self) -> Tracer:
        return Tracer(service=SERVICE, patch_modules=list(TRACED_MODULES))

    def capture_lambda_handler(self, handler: Handler) -> Handler:
        if tracing_disabled():
            return handler
        return cast(Handler, self.tracer.capture_lambda_handler(handler))

    def capture_method(self, method: Handler) -> Handler:
        if tracing_disabled():
            return method
        return cast(Handler, self.tracer.capture_method(method))


class CountingEMFProvider(AmazonCloudWatchEMFProvider):
    """Powertools' EMF provider, plus counts with an extra dimension (per target, per rejection reason)
    summed over the invocation and flushed with the other metrics: one EMF document per dimension value
    an invocation saw, not one per record. (A ``single_metric`` per record wrote a whole EMF document,
    about 300 bytes of CloudWatch Logs, for every delivery of a batch.) Counted under a lock: a handler's
    records may run on threads (sync's), and ``counter[key] += 1`` is a read and a write."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.by_dimension: Counter[tuple[str, str, str]] = Counter()
        self.lock = threading.Lock()

    def count_by(self, name: str, dimension: str, value: str) -> None:
        with self.lock:
            self.by_dimension[(dimension, value, name)] += 1

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        self.flush_counts()
        super().flush_metrics(raise_on_empty_metrics=raise_on_empty_metrics)

    def flush_counts(self) -> None:
        with self.lock:
            counts, self.by_dimension = self.by_dimension, Counter()
        if not counts or is_metrics_disabled():
            return
        grouped: dict[tuple[str, str], dict[str, Any]] = {}
        for (dimension, value, name), count in sorted(counts.items()):
            metric = {"Unit": "Count", "Value": count, "StorageResolution": 60}
            grouped.setdefault((dimension, value), {})[name] = metric
        for (dimension, value), named in grouped.items():
            document = self.serialize_metric_set(
                metrics=named, dimensions={"service": SERVICE, dimension: value}, metadata={}
            )
            print(json.dumps(document, separators=(",", ":")))


logger = Logger(service=SERVICE, logger_formatter=NoValuesFormatter())
tracer = LazyTracer()
_namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Aftersync")
metrics = Metrics(
    provider=CountingEMFProvider(
        namespace=_namespace,
        service=SERVICE,
        # the sets every Metrics instance shares, as Powertools' own provider is given them
        metric_set=Metrics._metrics,
        dimension_set=Metrics._dimensions,
        metadata_set=Metrics._metadata,
        default_dimensions=Metrics._default_dimensions,
    )
)


class LockedMetrics:
    """The metrics, added to under a lock: Powertools' metric set is a plain dict, and two threads adding
    the same new metric at once could lose a count (the success rate is computed from these). For the
    handlers whose records run on threads (sync's, deliver's): one lock for the process."""

    def __init__(self, metrics: Any) -> None:
        self.metrics = metrics
        self.lock = threading.Lock()

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        with self.lock:
            self.metrics.add_metric(name=name, unit=unit, value=value)


counted = LockedMetrics(metrics)


def count_by(name: str, dimension: str, value: str) -> None:
    """One count with an extra dimension (per target, per rejection reason), beside the totals; summed
    over the invocation and flushed by ``metrics.log_metrics`` at its end."""
    cast(CountingEMFProvider, metrics.provider).count_by(name, dimension, value)

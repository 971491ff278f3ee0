"""The one Logger, Tracer and Metrics of every function (service name and namespace from env)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="aftersync")
tracer = Tracer(service="aftersync")
metrics = Metrics(namespace="Aftersync", service="aftersync")

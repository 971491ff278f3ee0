"""Counts with an extra dimension (``shared.observability.count_by``): summed over an invocation into one
EMF document per dimension value, exact when a handler's records count on threads."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from shared.observability import CountingEMFProvider


def _documents(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]


def test_counts_are_summed_into_one_document_per_dimension_value(capsys: pytest.CaptureFixture[str]) -> None:
    provider = CountingEMFProvider(namespace="Aftersync/test", service="aftersync")
    for target in ("crm", "crm", "erp", "crm"):
        provider.count_by("DeliverySucceeded", "target", target)
    provider.count_by("DeliveryFailed", "target", "erp")
    provider.flush_counts()

    documents = _documents(capsys)
    assert [(d["target"], d.get("DeliverySucceeded"), d.get("DeliveryFailed")) for d in documents] == [
        ("crm", 3, None),
        ("erp", 1, 1),
    ]
    assert {tuple(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) for d in documents} == {("service", "target")}
    provider.flush_counts()
    assert _documents(capsys) == []  # flushed counts are gone


def test_counts_from_eight_threads_add_up_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    provider = CountingEMFProvider(namespace="Aftersync/test", service="aftersync")
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as they can: a lost update would show
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [
                pool.submit(lambda: [provider.count_by("X", "target", "crm") for _ in range(5_000)]) for _ in range(8)
            ]
            for future in futures:
                future.result()
    finally:
        sys.setswitchinterval(switch)
    provider.flush_counts()

    assert [d["X"] for d in _documents(capsys)] == [5_000 * 8]

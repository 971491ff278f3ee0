"""Backfill of an old after-sales system's Excel export through the CLI, on the real handlers (moto):
10,000 rows in batches of 500, each verified before the next; a send failing in batch 8 stops the run,
and the next run resumes at batch 8 and admits every record exactly once.

The pipeline runs while the CLI waits for a batch (its pause between two checks): the inbox through
the normalise handler, the domain queues through the sync handler, in the queues' batches of 10. The
stream consumers (publish, project, audit archive) are left out: the report reads the state, which
sync writes, and running them for 10,000 cases would take minutes on moto without testing anything
this test is about (tests/integration/test_backfill.py runs a backfill through all of them).

Its cost is the rows' AWS calls on moto (about 2 to admit a row, 2 more in normalise and sync): 160 s of
CPU for 10,000 rows on the 2-core machine it was written on (load 1.5). ``BACKFILL_ROWS=2000`` runs the
same test (20 batches of 100) in about 35 s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from openpyxl import Workbook
from typer.testing import CliRunner

from infra.wiring import DOMAINS
from ops import backfill_batches
from ops.cli import app
from ops.cli.common import Where
from ops.resources import Resources
from shared.adapters.sqs import SqsQueue
from shared.adapters.state_store import DynamoStateStore
from tests.integration.conftest import Stack

ROWS = int(os.environ.get("BACKFILL_ROWS", "10000"))  # fewer for a quick run: 20 batches either way
BATCH = ROWS // 20
SENT = BATCH // 5  # of batch 8 when its next send fails (100 of 500)
STATUSES = {"待审核": "requested", "已同意": "approved", "已退款": "refunded", "已拒绝": "rejected", "已关闭": "closed"}
COLUMN_MAP = {
    "source": "crm",
    "entity_type": "after_sales_case",
    "entity_id": {"template": "legacy:{case_id}"},
    "occurred_at": {"path": "创建时间", "utc_offset": "+08:00"},
    "fields": {
        "case_id": "工单号",
        "order_id": "订单号",
        "kind": {"const": "refund"},
        "status": {"path": "状态", "map": STATUSES},
        "amount.amount": "退款金额",
        "amount.currency": {"const": "CNY"},
    },
}
runner = CliRunner()


def export(path: Path, rows: int) -> None:
    """An old after-sales system's export: a header, then one case per row; dates are Excel dates."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet("工单")
    sheet.append(["工单号", "订单号", "状态", "退款金额", "创建时间", "客户电话"])
    start = datetime(2023, 1, 1, 9, 0)
    codes = list(STATUSES)
    for n in range(rows):
        sheet.append(
            [f"AS{n:06d}", f"SO{n:06d}", codes[n % 5], round(10 + n % 997 * 0.5, 2), start + timedelta(minutes=n), "1"]
        )
    book.save(path)


@pytest.fixture
def operator(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """The CLI pointed at the stack on moto; while it waits for a batch, the pipeline runs. Yields the
    counts of what reached the inbox, by dedupe key."""
    refs = stack.resources.refs
    resources = Resources(
        where="sandbox",
        environment=stack.cfg.name,
        region=stack.cfg.region,
        endpoint_url=None,
        state_table=refs.state_table,
        view_table=refs.view_table,
        idempotency_table=refs.idempotency_table,
        archive_bucket=refs.archive_bucket,
        queues=stack.resources.queue_urls,
        api_url=None,
    )
    monkeypatch.setattr(Where, "resources", lambda self: resources)
    # the CLI checks a batch, pauses, checks again: the pipeline moves in the pause
    pollers = [stack._sqs_poller("normalise", "inbox")] + [stack._sqs_poller("sync", d) for d in DOMAINS]

    def run_pipeline(seconds: float) -> None:
        while sum(p.poll_once() for p in pollers):
            pass

    monkeypatch.setattr(backfill_batches, "pause", run_pipeline)
    sent: dict[str, int] = {}
    send = SqsQueue.send

    def counted(queue: SqsQueue, body: str, attributes: dict[str, str] | None = None) -> str:
        if queue.url == stack.resources.queue_urls["inbox"]:
            key = json.loads(body)["dedupe_key"]
            sent[key] = sent.get(key, 0) + 1
        return send(queue, body, attributes)

    monkeypatch.setattr(SqsQueue, "send", counted)
    yield sent


def admission_records(stack: Stack) -> int:
    pages = boto3.client("dynamodb").get_paginator("scan")
    return sum(p["Count"] for p in pages.paginate(TableName=stack.resources.refs.idempotency_table, Select="COUNT"))


def backfill(*args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["backfill", *args, "--tenant", "demo", "--json", "--wait", "5"])
    return result.exit_code, json.loads(result.stdout)


def test_a_10000_row_export_loads_in_verified_batches_and_resumes_at_the_batch_it_stopped_in(
    stack: Stack, operator: dict[str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workbook, column_map = tmp_path / "售后工单导出.xlsx", tmp_path / "legacy.json"
    export(workbook, ROWS)
    column_map.write_text(json.dumps(COLUMN_MAP, ensure_ascii=False), encoding="utf-8")

    # Batch 8's 101st send (of 500) fails (SQS throttles): batches 1-7 are verified and checkpointed by then.
    send = SqsQueue.send
    calls = {"n": 0}

    def throttled(queue: SqsQueue, body: str, attributes: dict[str, str] | None = None) -> str:
        if queue.url == stack.resources.queue_urls["inbox"]:
            calls["n"] += 1
            if calls["n"] == 7 * BATCH + SENT + 1:
                raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "SendMessage")
        return send(queue, body, attributes)

    monkeypatch.setattr(SqsQueue, "send", throttled)
    code, first = backfill(str(workbook), "--map", str(column_map), "--batch-size", str(BATCH))
    assert (code, first["stopped"], first["resume_at_batch"]) == (1, "an AWS call failed (ThrottlingException)", 8)
    assert (first["records"], first["rejected"], first["batches_planned"]) == (ROWS, [], 20)
    assert [(b["batch"], b["admitted"], b["applied"], b["verified"]) for b in first["batches"]] == [
        (n, BATCH, BATCH, True) for n in range(1, 8)
    ]
    assert [(b["first_line"], b["last_line"]) for b in first["batches"][:2]] == [
        (2, BATCH + 1),
        (BATCH + 2, 2 * BATCH + 1),
    ]
    assert len(operator) == 7 * BATCH + SENT  # the failed send released its record: nothing else went out

    monkeypatch.setattr(SqsQueue, "send", send)  # the operator's counting send again
    code, second = backfill(str(workbook), "--map", str(column_map), "--batch-size", str(BATCH))
    assert code == 0, second
    batches = second["batches"]
    assert [(b["batch"], b["resumed"], b["admitted"]) for b in batches[:8]] == [(n, True, 0) for n in range(1, 8)] + [
        (8, False, BATCH - SENT)  # its first 100 were sent before the failure: not sent again
    ]
    assert (batches[7]["sent_earlier"], batches[7]["duplicates"]) == (SENT, 0)
    assert [b["verified"] for b in batches] == [True] * 20
    assert all((b["resumed"], b["admitted"], b["duplicates"]) == (False, BATCH, 0) for b in batches[8:])
    assert (second["admitted"], second["already_backfilled"], second["report"]["applied"]) == (
        ROWS - 7 * BATCH - SENT,
        7 * BATCH + SENT,
        ROWS,
    )
    assert second["report"]["pending"] == [] and second["stopped_at"] is None

    # every record reached the inbox exactly once, and has one admission record (+ the checkpoint)
    assert (len(operator), sorted(set(operator.values()))) == (ROWS, [1]), [k for k, v in operator.items() if v > 1][:3]
    assert admission_records(stack) == ROWS + 1
    store = DynamoStateStore(stack.resources.refs.state_table)
    n = 7123 % ROWS
    case, _ = store.load("demo", "after_sales_case", f"legacy:AS{n:06d}")
    assert case is not None
    assert {k: case.fields[k] for k in ("case_id", "order_id", "kind", "status")} == {
        "case_id": f"AS{n:06d}",
        "order_id": f"SO{n:06d}",
        "kind": "refund",
        "status": STATUSES[list(STATUSES)[n % 5]],
    }

    code, third = backfill(str(workbook), "--map", str(column_map), "--batch-size", str(BATCH))
    assert (code, third["admitted"], third["already_backfilled"], len(operator)) == (0, 0, ROWS, ROWS)

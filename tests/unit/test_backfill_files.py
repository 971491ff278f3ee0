"""Backfill from exports: CSV and Excel rows through a column map, the map's validation, and the batch
runner's stop / go-on / resume rules with its checkpoint (on moto)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from openpyxl import Workbook

from ops.backfill_batches import (
    Batch,
    BatchResult,
    Checkpoints,
    batches,
    checkpoint_key,
    patient_verify,
    run_batches,
)
from ops.backfill_files import (
    ColumnMap,
    UnreadableFile,
    file_format,
    load_column_map,
    mapped_records,
    read_csv,
    read_xlsx,
)
from shared.pulls.backfill import Admitted, Check, Plan, Report, plan
from tests.fakes import FakeArchive, FakeOnce, FakeQueue

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
MAP: dict[str, Any] = {
    "source": "crm",
    "entity_type": "after_sales_case",
    "entity_id": {"template": "legacy:{case_id}"},
    "occurred_at": {"path": "创建时间", "utc_offset": "+08:00"},
    "fields": {
        "case_id": "工单号",
        "order_id": "订单号",
        "kind": {"const": "refund"},
        "status": {"path": "状态", "map": {"待审核": "requested", "已退款": "refunded"}},
        "amount.amount": "退款金额",
        "amount.currency": {"const": "CNY"},
    },
}
HEADER = "工单号,订单号,状态,退款金额,创建时间,客户电话"


def column_map(**changes: Any) -> ColumnMap:
    return ColumnMap.model_validate({**MAP, **changes})


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


# ---- CSV and Excel ---------------------------------------------------------------------------
def test_a_csv_with_a_bom_and_empty_rows_maps_each_row_by_its_spreadsheet_row_number(tmp_path: Path) -> None:
    text = (
        f"\ufeff{HEADER}\r\n"
        "AS1,SO1,已退款,99.50,2024/3/1 9:30,13800138000\r\n"
        ",,,,,\r\n"  # an empty row
        "\r\n"  # a blank line
        "AS2,SO2,待审核,10,2024-03-02 18:05:07,\r\n"
    )
    table = read_csv(write(tmp_path, "export.csv", text))
    assert table.header == ("工单号", "订单号", "状态", "退款金额", "创建时间", "客户电话")  # no BOM in the first name
    assert ([n for n, _ in table.rows], table.empty_rows) == ([2, 5], 2)
    records, rejected = mapped_records(table, column_map())
    assert rejected == []
    assert [(n, json.loads(text)) for n, text in records] == [
        (
            2,
            {
                "entity_type": "after_sales_case",
                "entity_id": "legacy:AS1",
                "occurred_at": "2024-03-01T09:30:00+08:00",
                "entity": {
                    "case_id": "AS1",
                    "order_id": "SO1",
                    "kind": "refund",
                    "status": "refunded",
                    "amount": {"amount": "99.50", "currency": "CNY"},
                },
            },
        ),
        (
            5,
            {
                "entity_type": "after_sales_case",
                "entity_id": "legacy:AS2",
                "occurred_at": "2024-03-02T18:05:07+08:00",
                "entity": {
                    "case_id": "AS2",
                    "order_id": "SO2",
                    "kind": "refund",
                    "status": "requested",
                    "amount": {"amount": "10", "currency": "CNY"},
                },
            },
        ),
    ]
    # the same rows again, without the BOM: the same records, byte for byte (the same dedupe keys)
    again = read_csv(write(tmp_path, "again.csv", text.removeprefix("\ufeff")))
    assert mapped_records(again, column_map())[0] == records


def test_rows_that_do_not_map_name_the_row_and_the_column_never_the_value(tmp_path: Path) -> None:
    text = (
        f"{HEADER}\n"
        "AS1,SO1,已退款,1,2024-13-45 25:00,\n"  # a bad date
        "AS2,SO2,李雷 13800138000,1,2024-03-01 10:00,\n"  # a status the code map does not list
        "AS3,SO3,已退款,1,,\n"  # no time at all
        "AS4,SO4,已退款,1,2024-03-01 10:00,\n"
    )
    records, rejected = mapped_records(read_csv(write(tmp_path, "export.csv", text)), column_map())
    assert [n for n, _ in records] == [5]
    assert [(r.line, r.reason) for r in rejected] == [
        (2, "column 创建时间: not a date and time (for occurred_at; e.g. 2024-03-01 09:30:00)"),
        (3, "column 状态: the value is not in the map of field status"),
        (4, "column 创建时间 is empty (occurred_at needs it)"),
    ]
    assert not any(value in r.reason for r in rejected for value in ("2024-13-45", "李雷", "13800138000"))


def test_a_missing_column_is_named_with_the_fields_that_need_it(tmp_path: Path) -> None:
    table = read_csv(write(tmp_path, "export.csv", "工单号,订单号,状态\nAS1,SO1,已退款\n"))
    assert column_map().missing_columns(table.header) == [
        "column 创建时间 (for occurred_at) is not in the header",
        "column 退款金额 (for amount.amount) is not in the header",
    ]


def test_a_csv_that_is_not_utf8_is_refused_with_the_line_and_what_to_do(tmp_path: Path) -> None:
    gbk = f"{HEADER}\nAS1,SO1,已退款,1,2024-03-01 10:00,\n".encode("gbk")
    with pytest.raises(UnreadableFile) as refused:
        read_csv(write(tmp_path, "gbk.csv", gbk))
    assert str(refused.value) == (
        "aftersync: gbk.csv is not UTF-8 text (the first undecodable byte is on line 1): export it as CSV UTF-8, "
        "or convert it first (a GBK export: iconv -f GBK -t UTF-8)"
    )


def test_an_excel_export_reads_dates_numbers_and_skips_empty_rows(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["工单号", "订单号", "状态", "退款金额", "创建时间", None])
    sheet.append([1001, "SO1", "已退款", 99.5, datetime(2024, 3, 1, 9, 30)])
    sheet.append([None, None, None, None, None])
    sheet.append(["AS2", "SO2", "待审核", 12.0, "2024-03-02 08:00:00"])
    sheet.append(["AS3", "SO3", "待审核", 1, "下周一"])  # a bad date
    book.save(tmp_path / "export.xlsx")
    table = read_xlsx(tmp_path / "export.xlsx")
    assert (table.header, [n for n, _ in table.rows], table.empty_rows) == (
        ("工单号", "订单号", "状态", "退款金额", "创建时间"),
        [2, 4, 5],
        1,
    )
    assert table.rows[0][1] == {
        "工单号": 1001,
        "订单号": "SO1",
        "状态": "已退款",
        "退款金额": 99.5,
        "创建时间": "2024-03-01T09:30:00",
    }
    records, rejected = mapped_records(table, column_map())
    first, second = (json.loads(text) for _, text in records)
    assert (first["entity_id"], first["occurred_at"], first["entity"]["amount"]) == (
        "legacy:1001",
        "2024-03-01T09:30:00+08:00",
        {"amount": 99.5, "currency": "CNY"},
    )
    assert (second["entity"]["amount"]["amount"], second["occurred_at"]) == (12, "2024-03-02T08:00:00+08:00")
    assert [(r.line, r.reason) for r in rejected] == [
        (5, "column 创建时间: not a date and time (for occurred_at; e.g. 2024-03-01 09:30:00)")
    ]


def test_mapped_rows_plan_as_crm_observations(tmp_path: Path) -> None:
    text = f"{HEADER}\nAS1,SO1,已退款,99.50,2024-03-01 09:30,\nAS2,SO2,已退款,abc,2024-03-01 09:30,\n"
    records, _ = mapped_records(read_csv(write(tmp_path, "export.csv", text)), column_map())
    planned = plan("crm", "demo", "observation", records, NOW)
    [record] = planned.records
    [case] = record.observations
    assert (record.line, case.entity_type, case.entity_id, case.source, case.origin) == (
        2,
        "after_sales_case",
        "legacy:AS1",
        "crm",
        "backfill",
    )
    assert case.occurred_at == datetime(2024, 3, 1, 1, 30, tzinfo=UTC)
    [rejected] = planned.rejected  # the canonical model names the field: an amount that is not a number
    assert rejected.line == 3 and "amount.amount" in rejected.reason and "abc" not in rejected.reason


def test_the_format_comes_from_the_suffix_or_format(tmp_path: Path) -> None:
    assert [file_format(Path(n), None) for n in ("a.jsonl", "b.CSV", "c.xlsx", "d.ndjson")] == [
        "jsonl",
        "csv",
        "xlsx",
        "jsonl",
    ]
    assert file_format(Path("export.txt"), "csv") == "csv"
    with pytest.raises(UnreadableFile, match=re.escape("old binary Excel file: save it as .xlsx")):
        file_format(Path("old.xls"), None)
    with pytest.raises(
        UnreadableFile, match=re.escape("cannot tell the format of export.txt from its suffix: pass --format")
    ):
        file_format(Path("export.txt"), None)
    with pytest.raises(UnreadableFile, match="not an Excel workbook"):
        read_xlsx(write(tmp_path, "fake.xlsx", "工单号\n1\n"))


# ---- the column map --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"source": "shopify"},
            "source: 'shopify' is not an in-house source: rows become canonical observations, which the in-house "
            "sources take (erp, oms, wms, crm, callcenter, pos)",
        ),
        (
            {"fields": {**MAP["fields"], "refund_total": "退款金额"}},
            "map: fields ['refund_total'] are not fields of after_sales_case",
        ),
        (
            {"fields": {**MAP["fields"], "status": {"path": "状态", "const": "refunded"}}},
            "fields.status: a rule needs exactly one of path, const or template (got ['path', 'const'])",
        ),
        ({"occurred_at": {"path": "创建时间", "utc_offset": "Asia/Shanghai"}}, "occurred_at.utc_offset: String should"),
        ({"records": "rows"}, "map: records: a row is one record; remove 'records' from a column map"),
        ({"entity_type": "refund"}, "entity_type: Input should be 'order', 'after_sales_case'"),
    ],
)
def test_a_column_map_that_does_not_validate_names_the_field(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    path = write(tmp_path, "map.json", json.dumps({**MAP, **changes}, ensure_ascii=False))
    with pytest.raises(UnreadableFile) as refused:
        load_column_map(path)
    assert str(refused.value).startswith(f"aftersync: the column map map.json: {message}")


def test_the_documented_example_map_validates_and_its_digest_ignores_layout(tmp_path: Path) -> None:
    example = load_column_map(ROOT / "events" / "backfill" / "legacy_aftersales_map.json")
    assert (example.source, example.entity_type, sorted(example.columns())) == (
        "crm",
        "after_sales_case",
        sorted(["工单号", "订单号", "状态", "退款金额", "创建时间"]),
    )
    spaced = write(tmp_path, "spaced.json", json.dumps(MAP, indent=4, ensure_ascii=True))
    assert load_column_map(spaced).digest() == column_map().digest()
    assert column_map(fields={**MAP["fields"], "kind": {"const": "return"}}).digest() != column_map().digest()
    with pytest.raises(UnreadableFile, match=re.escape("the column map broken.json is not JSON")):
        load_column_map(write(tmp_path, "broken.json", "{"))


def test_lambda_code_never_imports_openpyxl() -> None:
    """Only the operator CLI reads Excel: nothing a function ships imports openpyxl or the ops package."""
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("functions", "shared")
        for path in (ROOT / folder).rglob("*.py")
        if "openpyxl" in (text := path.read_text(encoding="utf-8")) or "from ops" in text or "import ops" in text
    ]
    assert offenders == []


# ---- batches, stops, resume ------------------------------------------------------------------
def planned_cases(count: int) -> Plan:
    rows = [
        (n + 2, json.dumps({**_case(n)}, ensure_ascii=False)) for n in range(count)
    ]  # rows 2.. as a spreadsheet numbers them
    return plan("crm", "demo", "observation", rows, NOW)


def _case(n: int) -> dict[str, Any]:
    return {
        "entity_type": "after_sales_case",
        "entity_id": f"legacy:AS{n}",
        "occurred_at": "2024-03-01T09:30:00+08:00",
        "entity": {"case_id": f"AS{n}", "kind": "refund", "status": "refunded"},
    }


class Pipeline:
    """Admits into fakes; a batch verifies unless one of its records is in ``lost``."""

    def __init__(self, lost: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.lost, self.admitted, self.verified = set(lost), [], []  # type: ignore[var-annotated]
        self.ports_queue = FakeQueue()

    def admit(self, batch: Plan, first: int) -> Admitted:
        self.admitted.append((first, [r.line for r in batch.records]))
        from shared.intake.ingest import StorePorts
        from shared.pulls.backfill import admit

        return admit(batch, StorePorts(archive=FakeArchive(), inbox=self.ports_queue, once=FakeOnce()))

    def verify(self, batch: Plan, patient: bool) -> Report:
        self.verified.append((batch.records[0].line, patient))
        return Report(
            tuple(
                Check(r.line, "after_sales_case", "x", "pending" if r.line in self.lost else "applied")
                for r in batch.records
            )
        )


def test_batches_keep_file_order_and_each_is_verified_before_the_next_is_sent() -> None:
    pipeline, saved = Pipeline(), []
    results = run_batches(
        batches(planned_cases(12), 5), admit=pipeline.admit, verify=pipeline.verify, save=saved.append
    )
    assert [(r.batch.number, r.batch.lines, r.new, r.verified) for r in results] == [
        (1, (2, 6), 5, True),
        (2, (7, 11), 5, True),
        (3, (12, 13), 2, True),
    ]
    assert pipeline.admitted == [(0, [2, 3, 4, 5, 6]), (5, [7, 8, 9, 10, 11]), (10, [12, 13])]
    assert pipeline.verified == [(2, True), (7, True), (12, True)]
    assert [b.end for b in saved] == [5, 10, 12]


def test_the_first_batch_that_does_not_verify_stops_the_run_unless_told_to_keep_going() -> None:
    planned = batches(planned_cases(12), 5)
    pipeline, saved = Pipeline(lost={8}), []
    results = run_batches(planned, admit=pipeline.admit, verify=pipeline.verify, save=saved.append)
    assert [(r.batch.number, r.verified) for r in results] == [(1, True), (2, False)]
    assert ([b.number for b in saved], len(pipeline.admitted)) == ([1], 2)  # batch 3 never sent

    pipeline, saved = Pipeline(lost={8}), []
    results = run_batches(planned, admit=pipeline.admit, verify=pipeline.verify, save=saved.append, keep_going=True)
    assert [(r.batch.number, r.verified) for r in results] == [(1, True), (2, False), (3, True)]
    assert [b.number for b in saved] == [1]  # the checkpoint stays before the batch that failed


def test_a_resumed_run_rechecks_verified_batches_and_sends_only_what_was_not_sent() -> None:
    pipeline = Pipeline()
    results: list[BatchResult] = run_batches(
        batches(planned_cases(12), 5),
        admit=pipeline.admit,
        verify=pipeline.verify,
        verified_before=5,
        sent_before=7,  # the last run was cut short after sending 2 records of batch 2
    )
    assert [(r.batch.number, r.resumed, r.sent_earlier, r.new) for r in results] == [
        (1, True, 0, 0),
        (2, False, 2, 3),
        (3, False, 0, 2),
    ]
    assert pipeline.admitted == [(7, [9, 10, 11]), (10, [12, 13])]
    assert pipeline.verified == [(2, False), (7, True), (12, True)]  # a resumed batch is re-read, not waited for


def test_a_patient_check_polls_until_the_batch_verifies_and_gives_up_at_the_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ops.backfill_batches as module

    now = [0.0]
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(module, "pause", pause)
    answers = iter([False, False, True])

    def once(batch: Plan) -> Report:
        return Report((Check(2, "after_sales_case", "x", "applied" if next(answers) else "pending"),))

    verify = patient_verify(once, wait_seconds=10, clock=lambda: now[0])
    assert verify(planned_cases(1), True).complete and pauses == [1.0, 1.0]
    never = patient_verify(lambda b: Report((Check(2, "order", "x", "pending"),)), 2.5, clock=lambda: now[0])
    pauses.clear()
    assert not never(planned_cases(1), True).complete and pauses == [1.0, 1.0, 0.5]
    pauses.clear()
    assert not never(planned_cases(1), False).complete and pauses == []  # not patient: one read


@pytest.fixture
def table() -> Iterator[str]:
    with mock_aws():
        boto3.client("dynamodb", region_name="eu-west-1").create_table(
            TableName="idempotency",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield "idempotency"


def test_the_checkpoint_is_keyed_by_content_map_and_tenant_and_never_moves_back(table: str) -> None:
    checkpoints = Checkpoints(table, boto3.client("dynamodb", region_name="eu-west-1"))
    key = checkpoint_key("demo", "ab" * 32, "map:crm:1")
    assert key.startswith("ops#backfill#demo#" + "ab" * 16 + "-")
    assert (
        len({key, checkpoint_key("other", "ab" * 32, "map:crm:1"), checkpoint_key("demo", "ab" * 32, "map:crm:2")}) == 3
    )
    assert checkpoints.load(key) is None
    checkpoints.save(key, verified=3500, sent=3600, batches=7, batch_size=500, total=10_000)
    loaded = checkpoints.load(key)
    assert loaded is not None
    assert (loaded.verified_records, loaded.sent_records, loaded.batches, loaded.batch_size) == (3500, 3600, 7, 500)
    checkpoints.save(key, verified=1000, sent=1000, batches=2, batch_size=500, total=10_000)  # a slower run
    assert checkpoints.load(key) == loaded
    checkpoints.save(key, verified=4000, sent=4000, batches=8, batch_size=500, total=10_000)
    assert (checkpoints.load(key) or loaded).verified_records == 4000


def test_batches_are_cut_in_file_order() -> None:
    cut = batches(planned_cases(7), 3)
    assert [(b.number, b.start, b.end, b.lines) for b in cut] == [
        (1, 0, 3, (2, 4)),
        (2, 3, 6, (5, 7)),
        (3, 6, 7, (8, 8)),
    ]
    assert isinstance(cut[0], Batch)
    with pytest.raises(ValueError, match="at least one record"):
        batches(planned_cases(1), 0)


# ---- the command, up to the point where it would send ------------------------------------------
EXPORT = ROOT / "events" / "backfill" / "legacy_aftersales_export.csv"
EXAMPLE_MAP = ROOT / "events" / "backfill" / "legacy_aftersales_map.json"


def cli(*args: str) -> tuple[int, str, str]:
    from typer.testing import CliRunner

    from ops.cli import app

    result = CliRunner().invoke(app, ["backfill", *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_sample_export_checks_clean_in_a_dry_run() -> None:
    code, out, _ = cli(str(EXPORT), "--map", str(EXAMPLE_MAP), "--tenant", "demo", "--dry-run", "--batch-size", "2")
    assert (code, out) == (
        0,
        "checked 3 row(s) of crm/demo (observation): 3 usable (3 entities), 0 rejected\n"
        "dry run: nothing sent (2 batch(es) of up to 2)\n",
    )


def test_an_export_with_rejected_rows_sends_nothing_and_names_rows_and_columns(tmp_path: Path) -> None:
    text = EXPORT.read_text(encoding="utf-8-sig").replace("已拒绝", "李雷") + "\n\nAS9,SO9,已退款,1,昨天,\n"
    export = write(tmp_path, "export.csv", text)
    code, out, _ = cli(str(export), "--map", str(EXAMPLE_MAP), "--tenant", "demo", "--json")
    answer = json.loads(out)
    assert (code, answer["sent"], answer["records"], answer["rejected"]) == (
        2,
        False,
        2,
        [
            {"line": 3, "reason": "column 状态: the value is not in the map of field status"},
            {"line": 7, "reason": "column 创建时间: not a date and time (for occurred_at; e.g. 2024-03-01 09:30:00)"},
        ],
    )
    assert "李雷" not in out and "昨天" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--map", str(EXAMPLE_MAP), "--source", "erp"],
            "aftersync: the map's rows are crm observation records; drop --source / --topic",
        ),
        ([], "aftersync: a csv export needs --map, its column map (docs/operations.md, Backfill)"),
        (["--map", str(EXAMPLE_MAP), "--format", "xls"], "aftersync: --format must be jsonl, csv or xlsx (got 'xls')"),
    ],
)
def test_the_command_refuses_what_it_cannot_do_in_one_line(args: list[str], message: str) -> None:
    code, _, err = cli(str(EXPORT), "--tenant", "demo", *args)
    assert (code, err) == (2, message + "\n")


def test_a_missing_column_is_refused_before_any_row(tmp_path: Path) -> None:
    export = write(tmp_path, "export.csv", "工单号,订单号,状态,创建时间\nAS1,SO1,已退款,2024-03-01 10:00\n")
    code, _, err = cli(str(export), "--map", str(EXAMPLE_MAP), "--tenant", "demo")
    assert (code, err) == (2, "aftersync: export.csv: column 退款金额 (for amount.amount) is not in the header\n")


def test_a_source_with_its_own_field_map_is_refused(tmp_path: Path) -> None:
    wms = write(
        tmp_path, "wms.json", json.dumps({**json.loads(EXAMPLE_MAP.read_text(encoding="utf-8")), "source": "wms"})
    )
    code, _, err = cli(str(EXPORT), "--map", str(wms), "--tenant", "demo")
    assert code == 2 and err.startswith("aftersync: wms has a field map in dev's config")


def test_ctrl_c_inside_a_batch_saves_what_was_sent_and_the_next_run_sends_the_rest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No pipeline runs here: the batch is interrupted, then sent in full but never verified (exit 1)."""
    from infra.config import load_environment
    from infra.sandbox.resources import create_resources
    from ops.cli.common import Where
    from ops.resources import Resources
    from shared.adapters.sqs import SqsQueue

    secrets = json.loads((ROOT / "infra" / "sandbox" / "secrets.local.json").read_text(encoding="utf-8"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        cfg = load_environment("dev")
        created = create_resources(cfg, secrets, visibility_timeout=30)
        refs = created.refs
        resources = Resources(
            "sandbox", "dev", cfg.region, None, refs.state_table, refs.view_table, refs.idempotency_table,
            refs.archive_bucket, created.queue_urls, None,
        )  # fmt: skip
        monkeypatch.setattr(Where, "resources", lambda self: resources)
        sends: list[str] = []
        send = SqsQueue.send

        def interrupted(queue: SqsQueue, body: str, attributes: dict[str, str] | None = None) -> str:
            if len(sends) == 1:
                raise KeyboardInterrupt
            sends.append(json.loads(body)["dedupe_key"])
            return send(queue, body, attributes)

        monkeypatch.setattr(SqsQueue, "send", interrupted)
        args = (str(EXPORT), "--map", str(EXAMPLE_MAP), "--tenant", "demo", "--json", "--wait", "0")
        code, out, _ = cli(*args, "--batch-size", "2")
        answer = json.loads(out)
        assert (code, answer["stopped"], answer["resume_at_batch"], answer["batches"], len(sends)) == (
            130,
            "interrupted",
            1,
            [],
            1,
        )
        monkeypatch.setattr(
            SqsQueue, "send", lambda q, body, a=None: sends.append(json.loads(body)["dedupe_key"]) or ""
        )
        # Ctrl-C came between the second record's admission record and its send: that record is held for
        # its lease (3 s), so the next run, a few seconds later, sends it (as one seen before)
        import shared.adapters.idempotency as ledger

        monkeypatch.setattr(ledger, "now", lambda: time.time() + 5)
        code, out, _ = cli(*args, "--batch-size", "2")
        answer = json.loads(out)
        [batch] = answer["batches"]
        assert (code, answer["stopped_at"]) == (1, 1)  # nothing applied it: the first batch does not verify
        assert (batch["sent_earlier"], batch["admitted"] + batch["duplicates"], batch["verified"]) == (1, 1, False)
        assert (len(sends), len(set(sends))) == (2, 2)  # the first record was not sent again

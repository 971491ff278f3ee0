"""History from an old system's exports: CSV and Excel rows -> an in-house source's records, by a column map.

An export is a table: a header row of column names, then one row per record. A *column map* (a JSON
file passed with ``--map``) says which in-house source the rows come from and how a row becomes that
source's record, a canonical observation, in the declarative field-map language of
``shared/intake/field_map.py`` (``field_maps`` in ``cdk.json``): ``entity_type``, ``entity_id``,
``occurred_at`` and ``fields``, each a rule with a ``path`` (here: a column, by its header, whole:
CJK, spaces and dots included), a code ``map``, a ``const`` or a ``template``, and ``utc_offset`` for
local times::

    {"source": "crm",
     "entity_type": "after_sales_case",
     "entity_id": {"template": "legacy:{case_id}"},
     "occurred_at": {"path": "创建时间", "utc_offset": "+08:00"},
     "fields": {"case_id": "工单号",
                "kind": {"const": "refund"},
                "status": {"path": "状态", "map": {"待审核": "requested", "已退款": "refunded"}},
                "amount.amount": "退款金额",
                "amount.currency": {"const": "CNY"}}}

Every column a rule names must be in the header (checked once, before any row). An empty cell leaves
its field out, as a path the record lacks does for a field map. A row that does not map is rejected
with its row number (as the spreadsheet numbers it: the header is row 1) and the column, never the
cell's value: exports hold names, phones and addresses.

The mapped record is then one line of JSON Lines, planned, admitted and verified like any other
(``shared/pulls/backfill.py``). Its bytes depend only on the row and the map, so the same export and
map give the same dedupe keys on every run.

Only the operator CLI imports this module: openpyxl is an ``ops`` dependency and never in a Lambda.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from shared.intake.field_map import _MISSING, FieldMap, MappingFailed, Rule
from shared.pulls.backfill import Rejected
from shared.sources.inhouse import INHOUSE_SYSTEMS

Format = Literal["jsonl", "csv", "xlsx"]
SUFFIXES: Final[dict[str, Format]] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".xlsx": "xlsx"}
TOPIC: Final = "observation"  # what an in-house source's records are (StandardWebhooksSource.identify)


class UnreadableFile(Exception):
    """An export or a map the command cannot use: the message is the one line to show."""


Cell = str | int | float | bool
Row = tuple[int, dict[str, Cell]]  # (row number as the spreadsheet shows it, header -> non-empty cell)


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[Row, ...]  # the non-empty rows
    empty_rows: int  # blank rows skipped (a spreadsheet's trailing rows, a blank line in a CSV)


def file_format(path: Path, given: str | None) -> Format:
    """The explicit ``--format``, else the file's suffix."""
    if given is not None:
        if given not in ("jsonl", "csv", "xlsx"):
            raise UnreadableFile(f"aftersync: --format must be jsonl, csv or xlsx (got {given!r})")
        return given  # type: ignore[return-value]
    suffix = path.suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    if suffix == ".xls":
        raise UnreadableFile(f"aftersync: {path.name} is an old binary Excel file: save it as .xlsx (or CSV UTF-8)")
    raise UnreadableFile(f"aftersync: cannot tell the format of {path.name} from its suffix: pass --format")


def content_hash(path: Path) -> str:
    """SHA-256 of the file's bytes (the checkpoint's key: the same export, not merely the same name)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---- readers ---------------------------------------------------------------------------------
def read_csv(path: Path) -> Table:
    """A CSV export in UTF-8, with or without a byte-order mark (Excel's "CSV UTF-8" writes one)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UnreadableFile(
            f"aftersync: {path.name} is not UTF-8 text (the first undecodable byte is on line {line}): "
            "export it as CSV UTF-8, or convert it first (a GBK export: iconv -f GBK -t UTF-8)"
        ) from exc
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise UnreadableFile(f"aftersync: {path.name} is not a readable CSV file: {exc}") from exc
    return _table(path, rows)


def read_xlsx(path: Path) -> Table:
    """The first worksheet of an Excel workbook, streamed (openpyxl's read-only mode); formulas give
    their cached values."""
    from zipfile import BadZipFile

    from openpyxl import load_workbook  # ops only: never imported where a Lambda could import it
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (BadZipFile, InvalidFileException, KeyError, OSError) as exc:
        raise UnreadableFile(f"aftersync: {path.name} is not an Excel workbook (.xlsx): {type(exc).__name__}") from exc
    try:
        sheet = workbook.worksheets[0]
        return _table(path, sheet.iter_rows(values_only=True))
    finally:
        workbook.close()


def read_table(path: Path, fmt: Format) -> Table:
    return read_xlsx(path) if fmt == "xlsx" else read_csv(path)


def _table(path: Path, rows: Any) -> Table:
    iterator = iter(rows)
    header_row = next(iterator, None)
    header = tuple(_text(cell) for cell in header_row or ())
    while header and not header[-1]:
        header = header[:-1]
    if not any(header):
        raise UnreadableFile(f"aftersync: {path.name} has no header row (the first row names the columns)")
    named = [h for h in header if h]
    duplicated = sorted({h for h in named if named.count(h) > 1})
    if duplicated:
        raise UnreadableFile(f"aftersync: {path.name}: column(s) {', '.join(duplicated)} appear more than once")
    kept: list[Row] = []
    empty = 0
    for number, row in enumerate(iterator, start=2):
        cells = {name: value for name, raw in zip(header, row, strict=False) if name and (value := _cell(raw)) != ""}
        if cells:
            kept.append((number, cells))
        else:
            empty += 1
    return Table(header, tuple(kept), empty)


def _text(cell: Any) -> str:
    return "" if cell is None else str(cell).strip()


def _cell(raw: Any) -> Cell:
    """A cell as JSON can carry it: text stripped, whole floats as ints (Excel keeps every number as a
    float), times as ISO 8601 (naive: the map's ``utc_offset`` says where they are)."""
    if raw is None:
        return ""
    if isinstance(raw, bool | int):
        return raw
    if isinstance(raw, float):
        return int(raw) if raw.is_integer() else raw
    if isinstance(raw, datetime | date | time):
        return raw.isoformat()
    if isinstance(raw, timedelta):
        return str(raw)
    return str(raw).strip()


# ---- the column map --------------------------------------------------------------------------
_LOCAL_TIME = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?")


class ColumnRule(Rule):
    """A field-map rule whose ``path`` is a column header, read whole. With ``utc_offset`` the cell must
    be a date and time (an Excel date, ISO 8601, or ``2024/3/1 9:30``), read as local time at that offset."""

    path: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    def value(self, record: Any, body: Any, mapped: dict[str, Any], name: str) -> Any:
        if self.path is None:
            return super().value(record, body, mapped, name)
        cell = record.get(self.path)
        if cell is None:
            return _MISSING
        if self.map is not None:
            if str(cell) not in self.map:
                raise MappingFailed(f"column {self.path}: the value is not in the map of {name}")
            return self.map[str(cell)]
        if self.utc_offset is not None:
            return _local_time(cell, self.utc_offset, self.path, name)
        return cell


def _local_time(cell: Any, utc_offset: str, column: str, name: str) -> str:
    sign = -1 if utc_offset[0] == "-" else 1
    offset = timezone(sign * timedelta(hours=int(utc_offset[1:3]), minutes=int(utc_offset[4:6])))
    text = str(cell).strip()
    parsed: datetime | None = None
    if match := _LOCAL_TIME.fullmatch(text):
        year, month, day, hour, minute, second, fraction = match.groups()
        try:
            parsed = datetime(
                int(year),
                int(month),
                int(day),
                int(hour or 0),
                int(minute or 0),
                int(second or 0),
                int((fraction or "0").ljust(6, "0")),
            )
        except ValueError:
            parsed = None
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = None
    if parsed is None:
        raise MappingFailed(f"column {column}: not a date and time (for {name}; e.g. 2024-03-01 09:30:00)")
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=offset)).isoformat()


class ColumnMap(FieldMap):
    """An export's columns -> an in-house source's records (canonical observations), one per row."""

    source: str
    entity_id: ColumnRule
    occurred_at: ColumnRule
    fields: dict[str, ColumnRule]  # type: ignore[assignment]  # narrower rules: columns, not paths

    @field_validator("source")
    @classmethod
    def _inhouse(cls, value: str) -> str:
        if value not in INHOUSE_SYSTEMS:
            raise ValueError(
                f"{value!r} is not an in-house source: rows become canonical observations, which the "
                f"in-house sources take ({', '.join(INHOUSE_SYSTEMS)})"
            )
        return value

    @model_validator(mode="after")
    def _one_row_one_record(self) -> ColumnMap:
        if self.records is not None:
            raise ValueError("records: a row is one record; remove 'records' from a column map")
        return self

    def columns(self) -> dict[str, list[str]]:
        """Each column the map reads -> the fields it feeds."""
        rules = {"entity_id": self.entity_id, "occurred_at": self.occurred_at, **self.fields}
        wanted: dict[str, list[str]] = {}
        for name, rule in rules.items():
            if rule.path is not None:
                wanted.setdefault(rule.path, []).append(name)
        return wanted

    def missing_columns(self, header: tuple[str, ...]) -> list[str]:
        """One line per column the map reads that the export lacks, naming the fields that need it."""
        return [
            f"column {column} (for {', '.join(fields)}) is not in the header"
            for column, fields in self.columns().items()
            if column not in header
        ]

    def record(self, row: Mapping[str, Cell]) -> dict[str, Any]:
        """The row's canonical observation; ``MappingFailed`` names the column and the field, never the value."""
        for name, rule in (("entity_id", self.entity_id), ("occurred_at", self.occurred_at)):
            if rule.path is not None and row.get(rule.path) is None:
                raise MappingFailed(f"column {rule.path} is empty ({name} needs it)")
        try:
            return self._one(dict(row), row, 0)
        except MappingFailed as exc:
            raise MappingFailed(str(exc).replace("record 0 ", "")) from exc

    def digest(self) -> str:
        """SHA-256 of the map as validated (key order and spacing of the file do not matter)."""
        canonical = json.dumps(self.model_dump(mode="json", exclude_none=True), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def load_column_map(path: Path) -> ColumnMap:
    """The map file, validated; ``UnreadableFile`` names each problem's field."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableFile(f"aftersync: cannot read the column map {path}: {exc}") from exc
    except ValueError as exc:
        raise UnreadableFile(f"aftersync: the column map {path.name} is not JSON: {exc}") from exc
    try:
        return ColumnMap.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'map'}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        )
        raise UnreadableFile(f"aftersync: the column map {path.name}: {problems}") from exc


def mapped_records(table: Table, column_map: ColumnMap) -> tuple[list[tuple[int, str]], list[Rejected]]:
    """Every non-empty row as ``(row number, the record's JSON)``, and the rows that do not map."""
    records: list[tuple[int, str]] = []
    rejected: list[Rejected] = []
    for number, row in table.rows:
        try:
            record = column_map.record(row)
        except MappingFailed as exc:
            rejected.append(Rejected(number, str(exc)))
            continue
        records.append((number, json.dumps(record, ensure_ascii=False, separators=(",", ":"))))
    return records, rejected

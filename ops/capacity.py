"""A capacity model of the pipeline: measured per-record costs x an environment's sizing -> what it carries.

It is a model, not a measurement of AWS. Its inputs are:

* ``bench/capacity_inputs.json``: per stage and per record, the CPU the real handlers spent, the AWS
  calls they made by operation, the DynamoDB units their item sizes cost per table (and on the hottest
  key), PutEvents entries, S3 PUTs per key prefix and log bytes, measured by ``bench/capacity_inputs.py``
  with the project's handlers on moto; and the workload's fan-out (observations, changes per webhook);
* the environment's sizing from ``cdk.json`` through ``infra.config`` (memory, batch sizes, batching
  windows, per-queue concurrency caps, reserved concurrency, the stream's parallelization factor, the API
  throttle, the quotas the account is deployed with);
* stated assumptions for what the bench cannot measure (AWS call latency in the region, the targets'
  response time, hop latencies, how a bench core compares to a Lambda vCPU). They are printed with the
  result, never hidden.

It computes per stage what it can carry and what it needs at a rate against its cap and the AWS default
quotas, names the first limit that binds, simulates a run in fixed time steps (arrivals -> API throttle ->
queues that fill and drain stage by stage, SQS pollers that scale up at Lambda's documented rate) for
freshness percentiles, the backlog peak and its drain time, and prices a million webhooks at list prices.
Nothing here calls AWS; everything is plain arithmetic on the inputs, so the unit tests check it exactly.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.adapters.routed_queues import SEND_BATCH_MAX_ENTRIES

if TYPE_CHECKING:
    from infra.config import ProvisionedTable

ROOT = Path(__file__).resolve().parents[1]
INPUTS = ROOT / "bench" / "capacity_inputs.json"

# ---- AWS default quotas (what an account gets before it asks for more) ------------------------------
# Sources, read 2026-12-02: API Gateway quotas (docs.aws.amazon.com/apigateway/latest/developerguide/
# limits.html: 10,000 rps, burst 5,000 per account and Region); Lambda quotas (docs.aws.amazon.com/lambda/
# latest/dg/gettingstarted-limits.html: 1,000 concurrent executions; each function scales by 1,000
# environments every 10 s); SQS scaling (docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html:
# five concurrent batches at first, then up to 300 more instances a minute, 1,000 batches at most per
# mapping); DynamoDB (on-demand: 40,000 RRU / 40,000 WRU per table; per partition 3,000 RCU / 1,000 WCU);
# EventBridge (docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html, quota L-9B653E91 "PutEvents
# throttle limit in transactions per second": eu-west-1 10,000/s, us-east-1 10,000/s, eu-central-1 2,400/s,
# other Regions 400-2,400/s; counted here per entry, the stricter reading; "Invocations throttle limit"
# L-5540C5E3: eu-west-1 18,750/s); S3 (3,500 PUT/COPY/POST/DELETE per second per partitioned prefix).
PUT_EVENTS_PER_SECOND = {
    "us-east-1": 10_000,
    "us-west-2": 10_000,
    "eu-west-1": 10_000,
    "us-east-2": 2_400,
    "eu-central-1": 2_400,
    "eu-south-2": 2_400,
    "us-west-1": 1_200,
    "eu-west-2": 1_200,
    "ap-northeast-1": 1_200,
    "ap-southeast-1": 1_200,
    "ap-southeast-2": 1_200,
}
EVENTBRIDGE_INVOCATIONS_PER_SECOND = {"us-east-1": 18_750, "us-west-2": 18_750, "eu-west-1": 18_750}


@dataclass(frozen=True)
class Quotas:
    api_rps: float = 10_000
    api_burst: int = 5_000
    lambda_concurrency: int = 1_000
    lambda_scale_per_10s: int = 1_000  # new execution environments per function every 10 s
    sqs_initial_pollers: int = 5
    sqs_scale_per_minute: int = 300
    dynamodb_table_wru: float = 40_000
    dynamodb_table_rru: float = 40_000
    partition_wcu: float = 1_000
    partition_rcu: float = 3_000
    put_events_entries: float = 10_000
    eventbridge_invocations: float = 18_750
    s3_put_per_prefix: float = 3_500

    @staticmethod
    def defaults(region: str) -> Quotas:
        return Quotas(
            put_events_entries=PUT_EVENTS_PER_SECOND.get(region, 400),
            eventbridge_invocations=EVENTBRIDGE_INVOCATIONS_PER_SECOND.get(region, 750),
        )


# ---- list prices -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prices:
    """List prices, USD, on-demand, first tier. Each figure with where it was read."""

    region: str = "eu-west-1"
    as_of: str = "2026-12-02"
    api_rest_per_million: float = 3.50  # API Gateway REST API requests, first 333 M a month
    waf_per_million_requests: float = 0.60  # AWS WAF requests inspected (the web ACL's $5 and rules' $1 a month aside)
    lambda_gb_second_arm: float = 0.0000133334  # Arm, first 7.5 B GB-s a month
    lambda_per_million_requests: float = 0.20
    dynamodb_per_million_wru: float = 0.7063  # on-demand, Standard table class (after the Nov 2024 cut)
    dynamodb_per_million_rru: float = 0.1413
    # provisioned capacity, Standard table class: us-east-1 $0.00065 per WCU-hour and $0.00013 per RCU-hour,
    # with the same eu-west-1 premium as on demand (0.7063 / 0.625)
    dynamodb_wcu_hour: float = 0.000735
    dynamodb_rcu_hour: float = 0.000147
    sqs_per_million_requests: float = 0.40  # standard queue, each 64 KB chunk is a request
    eventbridge_per_million_entries: float = 1.00  # custom events, each 64 KB chunk an event
    s3_put_per_thousand: float = 0.005  # S3 Standard PUT/COPY/POST/LIST
    s3_get_per_thousand: float = 0.0004
    logs_per_gb_ingested: float = 0.57  # CloudWatch Logs standard ingestion

    # what could be checked against stored copies of the price pages on that date: the us-east-1 figures
    # (DynamoDB $0.625 / $0.125 per million since the Nov 2024 cut, Lambda Arm $0.0000133334 per GB-s,
    # Logs $0.50 per GB); the eu-west-1 premiums for DynamoDB and Logs are the Region's list figures as
    # known, not re-read: check the price pages before quoting a bill.
    note: str = "us-east-1 figures checked on that date; eu-west-1 DynamoDB and Logs premiums not re-read"

    def lines(self) -> list[str]:
        return [
            f"API Gateway REST ${self.api_rest_per_million:.2f} per million requests",
            f"AWS WAF ${self.waf_per_million_requests:.2f} per million requests (where the environment has `waf`)",
            f"Lambda Arm ${self.lambda_gb_second_arm:.10f} per GB-s, ${self.lambda_per_million_requests:.2f} "
            "per million requests",
            f"DynamoDB on-demand ${self.dynamodb_per_million_wru:.4f} per million WRU, "
            f"${self.dynamodb_per_million_rru:.4f} per million RRU; provisioned ${self.dynamodb_wcu_hour:.6f} per "
            f"WCU-hour, ${self.dynamodb_rcu_hour:.6f} per RCU-hour (where the environment provisions a table)",
            f"SQS standard ${self.sqs_per_million_requests:.2f} per million requests",
            f"EventBridge custom events ${self.eventbridge_per_million_entries:.2f} per million entries",
            f"S3 Standard ${self.s3_put_per_thousand:.4f} per 1,000 PUT, ${self.s3_get_per_thousand:.4f} per 1,000 GET",
            f"CloudWatch Logs ${self.logs_per_gb_ingested:.2f} per GB ingested",
        ]


# ---- what the bench cannot measure ------------------------------------------------------------------
@dataclass(frozen=True)
class Assumptions:
    """Not measured: typical in-Region latencies and the like. Printed with every result."""

    call_ms: Mapping[str, float] = field(
        default_factory=lambda: {
            "dynamodb:GetItem": 5,
            "dynamodb:PutItem": 6,
            "dynamodb:UpdateItem": 6,
            "dynamodb:DeleteItem": 6,
            "dynamodb:Query": 8,
            "dynamodb:BatchGetItem": 8,
            "dynamodb:BatchWriteItem": 10,
            "dynamodb:TransactWriteItems": 15,
            "dynamodb:TransactGetItems": 10,
            "sqs:SendMessage": 8,
            "sqs:SendMessageBatch": 12,
            "eventbridge:PutEvents": 20,
            "s3:PutObject": 30,
            "s3:GetObject": 15,
            "secretsmanager:GetSecretValue": 20,
            "http:target": 100,  # a target's own answer time
        }
    )
    default_call_ms: float = 10
    cpu_factor: float = 1.0  # Lambda vCPU time per bench-core CPU time at full vCPU (1,769 MB)
    full_vcpu_mb: int = 1_769  # Lambda gives a function one full vCPU at this memory
    ms_per_invocation: float = 2.0  # runtime overhead per invocation (billed), whatever the batch
    log_bytes_per_invocation: int = 600  # Lambda's own platform lines (JSON start/report) per invocation
    # API Gateway's access log line per request (the stage's JSON standard fields: request id, ip, time,
    # method, path, status, protocol, length) with CloudWatch Logs' 26 bytes of per-event overhead
    access_log_bytes_per_request: int = 240
    bus_hop_seconds: float = 0.5  # PutEvents -> rule -> target queue visible
    stream_hop_seconds: float = 0.5  # committed write -> stream record -> polled (4 polls a second)
    queue_hop_seconds: float = 0.05  # SendMessage -> receivable
    min_stream_shards: int = 4  # a new on-demand table's partitions; a table taking W WRU/s has >= W/1,000
    entity_updates_per_second: float = 1.0  # how often one order/customer is updated at most

    def lines(self) -> list[str]:
        calls = ", ".join(f"{k} {v:g} ms" for k, v in self.call_ms.items())
        return [
            f"latency per call (not measured; typical in-Region): {calls}; others {self.default_call_ms:g} ms; "
            "calls of a record are sequential unless the inputs say how many overlap",
            f"CPU: bench-core ms x {self.cpu_factor:g}, scaled by {self.full_vcpu_mb} MB / memory below one vCPU; "
            f"{self.ms_per_invocation:g} ms and {self.log_bytes_per_invocation} log bytes of runtime overhead per "
            f"invocation; {self.access_log_bytes_per_request} bytes of API access log per request",
            f"hops: bus {self.bus_hop_seconds:g} s, stream {self.stream_hop_seconds:g} s, queue "
            f"{self.queue_hop_seconds:g} s; stream shards: one per partition, at least {self.min_stream_shards} and "
            "one per 1,000 WRU/s the state table takes at the peak rate; one entity updated at most "
            f"{self.entity_updates_per_second:g}/s; batches full at peak rates",
        ]


# ---- the measured inputs (bench/capacity_inputs.json) -----------------------------------------------
# A partition key touched by at least this share of a stage's records is one key the records share (a
# circuit, a rate counter, a guest customer): it takes the stage's whole rate. Below it, the key is one
# entity's, touched only as often as that entity changes (the bench's orders each get a few touches).
SHARED_KEY_SHARE = 0.25


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TableUse(_Frozen):
    wru_per_record: float = 0.0
    rru_per_record: float = 0.0
    hottest_key: str | None = None  # partition key value touched most often by the stage
    hottest_key_share: float = 0.0  # touches of it per record (>= SHARED_KEY_SHARE: a key records share)
    hottest_key_wru_per_record: float = 0.0
    hottest_key_rru_per_record: float = 0.0
    wru_per_touch: float = 0.0  # on that key, per touch (for a per-entity key)
    rru_per_touch: float = 0.0


class PrefixUse(_Frozen):
    puts_per_record: float
    ascending_share: float = 0.0  # of consecutive PUTs, the share whose key sorts after the previous one
    hottest_prefix_share: float = 1.0  # PUTs on the busiest prefix of (common prefix + 2 characters)

    @property
    def busiest_share(self) -> float:
        """The share of PUTs one partition takes: all of them when keys ascend (time-ordered keys always
        write at the end of the key space), else the busiest prefix's."""
        return 1.0 if self.ascending_share >= 0.9 else self.hottest_prefix_share


class StageInputs(_Frozen):
    function: str
    records: int = Field(ge=0)
    invocations: int = Field(ge=0)
    cpu_ms_per_record: float = Field(ge=0)
    calls_per_record: dict[str, float] = {}
    parallel_calls: float = Field(default=1.0, ge=1)  # calls of a record that overlap (1: sequential)
    dynamodb: dict[str, TableUse] = {}  # table purpose (state, idempotency) -> use
    put_events_entries_per_record: float = 0.0
    s3_puts: dict[str, PrefixUse] = {}  # top folder (raw/, audit/) -> use
    s3_gets_per_record: float = 0.0
    log_bytes_per_record: float = 0.0

    @property
    def calls(self) -> float:
        return sum(v for k, v in self.calls_per_record.items() if not k.startswith("http:"))


class Workload(_Frozen):
    description: str
    webhooks: int
    body_bytes: int
    observations_per_webhook: dict[str, float]  # entity type -> observations normalise emits
    changes_per_webhook: dict[str, float]  # entity type -> entity.changed events publish emits
    audit_records_per_webhook: float  # stream records publish reads
    view_records_per_webhook: float = 0.0  # stream records project reads (states and audit records)


class WaveUse(_Frozen):
    """Sync's figures for one part of the workload (new orders, their updates): what a change costs."""

    records: int
    calls_per_record: dict[str, float]
    wru_per_record: float
    rru_per_record: float


class CapacityInputs(_Frozen):
    schema_version: Literal[1] = 1
    measured_at: datetime
    command: str
    machine: str
    notes: tuple[str, ...] = ()
    workload: Workload
    stages: dict[str, StageInputs]
    sync_by_wave: dict[str, WaveUse] = {}  # (informative: the model uses the stages' figures)


def load_inputs(path: Path = INPUTS) -> CapacityInputs:
    return CapacityInputs.model_validate_json(path.read_text(encoding="utf-8"))


# ---- the environment's sizing, as the model needs it --------------------------------------------------
@dataclass(frozen=True)
class Sizing:
    """One stage's deployed shape: an SQS, stream or API consumer."""

    trigger: Literal["api", "sqs", "stream"]
    memory_mb: int
    batch_size: int = 1
    window_seconds: float = 0.0
    cap: int | None = None  # SQS: maximum concurrency; stream: shards x parallelization factor; api: reserved


@dataclass(frozen=True)
class Stage:
    """A stage of the run: a function on one source (a queue, the stream or the API)."""

    name: str
    upstream: str | None
    per_webhook: float  # records of this stage per webhook
    inputs: StageInputs
    sizing: Sizing
    on_path: bool = True  # on the webhook -> delivered path (freshness)
    hop_seconds: float = 0.0  # from the upstream's end to receivable here
    bus_fed: bool = False  # an SQS stage a bus rule feeds (a rule invocation and EventBridge's SendMessage a record)
    # an SQS stage publish sends to itself (SendMessageBatch, a call for up to 10 of its records): priced
    # here, per destination queue, not from publish's measured calls (the bench's environment routes each
    # change to its own set of targets)
    sent_by_publish: bool = False

    def ms_per_record(self, assumptions: Assumptions) -> float:
        cpu = self.inputs.cpu_ms_per_record * assumptions.cpu_factor
        cpu *= max(1.0, assumptions.full_vcpu_mb / self.sizing.memory_mb)
        waits = sum(
            n * assumptions.call_ms.get(op, assumptions.default_call_ms)
            for op, n in self.inputs.calls_per_record.items()
        )
        return cpu + waits / self.inputs.parallel_calls

    def invocation_ms(self, assumptions: Assumptions) -> float:
        """One full batch."""
        return assumptions.ms_per_invocation + self.sizing.batch_size * self.ms_per_record(assumptions)

    def records_per_slot(self, assumptions: Assumptions) -> float:
        """Records a second one concurrent execution carries with full batches."""
        return self.sizing.batch_size / (self.invocation_ms(assumptions) / 1000)

    def capacity(self, assumptions: Assumptions) -> float | None:
        """Records a second at its cap (None: uncapped)."""
        if self.sizing.cap is None:
            return None
        return self.sizing.cap * self.records_per_slot(assumptions)

    def concurrency_at(self, records_per_second: float, assumptions: Assumptions) -> float:
        return records_per_second / self.records_per_slot(assumptions)


@dataclass(frozen=True)
class Model:
    environment: str
    region: str
    stages: tuple[Stage, ...]
    api_rate: float  # the stage throttle
    api_burst: int
    quotas: Quotas  # the quotas the account runs with (raised where the environment says so)
    defaults: Quotas  # the AWS defaults
    assumptions: Assumptions = Assumptions()
    prices: Prices = Prices()
    waf: bool = False  # a web ACL inspects every request
    # tables on provisioned capacity with auto scaling (the environment's ``table_capacity``): by table
    provisioned: Mapping[str, ProvisionedTable] = field(default_factory=dict)

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def build_model(
    cfg: Any, inputs: CapacityInputs, assumptions: Assumptions = Assumptions(), peak_rate: float = 0.0
) -> Model:
    """The stages of ``cfg`` (an ``infra.config.EnvironmentConfig``) with the measured costs of ``inputs``;
    the stream's shards for a state table taking ``peak_rate`` webhooks a second."""
    from infra.wiring import DOMAINS, function_memory_mb, queue_batching, stream_batching
    from shared.automation.rules import AUTOMATED_TYPES

    work = inputs.workload
    stages: list[Stage] = []

    def sqs(purpose: str, function: str) -> Sizing:
        batching = queue_batching(cfg, purpose)
        return Sizing(
            "sqs",
            function_memory_mb(cfg, function),
            batching.batch_size,
            batching.window_seconds,
            cfg.consumer_concurrency.get(purpose, 1_000),  # an uncapped mapping still stops at 1,000 batches
        )

    stages.append(
        Stage(
            "ingest",
            None,
            1.0,
            inputs.stages["ingest"],
            Sizing("api", function_memory_mb(cfg, "ingest"), 1, 0.0, cfg.reserved_concurrency.get("ingest")),
        )
    )
    stages.append(Stage("normalise", "ingest", 1.0, inputs.stages["normalise"], sqs("inbox", "normalise"), True, 0.0))
    for domain, types in DOMAINS.items():
        share = sum(work.observations_per_webhook.get(t, 0.0) for t in types)
        if share:
            # normalise sends to the domain queue itself (SendMessageBatch: in its own calls), not through the bus
            stage = Stage(f"sync/{domain}", "normalise", share, inputs.stages["sync"], sqs(domain, "sync"))
            stages.append(_with_hop(stage, assumptions.queue_hop_seconds))
    publish = stream_batching(cfg, "publish")
    # the stream carries every domain's commits; the run follows them through the busiest sync queue
    syncs = sorted((s for s in stages if s.name.startswith("sync/")), key=lambda s: -s.per_webhook)
    # DynamoDB keeps a partition per 1,000 WCU it serves, and its stream a shard per partition: the state
    # table's writes at the rate sync can carry (a burst beyond it waits in the queues, not in the table)
    carried = min([peak_rate, *((s.capacity(assumptions) or math.inf) / s.per_webhook for s in syncs)])
    pushed = [t for target in cfg.targets if target.push_changes for t in target.entity_types]
    deliveries = sum(work.changes_per_webhook.get(t, 0.0) for t in pushed)
    state_wru = carried * sum(
        share * inputs.stages[name].dynamodb["state"].wru_per_record
        for name, share in (
            ("sync", sum(work.observations_per_webhook.values())),
            ("deliver", deliveries),
            ("project", work.view_records_per_webhook),  # (its writes are in the view table: none here)
        )
        if name in inputs.stages and "state" in inputs.stages[name].dynamodb
    )
    stream_shards = max(assumptions.min_stream_shards, math.ceil(state_wru / 1_000))
    stages.append(
        Stage(
            "publish",
            syncs[0].name if syncs else "normalise",
            work.audit_records_per_webhook,
            inputs.stages["publish"],
            Sizing(
                "stream",
                function_memory_mb(cfg, "publish"),
                publish.batch_size,
                publish.window_seconds,
                stream_shards * publish.parallelization_factor,
            ),
            True,
            assumptions.stream_hop_seconds,
        )
    )
    if "project" in inputs.stages and work.view_records_per_webhook:  # the customer view, off the delivery path
        project = stream_batching(cfg, "project")
        stages.append(
            Stage(
                "project",
                syncs[0].name if syncs else "normalise",
                work.view_records_per_webhook,
                inputs.stages["project"],
                Sizing(
                    "stream",
                    function_memory_mb(cfg, "project"),
                    project.batch_size,
                    project.window_seconds,
                    stream_shards * project.parallelization_factor,
                ),
                False,
                assumptions.stream_hop_seconds,
            )
        )
    for target in (t for t in cfg.targets if t.push_changes):
        share = sum(work.changes_per_webhook.get(t, 0.0) for t in target.entity_types)
        if share:
            stages.append(
                Stage(
                    f"deliver/{target.name}",
                    "publish",
                    share,
                    inputs.stages["deliver"],
                    sqs(f"deliver-{target.name}", "deliver"),
                    True,
                    assumptions.queue_hop_seconds,
                    sent_by_publish=True,
                )
            )
    automated = sum(work.changes_per_webhook.get(t, 0.0) for t in AUTOMATED_TYPES)
    if automated and "automate" in inputs.stages:
        stages.append(
            Stage(
                "automate",
                "publish",
                automated,
                inputs.stages["automate"],
                sqs("automation", "automate"),
                False,
                assumptions.queue_hop_seconds,
                sent_by_publish=True,
            )
        )
    if "audit-archive" in inputs.stages:  # 90 days later, as many audit records expire as were written
        archive = stream_batching(cfg, "audit-archive")
        stages.append(
            Stage(
                "audit-archive",
                None,
                work.audit_records_per_webhook,
                inputs.stages["audit-archive"],
                Sizing(
                    "stream",
                    function_memory_mb(cfg, "audit-archive"),
                    archive.batch_size,
                    archive.window_seconds,
                    stream_shards * archive.parallelization_factor,
                ),
                False,
            )
        )
    defaults = Quotas.defaults(cfg.region)
    raised = cfg.account_quotas
    quotas = Quotas(
        **{
            **defaults.__dict__,
            "api_rps": raised.api_rps or defaults.api_rps,
            "api_burst": raised.api_burst or defaults.api_burst,
            "lambda_concurrency": raised.lambda_concurrency or defaults.lambda_concurrency,
            "dynamodb_table_wru": raised.dynamodb_table_wru or defaults.dynamodb_table_wru,
            "dynamodb_table_rru": raised.dynamodb_table_rru or defaults.dynamodb_table_rru,
        }
    )
    return Model(
        cfg.name,
        cfg.region,
        tuple(stages),
        cfg.api_throttle.rate_limit,
        cfg.api_throttle.burst_limit,
        quotas,
        defaults,
        assumptions,
        waf=cfg.waf,
        provisioned=dict(cfg.table_capacity),
    )


def _with_hop(stage: Stage, hop: float) -> Stage:
    return replace(stage, hop_seconds=hop)


# ---- steady state: per stage and per limit ----------------------------------------------------------
@dataclass(frozen=True)
class Limit:
    """One limit at a webhook rate: what it uses, its deployed ceiling, the AWS default and the rate at
    which it binds."""

    what: str
    stage: str
    used: float
    ceiling: float
    default: float | None  # the AWS default quota (None: a cap of ours, not a quota)
    binds_at: float  # webhooks a second at which used reaches the ceiling

    @property
    def share(self) -> float:
        return self.used / self.ceiling if self.ceiling else math.inf

    @property
    def status(self) -> str:
        if self.used > self.ceiling * (1 + 1e-9):  # (a stage run at its cap is at it, not over it)
            return "OVER"
        if self.default is not None and self.used > self.default * (1 + 1e-9):
            return "raise quota"
        return "near" if self.share >= 0.8 else "ok"


@dataclass(frozen=True)
class StageReport:
    name: str
    records_per_second: float  # at the rate
    capacity: float | None  # records a second at its cap
    concurrency: float  # needed at the rate
    cap: int | None
    ms_per_record: float
    invocation_ms: float
    batch_size: int
    memory_mb: int
    wru: dict[str, float]  # table -> WRU/s
    rru: dict[str, float]
    hot_keys: dict[str, tuple[str, float, float]]  # table -> (key, WCU/s, RCU/s on it)
    put_events: float  # entries/s
    s3_puts: dict[str, float]  # prefix -> PUT/s on its busiest partitioned prefix
    sqs_requests: float  # /s


def steady(
    model: Model, rate: float, stage_rates: Mapping[str, float] | None = None
) -> tuple[list[StageReport], list[Limit]]:
    """Every stage and every limit at ``rate`` webhooks a second, all stages keeping up; or, given
    ``stage_rates`` (records a second by stage, e.g. the peaks a simulated run reached), at those."""
    a, q, d = model.assumptions, model.quotas, model.defaults
    reports: list[StageReport] = []
    limits: list[Limit] = []

    def limit(what: str, stage: str, used: float, ceiling: float, default: float | None, scales: bool = True) -> None:
        per_webhook = used / rate if rate and scales else 0.0
        limits.append(Limit(what, stage, used, ceiling, default, ceiling / per_webhook if per_webhook else math.inf))

    tables_wru: dict[str, float] = {}
    tables_rru: dict[str, float] = {}
    put_events = 0.0
    concurrency = 0.0
    for stage in model.stages:
        records = rate * stage.per_webhook
        if stage_rates is not None and stage.name in stage_rates:
            records = stage_rates[stage.name]
        i = stage.inputs
        needed = stage.concurrency_at(records, a)
        # a reserved function holds its reservation whatever it uses
        concurrency += max(needed, float(stage.sizing.cap or 0)) if stage.sizing.trigger == "api" else needed
        wru = {t: records * u.wru_per_record for t, u in i.dynamodb.items()}
        rru = {t: records * u.rru_per_record for t, u in i.dynamodb.items()}
        hot: dict[str, tuple[str, float, float]] = {}
        for table, use in i.dynamodb.items():
            tables_wru[table] = tables_wru.get(table, 0.0) + wru[table]
            tables_rru[table] = tables_rru.get(table, 0.0) + rru[table]
            if use.hottest_key is None:
                continue
            shared = use.hottest_key_share >= SHARED_KEY_SHARE
            if shared:  # a key the records share: it takes the stage's whole rate
                key = use.hottest_key
                w, r = records * use.hottest_key_wru_per_record, records * use.hottest_key_rru_per_record
            else:  # one entity's key: as often as that entity changes, whatever the webhook rate
                key = f"(per entity, {a.entity_updates_per_second:g}/s)"
                w, r = a.entity_updates_per_second * use.wru_per_touch, a.entity_updates_per_second * use.rru_per_touch
            hot[table] = (key, w, r)
            limit(f"DynamoDB {table} partition {key} WCU/s", stage.name, w, q.partition_wcu, d.partition_wcu, shared)
            limit(f"DynamoDB {table} partition {key} RCU/s", stage.name, r, q.partition_rcu, d.partition_rcu, shared)
        entries = records * i.put_events_entries_per_record
        put_events += entries
        s3: dict[str, float] = {}
        for prefix, put in i.s3_puts.items():
            s3[prefix] = records * put.puts_per_record * put.busiest_share
            limit(
                f"S3 PUT/s on the busiest {prefix} prefix",
                stage.name,
                s3[prefix],
                q.s3_put_per_prefix,
                d.s3_put_per_prefix,
            )
        sqs = records * i.calls_per_record.get("sqs:SendMessage", 0.0) + records * i.calls_per_record.get(
            "sqs:SendMessageBatch", 0.0
        )
        if stage.sizing.trigger == "sqs":  # the mapping's receive and delete per batch
            sqs += 2 * records / stage.sizing.batch_size
        cap = stage.sizing.cap
        capacity = stage.capacity(a)
        if cap is not None and stage.sizing.trigger != "api":
            limit(f"{stage.name} concurrency (cap)", stage.name, needed, cap, None)
        if stage.sizing.trigger == "api" and cap is not None:
            limit("ingest reserved concurrency", stage.name, needed, cap, None)
        reports.append(
            StageReport(
                stage.name,
                records,
                capacity,
                needed,
                cap,
                stage.ms_per_record(a),
                stage.invocation_ms(a),
                stage.sizing.batch_size,
                stage.sizing.memory_mb,
                wru,
                rru,
                hot,
                entries,
                s3,
                sqs,
            )
        )
    api = reports[0].records_per_second if reports and model.stages[0].sizing.trigger == "api" else rate
    limit("API Gateway stage throttle (rps)", "ingest", api, model.api_rate, None)
    limit("API Gateway account throttle (rps)", "ingest", api, q.api_rps, d.api_rps)
    limit(
        "Lambda concurrent executions (account; reservations included)",
        "all",
        concurrency,
        q.lambda_concurrency,
        d.lambda_concurrency,
    )
    for table in tables_wru:
        limit(f"DynamoDB {table} table WRU/s", "all", tables_wru[table], q.dynamodb_table_wru, d.dynamodb_table_wru)
        limit(f"DynamoDB {table} table RRU/s", "all", tables_rru[table], q.dynamodb_table_rru, d.dynamodb_table_rru)
        if table in model.provisioned:  # what auto scaling can provision at most (it holds its target below that)
            p = model.provisioned[table]
            limit(
                f"DynamoDB {table} table provisioned WCU (auto scaling max)",
                "all",
                tables_wru[table],
                p.write.max,
                None,
            )
            limit(
                f"DynamoDB {table} table provisioned RCU (auto scaling max)", "all", tables_rru[table], p.read.max, None
            )
    limit("EventBridge PutEvents entries/s", "all", put_events, q.put_events_entries, d.put_events_entries)
    # every record of a queue a bus rule feeds is one rule invocation (normalise and publish send to their
    # queues themselves: no stage of the pipeline is fed by a rule today)
    fed = [(r, s) for r, s in zip(reports, model.stages, strict=True) if s.sizing.trigger == "sqs" and s.bus_fed]
    if fed:
        invocations = sum(r.records_per_second for r, _ in fed)
        limit(
            "EventBridge rule invocations/s", "all", invocations, q.eventbridge_invocations, d.eventbridge_invocations
        )
    return reports, limits


def first_binding(limits: Iterable[Limit]) -> Limit:
    return min(limits, key=lambda lim: lim.binds_at)


# ---- cost ---------------------------------------------------------------------------------------------
def provisioned_units(model: Model, rate: float) -> dict[str, tuple[float, float]]:
    """(WCU, RCU) auto scaling keeps on each provisioned table at ``rate`` webhooks a second sustained: the
    consumed units over the target utilisation, never below the table's minimum. Not capped at its maximum:
    a rate that needs more is over that limit (``steady`` says so), and is priced as if the maximum were
    raised to carry it, not as a cheaper table that throttles."""
    consumed: dict[str, list[float]] = {table: [0.0, 0.0] for table in model.provisioned}
    for stage in model.stages:
        for table, use in stage.inputs.dynamodb.items():
            if table in consumed:
                consumed[table][0] += rate * stage.per_webhook * use.wru_per_record
                consumed[table][1] += rate * stage.per_webhook * use.rru_per_record
    units: dict[str, tuple[float, float]] = {}
    for table, (wru, rru) in consumed.items():
        p = model.provisioned[table]
        target = p.target_utilization_percent / 100
        units[table] = (max(math.ceil(wru / target), p.write.min), max(math.ceil(rru / target), p.read.min))
    return units


def cost_per_million(model: Model, rate: float | None = None) -> dict[str, float]:
    """USD per million webhooks, by service, at the model's list prices. A provisioned table is priced by
    the units auto scaling keeps at ``rate`` webhooks a second sustained (needed where the model has one):
    what an hour of them costs over the webhooks of that hour."""
    if model.provisioned and not rate:
        raise ValueError("a provisioned table's cost per webhook depends on the rate: give the rate")
    a, p = model.assumptions, model.prices
    million = 1_000_000
    cost = {"API Gateway": p.api_rest_per_million}
    if model.waf:
        cost["WAF"] = p.waf_per_million_requests
    lambda_gbs = lambda_requests = wru = rru = sqs = entries = puts = gets = 0.0
    log_bytes = float(million * a.access_log_bytes_per_request)
    for stage in model.stages:
        records = million * stage.per_webhook
        i = stage.inputs
        invocations = records / stage.sizing.batch_size
        lambda_requests += invocations
        lambda_gbs += invocations * stage.invocation_ms(a) / 1000 * stage.sizing.memory_mb / 1024
        wru += records * sum(u.wru_per_record for t, u in i.dynamodb.items() if t not in model.provisioned)
        rru += records * sum(u.rru_per_record for t, u in i.dynamodb.items() if t not in model.provisioned)
        if stage.name != "publish":  # publish's sends are priced at the queues it sends to (sent_by_publish)
            sqs += records * (
                i.calls_per_record.get("sqs:SendMessage", 0.0) + i.calls_per_record.get("sqs:SendMessageBatch", 0.0)
            )
        if stage.sizing.trigger == "sqs":
            # the mapping's ReceiveMessage and DeleteMessageBatch: each takes at most 10 messages, so a batch
            # of 100 (with a window) costs ten of each
            sqs += 2 * invocations * math.ceil(stage.sizing.batch_size / SEND_BATCH_MAX_ENTRIES)
            if stage.bus_fed:
                sqs += records  # EventBridge's SendMessage into the queue
            if stage.sent_by_publish:
                sqs += records / SEND_BATCH_MAX_ENTRIES  # publish's SendMessageBatch, full at a peak
        entries += records * i.put_events_entries_per_record
        puts += records * sum(u.puts_per_record for u in i.s3_puts.values())
        gets += records * i.s3_gets_per_record
        log_bytes += records * i.log_bytes_per_record + invocations * a.log_bytes_per_invocation
    cost["Lambda"] = lambda_gbs * p.lambda_gb_second_arm + lambda_requests / million * p.lambda_per_million_requests
    cost["DynamoDB"] = wru / million * p.dynamodb_per_million_wru + rru / million * p.dynamodb_per_million_rru
    if rate:
        hour = rate * 3600  # webhooks an hour of the provisioned units serves
        for wcu, rcu in provisioned_units(model, rate).values():
            cost["DynamoDB"] += (wcu * p.dynamodb_wcu_hour + rcu * p.dynamodb_rcu_hour) / hour * million
    cost["SQS"] = sqs / million * p.sqs_per_million_requests
    cost["EventBridge"] = entries / million * p.eventbridge_per_million_entries
    cost["S3"] = puts / 1000 * p.s3_put_per_thousand + gets / 1000 * p.s3_get_per_thousand
    cost["CloudWatch Logs"] = log_bytes / 1e9 * p.logs_per_gb_ingested
    return cost


# ---- the run: a discrete-time simulation ----------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """``base`` webhooks a second for the whole run, ``burst`` a second for ``burst_seconds`` from ``start``;
    arrivals stop at ``duration`` and the run goes on until every queue is empty."""

    base: float
    burst: float = 0.0
    burst_seconds: float = 0.0
    start: float = 0.0
    duration: float = 120.0

    def rate(self, t: float) -> float:
        if t >= self.duration:
            return 0.0
        if self.burst_seconds and self.start <= t < self.start + self.burst_seconds:
            return self.burst
        return self.base

    @property
    def burst_end(self) -> float:
        return self.start + self.burst_seconds if self.burst_seconds else self.duration


@dataclass
class _Queue:
    """Waiting webhooks (in webhook units) by arrival time, oldest first; and those on their way in."""

    waiting: deque[list[float]] = field(default_factory=deque)  # [origin time, webhooks]
    incoming: deque[tuple[float, float, float]] = field(default_factory=deque)  # (ready at, origin, webhooks)
    concurrency: float = 0.0

    def total(self) -> float:
        return sum(c[1] for c in self.waiting)


@dataclass(frozen=True)
class RunResult:
    offered: float  # webhooks
    acked: float
    rejected: float  # throttled at the API (429) or by Lambda concurrency: not acknowledged
    delivered: float  # webhook-units through the last stage on the path
    freshness_p50: float
    freshness_p99: float
    freshness_max: float
    backlog_peak: float  # records waiting, all queues
    backlog_peak_at: float
    backlog_peak_stage: str
    drained_at: float | None  # the first time after the last arrival burst that nothing waits
    drain_seconds: float | None  # from the end of the burst (or of arrivals) to drained
    peak_concurrency: float
    peak_rates: dict[str, float]  # stage -> highest records/s it processed in one step
    steps: int
    refused: dict[str, float] = field(default_factory=dict)  # why webhooks were not acked -> how many


def simulate(model: Model, schedule: Schedule, dt: float = 0.1, max_seconds: float = 3_600.0) -> RunResult:
    """Step the pipeline through ``schedule``. Each step: the API admits what its token buckets allow;
    ingest is limited by its concurrency; each queue consumer takes up to concurrency x batch / invocation
    time of the oldest waiting records; SQS pollers start at five and add up to 300 a minute (5 a second)
    while records wait, never past their cap or the account's free concurrency; stream consumers run
    shards x parallelization factor; a processed record reaches the next queue after its invocation time,
    its batching wait and the hop. Freshness is webhook arrival -> out of the last stage on the path."""
    a, q = model.assumptions, model.quotas
    stages = [s for s in model.stages if s.on_path]
    queues = {s.name: _Queue() for s in stages if s.sizing.trigger != "api"}
    children: dict[str, list[Stage]] = {}
    for s in stages:
        if s.upstream is not None:
            children.setdefault(s.upstream, []).append(s)
    leaves = {s.name for s in stages if s.name not in children and s.sizing.trigger != "api"}
    ingest = next(s for s in stages if s.sizing.trigger == "api")
    # warm at the base rate: pollers already at what the base rate needs
    for s in stages:
        if s.name in queues:
            if s.sizing.trigger == "stream":
                queues[s.name].concurrency = float(s.sizing.cap or 1)
            else:
                warm = s.concurrency_at(schedule.base * s.per_webhook, a)
                queues[s.name].concurrency = _clamp(
                    max(float(q.sqs_initial_pollers), math.ceil(warm)), s.sizing.cap or q.lambda_concurrency
                )
    stage_bucket = float(model.api_burst)
    account_bucket = float(q.api_burst)
    ingest_allowance = float(q.lambda_scale_per_10s)
    offered = acked = rejected = delivered = 0.0
    samples: list[tuple[float, float]] = []  # (freshness, webhook-units)
    backlog_peak, backlog_peak_at, backlog_stage = 0.0, 0.0, ""
    last_backlog_at: float | None = None
    peak_concurrency = 0.0
    peak_rates = {s.name: 0.0 for s in stages}
    t, step = 0.0, 0
    scale_step = q.sqs_scale_per_minute / 60 * dt
    busy: dict[str, float] = {}
    refused: dict[str, float] = defaultdict(float)
    # an S3 PUT before the ack (ingest puts only a body too large for a queue message) whose keys ascend in
    # time lands on one partition: past its PUT rate, S3 answers 503 and the webhook is not acked
    archive_puts = sum(u.puts_per_record * u.busiest_share for u in ingest.inputs.s3_puts.values())
    archive_limit = q.s3_put_per_prefix / archive_puts if archive_puts else math.inf
    while True:
        arrivals = schedule.rate(t) * dt
        if t >= schedule.duration and not any(qq.waiting or qq.incoming for qq in queues.values()):
            break
        if t > max_seconds:
            break
        # API: stage throttle and account throttle (token buckets), then ingest's concurrency
        # a token bucket: what arrives in a step may use that step's refill; it never holds more than its burst
        stage_tokens = stage_bucket + model.api_rate * dt
        account_tokens = account_bucket + q.api_rps * dt
        by_api = min(arrivals, stage_tokens, account_tokens)
        ingest_seconds = ingest.invocation_ms(a) / 1000
        consumers = sum(busy.values())  # (a reserved ingest is kept from them)
        ingest_allowance = min(ingest_allowance + q.lambda_scale_per_10s / 10 * dt, float(q.lambda_concurrency))
        ingest_cap = min(
            ingest_allowance, float(ingest.sizing.cap or q.lambda_concurrency), q.lambda_concurrency - consumers
        )
        by_lambda = min(by_api, max(0.0, ingest_cap) * dt / ingest_seconds)
        admitted = min(by_lambda, archive_limit * dt)
        refused["API Gateway throttle (429)"] += arrivals - by_api
        refused["ingest concurrency (Lambda throttles)"] += by_api - by_lambda
        refused["S3 PUT rate of ingest's busiest prefix (503 before the ack)"] += by_lambda - admitted
        stage_bucket = min(float(model.api_burst), stage_tokens - admitted)
        account_bucket = min(float(q.api_burst), account_tokens - admitted)
        offered += arrivals
        acked += admitted
        rejected += arrivals - admitted
        ingest_concurrency = admitted / dt * ingest_seconds
        peak_rates["ingest"] = max(peak_rates["ingest"], admitted / dt)
        for child in children.get(ingest.name, []) if admitted > 0 else []:
            queues[child.name].incoming.append(
                (t + ingest_seconds + child.hop_seconds + a.queue_hop_seconds, t, admitted)
            )
        # consumers, upstream first
        in_use = ingest_concurrency
        backlog = 0.0
        busiest, busiest_waiting = "", 0.0
        for s in stages:
            if s.name not in queues:
                continue
            qq = queues[s.name]
            arrived = 0.0
            while qq.incoming and qq.incoming[0][0] <= t + 1e-9:
                _, origin, units = qq.incoming.popleft()
                arrived += units
                if qq.waiting and abs(qq.waiting[-1][0] - origin) < 1e-9:
                    qq.waiting[-1][1] += units
                else:
                    qq.waiting.append([origin, units])
            waiting_records = qq.total() * s.per_webhook
            per_slot = s.records_per_slot(a)
            if s.sizing.trigger == "sqs":
                cap = float(s.sizing.cap or q.lambda_concurrency)
                if waiting_records > qq.concurrency * per_slot * dt:  # more waits than the pollers take: scale up
                    others = sum(busy.get(n, 0.0) for n in queues if n != s.name)
                    free = (
                        q.lambda_concurrency
                        - max(ingest_concurrency, float(ingest.sizing.cap or 0))
                        - others
                        - qq.concurrency
                    )
                    qq.concurrency = _clamp(qq.concurrency + min(scale_step, max(0.0, free)), cap)
            # executions run only while there are records: an idle poller or stream slot holds none
            busy[s.name] = min(qq.concurrency, waiting_records / (per_slot * dt))
            in_use += busy[s.name]
            take = qq.concurrency * per_slot * dt / s.per_webhook  # webhook units this step
            over = waiting_records - qq.concurrency * per_slot * dt  # more than one step's work: a backlog
            if over > 1e-9:
                backlog += over
                if over > busiest_waiting:
                    busiest, busiest_waiting = s.name, over
            done_units = 0.0
            invocation = s.invocation_ms(a) / 1000
            # a poller waits up to the batching window for a full batch: long when records trickle in
            arrival_rate = arrived * s.per_webhook / dt
            fill = s.sizing.batch_size * qq.concurrency / arrival_rate if arrival_rate else s.sizing.window_seconds
            batching_wait = min(s.sizing.window_seconds, fill)
            while take > 1e-12 and qq.waiting:
                origin, units = qq.waiting[0]
                moved = min(units, take)
                take -= moved
                done_units += moved
                if moved >= units - 1e-12:
                    qq.waiting.popleft()
                else:
                    qq.waiting[0][1] = units - moved
                finished = t + batching_wait + invocation
                if s.name in leaves:
                    samples.append((finished - origin, moved))
                    delivered += moved
                for child in children.get(s.name, []):
                    queues[child.name].incoming.append((finished + child.hop_seconds, origin, moved))
            peak_rates[s.name] = max(peak_rates[s.name], done_units * s.per_webhook / dt)
            if not qq.waiting and not qq.incoming and s.sizing.trigger == "sqs" and t >= schedule.duration:
                qq.concurrency = max(float(min(q.sqs_initial_pollers, s.sizing.cap or q.sqs_initial_pollers)), 0.0)
        peak_concurrency = max(peak_concurrency, in_use)
        if backlog > backlog_peak:
            backlog_peak, backlog_peak_at, backlog_stage = backlog, t, busiest
        if backlog > 0:
            last_backlog_at = t + dt
        t = round(t + dt, 9)
        step += 1
    p50, p99, worst = _percentiles(samples)
    end = schedule.burst_end
    drained_at = max(last_backlog_at or 0.0, end) if backlog_peak > 0 else end
    return RunResult(
        offered,
        acked,
        rejected,
        delivered,
        p50,
        p99,
        worst,
        backlog_peak,
        backlog_peak_at,
        backlog_stage,
        drained_at if t <= max_seconds else None,
        (drained_at - end) if t <= max_seconds else None,
        peak_concurrency,
        peak_rates,
        step,
        {k: v for k, v in refused.items() if v > 1e-6},
    )


def _clamp(value: float, ceiling: float) -> float:
    return min(value, ceiling)


def _percentiles(samples: list[tuple[float, float]]) -> tuple[float, float, float]:
    if not samples:
        return 0.0, 0.0, 0.0
    ordered = sorted(samples)
    total = sum(w for _, w in ordered)

    def at(fraction: float) -> float:
        running = 0.0
        for value, weight in ordered:
            running += weight
            if running >= fraction * total - 1e-9:
                return value
        return ordered[-1][0]

    return at(0.5), at(0.99), ordered[-1][0]


# ---- one call for the CLI -------------------------------------------------------------------------------
def schedule_for(rate: float, burst: float | None, burst_seconds: float | None, duration: float | None) -> Schedule:
    """``--rate R``: R a second for ``duration`` (120 s). ``--burst B --burst-seconds S``: R throughout, B for S
    seconds after a 30 s lead-in. ``--burst-seconds S`` alone: R for S seconds from a quiet start, then nothing."""
    if burst_seconds and burst is None:
        return Schedule(base=0.0, burst=rate, burst_seconds=burst_seconds, start=0.0, duration=burst_seconds)
    if burst is not None:
        seconds = burst_seconds or 60.0
        lead = 30.0
        return Schedule(
            base=rate, burst=burst, burst_seconds=seconds, start=lead, duration=duration or lead + seconds + 60.0
        )
    return Schedule(base=rate, duration=duration or 120.0)


def _limits_json(limits: Iterable[Limit]) -> list[dict[str, Any]]:
    return [
        {
            "limit": lim.what,
            "stage": lim.stage,
            "used": round(lim.used, 1),
            "ceiling": lim.ceiling,
            "aws_default": lim.default,
            "share": round(lim.share, 4),
            "binds_at_webhooks_per_second": None if math.isinf(lim.binds_at) else round(lim.binds_at, 1),
            "status": lim.status,
        }
        for lim in sorted(limits, key=lambda x: x.binds_at)
    ]


def _raises(limits: Iterable[Limit]) -> list[dict[str, Any]]:
    return [
        {"quota": lim.what, "aws_default": lim.default, "needed": round(lim.used, 1), "deployed": lim.ceiling}
        for lim in limits
        if lim.default is not None and lim.used > lim.default * (1 + 1e-9)
    ]


def _stages_json(reports: Iterable[StageReport]) -> list[dict[str, Any]]:
    return [
        {
            "stage": r.name,
            "records_per_second": round(r.records_per_second, 1),
            "capacity_records_per_second": None if r.capacity is None else round(r.capacity, 1),
            "concurrency_needed": round(r.concurrency, 1),
            "concurrency_cap": r.cap,
            "ms_per_record": round(r.ms_per_record, 2),
            "invocation_ms": round(r.invocation_ms, 1),
            "batch_size": r.batch_size,
            "memory_mb": r.memory_mb,
            "dynamodb_wru_per_second": {k: round(v, 1) for k, v in r.wru.items()},
            "dynamodb_rru_per_second": {k: round(v, 1) for k, v in r.rru.items()},
            "hottest_keys": {
                k: {"key": key, "wcu_per_second": round(w, 1), "rcu_per_second": round(rr, 1)}
                for k, (key, w, rr) in r.hot_keys.items()
            },
            "put_events_entries_per_second": round(r.put_events, 1),
            "s3_put_per_second_busiest_prefix": {k: round(v, 1) for k, v in r.s3_puts.items()},
            "sqs_requests_per_second": round(r.sqs_requests, 1),
        }
        for r in reports
    ]


def analyse(model: Model, schedule: Schedule, rate: float, inputs: CapacityInputs, inputs_path: Path) -> dict[str, Any]:
    """Everything the command prints, as one JSON-ready document: every stage and limit at ``rate``
    sustained (what carries it, what binds first), the simulated run of ``schedule`` and the limits at the
    rates that run reached (a burst the queues absorb runs the stages at their caps, not at the burst)."""
    reports, limits = steady(model, rate)
    binding = first_binding(limits)
    run = simulate(model, schedule)
    peak_rates = {**run.peak_rates, "ingest": run.peak_rates.get("ingest", 0.0)}
    _, run_limits = steady(model, schedule.base, stage_rates=peak_rates)
    # a provisioned table is priced by what it keeps at a rate: the sustained one, or the burst's from quiet
    priced_at = rate or schedule.burst or 0.0
    cost = cost_per_million(model, priced_at)
    a = model.assumptions
    return {
        "model": (
            "This is a model, not a measurement of AWS: measured per-record costs (below) x the environment's "
            "sizing, with the stated assumptions for what the bench cannot measure."
        ),
        "environment": model.environment,
        "region": model.region,
        "rate": rate,
        "schedule": {
            "base_per_second": schedule.base,
            "burst_per_second": schedule.burst,
            "burst_seconds": schedule.burst_seconds,
            "burst_starts_at": schedule.start,
            "arrivals_stop_at": schedule.duration,
        },
        "stages": _stages_json(reports),
        "limits": _limits_json(limits),
        "first_limit_that_binds": {
            "limit": binding.what,
            "stage": binding.stage,
            "binds_at_webhooks_per_second": None if math.isinf(binding.binds_at) else round(binding.binds_at, 1),
        },
        "over": [lim.what for lim in limits if lim.status == "OVER"],
        "quota_raises": _raises(limits),
        "run": {
            "offered": round(run.offered),
            "acked": round(run.acked),
            "not_acked": round(run.rejected),
            "not_acked_by": {k: round(v) for k, v in run.refused.items()},
            "freshness_p50_seconds": round(run.freshness_p50, 2),
            "freshness_p99_seconds": round(run.freshness_p99, 2),
            "freshness_max_seconds": round(run.freshness_max, 2),
            "backlog_peak_records": round(run.backlog_peak),
            "backlog_peak_at_seconds": round(run.backlog_peak_at, 1),
            "backlog_peak_stage": run.backlog_peak_stage or None,
            "drained": run.drained_at is not None,
            "drain_seconds": None if run.drain_seconds is None else round(run.drain_seconds, 1),
            "peak_lambda_concurrency": round(run.peak_concurrency, 1),
            "peak_records_per_second": {k: round(v, 1) for k, v in run.peak_rates.items()},
            # (what binds at which sustained rate is the first table's question, not the run's)
            "limits_at_peak": [{**lim, "binds_at_webhooks_per_second": None} for lim in _limits_json(run_limits)],
            "over_at_peak": [lim.what for lim in run_limits if lim.status == "OVER"],
            "quota_raises_at_peak": _raises(run_limits),
            "step_seconds": 0.1,
        },
        # what auto scaling keeps on each provisioned table at the rate (a planned promo's minimum)
        "provisioned_units_at_rate": {
            table: {"wcu": wcu, "rcu": rcu, "target_utilization_percent": p.target_utilization_percent}
            for table, (wcu, rcu) in provisioned_units(model, priced_at).items()
            for p in (model.provisioned[table],)
        },
        "cost_priced_at_webhooks_per_second": priced_at,
        "cost_per_million_webhooks_usd": {k: round(v, 2) for k, v in cost.items()}
        | {"total": round(sum(cost.values()), 2)},
        "prices": {
            "region": model.prices.region,
            "as_of": model.prices.as_of,
            "note": model.prices.note,
            "list": model.prices.lines(),
        },
        "quotas": {"deployed": model.quotas.__dict__, "aws_default": model.defaults.__dict__},
        "assumptions": a.lines(),
        "inputs": {
            "file": str(inputs_path.relative_to(ROOT) if inputs_path.is_relative_to(ROOT) else inputs_path),
            "measured_at": inputs.measured_at.isoformat(),
            "command": inputs.command,
            "machine": inputs.machine,
            "workload": inputs.workload.description,
            "per_record": {
                name: {
                    "cpu_ms": s.cpu_ms_per_record,
                    "aws_calls": s.calls,
                    "calls": s.calls_per_record,
                    "wru": round(sum(u.wru_per_record for u in s.dynamodb.values()), 3),
                    "rru": round(sum(u.rru_per_record for u in s.dynamodb.values()), 3),
                    "put_events_entries": s.put_events_entries_per_record,
                    "s3_puts": round(sum(u.puts_per_record for u in s.s3_puts.values()), 3),
                    "log_bytes": s.log_bytes_per_record,
                }
                for name, s in inputs.stages.items()
            },
            "sync_by_wave": {name: w.model_dump() for name, w in inputs.sync_by_wave.items()},
            "notes": list(inputs.notes),
        },
    }


def dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, default=str)

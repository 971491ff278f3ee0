"""The capacity model (ops/capacity.py) on inputs small enough to check by hand, and on the real ones.

Given per-record costs and a sizing, the numbers it prints are arithmetic: these tests hold it to the
exact figures a reader can work out on paper.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.config import ProvisionedTable, load_environment
from ops.capacity import (
    Assumptions,
    CapacityInputs,
    Model,
    Quotas,
    Schedule,
    Sizing,
    Stage,
    StageInputs,
    TableUse,
    build_model,
    cost_per_million,
    first_binding,
    load_inputs,
    provisioned_units,
    schedule_for,
    simulate,
    steady,
)
from ops.cli import app

# nothing unmeasured in the way: no call latency, no runtime overhead, no hops
BARE = Assumptions(call_ms={}, default_call_ms=0, ms_per_invocation=0, bus_hop_seconds=0, queue_hop_seconds=0)


def stage_inputs(cpu_ms: float, **extra: object) -> StageInputs:
    return StageInputs.model_validate(
        {"function": "f", "records": 1, "invocations": 1, "cpu_ms_per_record": cpu_ms, **extra}
    )


def two_stage_model(
    *, cpu_ms: float = 10, batch: int = 10, cap: int = 10, api_rate: float = 100_000, quotas: Quotas | None = None
) -> Model:
    """ingest (1 ms a webhook) -> one queue consumer (``cpu_ms`` a record, ``batch``, ``cap``)."""
    quotas = quotas or Quotas(api_rps=100_000, api_burst=100_000, sqs_initial_pollers=cap)
    return Model(
        "test",
        "eu-west-1",
        (
            Stage("ingest", None, 1.0, stage_inputs(1), Sizing("api", 2048)),
            Stage("normalise", "ingest", 1.0, stage_inputs(cpu_ms), Sizing("sqs", 2048, batch, 0, cap)),
        ),
        api_rate,
        int(api_rate),
        quotas,
        Quotas(),
        BARE,
    )


def test_a_stage_of_4_ms_a_record_in_batches_of_10_capped_at_100_carries_25000_records_a_second() -> None:
    stage = Stage("s", "ingest", 1.0, stage_inputs(4), Sizing("sqs", 2048, 10, 0, 100))
    # a batch of 10 takes 40 ms: one execution carries 250 records/s, 100 of them 25,000/s
    assert stage.invocation_ms(BARE) == 40
    assert stage.records_per_slot(BARE) == 250
    assert stage.capacity(BARE) == 25_000
    assert stage.concurrency_at(5_000, BARE) == 20


def test_below_a_full_vcpu_cpu_time_stretches_with_memory_and_calls_add_their_latency() -> None:
    assumptions = Assumptions(call_ms={"dynamodb:GetItem": 5}, ms_per_invocation=0)
    inputs = stage_inputs(4, calls_per_record={"dynamodb:GetItem": 2})
    half_vcpu = Stage("s", None, 1.0, inputs, Sizing("sqs", 1769 // 2 + 1, 1, 0, 1))
    full_vcpu = Stage("s", None, 1.0, inputs, Sizing("sqs", 1769, 1, 0, 1))
    assert full_vcpu.ms_per_record(assumptions) == 4 + 2 * 5
    assert half_vcpu.ms_per_record(assumptions) == pytest.approx(4 * 1769 / 885 + 10)


def test_the_first_limit_that_binds_is_named_with_the_rate_it_binds_at() -> None:
    model = two_stage_model(cpu_ms=10, batch=10, cap=10, api_rate=800)
    # normalise carries 10 x 10 / 0.1 s = 1,000 records/s; the API stage throttle lets 800/s in
    reports, limits = steady(model, 500)
    binding = first_binding(limits)
    assert (binding.what, binding.binds_at) == ("API Gateway stage throttle (rps)", 800)
    by_name = {lim.what: lim for lim in limits}
    assert by_name["normalise concurrency (cap)"].binds_at == pytest.approx(1_000)
    assert by_name["normalise concurrency (cap)"].used == pytest.approx(5)  # 500/s needs 5 of its 10
    assert reports[1].capacity == pytest.approx(1_000)
    model = two_stage_model(cpu_ms=10, batch=10, cap=10, api_rate=5_000)
    assert first_binding(steady(model, 500)[1]).what == "normalise concurrency (cap)"


def test_over_a_cap_is_reported_over_and_above_a_default_quota_asks_for_a_raise() -> None:
    model = two_stage_model(cpu_ms=10, batch=10, cap=10, api_rate=20_000)
    _, limits = steady(model, 1_500)
    by_name = {lim.what: lim for lim in limits}
    assert by_name["normalise concurrency (cap)"].status == "OVER"  # needs 15 of 10
    raised = two_stage_model(api_rate=20_000, quotas=Quotas(api_rps=20_000, api_burst=10_000))
    _, limits = steady(raised, 12_000)
    assert {lim.what: lim for lim in limits}["API Gateway account throttle (rps)"].status == "raise quota"


def test_a_burst_fills_the_queue_and_drains_in_the_time_the_spare_capacity_takes() -> None:
    # normalise carries 1,000 records/s (10 pollers x 10 records / 100 ms). 1,500/s for 10 s over a base of
    # 500/s leaves 500 records a second: 5,000 waiting when the burst ends, drained at 1,000 - 500 = 500 a
    # second: 10 s later.
    model = two_stage_model(cpu_ms=10, batch=10, cap=10)
    run = simulate(model, Schedule(base=500, burst=1_500, burst_seconds=10, start=0, duration=60))
    assert run.rejected == 0 and run.acked == pytest.approx(500 * 50 + 1_500 * 10)
    assert run.backlog_peak == pytest.approx(5_000)
    assert run.backlog_peak_at == pytest.approx(10.0)
    assert run.backlog_peak_stage == "normalise"
    assert run.drain_seconds == pytest.approx(10.0)
    assert run.delivered == pytest.approx(run.acked)


def test_without_a_backlog_freshness_is_the_path_s_own_time() -> None:
    model = two_stage_model(cpu_ms=10, batch=10, cap=10)
    run = simulate(model, Schedule(base=500, duration=10))
    # ingest 1 ms, then the next step (100 ms) takes the records: a 100 ms invocation; all the same
    assert run.backlog_peak == 0
    assert run.freshness_p50 == pytest.approx(0.2)
    assert run.freshness_p99 == pytest.approx(0.2)


def test_the_api_throttle_refuses_what_its_bucket_cannot_admit() -> None:
    model = two_stage_model(api_rate=1_000)  # burst bucket 1,000
    run = simulate(model, Schedule(base=0, burst=2_000, burst_seconds=10, start=0, duration=10))
    # 2,000 offered a second; the bucket starts full (1,000) and refills 1,000 a second
    assert run.offered == pytest.approx(20_000)
    assert run.acked == pytest.approx(11_000)
    assert run.rejected == pytest.approx(9_000)


def test_sqs_pollers_scale_by_five_a_second_from_five() -> None:
    quotas = Quotas(api_rps=100_000, api_burst=100_000)  # 5 pollers at first
    model = two_stage_model(cpu_ms=10, batch=10, cap=100, quotas=quotas)
    run = simulate(model, Schedule(base=0, burst=5_000, burst_seconds=5, start=0, duration=5))
    # 5 pollers carry 500/s; 5,000/s needs 50, reached after 9 s of adding 5 a second: a backlog builds
    assert run.backlog_peak > 0
    assert run.peak_rates["normalise"] == pytest.approx(5_000, rel=0.02)


def test_cost_per_million_adds_each_service_at_its_list_price() -> None:
    inputs = stage_inputs(
        10,
        calls_per_record={"sqs:SendMessage": 1},
        dynamodb={"state": TableUse(wru_per_record=4, rru_per_record=2)},
        put_events_entries_per_record=1,
        log_bytes_per_record=1_000,
    )
    model = Model(
        "test",
        "eu-west-1",
        (Stage("normalise", "ingest", 1.0, inputs, Sizing("sqs", 2048, 10, 0, 10)),),
        1_000,
        1_000,
        Quotas(),
        Quotas(),
        BARE,
    )
    cost = cost_per_million(model)
    p = model.prices
    assert cost["API Gateway"] == p.api_rest_per_million
    assert "WAF" not in cost  # no web ACL in this environment
    # 100,000 invocations of 100 ms at 2 GB
    assert cost["Lambda"] == pytest.approx(20_000 * p.lambda_gb_second_arm + 0.1 * p.lambda_per_million_requests)
    assert cost["DynamoDB"] == pytest.approx(4 * p.dynamodb_per_million_wru + 2 * p.dynamodb_per_million_rru)
    # one send a record, a receive and a delete a batch of 10
    assert cost["SQS"] == pytest.approx(1.2 * p.sqs_per_million_requests)
    assert cost["EventBridge"] == pytest.approx(p.eventbridge_per_million_entries)
    # 1,000 bytes a record + 600 a batch of 10 + 240 of API access log a request = 1.30 GB
    assert cost["CloudWatch Logs"] == pytest.approx(1.30 * p.logs_per_gb_ingested)
    with_waf = cost_per_million(replace(model, waf=True))
    assert with_waf == {**cost, "WAF": p.waf_per_million_requests}


def test_publish_s_sends_are_priced_at_the_queues_it_sends_to_and_no_rule_is_counted() -> None:
    # publish measured with 3 SendMessageBatch calls a record (the bench's environment: many targets) and
    # no PutEvents; in this environment its changes go to one deliver queue, 0.5 a webhook
    publish = stage_inputs(1, calls_per_record={"sqs:SendMessageBatch": 3})
    deliver = stage_inputs(1)
    stages = (
        Stage("publish", None, 1.0, publish, Sizing("stream", 1024, 20, 0, 4)),
        Stage("deliver/crm", "publish", 0.5, deliver, Sizing("sqs", 1024, 10, 0, 100), sent_by_publish=True),
    )
    model = Model("test", "eu-west-1", stages, 100_000, 100_000, Quotas(), Quotas(), BARE)
    cost = cost_per_million(model)
    p = model.prices
    # 500,000 deliveries: publish sends them in 50,000 calls of 10; the mapping receives and deletes 50,000
    # batches twice; publish's own measured calls are not priced (they were the bench's routes)
    assert cost["SQS"] == pytest.approx(0.15 * p.sqs_per_million_requests)
    assert cost["EventBridge"] == 0
    _, limits = steady(model, 1_000)
    assert not [lim for lim in limits if "rule invocations" in lim.what]
    bus_fed = replace(model, stages=(stages[0], replace(stages[1], sent_by_publish=False, bus_fed=True)))
    _, limits = steady(bus_fed, 1_000)
    [rules] = [lim for lim in limits if "rule invocations" in lim.what]
    assert rules.used == pytest.approx(500)
    assert cost_per_million(bus_fed)["SQS"] == pytest.approx(0.6 * p.sqs_per_million_requests)


def test_a_batch_over_ten_messages_is_received_and_deleted_ten_at_a_time() -> None:
    inputs = stage_inputs(1)
    stages = (Stage("normalise", None, 1.0, inputs, Sizing("sqs", 1024, 100, 1, 10)),)
    model = Model("test", "eu-west-1", stages, 100_000, 100_000, Quotas(), Quotas(), BARE)
    # 10,000 batches of 100: ten ReceiveMessage and ten DeleteMessageBatch calls each
    assert cost_per_million(model)["SQS"] == pytest.approx(0.2 * model.prices.sqs_per_million_requests)


def test_a_key_every_record_touches_takes_the_stage_s_whole_rate() -> None:
    hot = TableUse(
        rru_per_record=1, hottest_key="ops#circuit#crm", hottest_key_share=1.0, hottest_key_rru_per_record=0.5
    )
    inputs = stage_inputs(1, dynamodb={"state": hot})
    model = Model(
        "test",
        "eu-west-1",
        (Stage("deliver/crm", "publish", 1.0, inputs, Sizing("sqs", 2048, 10, 0, 1000)),),
        100_000,
        100_000,
        Quotas(),
        Quotas(),
        BARE,
    )
    reports, limits = steady(model, 2_000)
    assert reports[0].hot_keys["state"] == ("ops#circuit#crm", 0, 1_000)
    partition = {lim.what: lim for lim in limits}["DynamoDB state partition ops#circuit#crm RCU/s"]
    assert partition.binds_at == pytest.approx(6_000)  # 3,000 RCU / 0.5 a record


def test_schedules_from_the_command_options() -> None:
    assert schedule_for(2300, None, None, None) == Schedule(base=2300, duration=120)
    burst = schedule_for(2300, 10_000, 60, None)
    assert (burst.base, burst.burst, burst.burst_seconds, burst.start, burst.duration) == (2300, 10_000, 60, 30, 150)
    alone = schedule_for(10_000, None, 60, None)
    assert (alone.base, alone.burst, alone.burst_seconds, alone.duration) == (0, 10_000, 60, 60)


# ---- the shipped config and the measured inputs ------------------------------------------------------------
runner = CliRunner()


def capacity_json(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["capacity", "--env", "prod", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


def test_the_checked_in_inputs_validate_and_name_their_measurement() -> None:
    inputs = load_inputs()
    assert isinstance(inputs, CapacityInputs)
    assert {"ingest", "normalise", "sync", "publish", "deliver"} <= set(inputs.stages)
    assert inputs.command == "python -m bench.capacity_inputs"


def test_prod_carries_2300_a_second_within_every_cap_and_quota_with_freshness_p99_under_10_s() -> None:
    document = capacity_json("--rate", "2300")
    assert document["over"] == []
    run = document["run"]
    assert isinstance(run, dict)
    assert run["over_at_peak"] == []
    # where it needs more than an AWS default, the environment is deployed with the raise (and the
    # deploying page says which and why)
    raises = {r["quota"] for r in document["quota_raises"]}  # type: ignore[union-attr]
    assert raises <= {"Lambda concurrent executions (account; reservations included)", "DynamoDB state table WRU/s"}
    assert run["not_acked"] == 0
    assert run["freshness_p99_seconds"] < 10
    assert "model" in str(document["model"])


def test_prod_acks_every_webhook_of_a_10000_a_second_minute_and_drains_the_backlog() -> None:
    run = capacity_json("--rate", "10000", "--burst-seconds", "60")["run"]
    assert isinstance(run, dict)
    assert run["over_at_peak"] == []
    assert run["offered"] == 600_000
    assert run["acked"] == 600_000 and run["not_acked"] == 0
    assert run["drained"] is True and run["drain_seconds"] is not None


def test_the_human_output_says_it_is_a_model_and_names_its_inputs_and_prices() -> None:
    result = runner.invoke(app, ["capacity", "--env", "prod", "--rate", "2300"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for phrase in (
        "This is a model",
        "First limit that binds",
        "Measured inputs:",
        "capacity_inputs.json",
        "eu-west-1",
    ):
        assert phrase in result.output


def test_the_model_reads_its_inputs_from_the_file_it_is_given(tmp_path: Path) -> None:
    inputs = load_inputs().model_dump(mode="json")
    inputs["stages"]["sync"]["cpu_ms_per_record"] *= 2
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps(inputs))
    slower = build_model(load_environment("prod"), load_inputs(path))
    shipped = build_model(load_environment("prod"), load_inputs())
    assert slower.stage("sync/orders").ms_per_record(slower.assumptions) > shipped.stage("sync/orders").ms_per_record(
        shipped.assumptions
    )


def test_a_missing_inputs_file_is_one_line() -> None:
    result = runner.invoke(app, ["capacity", "--inputs", "/nonexistent/inputs.json"])
    assert result.exit_code == 1
    assert "no measured inputs" in result.output


def test_an_ingest_putting_every_webhook_under_time_ordered_keys_is_held_to_one_s3_partition(tmp_path: Path) -> None:
    """What the archive on the ack path under time-ordered keys did (before issue 15): one S3 partition's
    3,500 PUT/s capped the acks of a 10,000/s minute; the model names that as the reason."""
    inputs = load_inputs().model_dump(mode="json")
    inputs["stages"]["ingest"]["s3_puts"] = {"raw/": {"puts_per_record": 1.0, "ascending_share": 1.0}}
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps(inputs))
    run = capacity_json("--rate", "10000", "--burst-seconds", "60", "--inputs", str(path))["run"]
    assert isinstance(run, dict)
    assert (run["offered"], run["acked"]) == (600_000, 210_000)
    assert run["not_acked_by"] == {"S3 PUT rate of ingest's busiest prefix (503 before the ack)": 390_000}


def test_a_provisioned_table_costs_the_units_auto_scaling_keeps_at_the_rate() -> None:
    inputs = stage_inputs(
        10, dynamodb={"state": TableUse(wru_per_record=4, rru_per_record=2), "idem": TableUse(wru_per_record=1)}
    )
    provisioned = ProvisionedTable.model_validate(
        {"write": {"min": 100, "max": 5_000}, "read": {"min": 50, "max": 10_000}, "target_utilization_percent": 80}
    )
    on_demand = Model(
        "test",
        "eu-west-1",
        (Stage("sync", "ingest", 1.0, inputs, Sizing("sqs", 2048, 10, 0, 10)),),
        1_000,
        1_000,
        Quotas(),
        Quotas(),
        BARE,
    )
    model = replace(on_demand, provisioned={"state": provisioned})
    p = model.prices
    # 1,000 webhooks/s: 4,000 WRU/s and 2,000 RRU/s on the state table -> 5,000 WCU and 2,500 RCU at 80 %
    assert provisioned_units(model, 1_000) == {"state": (5_000, 2_500)}
    hour = 1_000 * 3600
    assert cost_per_million(model, 1_000)["DynamoDB"] == pytest.approx(
        p.dynamodb_per_million_wru  # the on-demand table's 1 WRU a webhook
        + (5_000 * p.dynamodb_wcu_hour + 2_500 * p.dynamodb_rcu_hour) / hour * 1_000_000
    )
    # the same units cost well under on demand's 4 WRU + 2 RRU a webhook at a steady rate
    assert cost_per_million(model, 1_000)["DynamoDB"] < 0.5 * cost_per_million(on_demand)["DynamoDB"]
    # at 10 webhooks/s auto scaling keeps the minimum: an hour of it over far fewer webhooks
    assert provisioned_units(model, 10) == {"state": (100, 50)}
    # past the maximum: priced as the units the rate needs, and the limit says the maximum is over
    assert provisioned_units(model, 2_000) == {"state": (10_000, 5_000)}
    _, limits = steady(model, 2_000)
    over = {lim.what: lim.status for lim in limits if "provisioned" in lim.what}
    assert over == {
        "DynamoDB state table provisioned WCU (auto scaling max)": "OVER",
        "DynamoDB state table provisioned RCU (auto scaling max)": "ok",
    }
    with pytest.raises(ValueError, match="depends on the rate"):
        cost_per_million(model)


def test_prod_provisions_the_state_and_view_tables_and_fits_the_peak_within_their_maximum() -> None:
    cfg = load_environment("prod")
    assert set(cfg.table_capacity) == {"state", "view"}
    model = build_model(cfg, load_inputs(), peak_rate=2_300)
    _, limits = steady(model, 2_300)
    provisioned = [lim for lim in limits if "provisioned" in lim.what]
    assert len(provisioned) == 4 and all(lim.status == "ok" for lim in provisioned)


def test_the_command_prints_what_auto_scaling_keeps_at_the_rate_and_prices_a_burst_from_quiet_at_it() -> None:
    cfg = load_environment("prod")
    for args, priced_at in ((["--rate", "2300"], 2300), (["--rate", "0", "--burst", "5000"], 5000)):
        result = CliRunner().invoke(app, ["capacity", "--env", "prod", *args, "--json"])
        assert result.exit_code == 0, result.output
        document = json.loads(result.output)
        model = build_model(cfg, load_inputs(), peak_rate=priced_at)
        assert document["cost_priced_at_webhooks_per_second"] == priced_at
        assert document["provisioned_units_at_rate"] == {
            table: {"wcu": wcu, "rcu": rcu, "target_utilization_percent": 70}
            for table, (wcu, rcu) in provisioned_units(model, priced_at).items()
        }
        assert set(document["provisioned_units_at_rate"]) == {"state", "view"}

"""``aftersync capacity``: the capacity model (ops/capacity.py) for an environment at a webhook rate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from ops.capacity import INPUTS, analyse, build_model, load_inputs, schedule_for
from ops.cli.common import ConfigOption, EnvOption, JsonOption, Where, console, emit_json, fail, refuse, say

WAVES = {"new": "a new order (and its new customer) only", "update": "an order update only"}


def register(app: typer.Typer) -> None:
    app.command(
        help="model what the pipeline carries at a webhook rate (and a burst): per stage, against caps and AWS "
        "quotas, with freshness, backlog and cost per million. A model from measured per-record costs, not a "
        "measurement."
    )(capacity)


def capacity(
    rate: Annotated[float, typer.Option("--rate", help="webhooks a second, sustained", min=0)] = 2300,
    burst: Annotated[
        float | None, typer.Option("--burst", help="webhooks a second during a burst on top of --rate's run", min=0)
    ] = None,
    burst_seconds: Annotated[
        float | None,
        typer.Option(
            "--burst-seconds",
            help="how long the burst lasts (default 60 with --burst); alone: --rate for this long, then quiet",
            min=1,
        ),
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="seconds of arrivals (default 120, or the burst + 90)", min=1)
    ] = None,
    inputs: Annotated[
        Path, typer.Option("--inputs", help="measured per-record costs (bench/capacity_inputs.py)", dir_okay=False)
    ] = INPUTS,
    json: JsonOption = False,
    env: EnvOption = "prod",
    config: ConfigOption = None,
) -> None:
    if not rate and not burst:
        refuse("aftersync: --rate or --burst must be above 0")
    cfg = Where(False, env, config).environment()
    try:
        measured = load_inputs(inputs)
    except FileNotFoundError:
        fail(f"aftersync: no measured inputs at {inputs}: run `python -m bench.capacity_inputs` first")
    except ValidationError as exc:
        fail(f"aftersync: {inputs} is not a capacity inputs file: {exc.errors()[0]['msg']}")
    model = build_model(cfg, measured, peak_rate=max(rate, burst or 0.0))
    document = analyse(model, schedule_for(rate, burst, burst_seconds, duration), rate, measured, inputs)
    if json:
        emit_json(document, ensure_ascii=False)
        return
    _print(document)


def _n(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _limits_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for column in ("limit", "stage", "used", "ceiling", "AWS default", "use", "binds at webhooks/s", "status"):
        table.add_column(column, justify="left" if column in ("limit", "stage", "status") else "right")
    for lim in rows:
        table.add_row(
            _short(lim["limit"], 90),
            lim["stage"],
            _n(lim["used"], 1),
            _n(lim["ceiling"]),
            _n(lim["aws_default"]),
            f"{lim['share']:.0%}",
            _n(lim["binds_at_webhooks_per_second"]),
            lim["status"],
        )
    return table


def _short(text: str, width: int = 32) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _print(d: dict[str, Any]) -> None:
    say(f"aftersync capacity — {d['environment']} ({d['region']}). {d['model']}")
    sched = d["schedule"]
    if sched["burst_seconds"]:
        say(
            f"Run: {_n(sched['base_per_second'])}/s, a burst of {_n(sched['burst_per_second'])}/s for "
            f"{_n(sched['burst_seconds'])} s from t={_n(sched['burst_starts_at'])} s; arrivals stop at "
            f"{_n(sched['arrivals_stop_at'])} s. The first tables: {_n(d['rate'])} webhooks/s sustained."
        )
    else:
        say(f"Run: {_n(sched['base_per_second'])} webhooks/s for {_n(sched['arrivals_stop_at'])} s.")
    stages = Table(title=f"Per stage at {_n(d['rate'])} webhooks/s sustained (every stage keeping up)")
    for column in (
        "stage",
        "records/s",
        "can carry/s",
        "concurrency (cap)",
        "ms/record",
        "batch",
        "MB",
        "WRU/s",
        "RRU/s",
        "hottest key WCU/RCU/s",
        "PutEvents/s",
        "S3 PUT/s per prefix",
        "SQS req/s",
    ):
        stages.add_column(column, justify="left" if column in ("stage", "hottest key WCU/RCU/s") else "right")
    for s in d["stages"]:
        hot = "; ".join(
            f"{table} {_short(k['key'])} {_n(k['wcu_per_second'])}/{_n(k['rcu_per_second'])}"
            for table, k in s["hottest_keys"].items()
        )
        stages.add_row(
            s["stage"],
            _n(s["records_per_second"]),
            _n(s["capacity_records_per_second"]),
            f"{_n(s['concurrency_needed'], 1)} ({_n(s['concurrency_cap'])})",
            _n(s["ms_per_record"], 1),
            str(s["batch_size"]),
            str(s["memory_mb"]),
            ", ".join(f"{t} {_n(v)}" for t, v in s["dynamodb_wru_per_second"].items()) or "-",
            ", ".join(f"{t} {_n(v)}" for t, v in s["dynamodb_rru_per_second"].items()) or "-",
            hot or "-",
            _n(s["put_events_entries_per_second"]),
            ", ".join(f"{p} {_n(v)}" for p, v in s["s3_put_per_second_busiest_prefix"].items()) or "-",
            _n(s["sqs_requests_per_second"]),
        )
    console.print(stages)
    console.print(_limits_table("Limits at the sustained rate, first to bind first", d["limits"]))
    first = d["first_limit_that_binds"]
    say(
        f"First limit that binds: {first['limit']} ({first['stage']}) at "
        f"{_n(first['binds_at_webhooks_per_second'])} webhooks/s."
    )
    say(f"Over a cap or quota at {_n(d['rate'])} webhooks/s sustained: {', '.join(d['over']) or 'none'}.")
    for r in d["quota_raises"]:
        say(
            f"Quota above the AWS default: {r['quota']}: needs {_n(r['needed'])}, default {_n(r['aws_default'])}, "
            f"deployed with {_n(r['deployed'])}."
        )
    run = d["run"]
    say(
        f"Simulated run ({run['step_seconds']} s steps): {_n(run['offered'])} webhooks offered, {_n(run['acked'])} "
        f"acked, {_n(run['not_acked'])} not acked. Freshness webhook -> delivered: "
        f"p50 {run['freshness_p50_seconds']:.2f} s, "
        f"p99 {run['freshness_p99_seconds']:.2f} s, max {run['freshness_max_seconds']:.2f} s."
    )
    for reason, count in run["not_acked_by"].items():
        say(f"  not acked: {_n(count)} by {reason}")
    if sched["burst_seconds"]:
        rows = [r for r in run["limits_at_peak"] if r["used"]]
        console.print(
            _limits_table("Limits at the rates the run reached (queues absorb what the caps hold back)", rows)
        )
        say(f"Over a cap or quota during the run: {', '.join(run['over_at_peak']) or 'none'}.")
        for r in run["quota_raises_at_peak"]:
            say(
                f"Quota above the AWS default during the run: {r['quota']}: needs {_n(r['needed'])}, default "
                f"{_n(r['aws_default'])}, deployed with {_n(r['deployed'])}."
            )
    if run["backlog_peak_records"]:
        drained = f"drained {_n(run['drain_seconds'], 1)} s after the burst" if run["drained"] else "NOT drained"
        say(
            f"Backlog: peak {_n(run['backlog_peak_records'])} records at t={run['backlog_peak_at_seconds']} s "
            f"(most in {run['backlog_peak_stage']}); {drained}. "
            f"Peak Lambda concurrency {_n(run['peak_lambda_concurrency'])}."
        )
    else:
        say(f"Backlog: none (every queue keeps up). Peak Lambda concurrency {_n(run['peak_lambda_concurrency'])}.")
    priced_at = _n(d["cost_priced_at_webhooks_per_second"])
    for table, units in d["provisioned_units_at_rate"].items():
        say(
            f"Provisioned {table} table at {priced_at} webhooks/s: auto scaling keeps {_n(units['wcu'])} WCU and "
            f"{_n(units['rcu'])} RCU ({units['target_utilization_percent']} % target); for a planned promo at this "
            "rate, make them the table's minimum before it starts."
        )
    cost = d["cost_per_million_webhooks_usd"]
    say(
        f"Cost per million webhooks ({d['prices']['region']}, list prices as of {d['prices']['as_of']}): "
        + ", ".join(f"{k} ${v:.2f}" for k, v in cost.items() if k != "total")
        + f"; total ${cost['total']:.2f}."
    )
    say("Prices: " + "; ".join(d["prices"]["list"]) + f" ({d['prices']['note']}).")
    say("Assumptions (not measured): " + " ".join(d["assumptions"]))
    i = d["inputs"]
    say(f"Measured inputs: {i['file']} of {i['measured_at']} ({i['command']}; {i['machine']}); {i['workload']}.")
    for name, s in i["per_record"].items():
        calls = ", ".join(f"{k} {v:g}" for k, v in s["calls"].items())
        say(
            f"  {name}: CPU {s['cpu_ms']:g} ms, {s['aws_calls']:g} AWS calls ({calls}), {s['wru']:g} WRU, "
            f"{s['rru']:g} RRU, {s['put_events_entries']:g} PutEvents entries, {s['s3_puts']:g} S3 PUT, "
            f"{s['log_bytes']:g} log bytes per record"
        )
    for wave, w in i.get("sync_by_wave", {}).items():
        calls = ", ".join(f"{k} {v:g}" for k, v in w["calls_per_record"].items())
        say(
            f"  sync, {WAVES.get(wave, wave)}: {sum(w['calls_per_record'].values()):g} AWS calls ({calls}), "
            f"{w['wru_per_record']:g} WRU, {w['rru_per_record']:g} RRU a record"
        )

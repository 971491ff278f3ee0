"""``aftersync demo --scenario outage``: a delivery target goes down, the sync success rate drops
below the environment's threshold, the alarm reaches the (fake) WeCom group, the target comes back,
deliveries catch up and the recovery message follows.

Everything between the alarm evaluation and the robot is the deployed path: the alarm change is
published to the critical SNS topic, SNS hands it to the alarms queue, the real notify function turns
it into a WeCom markdown message (and an on-call mention) within the robot's limits.
"""

from __future__ import annotations

import time
from typing import Any

from infra.sandbox.demo import TENANT, generated_order, post
from infra.sandbox.runtime import Sandbox
from shared.adapters.state_store import DynamoStateStore

ORDERS = 15


def wait_for(condition: Any, timeout: float, step: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def run_outage(sandbox: Sandbox, outage_seconds: float = 6.0) -> int:
    api = f"http://127.0.0.1:{sandbox.api_port}"
    secret = sandbox.secrets["sources"]["shopify"][TENANT][0]
    alarm = sandbox.cfg.resource("sync-success-rate")
    robot = sandbox.robot.service
    problems: list[str] = []

    def robot_says(state: str) -> bool:
        return any(alarm in c and state in c for c in robot.contents())

    print(
        f"Aftersync demo — outage scenario (threshold {sandbox.cfg.success_rate_threshold:.1%}, sandbox period "
        f"{sandbox.alarms.period:g} s)"
    )
    started = time.monotonic()
    for target in sandbox.cfg.targets:
        sandbox.target.status[target.name] = 503
    print(
        f"  t={time.monotonic() - started:4.1f}s  target {', '.join(t.name for t in sandbox.cfg.targets)} answers 503"
    )
    expected = {}
    for n in range(ORDERS):
        create, update, fields = generated_order(500 + n, secret)
        for hook in (create, update):
            status, _ = post(api, TENANT, hook)
            if status != 200:
                problems.append(f"webhook {hook.name} answered {status}")
        expected[f"shopify:{700000000000000500 + n}"] = fields
    print(f"  t={time.monotonic() - started:4.1f}s  sent {ORDERS * 2} order webhooks")
    if wait_for(lambda: robot_says("ALARM"), timeout=30):
        print(f"  t={time.monotonic() - started:4.1f}s  WeCom group got: ALARM {alarm}")
    else:
        problems.append("the success-rate alarm did not reach the WeCom group")
    time.sleep(max(0.0, outage_seconds - (time.monotonic() - started)))
    for target in sandbox.cfg.targets:
        sandbox.target.status[target.name] = 200
    print(f"  t={time.monotonic() - started:4.1f}s  target recovered (200)")
    if not sandbox.drain(timeout=60):
        problems.append("the pipeline did not drain after the recovery")
    if wait_for(lambda: robot_says("OK (recovered)"), timeout=30):
        print(f"  t={time.monotonic() - started:4.1f}s  WeCom group got: OK (recovered) {alarm}")
    else:
        problems.append("no recovery message reached the WeCom group")

    store = DynamoStateStore(sandbox.resources.refs.state_table)
    delivered = {d["body"]["entity_id"]: d["body"]["version"] for d in sandbox.target.accepted()}
    for entity_id in expected:
        state, _ = store.load(TENANT, "order", entity_id)
        if state is None or delivered.get(entity_id) != state.version:
            problems.append(f"{entity_id}: latest version not delivered after the outage")
    dead = {k: v for k, v in sandbox.queue_depths().items() if k.endswith("-dlq") and v}
    if dead:
        problems.append(f"messages in {dead}")

    print()
    print(f"WeCom group messages ({len(robot.messages)}; refused by the robot: {len(robot.refused)}):")
    for message in robot.messages:
        payload = message["payload"]
        body = payload[payload["msgtype"]]
        mentions = (
            f"  [mentions {', '.join(body['mentioned_mobile_list'])}]" if body.get("mentioned_mobile_list") else ""
        )
        print(f"--- {payload['msgtype']}{mentions}")
        print(body["content"])
    print()
    failed = sandbox.functions.metric_totals().get("RecordFailed", 0)
    print(f"record failures during the outage: {failed:g}; orders delivered after recovery: {len(expected)}")
    if problems:
        print("FAILED:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("OK: the outage raised the success-rate alarm in WeCom, nothing was lost, and the recovery was announced.")
    return 0

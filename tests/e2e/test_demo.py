"""``aftersync demo`` as a user runs it: the whole scenario (and the outage scenario) in a sandbox of its
own, which the command starts and stops.

Apart from tests/e2e/test_sandbox.py on purpose: that module's ``sandbox`` fixture keeps an
``aftersync local`` running between its tests, whose idle pollers took about a third of a core from
these two long runs on 2 cores."""

from __future__ import annotations

import re
import subprocess

from tests.e2e.conftest import CLI, ROOT


def test_make_demo_command_runs_the_whole_scenario_and_exits_zero() -> None:
    result = subprocess.run(
        [CLI, "demo", "--port", "0"], capture_output=True, text=True, cwd=ROOT, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for line in (
        r"shopify\s+100\s+99\s+1\s+200 accepted ×94, 200 duplicate ×5, 401 signature_invalid ×1",
        r"stripe\s+4\s+4\s+0\s+200 ack ×4",
        r"kuaidi100\s+2\s+2\s+0\s+200 成功 ×2",
        r"woocommerce\s+2\s+2\s+0\s+200 accepted ×1, 200 ping received ×1",
        r"youzan\s+5\s+5\s+0\s+200 success ×5",
        r"douyin\s+1\s+1\s+0\s+200 success ×1",
        r"wms\s+1\s+1\s+0\s+200 accepted ×1",
        r"amazon\s+2\s+-\s+-\s+written to the SP-API queue",
        # (the pulls bring a Shopify, a Taobao, a WooCommerce, an Amazon, a Douyin and a Youzan order, a Stripe refund,
        # a Zendesk ticket and an AfterShip parcel no webhook had brought)
        r"entities changed: 12 after_sales_case, 51 order, 5 shipment, 2 stock, 2 ticket;",
        r"reconcile:        the shop listed 1 changed order\(s\): 1 no webhook had brought \(fed in now\), 0 already",
        r"reconcile Taobao: TOP listed 1 changed trade\(s\) and refund\(s\): 1 fed in \(Taobao pushes nothing\), 0",
        r"reconcile Woo:    the store listed 1 changed order\(s\): 1 no webhook had brought \(fed in now\), 0 already",
        r"reconcile Stripe: events listed 1 refund event\(s\): 1 no webhook had brought \(fed in now\), 0 already",
        r"reconcile Zendesk: export listed 1 changed ticket\(s\): 1 no webhook had brought \(fed in now\), 0 already",
        r"reconcile AfterShip: listed 1 changed tracking\(s\): 1 no webhook had brought \(fed in now\), 0 already",
        r"reconcile Amazon: getOrders listed 1 changed order\(s\): 1 no notification had brought \(fed in now\), 0",
        r"reconcile Douyin: searchList listed 1 changed order\(s\): 1 no push had brought \(fed in now\), 0 already",
        r"reconcile Youzan: trades listed 1 changed trade\(s\): 1 no push had brought \(fed in now\), 0 already",
        r"deliveries made:  \d+ to crm, \d+ to erp",  # versions may coalesce: delivery follows the state
        r"customers told:   [1-9]\d* SMS, [1-9]\d* e-mails",
        # the two tickets (the webhook's and the pulled one) in the service group: a message each, or one digest
        r"WeCom groups:     [12] message\(s\) to service-group",
        r"automation:\s+\d+ call\(s\) to oms, 1 call\(s\) to payments, 3 call\(s\) to wms, 1 call\(s\) to wms-outbound",
    ):
        assert re.search(line, result.stdout), line
    assert "OK: every accepted webhook reached its end state" in result.stdout
    assert "DLQ messages:     0" in result.stdout


def test_demo_outage_scenario_raises_the_alarm_in_wecom_and_announces_the_recovery() -> None:
    result = subprocess.run(
        [CLI, "demo", "--scenario", "outage", "--port", "0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"WeCom group got: ALARM aftersync-dev-sync-success-rate", result.stdout)
    assert re.search(r"WeCom group got: OK \(recovered\) aftersync-dev-sync-success-rate", result.stdout)
    assert "[mentions 13800000000]" in result.stdout
    assert "refused by the robot: 0" in result.stdout

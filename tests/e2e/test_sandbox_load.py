"""The sandbox keeps up with a burst: fifty clients at once are all answered, none is reset, and each
order is pushed to the fake CRM exactly once (handlers in concurrent execution environments, several
batches in flight per queue, with every function's IAM role enforced)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from infra.sandbox.samples import SignedWebhook, load_sample
from shared.sources import shopify
from tests.e2e.conftest import RunningSandbox, quiet_shared_sandbox


@pytest.fixture(scope="module")
def sandbox(shared_sandbox: RunningSandbox) -> RunningSandbox:
    """The package's shared sandbox: the burst's orders are new ids, and only their deliveries are counted."""
    return quiet_shared_sandbox(shared_sandbox)


CLIENTS = 50


def _order(n: int, secret: str) -> tuple[str, SignedWebhook]:
    sample = load_sample("shopify_orders_create")
    order_id = 610000000000000000 + n
    fields = {"id": order_id, "name": f"#B{n:03d}", "order_number": 60000 + n}  # a new order, not a copy
    body = json.dumps({**sample["body"], **fields}, separators=(",", ":")).encode()
    headers = {
        **sample["headers"],
        shopify.TOPIC_HEADER: "orders/create",
        shopify.EVENT_ID_HEADER: f"burst-{n}",
        shopify.SIGNATURE_HEADER: shopify.sign(secret, body),
    }
    return f"shopify:{order_id}", SignedWebhook(f"burst-{n}", "shopify", headers, body)


def test_fifty_concurrent_clients_are_all_answered_and_each_order_is_delivered_exactly_once(
    sandbox: RunningSandbox, shopify_secret: str
) -> None:
    # Given fifty distinct new orders and fifty clients ready to post them at the same moment
    orders = [_order(n, shopify_secret) for n in range(CLIENTS)]
    port = int(sandbox.info["api"].rsplit(":", 1)[1])
    start = threading.Barrier(CLIENTS)

    def post(hook: SignedWebhook) -> tuple[int, str] | str:
        start.wait()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            connection.request("POST", "/webhooks/shopify/demo", body=hook.body, headers=hook.headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read())["status"]
        except (OSError, http.client.HTTPException) as error:  # a reset, a refusal: counted, not raised
            return type(error).__name__
        finally:
            connection.close()

    # When they all post at once
    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(post, [hook for _, hook in orders]))

    # Then every one is answered (none reset or refused), each as a new delivery
    assert Counter(map(str, answers)) == {str((200, "accepted")): CLIENTS}
    # ... and once the pipeline is drained, the fake CRM got each order exactly once
    sandbox.wait_drained(timeout=300)
    wanted = {entity for entity, _ in orders}
    deadline = time.monotonic() + 60  # (drained queues: the last pushes are answered by now; a margin)
    while time.monotonic() < deadline:
        pushed = Counter(d["body"]["entity_id"] for d in sandbox.deliveries("crm") if d["body"]["entity_id"] in wanted)
        if set(pushed) == wanted:
            break
        time.sleep(0.5)
    assert pushed == dict.fromkeys(wanted, 1)

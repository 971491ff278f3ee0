"""Integration fixtures: the stack's resources on in-process moto, the real handlers, a fake target."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.config import EnvironmentConfig, load_environment
from infra.sandbox import moto_fidelity
from infra.sandbox.fake_lists import FakeListApi, list_fakes
from infra.sandbox.fake_top import FakeTop
from infra.sandbox.fake_woo import FakeWoo
from infra.sandbox.http_servers import FakeShop, FakeTarget, api_gateway_event, serve
from infra.sandbox.lambda_runtime import Functions, LambdaContext
from infra.sandbox.pollers import SqsPoller, StreamPoller
from infra.sandbox.resources import SandboxResources, create_resources, local_shop, local_targets, robot_keys
from infra.sandbox.samples import SignedWebhook
from infra.sandbox.wecom_robot import FakeWeComRobot
from infra.wiring import FUNCTIONS, STREAM_CONSUMERS, function_environment, queues
from shared.adapters.watermarks import ReconcileWatermarks
from shared.observability import logger


@dataclass
class Stack:
    cfg: EnvironmentConfig
    resources: SandboxResources
    target: FakeTarget
    functions: Functions
    robot: FakeWeComRobot
    shop: FakeShop
    top: FakeTop  # the Taobao Open Platform's gateway, for the demo tenant's Taobao pull
    woo: FakeWoo  # the demo tenant's WooCommerce store's REST API, for its pull
    lists: dict[str, FakeListApi]  # Stripe's, Zendesk's and AfterShip's list APIs, for the demo tenant's pulls
    _sqs_pollers: dict[tuple[str, str], SqsPoller] = field(default_factory=dict, repr=False)

    def post(self, webhook: SignedWebhook, tenant: str = "demo", source: str | None = None) -> dict[str, Any]:
        event = api_gateway_event(
            "POST", f"/webhooks/{source or webhook.source}/{tenant}", webhook.headers, webhook.body
        )
        return self.functions.invoke("ingest", event)  # type: ignore[no-any-return]

    def depth(self, purpose: str) -> int:
        """Messages in a queue (visible, in flight, or delayed: a waiting delivery's copy), read from its
        attributes: no receive is counted."""
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        attributes = boto3.client("sqs").get_queue_attributes(
            QueueUrl=self.resources.queue_urls[purpose], AttributeNames=names
        )["Attributes"]
        return sum(int(attributes[name]) for name in names)

    def messages(self, purpose: str) -> list[dict[str, Any]]:
        """The messages in a queue. Each peek counts as a receive, so on a queue with a redrive policy
        use it only where nothing consumes the queue afterwards; ``depth`` counts without receiving."""
        sqs = boto3.client("sqs")
        found: dict[str, dict[str, Any]] = {}
        for _ in range(5):
            for message in sqs.receive_message(
                QueueUrl=self.resources.queue_urls[purpose],
                MaxNumberOfMessages=10,
                VisibilityTimeout=0,
                MessageAttributeNames=["All"],
            ).get("Messages", []):
                found[message["MessageId"]] = message
        return list(found.values())

    def archived_keys(self) -> list[str]:
        page = boto3.client("s3").list_objects_v2(Bucket=self.resources.refs.archive_bucket)
        return [o["Key"] for o in page.get("Contents", [])]

    def idempotency_items(self) -> int:
        return int(
            boto3.client("dynamodb").scan(TableName=self.resources.refs.idempotency_table, Select="COUNT")["Count"]
        )

    def reconcile(self, source: str, tenant: str = "demo") -> dict[str, Any]:
        """Run a scheduled pull now (the message its schedule sends) and return the run's counts (and
        ``newest``), as its watermark item records them."""
        message = json.dumps({"source": source, "tenant": tenant})
        boto3.client("sqs").send_message(QueueUrl=self.resources.queue_urls["reconcile"], MessageBody=message)
        self.run_until_quiet()
        run = ReconcileWatermarks(self.resources.refs.state_table).last_run(source, tenant) or {}
        run.pop("saved_at", None)
        return run

    def run_until(self, condition: Any, timeout: float = 30.0) -> None:
        """Keep the pipeline running (in real time: waiting messages come back when their visibility
        runs out) until ``condition()`` holds."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("the condition did not hold in time")
            self.run_until_quiet(max_rounds=5, must_settle=False)
            time.sleep(0.2)

    def run_until_quiet(
        self, max_rounds: int = 50, must_settle: bool = True, skip: frozenset[str] = frozenset()
    ) -> None:
        """Poll every queue and the stream, invoking the real handlers, until nothing moves (``skip``
        names consumers, e.g. ``automate``, or queues, e.g. ``deliver-crm``, left unconsumed: they keep
        what reaches them)."""
        pollers: list[Any] = [
            self._sqs_poller(spec.consumer, spec.purpose)
            for spec in queues(self.cfg)
            if spec.consumer and not {spec.consumer, spec.purpose} & skip
        ]
        pollers += [
            StreamPoller(
                self.functions,
                function,
                self.resources.stream_arn,
                self.resources.queue_urls["publish-dlq"],
                self.cfg.region,
            )
            for function in STREAM_CONSUMERS
        ]
        quiet = 0
        for _ in range(max_rounds):
            moved = sum(p.poll_once() for p in pollers)
            quiet = quiet + 1 if moved == 0 else 0
            if quiet >= 2:
                return
        if must_settle:
            raise AssertionError("pipeline did not go quiet")

    def _sqs_poller(self, consumer: str, purpose: str) -> SqsPoller:
        """The queue's poller, made once per test: ``poll_once`` keeps nothing between calls, and making
        one (its boto3 client) for every queue on every ``run_until_quiet`` took about a sixth of the
        integration suite's time. (Stream pollers stay new on each call: each starts at the shard's
        oldest record, as before.)"""
        key = (consumer, self.resources.queue_urls[purpose])
        if key not in self._sqs_pollers:
            self._sqs_pollers[key] = SqsPoller(
                self.functions,
                consumer,
                self.resources.queue_urls[purpose],
                self.resources.queue_arns[purpose],
                self.cfg.region,
                # deliver hides a failed message itself (its backoff, an open circuit), as on AWS
                retry_delay=None if consumer == "deliver" else lambda _: 0,
            )
        return self._sqs_pollers[key]


@pytest.fixture
def stack(sandbox_secrets: dict[str, Any]) -> Iterator[Stack]:
    moto_fidelity.apply()
    target = FakeTarget()
    serve(target.server)
    robot = FakeWeComRobot(robot_keys(sandbox_secrets))
    serve(robot.server)
    shop = FakeShop(sandbox_secrets["pull"]["shopify"]["demo"]["access_token"], page_size=2)
    serve(shop.server)
    top = FakeTop(**sandbox_secrets["pull"]["taobao"]["demo"])
    serve(top.server)
    woo = FakeWoo(**sandbox_secrets["pull"]["woocommerce"]["demo"])
    serve(woo.server)
    lists = list_fakes(sandbox_secrets)
    for fake in lists.values():
        serve(fake.server)
    pulls = {"shopify": shop.url, "taobao": top.url, "woocommerce": woo.url} | {s: f.url for s, f in lists.items()}
    cfg = local_shop(local_targets(load_environment("dev"), target.url, robot.url), pulls)
    saved = dict(os.environ)
    with mock_aws():
        resources = create_resources(cfg, sandbox_secrets, visibility_timeout=30)
        resources.queue_urls["publish-dlq"] = boto3.client("sqs").create_queue(QueueName=cfg.resource("publish-dlq"))[
            "QueueUrl"
        ]
        fakes = (
            target.server.server_port,
            robot.server.server_port,
            shop.server.server_port,
            top.server.server_port,
            woo.server.server_port,
            *(fake.server.server_port for fake in lists.values()),
        )
        for name in FUNCTIONS:
            os.environ.update(
                function_environment(name, cfg, resources.refs, loopback_ports=fakes, wecom_api_base=robot.url)
            )
        os.environ["AWS_LAMBDA_FUNCTION_NAME"] = cfg.resource("ingest")
        yield Stack(cfg, resources, target, Functions(cfg.region, cfg.resource("fn")), robot, shop, top, woo, lists)
    os.environ.clear()
    os.environ.update(saved)
    target.server.shutdown()
    robot.server.shutdown()
    shop.server.shutdown()
    top.server.shutdown()
    woo.server.shutdown()
    for fake in lists.values():
        fake.server.shutdown()


@pytest.fixture
def sampled() -> Iterator[None]:
    """Every invocation sampled for DEBUG (``debug_log_sample_rate`` 1): each record's log line is
    written, as Powertools puts the logger at DEBUG at each warm invocation."""
    before = logger.sampling_rate
    logger.sampling_rate = 1.0
    logger.refresh_sample_rate_calculation()
    yield
    logger.sampling_rate = before
    logger.refresh_sample_rate_calculation()


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext("aftersync-dev-test", "eu-west-1")

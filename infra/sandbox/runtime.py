"""The local sandbox: moto in server mode as the AWS stand-in, the real handlers, local HTTP.

Nothing in the handlers knows about it: they read the same environment variables as in Lambda, and
boto3 reaches the stand-in through the standard ``AWS_ENDPOINT_URL`` setting.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3

from infra.config import ROOT, EnvironmentConfig, load_environment
from infra.sandbox import iam as sandbox_iam
from infra.sandbox import moto_fidelity
from infra.sandbox.alarms import SandboxAlarms
from infra.sandbox.environments import DEFAULT_CONCURRENCY, ProcessFunctions
from infra.sandbox.fake_lists import list_fakes
from infra.sandbox.fake_top import FakeTop
from infra.sandbox.fake_woo import FakeWoo
from infra.sandbox.http_servers import FakeShop, FakeTarget, function_for, gateway, serve
from infra.sandbox.lambda_runtime import Functions
from infra.sandbox.moto_server import KeepAliveMotoServer
from infra.sandbox.pollers import SqsPoller, StreamPoller
from infra.sandbox.resources import (
    ACCOUNT,
    SandboxResources,
    create_resources,
    fake_corps,
    local_shop,
    local_targets,
    local_wecom_app,
    robot_keys,
)
from infra.sandbox.wecom_app import FakeWeComApp
from infra.sandbox.wecom_robot import FakeWeComRobot
from infra.wiring import FUNCTIONS, STREAM_CONSUMERS, function_environment, queues
from ops.resources import sandbox_state_file

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the stand-in's request log is noise here
# An invocation that changed nothing emits no metric; Powertools warns about that on every one.
warnings.filterwarnings("ignore", message="No application metrics to publish")

DEFAULT_SECRETS = ROOT / "infra" / "sandbox" / "secrets.local.json"
# Where a running sandbox announces itself (and writes its logs); AFTERSYNC_STATE_DIR moves it, so
# test runs in one checkout do not find each other's sandboxes. The CLI's resolver reads it there.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sandbox:
    def __init__(
        self,
        environment: str = "dev",
        api_port: int = 3000,
        secrets_file: Path = DEFAULT_SECRETS,
        verbose: bool = False,
        announce: bool = True,
        enforce_iam: bool = True,
        concurrency: int = DEFAULT_CONCURRENCY,
        serial: bool = False,
    ) -> None:
        """``announce``: write ``.aftersync/sandbox.json`` so other ``aftersync`` commands find this
        sandbox (``aftersync local``); a one-off run (the demo) leaves a running sandbox's file alone.
        ``enforce_iam``: each function runs with its stack role's policy and the stand-in checks every
        call (see ``infra/sandbox/iam.py``); everything else is the operator, allowed everything.
        ``concurrency``: execution environments per function (worker processes, see
        ``infra/sandbox/environments.py``), and batches each event source mapping has in flight.
        ``serial``: the sandbox as it was before issue 15, for the benchmark's baseline: every handler
        in this process under one lock, one batch at a time per queue, a listen backlog of 5."""
        self.environment = environment
        self.api_port = api_port
        self.state_file = sandbox_state_file()  # where the CLI looks for it (ops.resources)
        self.secrets = json.loads(Path(secrets_file).read_text(encoding="utf-8"))
        self.verbose = verbose
        self.announce = announce
        self.enforce_iam = enforce_iam
        self.concurrency = 1 if serial else concurrency
        self.serial = serial
        self.pollers: list[Any] = []
        self.iam_denials: list[str] = []
        self.operator: sandbox_iam.Frozen | None = None
        self._log_lock = threading.Lock()
        self._sqs: Any = None
        self._sqs_lock = threading.Lock()

    # ------------------------------------------------------------------------------------------
    def start(self) -> Sandbox:
        base = load_environment(self.environment)
        moto_fidelity.apply()
        # The stack's template (its roles' policies): from the cache, or synthesized while moto starts
        template = ThreadPoolExecutor(max_workers=1).submit(sandbox_iam.synthesized_template, self.environment)
        self.moto_port = free_port()
        self.moto = KeepAliveMotoServer("127.0.0.1", self.moto_port)
        self.moto.start()
        self.endpoint = f"http://127.0.0.1:{self.moto_port}"
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": "sandbox",
                "AWS_SECRET_ACCESS_KEY": "sandbox",
                "AWS_DEFAULT_REGION": base.region,
                "AWS_REGION": base.region,
                "POWERTOOLS_TRACE_DISABLED": "true",
                "POWERTOOLS_METRICS_NAMESPACE": "Aftersync",
                "POWERTOOLS_SERVICE_NAME": "aftersync",
                "POWERTOOLS_LOG_LEVEL": "INFO",
                # each record's line, in the share of invocations the environment samples (dev: all)
                "POWERTOOLS_LOGGER_SAMPLE_RATE": f"{base.debug_log_sample_rate:g}",
            }
        )
        os.environ.pop("AWS_PROFILE", None)
        self.log_file: Path | None = None
        if self.enforce_iam:
            self.operator, operator_arn = sandbox_iam.create_operator(self.endpoint, base.region)
            os.environ.update(
                {"AWS_ACCESS_KEY_ID": self.operator.access_key, "AWS_SECRET_ACCESS_KEY": self.operator.secret_key}
            )
            sandbox_iam.install_acting_credentials()
            moto_fidelity.IAM_DENIALS.append(self._denied)

        self.target = FakeTarget()
        serve(self.target.server)
        self.robot = FakeWeComRobot(robot_keys(self.secrets))
        serve(self.robot.server)
        self.shop = FakeShop(self.secrets.get("pull", {}).get("shopify", {}).get("demo", {}).get("access_token", ""))
        serve(self.shop.server)
        top = self.secrets.get("pull", {}).get("taobao", {}).get("demo", {})
        self.top = FakeTop(top.get("app_key", ""), top.get("app_secret", ""), top.get("session", ""))
        serve(self.top.server)
        woo = self.secrets.get("pull", {}).get("woocommerce", {}).get("demo", {})
        self.woo = FakeWoo(woo.get("consumer_key", ""), woo.get("consumer_secret", ""))
        serve(self.woo.server)
        self.lists = list_fakes(self.secrets)  # Stripe's events, Zendesk's export, AfterShip's trackings
        for fake in self.lists.values():
            serve(fake.server)
        self.wecom = FakeWeComApp(fake_corps(base, self.secrets))
        serve(self.wecom.server)
        # Same config as the stack, but targets, scheduled pulls and the sidebar's WeCom point at the local fakes.
        self.cfg: EnvironmentConfig = local_wecom_app(
            local_shop(local_targets(base, self.target.url, self.robot.url), self.pull_fakes()),
            self.wecom.url,
        )
        self.resources: SandboxResources = create_resources(self.cfg, self.secrets, visibility_timeout=30)
        self._create_stream_failure_queue()
        # The functions may call exactly these loopback ports: not moto's, not the API's, nothing else local
        fakes = (
            self.target.server.server_port,
            self.robot.server.server_port,
            self.shop.server.server_port,
            self.top.server.server_port,
            self.woo.server.server_port,
            *(fake.server.server_port for fake in self.lists.values()),
            self.wecom.server.server_port,
        )
        for name in FUNCTIONS:
            os.environ.update(
                function_environment(
                    name, self.cfg, self.resources.refs, loopback_ports=fakes, wecom_api_base=self.robot.url
                )
            )
        os.environ["AWS_LAMBDA_FUNCTION_NAME"] = self.cfg.resource("ingest")
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file = self.state_file.parent / ("sandbox.log" if self.announce else "demo.log")
        self.log_file.write_text("", encoding="utf-8")
        credentials: dict[str, sandbox_iam.Frozen] | None = None
        if self.enforce_iam:
            arns = sandbox_iam.SandboxArns(
                template.result(),
                self.cfg.region,
                ACCOUNT,
                stream_arns={self.resources.refs.state_table: self.resources.stream_arn},
                names={"/Storage/Archive/Resource": self.resources.refs.archive_bucket},
            )
            roles = sandbox_iam.create_function_roles(sandbox_iam.function_policies(arns), operator_arn)
            credentials = {n: roles[self.cfg.resource(n)] for n in FUNCTIONS if self.cfg.resource(n) in roles}
        if self.serial:
            self.functions = Functions(self.cfg.region, self.cfg.resource("fn"), self.log_file)
        else:
            self.functions = ProcessFunctions(
                self.cfg.region,
                self.cfg.resource("fn"),
                {name: self._function_environment(name, credentials) for name in FUNCTIONS},
                self.log_file,
                concurrency=self.concurrency,
                timeouts={
                    name: float(spec.timeout_seconds or self.cfg.consumer_timeout_seconds)
                    for name, spec in FUNCTIONS.items()
                },
            )
        self.functions.echo = self.verbose
        self.functions.credentials = credentials
        if isinstance(self.functions, ProcessFunctions):
            # one warm environment per function on the webhook's path before the first request
            self.functions.warm(["ingest", "normalise", "sync", "publish", "deliver"])

        self.api = gateway(
            "127.0.0.1",
            self.api_port,
            lambda event: self.functions.invoke(function_for(event["resource"]), event),
            backlog=5 if self.serial else 128,
        )
        self.api_port = self.api.server_port
        serve(self.api)
        self.wecom.pages = {t: f"http://127.0.0.1:{self.api_port}/v1/{t}/sidebar" for t in self.cfg.sidebar.tenants}
        for spec in queues(self.cfg):
            if spec.consumer:
                self.pollers.append(
                    SqsPoller(
                        self.functions,
                        spec.consumer,
                        self.resources.queue_urls[spec.purpose],
                        self.resources.queue_arns[spec.purpose],
                        self.cfg.region,
                        # deliver sets each failed message's visibility itself (backoff, circuit)
                        retry_delay=None if spec.consumer == "deliver" else lambda receives: min(receives, 3),
                        max_in_flight=self.concurrency,
                    )
                )
        for function in STREAM_CONSUMERS:  # the table stream's readers, as deployed
            self.pollers.append(
                StreamPoller(
                    self.functions,
                    function,
                    self.resources.stream_arn,
                    self.resources.queue_urls["publish-dlq"],
                    self.cfg.region,
                    parallelization=self.concurrency,
                )
            )
        self.alarms = SandboxAlarms(self.cfg, self.functions.emf, self.dlq_depths, self.resources.alarm_topics)
        self.pollers.append(self.alarms)
        for poller in self.pollers:
            poller.start()
        if self.announce:
            self._write_state_file()
        return self

    def _function_environment(self, name: str, credentials: dict[str, sandbox_iam.Frozen] | None) -> dict[str, str]:
        """What function ``name``'s execution environment sees: the sandbox's variables (every function's
        settings, as set above), its own name, and its role's session credentials as Lambda gives them."""
        environment = dict(os.environ)
        environment["AWS_LAMBDA_FUNCTION_NAME"] = self.cfg.resource(name)
        environment.pop("AWS_SESSION_TOKEN", None)
        role = (credentials or {}).get(name)
        if role is not None:
            environment["AWS_ACCESS_KEY_ID"] = role.access_key
            environment["AWS_SECRET_ACCESS_KEY"] = role.secret_key
            if role.token:
                environment["AWS_SESSION_TOKEN"] = role.token
        return environment

    def _denied(self, principal: str, action: str, resource: str) -> None:
        """A call the caller's policy does not allow: into the handler log, and counted."""
        line = f"IAM denied: {principal} {action} on {resource}"
        with self._log_lock:
            self.iam_denials.append(line)
            if self.log_file is not None:
                with self.log_file.open("a", encoding="utf-8") as log:
                    log.write(line + "\n")

    def pull_fakes(self) -> dict[str, str]:
        """Each pulled platform's fake API: source -> URL."""
        return {
            "shopify": self.shop.url,
            "taobao": self.top.url,
            "woocommerce": self.woo.url,
            **{source: fake.url for source, fake in self.lists.items()},
        }

    def _create_stream_failure_queue(self) -> None:
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName=self.cfg.resource("publish-dlq"))["QueueUrl"]
        self.resources.queue_urls["publish-dlq"] = url

    def _write_state_file(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(self.describe(), indent=2), encoding="utf-8")

    def describe(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),  # the CLI tells a crashed sandbox's leftover file from a running one
            "environment": self.environment,
            "aws_endpoint_url": self.endpoint,
            "region": self.cfg.region,
            "api": f"http://127.0.0.1:{self.api_port}",
            "fake_target": self.target.url,
            "fake_shop": self.shop.url,
            "fake_top": self.top.url,
            "fake_woocommerce": self.woo.url,
            **{f"fake_{source}": fake.url for source, fake in self.lists.items()},
            "fake_wecom_robot": self.robot.url,
            "fake_wecom": self.wecom.url,
            "sidebar": self.sidebar_links(),
            "handler_logs": str(self.log_file),
            **(
                {
                    "operator": {
                        "aws_access_key_id": self.operator.access_key,
                        "aws_secret_access_key": self.operator.secret_key,
                    }
                }
                if self.operator
                else {}
            ),
            "state_table": self.resources.refs.state_table,
            "idempotency_table": self.resources.refs.idempotency_table,
            "archive_bucket": self.resources.refs.archive_bucket,
            "queues": self.resources.queue_urls,
        }

    def sidebar_links(self, external_userid: str = "wmDemoLeiLi0001") -> dict[str, str]:
        """Links that open the sidebar page as WeCom would, in a browser, through the fake WeCom: as each
        mapped user of each tenant, in the chat with ``external_userid``."""
        return {
            f"{tenant} as {user} ({role})": self.wecom.open_sidebar_url(tenant, user, external_userid)
            for tenant, app in self.cfg.sidebar.tenants.items()
            for user, role in app.users.items()
        }

    def stop(self) -> None:
        for poller in self.pollers:
            poller.stopping.set()
        deadline = time.monotonic() + 10  # all of them together: a batch still running is dropped, as a
        for poller in self.pollers:  # Lambda shut down mid-batch would (its messages come back)
            poller.join(timeout=max(0.0, deadline - time.monotonic()))
        self.api.shutdown()
        if isinstance(self.functions, ProcessFunctions):
            self.functions.close()
        self.target.server.shutdown()
        self.robot.server.shutdown()
        self.shop.server.shutdown()
        self.top.server.shutdown()
        self.woo.server.shutdown()
        for fake in self.lists.values():
            fake.server.shutdown()
        self.wecom.server.shutdown()
        if self.enforce_iam:
            moto_fidelity.IAM_DENIALS.remove(self._denied)
            sandbox_iam.disable_authentication(self.endpoint)  # a later sandbox in this process starts open
        self.moto.stop()
        if (
            self.announce
            and self.state_file.exists()
            and json.loads(self.state_file.read_text()).get("aws_endpoint_url") == self.endpoint
        ):
            self.state_file.unlink()

    # ------------------------------------------------------------------------------------------
    def queue_depths(self, purposes: Iterable[str] | None = None) -> dict[str, int]:
        """Messages per queue (of ``purposes``, else every queue): visible, in flight, or delayed (a waiting
        delivery's copy)."""
        wanted = None if purposes is None else set(purposes)
        sqs = self._sqs_client()
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        depths = {}
        for purpose, url in self.resources.queue_urls.items():
            if wanted is not None and purpose not in wanted:
                continue
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            depths[purpose] = sum(int(attrs[name]) for name in names)
        return depths

    def _sqs_client(self) -> Any:
        """One SQS client for the sandbox's own questions (the alarms ask every second): a client is
        costly to create and, kept, reuses its connections. It signs as whoever the calling thread acts
        as (``iam.install_acting_credentials``), the operator here."""
        with self._sqs_lock:
            if self._sqs is None:
                self._sqs = boto3.client("sqs")
            return self._sqs

    def dlq_depths(self) -> dict[str, int]:
        """Messages per dead-letter queue: what the sandbox's DLQ alarms watch (each second)."""
        return self.queue_depths(p for p in self.resources.queue_urls if p.endswith("-dlq"))

    def drain(self, timeout: float = 60.0, settle: int = 3) -> bool:
        """Wait until every working queue is empty, the stream is consumed and no poller is busy."""
        deadline, quiet = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            idle = not any(p.busy for p in self.pollers)
            # (the queues are asked only once nothing is running: a busy poller already says "not yet")
            working = self.queue_depths(p for p in self.resources.queue_urls if not p.endswith("-dlq")) if idle else {}
            working.pop("quarantine", None)
            quiet = quiet + 1 if idle and not any(working.values()) else 0
            if quiet >= settle:
                return True
            time.sleep(0.15)
        return False

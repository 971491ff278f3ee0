"""Start ``aftersync local`` as its own process and talk to it over HTTP, like a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.sandbox.samples import SignedWebhook

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "aftersync")


class RunningSandbox:
    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        operator = info.get("operator", {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"})
        self.session = boto3.session.Session(**operator, region_name=info["region"])  # the operator's keys

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.info["aws_endpoint_url"])

    def post(
        self, webhook: SignedWebhook, tenant: str = "demo", source: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"{self.info['api']}/webhooks/{source or webhook.source}/{tenant}",
            data=webhook.body,
            headers=webhook.headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def deliveries(self, target: str) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.info["fake_target"] + "/_received", timeout=10) as response:
            return [d for d in json.loads(response.read()) if d["status"] < 300 and d["target"] == target]

    def depths(self) -> dict[str, int]:
        sqs = self.client("sqs")
        result = {}
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        for name, url in self.info["queues"].items():  # delayed: a waiting delivery's copy
            a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            result[name] = sum(int(a[n]) for n in names)
        return result

    def wait_drained(self, timeout: float = 60) -> None:
        deadline, quiet = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            working = {k: v for k, v in self.depths().items() if not k.endswith("-dlq") and k != "quarantine"}
            quiet = quiet + 1 if not any(working.values()) else 0
            if quiet >= 4:
                return
            time.sleep(0.25)
        raise AssertionError(f"sandbox did not drain: {self.depths()}")

    def entity(self, entity_id: str) -> dict[str, Any]:
        result = subprocess.run(
            [CLI, "entity", "show", "order", entity_id, "--tenant", "demo", "--json"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="session", autouse=True)
def _own_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """This run's sandboxes announce themselves in a directory of its own: other runs in the same
    checkout (and their CLI calls) never find them, nor they ours."""
    before = os.environ.get("AFTERSYNC_STATE_DIR")
    os.environ["AFTERSYNC_STATE_DIR"] = str(tmp_path_factory.mktemp("aftersync-state"))
    yield
    if before is None:
        os.environ.pop("AFTERSYNC_STATE_DIR", None)
    else:
        os.environ["AFTERSYNC_STATE_DIR"] = before


# A first start in a fresh checkout synthesizes the stack's template for its IAM policies (infra/sandbox/iam.py:
# ~10 s alone, over two minutes on a busy 2-core machine while the other xdist worker synthesizes tests/infra's).
START_SECONDS = 300.0


def start_local(state_dir: Path | None = None) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """``aftersync local --port 0`` as its own process (announcing itself in ``state_dir``, by default
    this run's); what it printed about itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    if state_dir is not None:
        env["AFTERSYNC_STATE_DIR"] = str(state_dir)
    process = subprocess.Popen(
        [CLI, "local", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout = process.stdout
    assert stdout is not None
    lines: list[str] = []

    def read_announcement() -> None:
        while line := stdout.readline():
            lines.append(line)
            if line.rstrip() == "}":
                return

    # Read on a thread: a readline blocks, so a deadline checked between lines bounded nothing, and one that
    # ran out while the first line was awaited cut off the JSON printed right after it ("did not start: {").
    reader = threading.Thread(target=read_announcement, daemon=True)
    reader.start()
    reader.join(START_SECONDS)
    if reader.is_alive():
        process.kill()
        reader.join(10)
    try:
        return process, json.loads("".join(lines))
    except json.JSONDecodeError:
        process.kill()
        raise AssertionError(
            f"sandbox did not start (or not in {START_SECONDS:.0f} s): {''.join(lines)} "
            f"{process.stderr.read() if process.stderr else ''}"
        ) from None


TERM_AGAIN_EVERY = 10.0  # seconds: an unloaded stop takes about 5


def stop_local(process: subprocess.Popen[str]) -> None:
    """Stop ``aftersync local`` with SIGTERM and wait for it (a stop under load: pollers and execution
    environments wind down); one still running after 240 s is killed, its tests' assertions having run.

    The SIGTERM is sent again every few seconds while the process runs. Its handler only sets the event
    the CLI's main thread waits on, and Python runs a handler on the main thread alone: a signal the
    kernel hands to one of the sandbox's ~50 other threads leaves the main thread asleep in that wait
    (seen on 2 cores: the signal taken, nothing pending, the main thread still in ``stop.wait()`` and the
    pollers running idle at ~35 % CPU until the kill at 240 s). A repeat wakes it; once the stop has
    begun, a repeat sets the event again and changes nothing."""
    deadline = time.monotonic() + 240
    while True:
        process.terminate()  # (a no-op once it has exited)
        try:
            process.wait(timeout=min(TERM_AGAIN_EVERY, max(0.0, deadline - time.monotonic())))
            return
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                break
    process.kill()
    process.wait(timeout=60)


def _running_sandbox(state_dir: Path | None = None) -> Iterator[RunningSandbox]:
    process, info = start_local(state_dir)
    yield RunningSandbox(info)
    stop_local(process)
    # Every handler ran with its stack role: a call its policy does not allow fails the run
    # (calls tests make on purpose as a role sign as its session "e2e")
    log = Path(info["handler_logs"]).read_text(encoding="utf-8").splitlines()
    denied = [line for line in log if line.startswith("IAM denied") and "/e2e " not in line]
    assert denied == [], "calls the stack's IAM policies do not allow:\n" + "\n".join(denied)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    """A fresh ``aftersync local`` for the module: for tests that count what a state holds, or need one
    nobody else wrote to."""
    yield from _running_sandbox()


@pytest.fixture(scope="package")
def shared_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """One ``aftersync local`` for the modules whose tests only look at what they posted themselves (each
    start and stop costs 10-20 s on 2 cores); stopped, and its IAM log checked, when tests/e2e end. A
    module takes it as its ``sandbox`` with ``quiet_shared_sandbox``.

    It announces itself in a directory of its own: the operator CLI never finds it (a module whose
    tests run the CLI takes a fresh ``sandbox``), and the sandboxes other modules start while it runs
    are the ones their CLI calls reach."""
    yield from _running_sandbox(tmp_path_factory.mktemp("shared-sandbox-state"))


def quiet_shared_sandbox(shared: RunningSandbox) -> RunningSandbox:
    """The shared sandbox once what earlier modules set off has run its course: a module starts on a
    quiet pipeline, as on a fresh sandbox."""
    shared.wait_drained(timeout=300)
    return shared

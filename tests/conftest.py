"""Fixtures shared by every test layer."""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECRETS_FILE = ROOT / "infra" / "sandbox" / "secrets.local.json"


@pytest.fixture(autouse=True)
def _aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a real account: fake credentials, no profile, no endpoint override."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    # botocore's account-based endpoints (<account>.streams-ddb...) are not routed by in-process moto.
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "AftersyncTest")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "aftersync")


@pytest.fixture(scope="session")
def sandbox_secrets() -> dict[str, Any]:
    return json.loads(SECRETS_FILE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.fixture
def shopify_secret(sandbox_secrets: dict[str, Any]) -> str:
    return sandbox_secrets["sources"]["shopify"]["demo"][0]  # type: ignore[no-any-return]


def clear_handler_caches() -> None:
    """Handlers cache settings and adapters per cold start; each test is a new cold start."""
    for name, module in list(sys.modules.items()):
        if name.startswith("functions.") and name.endswith(".handler"):
            for value in vars(module).values():
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_cold_start() -> Iterator[None]:
    clear_handler_caches()
    yield
    clear_handler_caches()


# -- pytest-xdist: which tests share a worker ------------------------------------------------------
# `make test` runs `pytest -n 2`: tests are handed one at a time to whichever of two worker processes is
# free, except that the tests of one scope below all go, in order, to the same worker. A session, package
# or module fixture is made once in *each* worker that runs a test needing it, so the tests behind an
# expensive one keep together (by where they are, so a new test needs no marker):
# - tests/e2e and tests/browser: each module's ``aftersync local``, tests/e2e's shared one (started once;
#   the modules that take it wait for it to drain) and the two ``aftersync demo`` runs, on one worker in
#   file order, while the unit, integration and infra tests share the other core.
# - tests/infra: one ``cdk synth --all`` (``cdk_out``) and test_sidebar_egress.py's two synths, each once.
# - a test file that defines a module-, class-, package- or session-scoped fixture: that file.
# (xdist's own ``--dist loadgroup`` cannot do it here: it renames a grouped test through ``item._nodeid``,
# which pytest 9 no longer reads, so every grouped test went to any worker.)
SANDBOXES = "tests/e2e + tests/browser (sandboxes)"
ONE_WORKER_DIRS = {"e2e": SANDBOXES, "browser": SANDBOXES, "infra": "tests/infra (synths)"}
WIDER_FIXTURE = re.compile(r"@pytest\.fixture\([^)]*scope=[\"'](?:module|class|package|session)[\"']")


@functools.cache
def defines_a_wider_fixture(path: str) -> bool:
    try:
        return bool(WIDER_FIXTURE.search((ROOT / path).read_text(encoding="utf-8")))
    except OSError:
        return False


def worker_scope(nodeid: str) -> str:
    """The tests with the same scope run in order on one worker; any other test runs on any worker."""
    path = nodeid.split("::", 1)[0]
    parts = path.split("/")
    if len(parts) > 2 and parts[0] == "tests" and parts[1] in ONE_WORKER_DIRS:
        return ONE_WORKER_DIRS[parts[1]]
    return path if defines_a_wider_fixture(path) else nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``-n`` (and no other ``--dist``): xdist's load-scope scheduler, scoped by ``worker_scope``
    (scopes with the most tests first: the sandboxes and the synths start at once, on their own worker)."""
    if config.getvalue("dist") != "load":
        return None  # a --dist asked for on the command line
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return worker_scope(nodeid)

    return SharedFixtureScheduling(config, log)

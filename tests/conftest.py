"""Fixtures shared by every test layer."""

from __future__ import annotations

import json
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
# `make test` runs `pytest -n 2 --dist loadgroup`: tests are handed one at a time to whichever of two
# worker processes is free, except that the tests of one ``xdist_group`` all go, in order, to the same
# worker. A session, package or module fixture is made once in *each* worker that runs a test needing
# it, so the tests behind an expensive one are grouped here (by where they are and what they use, so a
# new test is grouped without a marker):
# - tests/e2e and tests/browser, "sandbox": each module's ``aftersync local``, tests/e2e's shared one
#   (started once, as the modules that take it wait for it to drain), and the long `aftersync demo`s,
#   on one worker, in file order; the unit, integration and infra tests share the other core meanwhile.
# - tests/infra's ``cdk_out`` (one ``cdk synth --all`` through the CDK CLI, ~2 min of CPU), "cdk-synth".
# - a module's own module-scoped fixture (test_sidebar_egress's two synths, test_identity_dataset's
#   10,000 people): that module.
SANDBOX_DIRS = ("e2e", "browser")
SYNTH_FIXTURE = "cdk_out"


def xdist_group(item: pytest.Item) -> str | None:
    """The group ``item`` must run in on one worker, or None: any worker."""
    parts = Path(str(item.path)).relative_to(ROOT / "tests").parts
    if parts[0] in SANDBOX_DIRS:
        return "sandbox"
    if SYNTH_FIXTURE in getattr(item, "fixturenames", ()):
        return "cdk-synth"
    module = item.nodeid.split("::", 1)[0]
    definitions = getattr(item, "_fixtureinfo", None)
    for defs in definitions.name2fixturedefs.values() if definitions else ():
        if defs and defs[-1].scope == "module" and defs[-1].baseid == module:
            return module
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = xdist_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))

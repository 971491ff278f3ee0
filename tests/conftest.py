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

"""What a function imports at its cold start: the stages it uses, and no tracing SDK where tracing is off.

Each handler is imported in a fresh interpreter set up as Lambda runs it (``LAMBDA_TASK_ROOT`` set), and
the modules it loaded are read back from ``sys.modules``. Exact sets, never timings: the time is the
bench's (``bench/cold_start.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

# shared.<package> -> which handlers import it at cold start (a stage's code only where that function uses it)
STAGES: dict[str, set[str]] = {
    "ingest": {"adapters", "intake", "sources"},
    "normalise": {"adapters", "intake", "sources"},
    "sync": {"adapters", "delivery", "identity", "intake", "sources", "state"},
    "publish": {"adapters", "delivery", "state"},
    "deliver": {"adapters", "delivery", "sources", "state"},
    "automate": {"adapters", "automation", "delivery", "identity", "sources", "state"},
    "notify": {"adapters", "delivery", "sources"},
    "reconcile": {"adapters", "delivery", "intake", "pulls", "sources", "state"},
    "amazon_intake": {"adapters", "intake", "sources"},
    "audit_archive": {"adapters", "state"},  # state.audit_archive: the batch objects (stdlib only)
}
PACKAGES = {"adapters", "automation", "delivery", "identity", "intake", "pulls", "sources", "state"}
SOURCE_ADAPTERS = {
    "shared.sources.shopify",
    "shared.sources.stripe",
    "shared.sources.aftership",
    "shared.sources.kuaidi100",
    "shared.sources.seventeen_track",
    "shared.sources.zendesk",
    "shared.sources.woocommerce",
    "shared.sources.youzan",
    "shared.sources.douyin",
    "shared.sources.inhouse",
    "shared.sources.amazon",
}
TRACING_LIBRARIES = {"aws_xray_sdk", "wrapt"}

PROBE = """
import importlib, json, sys
module = importlib.import_module(sys.argv[1])
extra = {}
if "aws_xray_sdk.core" in sys.modules:
    from aws_xray_sdk.core import patcher
    extra["patched"] = sorted(patcher._PATCHED_MODULES)
handler, files = module.lambda_handler, []
while handler is not None:  # the decorators' wrappers, outermost first
    files.append(getattr(getattr(handler, "__code__", None), "co_filename", ""))
    handler = getattr(handler, "__wrapped__", None)
extra["traced"] = any(f.endswith("tracing/tracer.py") for f in files)
print(json.dumps({"modules": sorted(sys.modules), **extra}))
"""


def imported(module: str, **environ: str) -> dict[str, Any]:
    """``sys.modules`` after importing ``module`` in a fresh interpreter, in a Lambda-like environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_SAM", "AWS_CHALICE"))}
    env.update({"LAMBDA_TASK_ROOT": str(ROOT), "AWS_DEFAULT_REGION": "eu-west-1", **environ})
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def tops(modules: list[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.mark.parametrize("handler", sorted(STAGES))
def test_a_handler_imports_only_the_stages_it_uses_and_no_tracing_sdk_with_tracing_off(handler: str) -> None:
    # Given tracing off, as ``tracing: lambda`` deploys it
    # When the handler module is imported (the function's cold start)
    found = imported(f"functions.{handler}.handler", POWERTOOLS_TRACE_DISABLED="true")
    modules = found["modules"]
    # Then exactly its own stages' packages are loaded
    assert {n.split(".")[1] for n in modules if n.startswith("shared.") and n.split(".")[1] in PACKAGES} == (
        STAGES[handler]
    )
    # and no source's adapter but the one it serves alone (a webhook's adapter loads with its first delivery)
    assert set(modules) & SOURCE_ADAPTERS == ({"shared.sources.amazon"} if handler == "amazon_intake" else set())
    # and neither the X-Ray SDK nor phonenumbers (loaded by the first phone number to normalise)
    assert tops(modules) & (TRACING_LIBRARIES | {"phonenumbers"}) == set()
    assert found["traced"] is False
    assert "patched" not in found


def test_ingest_loads_no_state_delivery_or_automation_code() -> None:
    modules = set(imported("functions.ingest.handler", POWERTOOLS_TRACE_DISABLED="true")["modules"])
    other_stages = {"shared.state", "shared.delivery", "shared.automation", "shared.pulls", "shared.identity"}
    assert other_stages & modules == set()
    assert "aws_xray_sdk" not in modules


@pytest.mark.parametrize("handler", ["ingest", "deliver"])
def test_with_tracing_on_the_handler_is_traced_and_only_aws_calls_and_http_are_patched(handler: str) -> None:
    # Given tracing on in Lambda (``tracing: sdk``): POWERTOOLS_TRACE_DISABLED unset
    found = imported(f"functions.{handler}.handler")
    # Then Powertools' Tracer wraps the handler, with the X-Ray SDK patching botocore and http.client only
    assert "aws_xray_sdk" in tops(found["modules"])
    assert found["traced"] is True
    assert found["patched"] == ["botocore", "httplib"]


@pytest.mark.parametrize(
    ("environ", "disabled"),
    [
        ({"LAMBDA_TASK_ROOT": "/var/task"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "false"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"}, True),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "1"}, True),
        ({}, True),  # outside Lambda: tests, the sandbox
        ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"}, True),
        ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_CHALICE_CLI_MODE": "true"}, True),
    ],
)
def test_tracing_is_on_exactly_where_powertools_would_trace(environ: dict[str, str], disabled: bool) -> None:
    from aws_lambda_powertools import Tracer

    from shared.observability import tracing_disabled

    assert tracing_disabled(environ) is disabled
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(environ)
        assert bool(Tracer._is_tracer_disabled()) is disabled  # the oracle: Powertools' own rule
    finally:
        os.environ.clear()
        os.environ.update(saved)


STAGE_TYPE_MODULES = {
    "shared.intake.field_map",
    "shared.delivery.targets",
    "shared.automation.dispatch",
    "shared.pulls.reconcile",
}
SETTINGS_PROBE = """
import json, sys
import shared.settings as settings
before = set(sys.modules)
getattr(settings, sys.argv[1]).complete()
print(json.dumps(sorted(n for n in set(sys.modules) - before if n.startswith("shared."))))
"""


@pytest.mark.parametrize(
    ("settings", "loads"),
    [
        ("IngestSettings", set()),
        ("SyncSettings", set()),
        ("NormaliseSettings", {"shared.intake.field_map"}),
        ("DeliverSettings", {"shared.delivery.targets"}),
        ("AutomateSettings", {"shared.delivery.targets", "shared.automation.dispatch"}),
        ("ReconcileSettings", {"shared.pulls.reconcile", "shared.intake.field_map"}),  # the pull feeds normalise
    ],
)
def test_a_settings_class_imports_only_the_stage_types_its_fields_name(settings: str, loads: set[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SETTINGS_PROBE, settings], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert set(json.loads(result.stdout)) & STAGE_TYPE_MODULES == loads


REGISTRY_PROBE = """
import json, sys
from shared.sources import get_source
loaded = lambda: sorted(n for n in sys.modules if n in ADAPTERS)
ADAPTERS = set(sys.argv[1:])
before = loaded()
adapter = get_source("shopify", frozenset({"shopify"}))
print(json.dumps({"before": before, "after": loaded(), "name": adapter.name}))
"""


def test_looking_up_a_source_imports_that_adapter_alone() -> None:
    result = subprocess.run(
        [sys.executable, "-c", REGISTRY_PROBE, *sorted(SOURCE_ADAPTERS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout) == {"before": [], "after": ["shared.sources.shopify"], "name": "shopify"}


def test_the_registries_name_every_adapter_by_its_own_name() -> None:
    from shared.errors import UnknownSource
    from shared.sources import AMAZON, NORMALISERS, SOURCES, get_source
    from shared.sources.inhouse import INHOUSE_SYSTEMS, StandardWebhooksSource

    assert {name: NORMALISERS[name].name for name in NORMALISERS} == {name: name for name in NORMALISERS}
    assert set(NORMALISERS) == set(SOURCES) | {"amazon", "taobao"} and not {"amazon", "taobao"} & set(SOURCES)
    assert {name for name in SOURCES if isinstance(SOURCES[name], StandardWebhooksSource)} == set(INHOUSE_SYSTEMS)
    assert all(SOURCES[name] is NORMALISERS[name] for name in SOURCES)
    assert AMAZON is NORMALISERS["amazon"]
    with pytest.raises(UnknownSource):
        get_source("amazon", frozenset({"amazon"}))  # queue-fed: no webhook route
    with pytest.raises(UnknownSource):
        get_source("shopify", frozenset())  # known, not enabled
    with pytest.raises(UnknownSource):
        get_source("taobao", frozenset({"taobao"}))  # pulled: no webhook route
    with pytest.raises(KeyError):
        NORMALISERS["tmall"]


def test_with_tracing_off_the_decorators_return_the_function_itself() -> None:
    # Given this process: no LAMBDA_TASK_ROOT, so tracing is off as Powertools would have it
    from shared.observability import tracer, tracing_disabled

    def handler(event: dict[str, Any], context: object) -> str:
        return "done"

    assert tracing_disabled()
    assert tracer.capture_lambda_handler(handler) is handler
    assert tracer.capture_method(handler) is handler
    assert "tracer" not in vars(tracer)  # no Powertools Tracer made

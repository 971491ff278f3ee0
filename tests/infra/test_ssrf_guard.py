"""The SSRF guard is on in every deployed environment: no function of the synthesized dev, staging or
prod template may reach private addresses or speak plain HTTP (that allowance is the sandbox's alone)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.config import load_environment
from infra.wiring import deployed_functions
from shared.constants import Env
from shared.pulls.reconcile import ReconcileJob
from tests.infra.conftest import resources

ENVS = ("dev", "staging", "prod")
OUTBOUND = ("deliver", "automate", "notify", "reconcile")  # the functions that call URLs from config


def variables_by_function(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f["Properties"]["FunctionName"]: f["Properties"].get("Environment", {}).get("Variables", {})
        for f in resources(template, "AWS::Lambda::Function").values()
        if isinstance(f["Properties"].get("FunctionName"), str)
    }


ALLOWANCE = "ALLOWED_LOOPBACK_PORTS"  # the sandbox's fake servers' ports on loopback


@pytest.mark.parametrize("env", ENVS)
def test_no_deployed_function_has_the_sandbox_allowance(templates: dict[str, Any], env: str) -> None:
    cfg = load_environment(env)
    functions = variables_by_function(templates[env])
    allowed = {name: v[ALLOWANCE] for name, v in functions.items() if ALLOWANCE in v}
    assert allowed and set(allowed.values()) == {""}, allowed  # no loopback port, so no plain HTTP either
    # every function that calls a configured URL states the guard explicitly (no default to rely on)
    outbound = {cfg.resource(f) for f in deployed_functions(cfg) if f in OUTBOUND}
    assert outbound and outbound <= set(allowed), sorted(outbound - set(allowed))
    assert not [name for name, v in functions.items() if "ALLOW_HTTP_TARGETS" in v]  # the old boolean is gone


@pytest.mark.parametrize("env", ENVS)
def test_every_deployed_url_is_https(templates: dict[str, Any], env: str) -> None:
    functions = variables_by_function(templates[env])
    urls = [v[Env.WECOM_API_BASE] for v in functions.values() if Env.WECOM_API_BASE in v]
    for v in functions.values():
        if Env.TARGETS in v:
            urls += [t["url"] for t in json.loads(v[Env.TARGETS]) if t.get("url")]
        if Env.RECONCILE_JOBS in v:
            # (a Taobao job without a url pulls from TOP's gateway)
            urls += [ReconcileJob.model_validate(j).endpoint for j in json.loads(v[Env.RECONCILE_JOBS])]
    assert urls and all(isinstance(u, str) and u.startswith("https://") for u in urls), urls

"""Tracing per environment: Lambda's own trace everywhere, the X-Ray SDK in the functions only where
``tracing: sdk`` asks for it (its import is a large part of a cold start)."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import load_environment
from infra.constructs.compute import RUNTIME
from infra.wiring import deployed_functions
from tests.infra.conftest import resources

ENVS = ("dev", "staging", "prod")


def functions_of(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = resources(template, "AWS::Lambda::Function").values()
    return {f["Properties"]["FunctionName"]: f["Properties"] for f in found if "FunctionName" in f["Properties"]}


def test_dev_traces_with_the_sdk_and_staging_and_prod_with_lambda_alone() -> None:
    assert {env: load_environment(env).tracing for env in ENVS} == {"dev": "sdk", "staging": "lambda", "prod": "lambda"}


@pytest.mark.parametrize("env", ENVS)
def test_every_function_is_traced_by_lambda_and_loads_the_sdk_only_where_configured(
    templates: dict[str, Any], env: str
) -> None:
    cfg = load_environment(env)
    functions = functions_of(templates[env])
    ours = {cfg.resource(name) for name in deployed_functions(cfg)}
    assert ours <= set(functions)
    for name in ours:
        props = functions[name]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["Runtime"] == RUNTIME.name
        variables = props["Environment"]["Variables"]
        assert variables["POWERTOOLS_TRACE_DISABLED"] == {"sdk": "false", "lambda": "true"}[cfg.tracing]
        assert variables["PYDANTIC_DISABLE_PLUGINS"] == "__all__"

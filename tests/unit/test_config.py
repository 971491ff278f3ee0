"""Config and settings fail fast with a message that names the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.config import load_environments
from shared.constants import Env
from shared.errors import ConfigurationError
from shared.settings import DeliverSettings, IngestSettings

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_cdk_json_is_valid() -> None:
    environments = load_environments()
    assert set(environments) == {"dev", "staging", "prod"}
    assert environments["prod"].success_rate_threshold == 0.999
    assert environments["prod"].waf and not environments["dev"].waf


def write_cdk_json(tmp_path: Path, mutate: dict[str, object]) -> Path:
    document = json.loads((ROOT / "cdk.json").read_text())
    document["context"]["aftersync:environments"]["dev"].update(mutate)
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        ({"sources": ["shopify", "ebay"]}, "sources: \\['ebay'\\] have no adapter"),
        ({"max_receive_count": 2}, "max_receive_count: Input should be greater than or equal to 5"),
        ({"targets": [{"name": "crm", "url": "not a url", "entity_types": ["order"]}]}, "targets.0.url"),
        ({"success_rate_threshold": 1.5}, "success_rate_threshold"),
        ({"log_retention_days": 13}, "log_retention_days"),
        ({"unexpected": True}, "unexpected: Extra inputs are not permitted"),
        ({"customer_notifications": ["crm"]}, "customer_notifications: 'crm' is not an sms or email target"),
        ({"automation": {"fulfilment": "customer-sms"}}, "automation.fulfilment: .* is of kind sms, not http"),
        (
            {"targets": [{"name": "mail", "kind": "email", "languages": {"demo": "zh-CN"}}]},
            "targets.0: Value error, sender: an email target needs its From address",
        ),
        (
            {"targets": [{"name": "sms", "kind": "sms", "url": "https://sms.example.com"}]},
            "targets.0: Value error, \\['url'\\]: not used by a target of kind sms",
        ),
        (
            {"targets": [{"name": "crm", "entity_types": ["order"]}]},
            "targets.0: Value error, url: a http target needs one",
        ),
        (
            {"table_capacity": {"state": {"write": {"min": 500, "max": 100}, "read": {"min": 1, "max": 10}}}},
            "table_capacity.state.write: Value error, min 500 is above max 100",
        ),
        (  # ingest writes it before the ack: a throttle there would be a 5xx to the platform
            {"table_capacity": {"idempotency": {"write": {"min": 1, "max": 10}, "read": {"min": 1, "max": 10}}}},
            r"table_capacity.idempotency.\[key\]: Input should be 'state' or 'view'",
        ),
        (
            {
                "table_capacity": {
                    "view": {
                        "write": {"min": 1, "max": 10},
                        "read": {"min": 1, "max": 10},
                        "target_utilization_percent": 95,
                    }
                }
            },
            "table_capacity.view.target_utilization_percent: Input should be less than or equal to 90",
        ),
        (  # a call must fit an invocation with time to spare to record its failure, or nothing is ever tried
            {"consumer_timeout_seconds": 8},
            "consumer_timeout_seconds: 8 s leaves no room for target 'crm' \\(timeout 5.0 s \\+ 3 s to record "
            "a failure\\)",
        ),
    ],
)
def test_a_malformed_environment_names_the_field(tmp_path: Path, mutation: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"cdk.json environment 'dev': .*{message}"):
        load_environments(write_cdk_json(tmp_path, mutation))


def test_the_layer_pins_equal_the_project_pins() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    for line in (ROOT / "infra" / "layer" / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            assert f'"{line}"' in pyproject, f"{line} differs from pyproject.toml"


def test_missing_settings_variable_is_named() -> None:
    with pytest.raises(
        ConfigurationError, match=f"IngestSettings cannot start: {Env.IDEMPOTENCY_TABLE}: Field required"
    ):
        IngestSettings.from_env({Env.ENVIRONMENT: "dev"})


def test_http_targets_are_refused_unless_the_sandbox_allows_them() -> None:
    environ = {
        Env.ENVIRONMENT: "dev",
        Env.STATE_TABLE: "t",
        Env.SECRETS_PREFIX: "p",
        Env.SECRETS_MAX_AGE_SECONDS: "0",
        Env.MAX_RECEIVE_COUNT: "5",
        Env.TARGETS: json.dumps([{"name": "crm", "url": "http://10.0.0.1/x", "entity_types": ["order"]}]),
    }
    with pytest.raises(ConfigurationError, match="target 'crm': url must use https"):
        DeliverSettings.from_env({**environ, Env.ALLOWED_LOOPBACK_PORTS: ""})
    assert DeliverSettings.from_env({**environ, Env.ALLOWED_LOOPBACK_PORTS: "8080"}).targets[0].name == "crm"


def test_sizing_defaults_and_lambda_s_rule_for_large_sqs_batches(tmp_path: Path) -> None:
    from infra.config import QueueBatching, load_environment
    from infra.wiring import function_memory_mb, queue_batching, stream_batching

    dev, prod = load_environment("dev"), load_environment("prod")
    # unsized queues keep the consumers' defaults; the alarms queue its digest batches
    assert (queue_batching(dev, "inbox").batch_size, queue_batching(dev, "inbox").window_seconds) == (10, 1)
    assert (queue_batching(dev, "alarms").batch_size, queue_batching(dev, "alarms").window_seconds) == (100, 10)
    assert stream_batching(dev, "publish").parallelization_factor == 1
    assert function_memory_mb(dev, "sync") == 256 and function_memory_mb(prod, "sync") == 1024
    assert stream_batching(prod, "publish").parallelization_factor == 10
    with pytest.raises(ValueError, match="a batch_size over 10 needs window_seconds >= 1"):
        QueueBatching(batch_size=100, window_seconds=0)
    path = write_cdk_json(tmp_path, {"stream_consumers": {"publish": {"parallelization_factor": 11}}})
    with pytest.raises(ConfigurationError, match=r"stream_consumers\.publish\.parallelization_factor"):
        load_environments(path)

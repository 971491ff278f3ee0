"""What ships to Lambda: the function asset the synth stages holds the handlers and their domain code
(``functions/``, ``shared/``) and nothing an operator, the sandbox, the tests or the benchmarks use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.infra.conftest import resources

SHIPPED = ("functions/", "shared/")
NEVER = ("ops/", "infra/", "tests/", "bench/", "events/", "docs/", "node_modules/", ".venv/")


def function_asset(cdk_out: Path, template: dict[str, Any]) -> Path:
    """The staged asset directory behind the functions' code (one asset serves every function)."""
    keys = {
        function["Properties"]["Code"]["S3Key"]
        for function in resources(template, "AWS::Lambda::Function").values()
        if "S3Key" in function["Properties"].get("Code", {})
        and "Handler" in function["Properties"]
        and function["Properties"]["Handler"].startswith("functions.")
    }
    [key] = keys
    return cdk_out / f"asset.{key.removesuffix('.zip')}"


def test_the_function_asset_holds_the_handlers_and_shared_code_and_nothing_operators_or_tests_use(
    cdk_out: Path, templates: dict[str, dict[str, Any]]
) -> None:
    asset = function_asset(cdk_out, templates["prod"])
    files = sorted(str(p.relative_to(asset)) for p in asset.rglob("*") if p.is_file())
    assert files, "the asset is empty"
    assert all(f.startswith(SHIPPED) for f in files), [f for f in files if not f.startswith(SHIPPED)][:10]
    assert not [f for f in files if f.startswith(NEVER)]
    assert "functions/ingest/handler.py" in files and "shared/intake/ingest.py" in files
    assert "shared/automation/rules.json" in files and "shared/sources/mappings/shopify.json" in files
    # the operator's modules exist in the repo, and none of them is in the asset
    repo = Path(__file__).resolve().parents[2]
    operator_only = sorted(str(p.relative_to(repo)) for p in (repo / "ops").rglob("*.py"))
    assert "ops/dlq.py" in operator_only and not set(operator_only) & set(files)

"""What ships to Lambda: the function asset the synth stages holds the handlers and their domain code
(``functions/``, ``shared/``) and nothing an operator, the sandbox, the tests or the benchmarks use."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

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


# Run by an interpreter of the functions' runtime version: for every module, the pyc that interpreter
# would look for, unchecked (flags 0b01: hash-based, source not checked) and made from this very source.
PYC_PROBE = """
import importlib.util, json, pathlib, sys
problems, modules = [], 0
for root in sys.argv[1:]:
    for source in sorted(pathlib.Path(root).rglob("*.py")):
        modules += 1
        pyc = pathlib.Path(importlib.util.cache_from_source(str(source)))
        if not pyc.exists():
            problems.append(f"no {pyc.name} for {source}")
            continue
        header = pyc.read_bytes()[:16]
        if header[:4] != importlib.util.MAGIC_NUMBER or int.from_bytes(header[4:8], "little") != 0b01:
            problems.append(f"{pyc}: not an unchecked-hash pyc of this Python")
        elif header[8:16] != importlib.util.source_hash(source.read_bytes()):
            problems.append(f"{pyc}: compiled from another source")
print(json.dumps({"modules": modules, "problems": problems}))
"""


def runtime_python() -> str:
    from infra.constructs.compute import RUNTIME
    from infra.constructs.dependencies import runtime_interpreter

    interpreter = runtime_interpreter(RUNTIME.name.removeprefix("python"))
    if interpreter is None:  # the synth bundled in Docker, or without bytecode (and warned)
        pytest.skip(f"no {RUNTIME.name} interpreter on this machine to compile and check the bytecode with")
    return interpreter


def check_bytecode(*roots: Path) -> dict[str, Any]:
    result = subprocess.run(
        [runtime_python(), "-c", PYC_PROBE, *map(str, roots)], capture_output=True, text=True, check=True
    )
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def test_the_function_asset_ships_bytecode_for_the_runtime_so_no_cold_start_compiles(
    cdk_out: Path, templates: dict[str, Any]
) -> None:
    asset = function_asset(cdk_out, templates["prod"])
    found = check_bytecode(asset / "functions", asset / "shared")
    assert found["problems"] == []
    assert found["modules"] == len(list(asset.rglob("*.py"))) > 80
    assert (asset / "functions" / "ingest" / "__pycache__").is_dir()


def test_the_dependencies_layer_ships_bytecode_for_the_runtime(cdk_out: Path) -> None:
    [layer] = [p for p in cdk_out.glob("asset.*") if (p / "python" / "phonenumbers").is_dir()]
    found = check_bytecode(layer / "python")
    assert found["problems"] == []
    assert found["modules"] > 100

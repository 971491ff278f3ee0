"""Which tests share a pytest-xdist worker (``make test`` runs ``pytest -n 2``; tests/conftest.py): the
sandboxes' tests on one, the synths' on one, a file with a wider-scoped fixture on one, any other test
alone, so that no session, package or module fixture is made twice."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT, SANDBOXES, defines_a_wider_fixture, worker_scope

TESTS = ROOT / "tests"


def _scope_of(decorator: ast.expr) -> str | None:
    """The ``scope=`` of a ``@pytest.fixture(...)`` decorator, or None (function scope)."""
    if not (isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "pytest.fixture"):
        return None
    for keyword in decorator.keywords:
        if keyword.arg == "scope" and isinstance(keyword.value, ast.Constant):
            return str(keyword.value.value)
    return None


def _wider_fixtures(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and any(_scope_of(d) not in (None, "function") for d in node.decorator_list)
    ]


def test_the_sandbox_tests_of_tests_e2e_and_tests_browser_share_one_worker() -> None:
    assert worker_scope("tests/e2e/test_demo.py::test_make_demo_command_runs_the_whole_scenario") == SANDBOXES
    assert worker_scope("tests/e2e/test_sandbox_crash.py::test_a_command[argv0]") == SANDBOXES
    assert worker_scope("tests/browser/test_sidebar_in_chromium.py::test_an_agent") == SANDBOXES


def test_the_infra_tests_share_one_worker_and_so_one_synth() -> None:
    scopes = {worker_scope(f"tests/infra/{p.name}::test_x") for p in (TESTS / "infra").glob("test_*.py")}
    assert scopes == {"tests/infra (synths)"}


def test_a_file_with_a_module_fixture_keeps_to_one_worker_and_any_other_test_runs_alone() -> None:
    path = "tests/unit/test_identity_dataset.py"
    assert worker_scope(f"{path}::test_a[1]") == worker_scope(f"{path}::test_b") == path
    assert worker_scope("tests/unit/test_config.py::test_missing_settings_variable_is_named") == (
        "tests/unit/test_config.py::test_missing_settings_variable_is_named"
    )


def test_every_test_file_with_a_wider_fixture_is_found() -> None:
    # the conftest's quick text search agrees with the parsed decorators of every test file
    files = sorted(TESTS.rglob("test_*.py"))
    assert len(files) > 100
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        assert defines_a_wider_fixture(relative) == bool(_wider_fixtures(path)), relative
    assert _wider_fixtures(TESTS / "unit" / "test_identity_dataset.py") == ["data"]

"""The webhook API's OpenAPI document is generated from the code; the committed copy must not drift."""

from __future__ import annotations

import json
from pathlib import Path

from openapi_spec_validator import validate

from functions.ingest.handler import openapi_document

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_committed_document_matches_the_code() -> None:
    assert DOC.read_text(encoding="utf-8") == openapi_document(), (
        "docs/openapi.json is stale: run `make openapi` and commit it"
    )


def test_the_document_is_valid_openapi_and_lists_every_answer() -> None:
    document = json.loads(DOC.read_text(encoding="utf-8"))
    validate(document)
    operation = document["paths"]["/webhooks/{source}/{tenant}"]["post"]
    assert sorted(operation["responses"]) == ["200", "400", "401", "404", "409", "413"]
    assert {p["name"] for p in operation["parameters"]} == {"source", "tenant"}

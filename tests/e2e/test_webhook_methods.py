"""The sandbox's gateway answers like the API: webhooks are POSTed; any other method on a webhook path
is a 405 with a JSON body naming what is allowed, and reaches no handler (nothing is kept)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.e2e.conftest import RunningSandbox, quiet_shared_sandbox


@pytest.fixture(scope="module")
def sandbox(shared_sandbox: RunningSandbox) -> RunningSandbox:
    """The package's shared sandbox: a 405 leaves the queues as they were, compared on a quiet pipeline."""
    return quiet_shared_sandbox(shared_sandbox)


@pytest.mark.e2e
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_a_method_other_than_post_on_a_webhook_path_is_a_405_with_a_json_body(
    sandbox: RunningSandbox, method: str
) -> None:
    before = sandbox.depths()
    request = urllib.request.Request(
        f"{sandbox.info['api']}/webhooks/shopify/demo", data=b"{}" if method != "GET" else None, method=method
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)
    assert answer.value.code == 405
    assert answer.value.headers["Allow"] == "POST"
    assert json.loads(answer.value.read()) == {
        "error": "method_not_allowed",
        "message": f"{method} is not allowed here; webhooks are POSTed to /webhooks/{{source}}/{{tenant}}",
    }
    assert sandbox.depths() == before


@pytest.mark.e2e
def test_a_head_request_on_a_webhook_path_is_a_405_without_a_body(sandbox: RunningSandbox) -> None:
    request = urllib.request.Request(f"{sandbox.info['api']}/webhooks/shopify/demo", method="HEAD")
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)
    assert (answer.value.code, answer.value.headers["Allow"], answer.value.read()) == (405, "POST", b"")

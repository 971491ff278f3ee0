"""DLQ tooling logic and the masking of personal data in what operators see."""

from __future__ import annotations

import pytest

from shared.dlq import DeadLetterQueue, dead_letter_queues, redrive
from shared.masking import mask


def test_personal_data_is_masked_in_operator_views() -> None:
    text = '{"email": "alice.wong@example.com", "phone": "+86 139 1234 5678", "order": "#1001"}'
    assert mask(text) == '{"email": "a***@example.com", "phone": "***5678", "order": "#1001"}'


def test_each_dlq_knows_where_its_messages_go_back_to() -> None:
    urls = {p: f"https://sqs/{p}" for p in ("inbox", "inbox-dlq", "orders", "orders-dlq", "alarms", "alarm-topics-dlq")}
    urls |= {"publish-dlq": "https://sqs/publish-dlq", "events-dlq": "https://sqs/events-dlq"}
    assert {d.name: d.source for d in dead_letter_queues(urls)} == {
        "alarm-topics-dlq": "alarms",
        "events-dlq": None,
        "inbox-dlq": "inbox",
        "orders-dlq": "orders",
        "publish-dlq": None,
    }


def test_a_dlq_whose_messages_cannot_go_back_is_refused_with_what_to_do_instead() -> None:
    with pytest.raises(ValueError, match=r"publish-dlq cannot be redriven: stream failure records .*aftersync replay"):
        redrive(object(), DeadLetterQueue("publish-dlq", "u", None), "s")

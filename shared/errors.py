"""Typed errors. The ingest API maps ``WebhookRejected`` subclasses to HTTP in one place."""

from __future__ import annotations


class WebhookRejected(Exception):
    """A webhook that is refused: nothing from it is enqueued, archived or stored."""

    status_code = 400
    reason = "bad_request"


class UnknownSource(WebhookRejected):
    status_code = 404
    reason = "unknown_source"


class UnknownTenant(WebhookRejected):
    status_code = 404
    reason = "unknown_tenant"


class SignatureInvalid(WebhookRejected):
    status_code = 401
    reason = "signature_invalid"


class PayloadTooLarge(WebhookRejected):
    status_code = 413
    reason = "payload_too_large"


class MalformedPayload(WebhookRejected):
    status_code = 400
    reason = "malformed_payload"


class DuplicateConflict(WebhookRejected):
    """The dedupe key was seen before with a different body, or is being processed right now."""

    status_code = 409
    reason = "duplicate_conflict"


class NormalisationError(Exception):
    """A verified payload that cannot be turned into canonical events: quarantined, never retried."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class DeliveryFailed(Exception):
    """A downstream target did not acknowledge; the message is retried through SQS (after
    ``retry_after`` seconds when the target said so)."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigurationError(Exception):
    """Configuration or settings that cannot work; raised at start-up, naming the field."""


class UnusableValue(ValueError):
    """A payload field whose value cannot be used. The text names the field and the problem, never
    the value: it becomes a quarantine or dead-letter reason and a log line, and values are personal data."""

    def __init__(self, path: str, problem: str = "not a known value") -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class NotSent(Exception):
    """A customer message the provider refused (it answered 4xx): surely not sent, so a retry may send it.
    Any other failure of a send (a 5xx, a timeout) leaves its outcome unknown."""

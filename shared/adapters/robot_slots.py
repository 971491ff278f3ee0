"""A WeCom robot's 20 messages in any 60 s: a sliding log in the state table (``ops#wecom#…``)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

from botocore.exceptions import ClientError

from shared.adapters.dynamo import DynamoTable
from shared.adapters.wecom import SEND_TIMEOUT_SECONDS
from shared.delivery.robot import MESSAGES_PER_MINUTE

if TYPE_CHECKING:  # the boto3 stubs are a dev dependency: types only
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_dynamodb.type_defs import AttributeValueTypeDef

# From a slot's time to the message's arrival at the robot: the send's deadline, plus a second for what
# runs between taking the slot and starting the call, and for bytes a cut connection had already queued.
SLOT_LAG = timedelta(seconds=SEND_TIMEOUT_SECONDS + 1)


class DynamoMinuteSlots(DynamoTable):
    """At most ``limit`` messages per robot in ANY ``window`` (60 s), as the robot counts them, not per
    clock minute (a clock-minute counter lets 20 through at 08:00:59 and 20 more at 08:01:00).

    A sliding log: one item per robot in the state table (``ops#wecom#<robot>`` / ``SENT``) holds the
    times of its slots within the counting window. A slot is free when fewer than ``limit`` of them lie
    in that window; taking it writes the item with the new time on the condition that its ``rev`` is
    still the one this caller based its decision on, so of concurrent callers racing for the last slot
    exactly one wins. ``rev`` is a random token written anew with every write, not a counter: when the
    table's TTL deletes an idle robot's item and another caller recreates it, a counter would start again
    at 1 and could reach the number a warm caller remembers, whose stale copy would then pass for the
    current item and overwrite its recent sends; a fresh token never matches an old one. A loser gets the
    current item back with the failed condition (``ReturnValuesOnConditionCheckFailure``) and decides
    again on it; no separate read, so the item costs one conditional UpdateItem per message when
    uncontended (the caller remembers the item it wrote) and the function needs no more than UpdateItem
    on ``ops#wecom#*``. Seen items only ever gain sends, so a remembered item that shows the window full
    is full. A caller that loses ``attempts`` races in a row is told no slot (the message waits; it is
    never sent over the limit). A container's threads (deliver's batch on threads) take one robot's slots
    one at a time under its lock: they never race each other's writes, only other containers'.

    Slot time is not arrival time. The robot counts a message when it arrives, which is up to ``lag``
    after its slot's time (the caller takes the slot with the current time right before each send, and
    the send ends by its deadline). So the log counts the slots of the last ``window + lag``, not of the
    last ``window``: if 21 messages arrived within some 60 s, their slots' times would lie within
    ``60 s + lag`` of each other, and the last of them to be written would have found the other 20 in
    its counting window and been refused. The cost: a robot sending steadily gets 20 per 66 s, not per
    60 s. Clocks: slot times come from the callers' clocks and the robot counts by its own; the bound
    holds up to the skew between them (NTP keeps Lambda's to milliseconds), and a caller whose clock is
    behind counts the later slots of others too, so it only waits longer."""

    def __init__(
        self,
        table: str,
        limit: int = MESSAGES_PER_MINUTE,
        client: DynamoDBClient | None = None,
        window: timedelta = timedelta(seconds=60),
        attempts: int = 25,
        lag: timedelta = SLOT_LAG,
    ) -> None:
        super().__init__(table, client)
        self.limit = limit
        self.lag = lag
        self.window = (window + lag).total_seconds()  # the counting window (see above)
        self.attempts = attempts
        self._seen: dict[str, dict[str, AttributeValueTypeDef]] = {}  # robot -> the item as this caller last saw it
        self._locks: dict[str, threading.Lock] = {}  # robot -> its lock (this container's threads)

    def take(self, robot: str, now: datetime) -> bool:
        """A slot for a message sent to ``robot`` now (``now``: the current time, taken right before the
        send, never a batch's start)."""
        with self._locks.setdefault(robot, threading.Lock()):
            return self._take(robot, now)

    def _take(self, robot: str, now: datetime) -> bool:
        at = now.timestamp()
        for attempt in range(self.attempts):
            item = self._seen.get(robot)
            sent = [float(v["N"]) for v in item["sent"]["L"]] if item else []
            recent = sorted(t for t in sent if t > at - self.window)  # a clock behind counts later sends too
            if len(recent) >= self.limit:
                return False
            written: dict[str, AttributeValueTypeDef] = {
                "sent": {"L": [{"N": f"{t:.6f}"} for t in sorted([*recent, at])]},
                "rev": {"S": uuid.uuid4().hex},
            }
            if item is None:
                condition, read = "attribute_not_exists(pk)", {}
            elif "rev" in item:
                condition, read = "#rev = :read", {":read": item["rev"]}
            elif "version" in item:  # written before ``rev`` (by a counter): replaced once, on its counter
                condition, read = "attribute_not_exists(#rev) AND version = :read", {":read": item["version"]}
            else:
                condition, read = "attribute_not_exists(#rev)", {}
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": f"ops#wecom#{robot}"}, "sk": {"S": "SENT"}},
                    UpdateExpression="SET sent = :sent, #rev = :next, expires_at = :expires REMOVE version",
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#rev": "rev"},
                    ExpressionAttributeValues={
                        ":sent": written["sent"],
                        ":next": written["rev"],
                        ":expires": {"N": str(int(at + self.window + 3600))},
                        **read,
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                current = cast("dict[str, AttributeValueTypeDef] | None", exc.response.get("Item"))
                if current is None:  # the item vanished (TTL) after we saw it: start from nothing
                    self._seen.pop(robot, None)
                else:
                    self._seen[robot] = current
                if attempt:
                    time.sleep(random.uniform(0, 0.002 * attempt))  # noqa: S311 - spreading retries
                continue
            self._seen[robot] = written
            return True
        return False

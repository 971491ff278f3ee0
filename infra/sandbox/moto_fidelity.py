"""Where the AWS stand-in differs from AWS in a way the real handlers would notice, fix the stand-in.

- EventBridge -> SQS: moto drops the ``account`` field from the event it writes to the queue; real
  EventBridge always sends it (and Powertools' EventBridge envelope requires it).
- DynamoDB under concurrent requests: moto applies a transaction item by item and, when one of its
  conditions fails, restores a copy of each table taken when it began, which wipes whatever other
  requests wrote meanwhile (a state item without its audit record, or neither). Real DynamoDB
  transactions are atomic and isolated, so every operation of moto's DynamoDB backend runs under one
  lock here: requests from concurrent writers (threads in a test, the sandbox's threaded server) see
  each other's transactions whole or not at all.
- DynamoDB streams under concurrent transactions: when a transaction's condition fails, moto puts back
  a deep copy of each table it touched, stream shard included; every shard iterator handed out before
  still reads the old shard, which nothing appends to any more, so the stream's readers (publish,
  audit-archive) silently stop seeing changes. Here an iterator reads the table's current shard.
- DynamoDB transactions, faster: before a transaction moto deep-copies every table it touches, to put
  it back if a condition fails. The copy costs time in proportion to the table (most of the sandbox's
  CPU under load once a table holds a few thousand items, and it grows for as long as the sandbox
  runs). Here moto keeps the live table and the transaction keeps a copy of only the items it names
  (absent ones remembered as absent) and of the stream's length: on a failed condition those items
  are put back and the stream records the failed transaction appended are dropped, which is what
  moto's copy restored, without a new shard object (old iterators keep reading). All of it runs under
  the DynamoDB lock, so no other request sees the half-written transaction.
- IAM: moto checks an identity policy's Resource only for SQS and S3; for every other service it
  checks the action against ``*``, which a statement naming a table or a secret never matches. Here
  each request names what AWS authorizes: the table (its index, its stream) for DynamoDB, the
  secret's ARN, the event bus, the topic (an SMS to a phone number: ``*``), the SES identity. And
  where one API call is authorized as other actions, those are checked: a transaction's items as
  PutItem / UpdateItem / DeleteItem / ConditionCheckItem / GetItem per table, SQS's batch calls as
  SendMessage / DeleteMessage / ChangeMessageVisibility. Every denial is also reported to
  ``IAM_DENIALS`` listeners (the sandbox logs and counts them).
- IAM, faster: moto collects and parses the caller's policies on every request (several ms a call,
  most of the stand-in's time under load). An allowed (principal, action, resource) is remembered
  until IAM changes (any IAM call that is not a read clears it), so the answer is the one moto would
  give, as strictly; a denial is never remembered.
- Request routing, faster: moto's server picks the backend for each request by asking whether the host
  names one of its service packages, and finds those by listing its package directory (``os.listdir``
  and an ``isdir`` per entry, ~200 of them) under the dispatcher's global lock, on every request: a
  share of the stand-in's CPU under load and a queue of requests behind the lock. The packages do not
  change while the process runs, so here the list is taken once (the same names, in the same order).
  Likewise moto lists a response class's methods (``inspect.getmembers``) on every request to find the
  action's: here once per class.
- EventBridge input transformers, faster: moto builds a JSONPath parser (its grammar's LR tables) for
  every input path of every target of every event put; the parsed path is the same each time, so here
  it is parsed once per path text (``jsonpath_ng.ext.parse``; a parsed path is not changed by use).
- DynamoDB stream and batch reads, faster: moto writes a GetRecords answer through its generic
  shape-driven serializer, which walks every attribute value of every old and new image (most of the stand-in's
  time serializing, once three consumers read the stream). The records are already in the API's JSON
  shape, so here they are written as JSON directly, the creation time as the same epoch number; a
  client parses the same answer. BatchGetItem (whole state items, several a call) likewise.
- SQS ReceiveMessage, faster: for each message it hands out, moto reads the queue's retention period
  by computing every attribute of the queue (each of its approximate counts is a pass over all of its
  messages, in flight too); here it reads that one attribute. And moto's clock for SQS (visibility,
  delays, retention) takes the time through two ``datetime`` objects per call, once per message per
  check: here ``time.time()`` gives the same number, and follows a frozen clock as moto's does.
- DynamoDB UpdateItem, faster: moto parses an update expression twice per call (to check the names
  and values it uses, then to apply it), and its validator deep-copies the parsed tree with
  ``copy.deepcopy`` before resolving it against the item (``deepcopy``'s generic walk was most of the
  stand-in's time in UpdateItem). Here each expression text is parsed once (the parsed tree is only
  read, never changed: the validator works on its own copy), and the validator's copy is made by
  walking the tree's nodes directly: every node and its children list new, leaf values (names, operator
  characters, indexes) as they were, each parent pointing at its copied parent: the tree ``deepcopy``
  made. A tree that is not such a plain tree (a node twice, a parent that is not the node holding it)
  is deep-copied as before.
- SQS message bodies: SQS refuses a body holding a character outside XML's set (#x9, #xA, #xD,
  #x20-#xD7FF, #xE000-#xFFFD, #x10000-#x10FFFF: U+FFFE, U+FFFF, most C0 controls, lone surrogates)
  with ``InvalidMessageContents``; moto takes anything, so a sender that would fail on AWS passed.
"""

from __future__ import annotations

import base64
import copy
import datetime
import functools
import inspect
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import jsonpath_ng.ext
from moto import backends as moto_backends
from moto.core import responses as moto_responses
from moto.core import utils as moto_utils
from moto.core.serialize import TimestampSerializer
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing import validators as dynamodb_validators
from moto.dynamodb.parsing.ast_nodes import Node
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.models import ShardIterator
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.events import models as events_models
from moto.iam import access_control
from moto.iam.models import IAMBackend
from moto.secretsmanager.models import secretsmanager_backends
from moto.sqs import models as sqs_models
from moto.sqs.exceptions import SQSException
from moto.sqs.models import SQSBackend

_original_send_to_sqs = events_models.Rule._send_to_sqs_queue
_original_sqs_send = SQSBackend.send_message
# What SQS does not carry in a message body: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html
_NOT_CARRIED = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class InvalidMessageContents(SQSException):
    code = "InvalidMessageContents"

    def __init__(self) -> None:
        super().__init__(
            "InvalidMessageContents",
            "Invalid characters found. Valid values: #x9 | #xA | #xD | "
            "#x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
        )


def _send_as_sqs_does(self: Any, queue_name: str, message_body: str, *args: Any, **kwargs: Any) -> Any:
    if _NOT_CARRIED.search(message_body):
        raise InvalidMessageContents()
    return _original_sqs_send(self, queue_name, message_body, *args, **kwargs)


def _send_to_sqs_with_account(self: Any, resource_id: str, event: dict[str, Any], group_id: str | None = None) -> None:
    if "detail-type" in event:
        event.setdefault("account", self.account_id)
    _original_send_to_sqs(self, resource_id, event, group_id)


_DYNAMODB_LOCK = threading.RLock()
_original_shard_get = ShardIterator.get


def _get_from_current_shard(self: Any, limit: int = 1000) -> dict[str, Any]:
    with _DYNAMODB_LOCK:  # the table may be being put back right now
        current = self.streams_backend.dynamodb.get_table(self.stream_shard.table.name).stream_shard
        if current is not None:
            self.stream_shard = current
        result: dict[str, Any] = _original_shard_get(self, limit)
        return result


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _DYNAMODB_LOCK:
            return method(*args, **kwargs)

    run.__aftersync_serialised__ = True  # type: ignore[attr-defined]
    return run


class _CopyTablesByReference:
    """moto's DynamoDB backend module's ``copy``: a ``Table`` is "copied" as itself (the transaction
    below keeps its own copy of the items it touches); everything else is deep-copied as before."""

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


_original_transact_write = DynamoDBBackend.transact_write_items


def _transact_write_restoring_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    touched: dict[tuple[str, Any, Any], tuple[Any, Any, Any, Any]] = {}  # (table, hash, range) -> saved
    stream_lengths: dict[str, tuple[Any, int]] = {}
    for entry in transact_items if len(transact_items) <= 100 else []:
        for op_type, op in entry.items():
            table = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            if table is None:
                continue
            keys = op.get("Item") if op_type == "Put" else op.get("Key")
            try:
                hash_key, range_key = self.get_keys_value(table, keys or {})
                current = table.get_item(hash_key, range_key)
            except Exception:  # noqa: S112 - moto refuses the malformed operation itself, before writing it
                continue
            touched.setdefault((table.name, hash_key, range_key), (table, hash_key, range_key, copy.deepcopy(current)))
            if table.stream_shard is not None:
                stream_lengths.setdefault(table.name, (table.stream_shard, len(table.stream_shard.items)))
    try:
        _original_transact_write(self, transact_items)
    except Exception:
        for table, hash_key, range_key, saved in touched.values():
            if saved is None:
                (table.items[hash_key] if range_key else table.items).pop(range_key or hash_key, None)
            elif range_key:
                table.items[hash_key][range_key] = saved
            else:
                table.items[hash_key] = saved
        for shard, length in stream_lengths.values():
            del shard.items[length:]
        raise


def _epoch(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return TimestampSerializer._timestamp_unixtimestamp(value)  # as moto's JSON serializer writes it
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_original_get_records = DynamoDBStreamsHandler.get_records


def _blob(value: str | bytes) -> str:
    """A binary attribute value as moto's serializer writes it: base64 (of the UTF-8 text, if text)."""
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


def _attribute_value(value: dict[str, Any]) -> dict[str, Any]:
    """An AttributeValue as the API's JSON carries it: binaries in base64, maps and lists walked."""
    written = {}
    for kind, content in value.items():
        if kind == "B":
            content = _blob(content)
        elif kind == "BS":
            content = [_blob(v) for v in content]
        elif kind == "M":
            content = {k: _attribute_value(v) for k, v in content.items()}
        elif kind == "L":
            content = [_attribute_value(v) for v in content]
        written[kind] = content
    return written


def _get_records_as_json(self: Any) -> str:
    """moto's DynamoDB Streams GetRecords, its answer written as JSON without the shape walk."""
    limit = self._get_param("Limit")
    result = self.backend.get_records(self._get_param("ShardIterator"), 1000 if limit is None else limit)
    records = []
    for record in result["Records"]:
        change = dict(record["dynamodb"])
        for image in ("Keys", "NewImage", "OldImage"):
            if image in change:
                change[image] = {name: _attribute_value(v) for name, v in change[image].items()}
        records.append({**record, "dynamodb": change})
    return json.dumps({**result, "Records": records}, default=_epoch)


_original_batch_get_item = DynamoHandler.batch_get_item


def _item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _attribute_value(value) for name, value in item.items()}


def _batch_get_item_as_json(self: Any) -> str:
    """moto's BatchGetItem, its answer written as JSON without the shape walk."""
    result: dict[str, Any] = _original_batch_get_item(self).result
    answer = {
        **result,
        "Responses": {table: [_item(i) for i in items] for table, items in result["Responses"].items()},
        "UnprocessedKeys": {
            table: {**request, "Keys": [_item(k) for k in request["Keys"]]}
            for table, request in result["UnprocessedKeys"].items()
        },
    }
    return json.dumps(answer, default=_epoch)


_original_list_of_moto_modules = moto_backends.list_of_moto_modules


@functools.cache
def _moto_modules_listed_once() -> tuple[str, ...]:
    return tuple(_original_list_of_moto_modules())


def _list_of_moto_modules() -> tuple[str, ...]:
    """moto's service packages (``moto.backends.list_of_moto_modules``), listed once per process."""
    return _moto_modules_listed_once()


_original_method_names = moto_utils.method_names_from_class


@functools.cache
def _method_names_once(clazz: type) -> frozenset[str]:
    return frozenset(_original_method_names(clazz))


def _method_names_from_class(clazz: object) -> frozenset[str]:
    """A response class's methods (``moto.core.utils.method_names_from_class``), listed once per class."""
    return _method_names_once(clazz if isinstance(clazz, type) else type(clazz))


_original_jsonpath_parse = jsonpath_ng.ext.parse


@functools.lru_cache(maxsize=512)
def _jsonpath_parsed_once(path: str) -> Any:
    return _original_jsonpath_parse(path)


def _jsonpath_parse(path: Any, *args: Any, **kwargs: Any) -> Any:
    """``jsonpath_ng.ext.parse``, each path text parsed once (moto's EventBridge input transformer)."""
    if args or kwargs or not isinstance(path, str):
        return _original_jsonpath_parse(path, *args, **kwargs)
    return _jsonpath_parsed_once(path)


def _retention_period_of_queue(self: Any, queue_name: str, message: Any) -> bool:
    """moto's ``is_message_valid_based_on_retention_period``, reading only the retention period."""
    retention_period = self.get_queue(queue_name).message_retention_period
    return bool(retention_period + message.sent_timestamp / 1000 > _sqs_unix_time())


_original_sqs_unix_time = sqs_models.unix_time
_original_sqs_unix_time_millis = sqs_models.unix_time_millis


def _sqs_unix_time(dt: Any = None) -> float:
    """moto's ``unix_time``: seconds since the epoch, now (or of ``dt``)."""
    return time.time() if dt is None else float(_original_sqs_unix_time(dt))


def _sqs_unix_time_millis(dt: Any = None) -> float:
    return time.time() * 1000.0 if dt is None else float(_original_sqs_unix_time_millis(dt))


_original_update_expression_make = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=1024)
def _update_expression_parsed_once(text: str) -> Any:
    return _original_update_expression_make(UpdateExpressionParser, text)


def _make_update_expression(cls: Any, expression: Any) -> Any:
    """``UpdateExpressionParser.make``: each expression text parsed once (a refused one, every time)."""
    if cls is not UpdateExpressionParser or not isinstance(expression, str):
        return _original_update_expression_make(cls, expression)
    return _update_expression_parsed_once(expression)


_original_validator_init = dynamodb_validators.Validator.__init__
_IMMUTABLE_LEAVES = (str, int, float, bool, type(None))


class _NotAPlainTree(Exception):
    pass


def _clone_node(node: Any, parent: Any, seen: set[int]) -> Any:
    if id(node) in seen or node.parent is not parent[0]:
        raise _NotAPlainTree
    seen.add(id(node))
    twin = object.__new__(type(node))
    twin.__dict__.update(node.__dict__)
    twin.parent = parent[1]
    if node.children is not None:
        twin.children = [
            _clone_node(child, (node, twin), seen)
            if isinstance(child, Node)
            else child
            if isinstance(child, _IMMUTABLE_LEAVES)
            else copy.deepcopy(child)
            for child in node.children
        ]
    return twin


def copy_expression_tree(tree: Any) -> Any:
    """What ``copy.deepcopy`` makes of a parsed expression tree, without its generic walk."""
    if not isinstance(tree, Node) or tree.parent is not None or set(vars(tree)) != {"type", "children", "parent"}:
        return copy.deepcopy(tree)
    try:
        return _clone_node(tree, (None, None), set())
    except _NotAPlainTree:
        return copy.deepcopy(tree)


def _validator_init(
    self: Any,
    expression: Any,
    expression_attribute_names: dict[str, str],
    expression_attribute_values: dict[str, dict[str, Any]],
    item: Any,
    table: Any,
) -> None:
    """moto's ``Validator.__init__``, its copy of the expression made by ``copy_expression_tree``."""
    self.expression_attribute_names = expression_attribute_names
    self.expression_attribute_values = expression_attribute_values
    self.item = item
    self.table = table
    self.processors = self.get_ast_processors()
    self.node_to_validate = copy_expression_tree(expression)


IAM_DENIALS: list[Callable[[str, str, str], None]] = []  # (principal ARN, action, resource)
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
_SQS_BATCH = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def _params(body: Any, form: Any) -> dict[str, Any]:
    """A request's parameters: its JSON body, or its form (query protocol: moto has parsed it already)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    if isinstance(form, dict) and form:
        return {k: v[0] if isinstance(v, list) and v else v for k, v in form.items()}
    return {k: v[0] for k, v in parse_qs(text).items()}


def authorized_as(
    action: str, resource: str, body: Any, region: str, account: str, form: Any = None
) -> list[tuple[str, str]]:
    """The (action, resource) pairs AWS authorizes for one request to ``action`` (``service:Name``)."""
    service, name = action.split(":", 1)
    if service == "sqs" and name in _SQS_BATCH:
        return [(f"sqs:{_SQS_BATCH[name]}", resource)]
    if service not in ("dynamodb", "secretsmanager", "events", "sns", "ses", "sqs"):
        return [(action, resource)]
    params = _params(body, form)
    if service == "sqs":
        if name == "GetQueueUrl" and "QueueName" in params:  # authorized on the queue it names
            owner = params.get("QueueOwnerAWSAccountId") or account
            return [(action, f"arn:aws:sqs:{region}:{owner}:{params['QueueName']}")]
        return [(action, resource)]
    if service == "dynamodb":

        def table(t: str) -> str:
            return t if t.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{t}"

        if name in ("TransactWriteItems", "TransactGetItems"):
            pairs = []
            for item in params.get("TransactItems", []):
                for kind, request in item.items():
                    pairs.append((f"dynamodb:{_TRANSACT.get(kind, 'GetItem')}", table(request["TableName"])))
            return pairs or [(action, resource)]
        if name in ("BatchGetItem", "BatchWriteItem"):
            return [(action, table(t)) for t in params.get("RequestItems", {})] or [(action, resource)]
        if "StreamArn" in params:
            return [(action, params["StreamArn"])]
        if "ShardIterator" in params:  # moto's iterators begin with the stream's ARN
            return [(action, str(params["ShardIterator"]).split("|", 1)[0])]
        if "TableName" in params:
            arn = table(params["TableName"])
            return [(action, f"{arn}/index/{params['IndexName']}" if "IndexName" in params else arn)]
    if service == "secretsmanager" and "SecretId" in params:
        secrets = secretsmanager_backends[account][region].secrets
        secret_id = str(params["SecretId"])
        if secret_id in secrets:
            return [(action, secrets[secret_id].arn)]
        return [(action, f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}")]
    if service == "events" and name == "PutEvents":
        buses = {str(e.get("EventBusName") or "default") for e in params.get("Entries", [])}
        return [
            (action, b if b.startswith("arn:") else f"arn:aws:events:{region}:{account}:event-bus/{b}")
            for b in sorted(buses)
        ] or [(action, resource)]
    if service == "sns" and name == "Publish":
        return [(action, str(params.get("TopicArn") or params.get("TargetArn") or "*"))]
    if service == "ses" and name in ("SendEmail", "SendRawEmail"):
        sender = str(params.get("FromEmailAddress") or params.get("Source") or "")
        if sender:
            return [(action, f"arn:aws:ses:{region}:{account}:identity/{sender.rsplit('<', 1)[-1].rstrip('>')}")]
    return [(action, resource)]


_original_check = access_control.IAMRequestBase.check_action_permitted
_ALLOWED: set[tuple[str, str, str]] = set()  # (principal ARN, action, resource) moto allowed
_ALLOWED_LOCK = threading.Lock()


def _check_remembered(self: Any, resource: str) -> None:
    """moto's identity-policy check, its allowed answers remembered until IAM changes (``_iam_changes``).
    (An identity policy's verdict here depends only on the principal, the action and the resource:
    moto evaluates no conditions in it. Role assumption also checks the trust policy: never kept.)"""
    action = str(self._action)
    if action.startswith("sts:"):
        _original_check(self, resource)
        return
    key = (str(self._access_key.arn), action, resource)
    if key in _ALLOWED:
        return
    with _ALLOWED_LOCK:
        generation = _GENERATION[0]
    _original_check(self, resource)  # raises when denied
    with _ALLOWED_LOCK:
        if generation == _GENERATION[0]:  # IAM did not change while moto was checking
            _ALLOWED.add(key)


_GENERATION = [0]


def _iam_changes(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        finally:
            with _ALLOWED_LOCK:
                _GENERATION[0] += 1
                _ALLOWED.clear()

    run.__aftersync_iam_change__ = True  # type: ignore[attr-defined]
    return run


def _check_as_aws_does(self: Any, resource: str) -> None:
    action = self._action
    try:
        for checked_action, checked_resource in authorized_as(
            action, resource, self._body or "", self._region, self.account_id, self._data
        ):
            self._action = checked_action
            try:
                _check_remembered(self, checked_resource)
            except Exception:
                for listener in list(IAM_DENIALS):
                    listener(self._access_key.arn, checked_action, checked_resource)
                raise
    finally:
        self._action = action


def apply() -> None:
    access_control.IAMRequestBase.check_action_permitted = _check_as_aws_does  # type: ignore[method-assign]
    events_models.Rule._send_to_sqs_queue = _send_to_sqs_with_account  # type: ignore[method-assign]
    SQSBackend.send_message = _send_as_sqs_does  # type: ignore[method-assign]
    ShardIterator.get = _get_from_current_shard  # type: ignore[method-assign]
    moto_backends.list_of_moto_modules = _list_of_moto_modules
    DynamoDBStreamsHandler.get_records = _get_records_as_json  # type: ignore[method-assign,assignment]
    DynamoHandler.batch_get_item = _batch_get_item_as_json  # type: ignore[method-assign,assignment]
    moto_responses.method_names_from_class = _method_names_from_class  # type: ignore[assignment]
    jsonpath_ng.ext.parse = _jsonpath_parse
    SQSBackend.is_message_valid_based_on_retention_period = _retention_period_of_queue  # type: ignore[method-assign]
    sqs_models.unix_time = _sqs_unix_time
    sqs_models.unix_time_millis = _sqs_unix_time_millis
    dynamodb_models.copy = _CopyTablesByReference  # type: ignore[assignment]
    DynamoDBBackend.transact_write_items = _transact_write_restoring_items  # type: ignore[method-assign]
    UpdateExpressionParser.make = classmethod(_make_update_expression)
    dynamodb_validators.Validator.__init__ = _validator_init  # type: ignore[method-assign]
    for name, method in inspect.getmembers(IAMBackend, inspect.isfunction):
        reads = name.startswith(("_", "get_", "list_", "describe_")) or name in ("get_role_by_arn",)
        if not reads and not getattr(method, "__aftersync_iam_change__", False):
            setattr(IAMBackend, name, _iam_changes(method))
    for name, method in inspect.getmembers(DynamoDBBackend, inspect.isfunction):
        if not name.startswith("_") and not getattr(method, "__aftersync_serialised__", False):
            setattr(DynamoDBBackend, name, _serialised(method))

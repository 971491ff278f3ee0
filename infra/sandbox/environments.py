"""Execution environments: each function's invocations run in worker processes of their own, as on Lambda.

Lambda runs one invocation at a time in an execution environment and as many environments side by
side as there are concurrent invocations (up to the function's concurrency). The handlers are written
for that: Powertools' resolver and batch processor, its logger keys and metric set are module-level
objects that hold one invocation's state. So the sandbox gives each function a pool of worker
processes, not threads:

- a worker serves one function, one invocation at a time, with that function's environment: its
  variables, ``AWS_LAMBDA_FUNCTION_NAME`` and its role's session credentials (``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, as Lambda provides them), so IAM is enforced
  exactly as strictly as before and nothing in the handler's process is shared with another invocation;
- a function's pool grows on demand up to its concurrency (a new worker is a cold start) and keeps
  its workers warm; an invocation beyond the concurrency waits for a worker (Lambda would throttle;
  the event source mappings here do not retry faster than that);
- workers are forked from one process that imported every handler once (a ``forkserver`` with the
  handlers preloaded), so a cold start costs milliseconds, not an interpreter's import time;
- a worker that dies or overruns its timeout is discarded and the invocation fails, as Lambda's does.

What an invocation prints comes back with its result and is collected as ``Functions`` does.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.spawn
import os
import sys
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.sandbox.lambda_runtime import Functions, LambdaContext
from infra.wiring import FUNCTIONS

DEFAULT_CONCURRENCY = 4  # environments per function: enough for two cores, bounded like a reserved concurrency
START_TIMEOUT = 120.0


class InvocationError(Exception):
    """The handler raised (its type is named; its message is not carried: it may quote the payload),
    or its environment died or timed out."""


def _preload() -> list[str]:
    return [__name__, *sorted({spec.handler.rsplit(".", 1)[0] for spec in FUNCTIONS.values()})]


_START_LOCK = threading.Lock()


@contextlib.contextmanager
def _without_main() -> Any:
    """A worker must not import the sandbox's ``__main__`` (multiprocessing re-runs it in a child:
    a script, a test runner, the CLI): it needs only its handler, preloaded in the fork server."""
    original = multiprocessing.spawn.get_preparation_data

    def prepared(name: str) -> dict[str, Any]:
        data: dict[str, Any] = original(name)
        data.pop("init_main_from_name", None)
        data.pop("init_main_from_path", None)
        return data

    with _START_LOCK:
        multiprocessing.spawn.get_preparation_data = prepared
        try:
            yield
        finally:
            multiprocessing.spawn.get_preparation_data = original


_CONTEXT: Any = None
_CONTEXT_LOCK = threading.Lock()


def _context() -> Any:
    """The forkserver context (one per process), its server preloading every handler module."""
    global _CONTEXT
    with _CONTEXT_LOCK:
        if _CONTEXT is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_preload())
            _CONTEXT = context
        return _CONTEXT


def _serve(
    connection: multiprocessing.connection.Connection,
    handler_path: str,
    environment: dict[str, str],
    function_name: str,
    region: str,
) -> None:
    """A worker's life: set up the function's environment, import its handler (the init phase), then
    answer invocations until the connection closes."""
    os.environ.clear()
    os.environ.update(environment)
    # An invocation that changed nothing emits no metric; Powertools warns about that on every one.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    real_stdout = sys.stdout
    try:
        module, attribute = handler_path.rsplit(".", 1)
        handler = getattr(importlib.import_module(module), attribute)
    except BaseException as exc:  # an init error: the invocation that asked for this worker fails
        connection.send(("init-failed", type(exc).__name__, ""))
        return

    class _Stdout:  # Powertools' Logger bound sys.stdout when created: follow the current one
        def write(self, text: str) -> int:
            return sys.stdout.write(text)

        def flush(self) -> None:
            sys.stdout.flush()

    for log_handler in logging.getLogger("aftersync").handlers:
        if isinstance(log_handler, logging.StreamHandler):
            log_handler.setStream(_Stdout())  # type: ignore[arg-type]
    connection.send(("ready", None, ""))
    while True:
        try:
            event = connection.recv()
        except (EOFError, OSError):
            return
        captured = io.StringIO()
        sys.stdout = captured
        try:
            reply: tuple[str, Any, str] = ("ok", handler(event, LambdaContext(function_name, region)), "")
        except BaseException as exc:  # the invocation fails (logged by type: its text may quote data)
            print(f"[ERROR] the invocation failed: {type(exc).__name__}")
            reply = ("error", type(exc).__name__, "")
        finally:
            sys.stdout = real_stdout
        connection.send((reply[0], reply[1], captured.getvalue()))


class _Worker:
    def __init__(self, context: Any, handler: str, environment: dict[str, str], function_name: str, region: str):
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=_serve,
            args=(child, handler, environment, function_name, region),
            name=f"lambda-{function_name}",
            daemon=True,
        )
        with _without_main():
            self.process.start()
        child.close()
        status, detail, _ = self._answer(START_TIMEOUT)
        if status != "ready":
            self.close()
            raise InvocationError(f"{function_name} failed to start ({detail})")

    def _answer(self, timeout: float) -> tuple[str, Any, str]:
        if not self.connection.poll(timeout):
            raise TimeoutError
        answer: tuple[str, Any, str] = self.connection.recv()
        return answer

    def invoke(self, event: dict[str, Any], timeout: float) -> tuple[str, Any, str]:
        self.connection.send(event)
        return self._answer(timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)


@dataclass
class _Pool:
    idle: list[_Worker]
    running: int  # workers in existence: idle, busy or starting
    freed: threading.Condition  # one waiter woken per worker freed (not every waiting thread)


class ProcessFunctions(Functions):
    """``Functions`` whose invocations run in execution environments (worker processes), concurrently:
    up to ``concurrency`` at once per function (a number, or a number per function name)."""

    def __init__(
        self,
        region: str,
        name_prefix: str,
        environments: Mapping[str, Mapping[str, str]],
        log_file: Path | None = None,
        concurrency: int | Mapping[str, int] = DEFAULT_CONCURRENCY,
        timeouts: Mapping[str, float] | None = None,
    ) -> None:
        """``environments``: each function's whole environment (variables and credentials)."""
        super().__init__(region, name_prefix, log_file)
        self.environments = {name: dict(env) for name, env in environments.items()}
        self.concurrency = concurrency
        self.timeouts = dict(timeouts or {})
        self._pools: dict[str, _Pool] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closed = False
        self._emf_lock = threading.Lock()

    def limit(self, name: str) -> int:
        if isinstance(self.concurrency, int):
            return self.concurrency
        return self.concurrency.get(name, DEFAULT_CONCURRENCY)

    def warm(self, names: list[str]) -> None:
        """One environment per function started now (in parallel), as provisioned concurrency would."""
        workers: dict[str, _Worker] = {}
        errors: list[BaseException] = []

        def start(name: str) -> None:
            try:
                workers[name] = self._acquire(name)
            except BaseException as exc:  # reported once all have tried
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(name,), daemon=True) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for name, worker in workers.items():
            self._release(name, worker, healthy=True)
        if errors:
            raise errors[0]

    def _acquire(self, name: str) -> _Worker:
        with self._changed:
            if name not in self._pools:
                self._pools[name] = _Pool([], 0, threading.Condition(self._lock))
            pool = self._pools[name]
            while not pool.idle and pool.running >= self.limit(name):
                if self._closed:
                    raise InvocationError("the sandbox is stopping")
                pool.freed.wait(timeout=1.0)
            if pool.idle:
                return pool.idle.pop()
            pool.running += 1
        try:
            return _Worker(
                _context(),
                FUNCTIONS[name].handler,
                self.environments[name],
                f"{self.name_prefix}-{name}",
                self.region,
            )
        except BaseException:
            with self._changed:
                pool.running -= 1
                pool.freed.notify()
            raise

    def _release(self, name: str, worker: _Worker, healthy: bool) -> None:
        with self._changed:
            pool = self._pools[name]
            if healthy and not self._closed:
                pool.idle.append(worker)
            else:
                pool.running -= 1
            pool.freed.notify()
        if not healthy or self._closed:
            worker.close()

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        worker = self._acquire(name)
        healthy = False
        try:
            try:
                status, result, output = worker.invoke(event, self.timeouts.get(name, 60.0))
            except TimeoutError:
                raise InvocationError(f"{name} timed out") from None
            except (EOFError, OSError):
                raise InvocationError(f"{name}'s environment died") from None
            healthy = True
            with self._emf_lock:
                self._collect(name, output)
            if status != "ok":
                raise InvocationError(f"{name} raised {result}")
            return result
        finally:
            self._release(name, worker, healthy)

    def worker_pids(self) -> list[int]:
        """The execution environments' processes (for CPU accounting: they are the fork server's children)."""
        with self._changed:
            return [w.process.pid for pool in self._pools.values() for w in pool.idle if w.process.pid]

    def close(self) -> None:
        with self._changed:
            self._closed = True
            workers = [w for pool in self._pools.values() for w in pool.idle]
            for pool in self._pools.values():
                pool.running -= len(pool.idle)
                pool.idle.clear()
                pool.freed.notify_all()
        for worker in workers:
            worker.close()

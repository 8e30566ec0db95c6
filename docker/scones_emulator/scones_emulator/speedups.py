"""Speed up LocalStack's Step Functions, Lambda and S3 events (fourteen documented monkeypatches).

1. jsonpath_ng parsing is cached. Every JSONPath field of every state (InputPath, Parameters'
   ``.$`` keys, ResultSelector, ResultPath, OutputPath) is parsed again on every evaluation, and
   ``jsonpath_ng.ext.parse`` builds a fresh PLY parser each time: ~29 ms per call on this machine,
   against ~12 us for parse-once-then-find. Parsed expressions are immutable trees (``find`` and
   ``update_or_create`` only read them), so one parse per path string is shared.
2. The state machine program is parsed once per definition string instead of once per execution
   (``ExecutionWorker._get_evaluation_entrypoint``: ANTLR lex + parse + preprocess, ~45 % of the
   emulator's CPU per workflow execution). Sharing the component tree is safe because components
   hold no per-execution state: every eval method writes only to the ``Environment`` (stack, heap,
   states, event history), which is per execution, and LocalStack itself already evaluates one
   component tree from many threads at once (Map iterations all run the same ``States``).
   The one lazily-set attribute, ``EvalComponent.heap_key`` (a uid naming the component's slots
   in the per-execution ``env.heap``), is set on every component before the program is shared,
   so concurrent first reads cannot race. The only raw JSON object a component hands out,
   Pass's ``Result``, reaches the output through ResultPath's ``copy.deepcopy``.
   TestState keeps its own parser (it patches components per call), so it is left alone.
3. Task states reuse one boto client per (service, region, role ARN) instead of assuming the
   role through STS and building a client on every task (``asl.utils.boto_client.boto_client_for``,
   ~18 % of CPU). botocore clients are thread-safe, and Step Functions never mutates the client it
   gets. Assumed-role credentials in LocalStack do not expire, so reusing them is safe here.

4. An execution's status-change event (two ``PutEvents`` per execution, on start and on end)
   is only built and sent when an EventBridge rule or archive on the default bus could match
   ``aws.states``. Nothing else observes it; every event costs a full internal API call.
5. Lambda log forwarding (a fifth of the emulator's CPU in a busy workflow) drains its queue,
   groups the lines per (group, stream), and hands them straight to the CloudWatch Logs backend
   (moto's ``put_log_events``, which LocalStack's subscription-filter delivery hooks) instead of
   a full internal ``PutLogEvents`` API call per invocation. Same lines, order and timestamps.
   The API call is still used whenever the group or stream does not exist yet, or metric
   filters exist (LocalStack evaluates those in its API handler).
6. ``localstack.utils.strings.camel_to_snake_case`` (a regex substitution run on every
   parameter name of every service-integration task) is memoised: a pure function of a string.

7. The CloudWatch metrics database (SQLite, where Lambda's ``Invocations``/``Errors`` and SQS's
   metrics land: one connection, insert and commit per metric, under one global lock) opens its
   connections with ``PRAGMA synchronous=OFF``: no fsync per metric. Each Lambda invoke publishes
   one from its own thread; with the journal fsynced per commit those threads queued on the lock
   (py-spy, 1,000 mixed events under load: 54 % of the emulator's non-idle samples waited
   there). A metric is still committed before PutMetricData answers and survives a crash of
   the emulator; only an OS crash may lose the last ones (the database is scratch data under the
   emulator's cache, not something persistence.py restores). Writes also share one kept-open
   connection: the helper opens one per metric and never closes it, and a ``sqlite3.Connection``
   sits in a reference cycle (its statement cache), so each waited for the cycle collector,
   which found ~420 of them in a sampled young collection and closed them there. With the
   kept connection, young collections took ~1 s instead of ~8.6 s of a 600-event run.
8. LocalStack's ``/_localstack/...`` resource router (health, info, plugins ...) is asked first
   about every request, internal service-to-service calls included, and answers through a
   werkzeug URL match (~9 % of the emulator's GIL time in a busy workflow). A request whose path
   does not start with ``/_`` skips it when every route of that router starts with ``/_``
   (checked again whenever routes are added).

9. Lambda starts a new execution environment only when no warm one of that function comes free
   soon. LocalStack starts one whenever every environment of the function is busy, so a burst
   (the bench uploads with 8 threads) scaled out to ~70 environments per function: 188 runtime
   processes and ~1,000 emulator threads after 1,200 executions, each start a process with boto3
   to import (~0.3 s of CPU) on 2 cores. Past WARM_ENVS environments (running or starting) of a
   function, an on-demand invoke now waits up to WARM_WAIT_S for one to be handed back, then
   starts one as LocalStack would. Nothing is refused or throttled; only the cold-start count
   (Init Duration lines) and the wait differ. SCONES_EMULATOR_LAMBDA_WARM_ENVS (default: one per
   core, at least 2) and SCONES_EMULATOR_LAMBDA_WARM_WAIT_MS (default 1000) tune it.
   Since 2026-12-06 a freed environment lets exactly one waiting invoke through (a claim), and
   past the cap at most WARM_ENVS starts of a function are in flight at once (a waiter past
   WARM_WAIT_S starts one only then). Before, every waiter saw the freed environment,
   one got it and each of the others started one (LocalStack starts whenever its reserve
   fails), and under load every waiter passed its WARM_WAIT_S while the first starts were still
   initialising: the bench's first burst still made 117-144 runtime processes (5.3-6.3 GB).
10. Lambda's Invocations/Errors and SQS's per-queue metrics are written to the CloudWatch
   provider's metrics database directly, as its PutMetricData handler does, instead of one
   internal PutMetricData API call (client, signing, gateway, parsing) per invocation or message:
   ~7 % of the emulator's GIL time in a busy workflow. Falls back to the API call whenever the
   CloudWatch provider is not running or is not the v2 (database) one.
11. Internal service-to-service calls (Step Functions -> Lambda, S3 -> EventBridge, EventBridge ->
   Step Functions, SNS -> SQS ...) carry SigV4's headers without computing the signature: the
   credential scope (access key, date, region, service), which is all LocalStack reads from them
   (account, region, service), and a fixed signature, as LocalStack's own
   ``mock_aws_request_headers`` does. Signing was ~5 % of the emulator's GIL time. Only for the
   internal clients' plain SigV4 (S3's signer and presigning are untouched) and only for requests
   to LocalStack's own gateway; external clients (the Lambdas', the user's) are untouched.
12. A Step Functions lambda:invoke task calls the Lambda service's own ``Invoke`` handler in
   this process (``DirectLambdaClient``) instead of a request through the gateway: no botocore
   serialising and signing, no parsing, no handler chain, no serialising and parsing back (~8 %
   of the emulator's GIL time for three invokes per execution). The handler gets the context
   the gateway would build (account from the task's assumed-role credentials, region, request
   id, X-Ray trace header); the answer is shaped as botocore's (``Payload`` stream,
   ``ResponseMetadata`` with Invoke's headers, so fidelity.py's SdkHttpMetadata is unchanged);
   a service error is botocore's ``ClientError``, which Step Functions names
   ``Lambda.<Code>`` with AWS's cause. Invoke changes no state persistence.py saves, so the
   skipped response handlers miss nothing. If the Lambda service is not running yet, the
   call goes through the gateway (which starts it).
13. Lambda execution environments' keep-alive timer (``threading.Timer``, a new thread on every
   invoke's release, cancelled at the next reserve) and start-up timer wait in one scheduler
   thread's heap (``SharedTimer``); a timer that comes due still runs its function in a thread
   of its own. Three thread starts fewer per workflow execution.
14. S3's EventBridge notifier hands its event to EventBridge's ``PutEvents`` dispatcher in
   this process (the bucket owner's account, the bucket's region, a request id and an X-Ray
   trace header in the context) instead of a botocore call through the gateway, whose answer
   nobody read. The entry is passed as built: EventBridge formats its naive ``Time`` to the
   second as UTC, as after botocore's round trip. PutEvents changes no state persistence.py
   saves. If EventBridge is not running yet, the call goes through the gateway.

Patch 14, `scones bench workflow --events 600 --warmup-events 100` on a fresh state dir, two
interleaved pairs on a quiet machine, SPEEDUPS_OFF=s3_events_direct -> all on: emulator CPU per
execution 42.7 -> 37.3 and 41.0 -> 38.1 ms, executions/s 25.7 -> 29.0 and 26.4 -> 28.8, warm
p50 47.7 -> 41.7 and 45.5 -> 43.9 ms.

Patches 12-13, `scones bench workflow --events 600 --warmup-events 100`, two interleaved pairs
on 2 cores shared with a helper's tests (load 3-8), SPEEDUPS_OFF=lambda_invoke_direct,
shared_timers -> all on: emulator CPU per execution 52.1 -> 46.7 and 55.8 -> 51.1 ms,
executions/s 18.8 -> 22.3 and 17.9 -> 20.1, warm p50 63.3 -> 54.3 and 63.9 -> 58.6 ms.

Patches 9-11, `scones bench workflow --events 1000` back to back on 2 cores shared with other
jobs (load 4-17), SPEEDUPS_OFF=lambda_warm_first,metrics_direct,internal_signing -> all on:
emulator CPU per execution 77 -> 64 and 82 -> 68 ms (mix), 66 -> 51 ms (--path success);
executions/s 11.7 -> 13.5 (mix, load ~4 in both runs; the other pair ran under load 13-17 and
says nothing about throughput). The first burst on a fresh stack (200-event warm-up): before
these patches and the runtime API server's end of idle polling (runtime_api.py) 3.2/s, 188 runtime
processes, ~1,300 emulator threads; with that fix alone 5.3-6.5/s, 76-81 processes, 750-790
threads; with patches 9-11 as well 5.3-8.2/s, 63-88 processes, 520-730 threads. Under load a
cold start takes longer than WARM_WAIT_S, so patch 9 caps the burst less than it could.

Measured on 2 shared cores (another process training a model alongside), SPEEDUPS=0 -> all three:
bench_stepfunctions.py -n 40: JSONPath machine 6.2/s -> 24.3/s, JSONata 12.6/s -> 26.2/s, three
lambda:invoke tasks 2.9/s -> 10.7/s (median execution 1251 ms -> 209 ms); `scones bench workflow`
(300 S3 events) 1.36/s -> 8.35/s, warm p50 651 ms -> 120 ms; with IN_MEMORY_CLIENT=1 as well
10.8/s (300 events), 13.3/s over 1,000 events, p50 94 ms. Patches 4-6, quiet machine, 1,000
events after a warm-up: emulator CPU per execution 53 -> 41 ms, 19.3/s -> 24.0/s.

Each patch checks the signature of what it replaces and skips itself (with a warning) when
LocalStack has changed it, and applies through patching.py (LocalStack's ``Patch``). Disable all
with SCONES_EMULATOR_SPEEDUPS=0, some with SCONES_EMULATOR_SPEEDUPS_OFF=name,name (see install).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import heapq
import importlib
import inspect
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from scones_emulator import patching

LOG = logging.getLogger(__name__)

CACHE_SIZE = 4096  # distinct JSONPath strings; a workflow has tens
PROGRAM_CACHE_SIZE = 256  # distinct state machine definitions
SFN = "localstack.services.stepfunctions"
CLOUDWATCH_DB = "localstack.services.cloudwatch.cloudwatch_database_helper"

# (module, attribute) pairs that hold a jsonpath_ng parse function. LocalStack binds the name
# at import (``from jsonpath_ng.ext import parse``), so its modules are patched as well.
PATCH_TARGETS = (
    ("jsonpath_ng", "parse"),
    ("jsonpath_ng.ext", "parse"),
    ("localstack.services.stepfunctions.asl.utils.json_path", "parse"),
    ("localstack.services.stepfunctions.asl.component.common.path.result_path", "parse"),
)


def cached_parse(parse: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a jsonpath_ng ``parse(path, debug=False)`` with an LRU cache keyed by the path."""
    if getattr(parse, "__scones_cached__", False):
        return parse
    cache = functools.lru_cache(maxsize=CACHE_SIZE)(parse)

    @functools.wraps(parse)
    def parse_cached(path: str, debug: bool = False) -> Any:
        if debug or not isinstance(path, str):
            return parse(path, debug=debug)
        return cache(path)

    parse_cached.__scones_cached__ = True
    parse_cached.cache_info = cache.cache_info
    return parse_cached


def install_jsonpath_cache() -> None:
    """Replace each target's ``parse`` with its cached version (idempotent)."""
    patched = []
    for module_name, attribute in PATCH_TARGETS:
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:  # another LocalStack version may have moved a module
            LOG.warning("speedups: cannot import %s (%s); left unpatched", module_name, err)
            continue
        original = getattr(module, attribute, None)
        if callable(original):
            patching.apply(module, attribute, cached_parse(original))
            patched.append(module_name)
    LOG.debug("speedups: jsonpath_ng parse cached in %s", ", ".join(patched))


def _has_parameters(function: Callable[..., Any], expected: tuple[str, ...]) -> bool:
    return patching.parameters(function) == expected


def _set_every_heap_key(root: Any) -> int:
    """Touch ``heap_key`` on every EvalComponent reachable from `root`; return how many.

    ``heap_key`` is assigned lazily on first read; two executions reading it for the first time
    at once could each get a different uid and miss their own heap slot. Setting it before the
    tree is shared removes that race.
    """
    from localstack.services.stepfunctions.asl.component.component import Component
    from localstack.services.stepfunctions.asl.component.eval_component import EvalComponent

    seen: set[int] = set()
    pending: list[Any] = [root]
    touched = 0
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, (list, tuple, set, frozenset)):
            pending.extend(node)
        elif isinstance(node, dict):
            pending.extend(node.values())
        elif isinstance(node, Component):
            if isinstance(node, EvalComponent):
                _ = node.heap_key
                touched += 1
            pending.extend(vars(node).values())
    return touched


@functools.lru_cache(maxsize=PROGRAM_CACHE_SIZE)
def parse_program(definition: str) -> Any:
    """The evaluation entry point of `definition`, parsed once and shared (see module doc, 2)."""
    from localstack.services.stepfunctions.asl.parse.asl_parser import AmazonStateLanguageParser

    program = AmazonStateLanguageParser.parse(definition)[0]
    _set_every_heap_key(program)
    return program


def install_program_cache() -> bool:
    """Make ``ExecutionWorker`` reuse the parsed program of an already seen definition.

    Assumes LocalStack 2026.3's ``ExecutionWorker._get_evaluation_entrypoint(self)`` returns
    ``AmazonStateLanguageParser.parse(self._evaluation_details.state_machine_details.definition)[0]``
    and that ``AmazonStateLanguageParser.parse(definition)`` returns ``(program, parse_tree)``.
    Subclasses that override the method (TestState's worker) keep their own behaviour.
    """
    try:
        from localstack.services.stepfunctions.asl.parse.asl_parser import (
            AmazonStateLanguageParser,
        )
        from localstack.services.stepfunctions.backend.execution_worker import ExecutionWorker
    except ImportError as err:
        LOG.warning("speedups: Step Functions modules moved (%s); program cache skipped", err)
        return False
    original = ExecutionWorker.__dict__.get("_get_evaluation_entrypoint")
    if getattr(original, "__scones_cached__", False):
        return True
    code_names = getattr(getattr(original, "__code__", None), "co_names", ())
    if not (
        _has_parameters(original, ("self",))
        and _has_parameters(AmazonStateLanguageParser.parse, ("definition",))
        and {"AmazonStateLanguageParser", "parse", "_evaluation_details"} <= set(code_names)
    ):
        LOG.warning(
            "speedups: ExecutionWorker._get_evaluation_entrypoint is not the expected one "
            "(LocalStack changed?); program cache skipped"
        )
        return False

    def _get_evaluation_entrypoint(self: Any) -> Any:
        return parse_program(self._evaluation_details.state_machine_details.definition)

    _get_evaluation_entrypoint.__scones_cached__ = True
    _get_evaluation_entrypoint.__wrapped__ = original
    patching.apply(ExecutionWorker, "_get_evaluation_entrypoint", _get_evaluation_entrypoint)
    return True


def cached_boto_client_for(boto_client_for: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``boto_client_for(service, region, state_credentials)`` with a thread-safe cache."""
    if getattr(boto_client_for, "__scones_cached__", False):
        return boto_client_for
    clients: dict[tuple[str, str, str], Any] = {}
    lock = threading.Lock()

    @functools.wraps(boto_client_for)
    def boto_client_for_cached(service: str, region: str, state_credentials: Any) -> Any:
        key = (service, region, state_credentials.role_arn)
        client = clients.get(key)
        if client is None:
            # Build outside the lock (an STS call); at worst two threads build one each.
            built = boto_client_for(
                service=service, region=region, state_credentials=state_credentials
            )
            with lock:
                client = clients.setdefault(key, built)
        return client

    boto_client_for_cached.__scones_cached__ = True
    boto_client_for_cached.clients = clients
    return boto_client_for_cached


def install_boto_client_cache() -> bool:
    """Cache Step Functions' task clients per (service, region, role ARN).

    Assumes ``asl.utils.boto_client.boto_client_for(service, region, state_credentials)`` whose
    only input besides service and region is ``state_credentials.role_arn`` (the endpoint is
    LocalStack's own, fixed for the process). Task modules bind the name at import
    (``from ...boto_client import boto_client_for``), so modules already loaded are patched too;
    later imports pick up the patched name from the source module.
    """
    try:
        source = importlib.import_module(f"{SFN}.asl.utils.boto_client")
    except ImportError as err:
        LOG.warning("speedups: %s; boto client cache skipped", err)
        return False
    original = getattr(source, "boto_client_for", None)
    if getattr(original, "__scones_cached__", False):
        return True
    if original is None or not _has_parameters(
        original, ("service", "region", "state_credentials")
    ):
        LOG.warning(
            "speedups: boto_client_for is not (service, region, state_credentials) "
            "(LocalStack changed?); boto client cache skipped"
        )
        return False
    cached = cached_boto_client_for(original)
    patching.rebind(SFN, "boto_client_for", original, cached)
    return True


# ------------------------------ 4. status-change events ------------------------------


def _pattern_may_match_states(pattern: Any) -> bool:
    """False only when a rule's pattern names sources, none of them ``aws.states``."""
    if pattern is None:
        return False  # a scheduled rule: it never matches events
    if isinstance(pattern, str):
        try:
            pattern = json.loads(pattern)
        except ValueError:
            return True
    if not isinstance(pattern, dict) or "source" not in pattern:
        return True
    sources = pattern["source"]
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        return True  # prefix / anything-but / wildcard matchers: assume it may match
    return "aws.states" in sources


def _status_events_wanted(account_id: str, region: str) -> bool:
    from localstack.services.events.models import events_stores

    store = events_stores[account_id][region]
    if store.archives:
        return True  # an archive may record every event on the bus
    bus = store.event_buses.get("default")
    if bus is None:
        return False
    return any(_pattern_may_match_states(rule.event_pattern) for rule in bus.rules.values())


def install_status_event_filter() -> bool:
    """Publish an execution's status-change event only if a rule or archive may want it."""
    try:
        from localstack.services.events.models import events_stores  # noqa: F401
        from localstack.services.stepfunctions.backend.execution import Execution
    except ImportError as err:
        LOG.warning("speedups: %s; status-change events always sent", err)
        return False
    original = Execution.__dict__.get("publish_execution_status_change_event")
    if getattr(original, "__scones_cached__", False):
        return True
    if not _has_parameters(original, ("self",)):
        LOG.warning("speedups: publish_execution_status_change_event changed; left alone")
        return False

    @functools.wraps(original)
    def publish_execution_status_change_event(self: Any) -> None:
        try:
            wanted = _status_events_wanted(self.account_id, self.region_name)
        except Exception:  # noqa: BLE001 -- when in doubt, publish as LocalStack does
            wanted = True
        if wanted:
            original(self)

    publish_execution_status_change_event.__scones_cached__ = True
    patching.apply(
        Execution, "publish_execution_status_change_event", publish_execution_status_change_event
    )
    return True


# ------------------------------ 5. Lambda log forwarding ------------------------------
LOG_BATCH_EVENTS = 5000  # per PutLogEvents call; AWS's limit is 10,000 events / 1 MB
LOG_DRAIN_ITEMS = 500  # queued invocations taken at once


def install_log_batching() -> bool:
    """Replace ``LogHandler.run_log_loop`` with one that sends queued invocations together."""
    try:
        from localstack.services.lambda_.invocation import logs
    except ImportError as err:
        LOG.warning("speedups: %s; Lambda logs forwarded one call per invocation", err)
        return False
    handler = logs.LogHandler
    original = handler.__dict__.get("run_log_loop")
    if getattr(original, "__scones_cached__", False):
        return True
    needed = ("log_queue", "role_arn", "region", "_shutdown_event")
    source = inspect.getsource(original) if original else ""
    if not (
        all(name in source for name in (*needed, "put_log_events", "create_log_stream"))
        and hasattr(logs, "QUEUE_SHUTDOWN")
        and {f.name for f in dataclasses.fields(logs.LogItem)}
        == {"log_group", "log_stream", "logs"}
    ):
        LOG.warning("speedups: LogHandler.run_log_loop changed; Lambda log batching skipped")
        return False

    def _send(client: Any, backend: Any, group: str, stream: str, events: list[dict]) -> None:
        try:  # the backend directly when nothing but storing (and subscriptions) is needed
            direct = (
                backend is not None
                and not backend.filters.metric_filters
                and stream in getattr(backend.groups.get(group), "streams", ())
            )
        except Exception:  # noqa: BLE001 -- moto changed: take the API path
            direct = False
        if direct:
            backend.put_log_events(group, stream, events)
            return
        try:
            client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
        except client.exceptions.ResourceNotFoundException:
            try:
                client.create_log_group(logGroupName=group)
            except client.exceptions.ResourceAlreadyExistsException:
                pass
            client.create_log_stream(logGroupName=group, logStreamName=stream)
            client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)

    @functools.wraps(original)
    def run_log_loop(self: Any, *args: Any, **kwargs: Any) -> None:
        from localstack.aws.connect import connect_to
        from localstack.utils.aws.client_types import ServicePrincipal

        client = connect_to.with_assumed_role(
            region_name=self.region,
            role_arn=self.role_arn,
            service_principal=ServicePrincipal.lambda_,
        ).logs
        try:
            from localstack.services.logs.models import get_moto_logs_backend

            backend = get_moto_logs_backend(self.role_arn.split(":")[4], self.region)
        except Exception:  # noqa: BLE001 -- no logs backend to reach: the API path only
            backend = None
        stopping = False
        while not stopping and not self._shutdown_event.is_set():
            items = [self.log_queue.get()]
            while not self.log_queue.empty() and len(items) < LOG_DRAIN_ITEMS:
                items.append(self.log_queue.get_nowait())
            batches: dict[tuple[str, str], list[dict]] = {}
            for item in items:
                if item is logs.QUEUE_SHUTDOWN:
                    stopping = True  # send what came before the pill, then stop
                    break
                # one timestamp per invocation, blank lines dropped (CloudWatch refuses them)
                now = int(time.time() * 1000)
                batches.setdefault((item.log_group, item.log_stream), []).extend(
                    {"timestamp": now, "message": line + "\n"}
                    for line in item.logs.split("\n")
                    if line
                )
            for (group, stream), events in batches.items():
                for i in range(0, len(events), LOG_BATCH_EVENTS):
                    try:
                        _send(client, backend, group, stream, events[i : i + LOG_BATCH_EVENTS])
                    except Exception as err:  # noqa: BLE001 -- as LocalStack: warn, go on
                        LOG.warning("Error saving logs to group %s in region %s: %s",
                                    group, self.region, err)  # fmt: skip

    run_log_loop.__scones_cached__ = True
    patching.apply(handler, "run_log_loop", run_log_loop)
    return True


# ------------------------------ 6. camel_to_snake_case ------------------------------


def install_snake_case_cache() -> bool:
    try:
        strings = importlib.import_module("localstack.utils.strings")
    except ImportError as err:
        LOG.warning("speedups: %s; camel_to_snake_case left alone", err)
        return False
    original = getattr(strings, "camel_to_snake_case", None)
    if getattr(original, "__scones_cached__", False):
        return True
    if original is None or not _has_parameters(original, ("string",)):
        LOG.warning("speedups: camel_to_snake_case changed; left alone")
        return False
    cache = functools.lru_cache(maxsize=CACHE_SIZE)(original)

    @functools.wraps(original)
    def camel_to_snake_case(string: str) -> str:
        return cache(string) if isinstance(string, str) else original(string)

    camel_to_snake_case.__scones_cached__ = True
    # modules that bound the name at import, then its own module
    patching.rebind("localstack.", "camel_to_snake_case", original, camel_to_snake_case)
    patching.apply(strings, "camel_to_snake_case", camel_to_snake_case)
    return True


# ------------------------------ 7. CloudWatch metrics without fsync ------------------------------


class _KeptOpen:
    """The metrics database's one write connection as a ``with`` block sees it: entering takes
    it (one user at a time), leaving commits or rolls back as ``sqlite3.Connection`` does, and
    leaves it open."""

    def __init__(self, conn: Any, lock: threading.Lock) -> None:
        self._conn, self._lock = conn, lock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __enter__(self) -> Any:
        self._lock.acquire()
        return self._conn.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self._conn.__exit__(*exc)
        finally:
            self._lock.release()


class _UnsyncedSqlite:
    """The ``sqlite3`` module as the metrics database helper sees it: writes go through one
    connection that skips the fsync per commit; everything else is the real module.

    The helper opens a connection per metric inside ``with`` and never closes it; a
    ``sqlite3.Connection`` is in a reference cycle (its statement cache), so each one waited
    for the cycle collector, which then closed them by the hundred (young collections took
    ~8.6 s of a 600-event run before, ~1 s after; the S3 journal landed in between, but the
    sampled collection's garbage was mostly these connections). The kept one is reopened if the
    database file is replaced. The helper never nests these blocks (checked by reading it)."""

    def __init__(self, sqlite3: Any, database: str) -> None:
        self._sqlite3, self._database = sqlite3, database
        self._lock = threading.Lock()  # guards _kept
        self._use = threading.Lock()  # one with-block at a time on the kept connection
        self._kept: tuple[Any, int] | None = None  # (connection, inode of the file it opened)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqlite3, name)

    def connect(self, database: Any, *args: Any, **kwargs: Any) -> Any:
        if database != self._database or args or kwargs:  # the read-only URI the queries open
            return self._sqlite3.connect(database, *args, **kwargs)
        with self._lock:
            try:
                inode = os.stat(database).st_ino
            except FileNotFoundError:
                inode = -1
            if self._kept is None or self._kept[1] != inode:
                conn = self._sqlite3.connect(database, check_same_thread=False)
                conn.execute("PRAGMA synchronous=OFF")
                inode = os.stat(database).st_ino  # connect created it if it was missing
                old, self._kept = self._kept, (conn, inode)
                if old is not None:
                    with self._use:  # not under a with-block still using it
                        old[0].close()
            return _KeptOpen(self._kept[0], self._use)


def install_unsynced_metrics() -> bool:
    try:
        helper = importlib.import_module(CLOUDWATCH_DB)
        database = helper.CloudwatchDatabase
    except (ImportError, AttributeError) as err:
        LOG.warning("speedups: %s; CloudWatch metrics fsynced per commit", err)
        return False
    real = getattr(helper, "sqlite3", None)
    if isinstance(real, _UnsyncedSqlite):
        return True
    if not (
        getattr(real, "__name__", "") == "sqlite3"
        and all(
            patching.source_has(method, "sqlite3.connect(self.METRICS_DB) as conn")
            for method in (database.add_metric_data, database.clear_tables)
        )
    ):
        LOG.warning("speedups: CloudwatchDatabase changed; metrics fsynced per commit")
        return False
    patching.apply(helper, "sqlite3", _UnsyncedSqlite(real, database.METRICS_DB))
    return True


# ------------------------------ 8. the internal resource router ------------------------------


def _only_underscore_routes(resources: Any) -> bool:
    """Whether every route of ``resources`` (a rolo Router) starts with ``/_``; cached per map."""
    url_map = resources.url_map
    cached = getattr(resources, "_scones_underscore_only", None)
    if cached is not None and cached[0] is url_map:
        return cached[1]
    verdict = all(rule.rule.startswith("/_") for rule in url_map.iter_rules())
    resources._scones_underscore_only = (url_map, verdict)  # rolo swaps the map on each change
    return verdict


def _skip_resource_router(original: Callable[..., Any], self: Any, chain: Any, context: Any,
                          response: Any) -> Any:  # fmt: skip
    path = context.request.path
    try:
        skip = not path.startswith("/_") and _only_underscore_routes(self.resources)
    except Exception:  # noqa: BLE001 -- rolo changed: route as LocalStack does
        skip = False
    if not skip:
        return original(self, chain, context, response)
    return None


def install_internal_router_skip() -> bool:
    try:
        from localstack.aws.handlers.internal import LocalstackResourceHandler
    except ImportError as err:
        LOG.warning("speedups: %s; every request goes through the internal router", err)
        return False
    return patching.guarded(
        LocalstackResourceHandler,
        "__call__",
        _skip_resource_router,
        label="speedups: internal router skip",
        params=("self", "chain", "context", "response"),
        source=("self.resources.dispatch(context.request)", "except NotFound"),
    )


# ------------------------------ 9. warm Lambda environments first ---------------------------
# Soft cap per function version on this machine: past it an on-demand invoke waits (up to
# WARM_WAIT_S) for a busy environment of that function to come free before starting another.
# Default: one per core, at least 2. SCONES_EMULATOR_LAMBDA_WARM_ENVS / _WARM_WAIT_MS change them.
WARM_ENVS = int(os.environ.get("SCONES_EMULATOR_LAMBDA_WARM_ENVS") or max(2, os.cpu_count() or 2))
WARM_WAIT_S = float(os.environ.get("SCONES_EMULATOR_LAMBDA_WARM_WAIT_MS") or 1000) / 1000
_warm_lock = threading.Lock()
# One condition per version manager, on _warm_lock: a release wakes one waiter of that function
# (one shared condition with notify_all woke every waiting invoke of every function to re-check).
_warm_conditions: dict[str, threading.Condition] = {}
_warm_starting: Counter[str] = Counter()  # starts in flight, per version manager
# Invokes let through and not yet holding an environment, per version manager: "claim" = one
# READY environment is theirs (so N free environments let N waiters through, not all of them:
# the losers of that race used to start an environment each); "start" = may start one.
_warm_let_through: Counter[tuple[str, str]] = Counter()


def _condition(version_manager_id: str) -> threading.Condition:
    """The condition this function's waiters wait on (caller holds _warm_lock)."""
    condition = _warm_conditions.get(version_manager_id)
    if condition is None:
        condition = _warm_conditions[version_manager_id] = threading.Condition(_warm_lock)
    return condition


def _wait_for_warm(service: Any, version_manager_id: str, ready: Any, on_demand: Any) -> str:
    """Wait until this invoke may go on, and say why: "claim" (a READY environment of this
    function is left for it) or "start" (fewer than WARM_ENVS environments exist or are
    starting; or it waited WARM_WAIT_S and fewer than WARM_ENVS starts of this function are in
    flight, so starts past the cap come WARM_ENVS at a time instead of one per waiting invoke)."""
    deadline = time.monotonic() + WARM_WAIT_S
    with _warm_lock:
        condition = _condition(version_manager_id)
        while True:
            envs = [
                e
                for e in list(service.environments.get(version_manager_id, {}).values())
                if e.initialization_type == on_demand
            ]
            free = sum(e.status == ready for e in envs)
            if free > _warm_let_through[version_manager_id, "claim"]:
                return _let_through(version_manager_id, "claim")
            # an invoke let through to start is in both counts while it starts: count it once
            starting = max(
                _warm_starting[version_manager_id], _warm_let_through[version_manager_id, "start"]
            )
            if len(envs) + starting < WARM_ENVS:
                return _let_through(version_manager_id, "start")
            left = deadline - time.monotonic()
            if left <= 0 and starting < WARM_ENVS:
                return _let_through(version_manager_id, "start")
            # a release or the end of a start wakes one waiter; the timeout re-checks anyway,
            # so a missed wake-up costs at most WARM_WAIT_S
            condition.wait(left if left > 0 else WARM_WAIT_S)


def _let_through(version_manager_id: str, why: str) -> str:
    _warm_let_through[version_manager_id, why] += 1  # caller holds _warm_lock
    return why


def _wake_one(version_manager_id: str, let_through: str | None = None) -> None:
    """Wake one waiter of this function: an environment was released, a start ended, or an
    invoke let through (``let_through``) now holds an environment or gave up."""
    with _warm_lock:
        if let_through is not None:
            _warm_let_through[version_manager_id, let_through] -= 1
        _condition(version_manager_id).notify()


def install_lambda_warm_first() -> bool:
    try:
        from localstack.services.lambda_.invocation.assignment import AssignmentService
        from localstack.services.lambda_.invocation.execution_environment import RuntimeStatus
        from localstack.services.lambda_.invocation.lambda_models import InitializationType
    except ImportError as err:
        LOG.warning("speedups: %s; Lambda starts an environment whenever none is free", err)
        return False
    on_demand, ready = InitializationType.on_demand, RuntimeStatus.READY

    @contextlib.contextmanager
    def get_environment(original: Callable[..., Any], self: Any, version_manager_id: str,
                        function_version: Any, provisioning_type: Any) -> Any:  # fmt: skip
        why = None
        if provisioning_type == on_demand:
            why = _wait_for_warm(self, version_manager_id, ready, on_demand)
        try:
            with original(self, version_manager_id, function_version, provisioning_type) as env:
                if why is not None:  # reserved or started: the claim or start is used up
                    _wake_one(version_manager_id, why)
                    why = None
                yield env
        finally:  # released (or stopped) by LocalStack's own context manager by now
            _wake_one(version_manager_id, why)  # why: the start failed before an env was ours

    def start_environment(original: Callable[..., Any], self: Any, version_manager_id: str,
                          function_version: Any) -> Any:  # fmt: skip
        with _warm_lock:
            _warm_starting[version_manager_id] += 1
        try:
            return original(self, version_manager_id, function_version)
        finally:
            with _warm_lock:
                _warm_starting[version_manager_id] -= 1
                _condition(version_manager_id).notify()  # a start ended: wake one waiter

    # Both or neither: get_environment's wait counts the starts start_environment records.
    return patching.guarded(
        [
            patching.Target(AssignmentService, "start_environment", start_environment,
                            ("self", "version_manager_id", "function_version"),
                            ("ExecutionEnvironment(", ".start()")),
            patching.Target(AssignmentService, "get_environment", get_environment,
                            ("self", "version_manager_id", "function_version",
                             "provisioning_type"),
                            ("environment.reserve()", "self.start_environment(",
                             "execution_environment.release()")),
        ],
        label="speedups: Lambda warm environments first",
    )  # fmt: skip


# ------------------------------ 10. service metrics straight to CloudWatch ---------------------


def _cloudwatch_database() -> Any:
    """The running CloudWatch provider's metrics database, or None (not started, not v2)."""
    from localstack.services.plugins import SERVICE_PLUGINS

    if not SERVICE_PLUGINS.is_running("cloudwatch"):
        return None
    provider = getattr(SERVICE_PLUGINS.get_service("cloudwatch"), "_provider", None)
    database = getattr(provider, "cloudwatch_database", None)
    return database if callable(getattr(database, "add_metric_data", None)) else None


def _put_metric(account_id: str | None, region: str | None, namespace: str, datum: dict) -> bool:
    """Store one datum as PutMetricData's handler would (provider_v2.put_metric_data); False
    when the database cannot be reached directly (the caller then takes the API path)."""
    from localstack.utils.cloudwatch import cloudwatch_util

    database = _cloudwatch_database() if account_id and region else None
    if database is None:
        return False
    if cloudwatch_util.is_api_enabled("cloudwatch"):
        try:
            database.add_metric_data(account_id, region, namespace, [datum])
        except Exception as e:  # noqa: BLE001 -- as the originals: log, never fail the caller
            LOG.info('Unable to put metric data for metric "%s" to CloudWatch: %s',
                     datum["MetricName"], e)  # fmt: skip
    return True


def _publish_lambda_metric(original: Callable[..., Any], metric: str, value: Any, kwargs: Any,
                           account_id: str | None = None,
                           region_name: str | None = None) -> None:  # fmt: skip
    from datetime import UTC, datetime

    from localstack.utils.cloudwatch.cloudwatch_util import dimension_lambda

    datum = {
        "MetricName": metric,
        "Dimensions": dimension_lambda(kwargs),
        "Timestamp": datetime.now(UTC),
        "Value": value,
    }
    if not _put_metric(account_id, region_name, "AWS/Lambda", datum):
        original(metric, value, kwargs, account_id=account_id, region_name=region_name)


def _publish_sqs_metric(original: Callable[..., Any], account_id: str, region: str,
                        queue_name: str, metric: str, value: float = 1,
                        unit: str = "Count") -> None:  # fmt: skip
    from datetime import UTC, datetime

    datum = {
        "MetricName": metric,
        "Dimensions": [{"Name": "QueueName", "Value": queue_name}],
        "Unit": unit,
        "Timestamp": datetime.now(UTC),
        "Value": value,
    }
    if not _put_metric(account_id, region, "AWS/SQS", datum):
        original(account_id, region, queue_name, metric, value=value, unit=unit)


def install_metrics_direct() -> bool:
    try:
        lambda_metrics = importlib.import_module("localstack.services.lambda_.invocation.metrics")
        sqs_provider = importlib.import_module("localstack.services.sqs.provider")
        from localstack.services.cloudwatch.provider_v2 import CloudwatchProvider
        from localstack.utils.cloudwatch import cloudwatch_util
    except ImportError as err:
        LOG.warning("speedups: %s; service metrics go through PutMetricData", err)
        return False
    if not (
        callable(getattr(cloudwatch_util, "dimension_lambda", None))
        and callable(getattr(cloudwatch_util, "is_api_enabled", None))
        and patching.source_has(
            CloudwatchProvider.put_metric_data,
            "self.cloudwatch_database.add_metric_data(",
            "context.account_id, context.region, namespace, metric_data",
        )
    ):
        LOG.warning("speedups: CloudWatch's PutMetricData changed; service metrics left alone")
        return False
    label = "speedups: metrics direct"
    lambda_done = patching.guarded(
        lambda_metrics,
        "publish_lambda_metric",
        _publish_lambda_metric,
        label=label,
        params=("metric", "value", "kwargs", "account_id", "region_name"),
        source=('Namespace="AWS/Lambda"', "dimension_lambda(kwargs)", "put_metric_data("),
    )
    sqs_done = patching.guarded(
        sqs_provider,
        "publish_sqs_metric",
        _publish_sqs_metric,
        label=label,
        params=("account_id", "region", "queue_name", "metric", "value", "unit"),
        source=('Namespace="AWS/SQS"', '"QueueName", "Value": queue_name', "put_metric_data("),
    )
    return lambda_done and sqs_done


# ------------------------------ 11. internal calls: the signature's scope only ---------------


class _ScopeOnlySigV4:
    """SigV4's headers without the signature: the credential scope (access key, date, region,
    service) that LocalStack reads an internal request's account and region from, and a fixed
    signature that nothing checks (LocalStack's own ``mock_aws_request_headers`` does the same).
    Requests bound anywhere but LocalStack's own gateway are signed for real by ``signer``."""

    def __init__(self, signer: Any, internal_url: str) -> None:
        self._signer, self._internal_url = signer, internal_url

    def add_auth(self, request: Any) -> None:
        signer = self._signer
        if signer.credentials is None or self._internal_url not in request.url:
            signer.add_auth(request)
            return
        from datetime import UTC, datetime

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        scope = f"{stamp[:8]}/{signer._region_name}/{signer._service_name}/aws4_request"
        headers = request.headers
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in headers:
                del headers[name]
        headers["X-Amz-Date"] = stamp
        if signer.credentials.token:
            headers["X-Amz-Security-Token"] = signer.credentials.token
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={signer.credentials.access_key}/{scope}, "
            f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}"
        )


def _scope_only_signing(client: Any, internal_url: str, plain: tuple[type, ...]) -> None:
    """Make ``client``'s request signer hand out _ScopeOnlySigV4 for plain SigV4 (not S3's)."""
    request_signer = client._request_signer
    get_auth_instance = request_signer.get_auth_instance

    def get_auth_instance_scope_only(*args: Any, **kwargs: Any) -> Any:
        auth = get_auth_instance(*args, **kwargs)
        if type(auth) in plain:  # exact: S3's SigV4 subclasses and query signing stay real
            return _ScopeOnlySigV4(auth, internal_url)
        return auth

    request_signer.get_auth_instance = get_auth_instance_scope_only


def install_internal_signing() -> bool:
    try:
        import botocore.auth
        import botocore.signers
        from localstack.aws.connect import InternalClientFactory, get_service_endpoint
    except ImportError as err:
        LOG.warning("speedups: %s; internal calls signed in full", err)
        return False
    plain: tuple[type, ...] = (botocore.auth.SigV4Auth,)
    try:
        import botocore.crt.auth

        plain += (botocore.crt.auth.CrtSigV4Auth,)
    except ImportError:  # no awscrt: botocore signs in Python
        pass
    if not all(
        patching.parameters(cls.__init__) == ("self", "credentials", "service_name", "region_name")
        for cls in plain
    ) or not patching.source_has(
        botocore.signers.RequestSigner.sign, "auth = self.get_auth_instance(", "auth.add_auth("
    ):
        LOG.warning("speedups: botocore's signer changed; internal calls signed in full")
        return False

    def _get_client_post_hook(original: Callable[..., Any], self: Any, client: Any) -> Any:
        client = original(self, client)
        try:  # the address GatewayShortCircuit serves in memory (IN_MEMORY_CLIENT)
            _scope_only_signing(client, get_service_endpoint(), plain)
        except Exception as err:  # noqa: BLE001 -- keep the client as LocalStack built it
            LOG.debug("speedups: internal signing left alone for %s: %s", client, err)
        return client

    return patching.guarded(
        InternalClientFactory,
        "_get_client_post_hook",
        _get_client_post_hook,
        label="speedups: internal signing",
        params=("self", "client"),
        source=("_handler_inject_dto_header", "GatewayShortCircuit.modify_client"),
    )


# ------------------------------ 12. Step Functions -> Lambda in-process ---------------------


def _operation_handler(service_name: str, operation: str) -> tuple[Any, Any] | None:
    """A running service's (service model, dispatcher of ``operation``): what the gateway's
    skeleton calls once it has parsed a request. None if the service is not running yet or its
    skeleton no longer looks as read (the call then takes the gateway)."""
    from localstack.services.plugins import SERVICE_PLUGINS

    if not SERVICE_PLUGINS.is_running(service_name):
        return None
    container = SERVICE_PLUGINS.get_service_container(service_name)
    skeleton = getattr(container.service, "skeleton", None)
    dispatch = getattr(skeleton, "dispatch_table", None) or {}
    if operation not in dispatch or not hasattr(skeleton, "service"):
        return None
    return skeleton.service, dispatch[operation]


def _request_context(
    service: Any, operation: str, account: str, region: str, request: dict, path: str, headers: dict
) -> Any:
    """The RequestContext the gateway's handlers would hand the dispatcher: service and
    operation, account and region, the parsed request, a request id, an X-Ray trace header."""
    from localstack.aws.api import RequestContext
    from localstack.http import Request
    from localstack.utils.xray.trace_header import TraceHeader

    context = RequestContext(Request("POST", path, headers=headers))
    context.service = service
    context.operation = service.operation_model(operation)
    context.region, context.account_id = region, account
    context.service_request = request
    context.trace_context["aws_trace_header"] = TraceHeader().ensure_root_exists()
    return context


class DirectLambdaClient:
    """A Step Functions task's Lambda client whose ``invoke`` calls the Lambda service's own
    ``Invoke`` handler in this process, with the request context the gateway would have built
    (the account from the client's assumed-role credentials, its region, a request id and an
    X-Ray trace header), instead of serialising, signing, parsing and serialising the call
    back through the gateway. It answers as botocore would: the parsed fields, ``Payload`` as a
    ``StreamingBody``, ``ResponseMetadata`` with the headers LocalStack's Invoke sends, and a
    service error as ``ClientError`` (code, message, status, request id: what Step Functions
    turns into ``Lambda.<Code>``). Every other method is the real client's."""

    def __init__(self, client: Any) -> None:
        from localstack.aws.accounts import get_account_id_from_access_key_id

        self._client = client
        credentials = client._request_signer._credentials.get_frozen_credentials()
        self._account = get_account_id_from_access_key_id(credentials.access_key)
        self._region = client.meta.region_name
        self._user_agent = client.meta.config.user_agent or "Botocore"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def invoke(self, **params: Any) -> dict:
        import io
        from email.utils import formatdate

        from botocore.exceptions import ClientError
        from botocore.response import StreamingBody
        from localstack.aws.api import ServiceException

        found = _operation_handler("lambda", "Invoke")
        if found is None:
            return self._client.invoke(**params)
        service, dispatch = found
        request = dict(params)
        if request.get("Payload") is not None:  # the parser hands Invoke a stream
            payload = request["Payload"]
            request["Payload"] = io.BytesIO(
                payload if isinstance(payload, bytes) else str(payload).encode()
            )
        context = _request_context(
            service,
            "Invoke",
            self._account,
            self._region,
            request,
            "/2015-03-31/functions/invocations",
            {"User-Agent": self._user_agent},
        )
        request_id = context.request_id
        headers = {
            "x-amzn-requestid": request_id,
            "x-amz-request-id": request_id,
            "date": formatdate(usegmt=True),
        }
        try:
            response = dict(dispatch(context, request) or {})
        except ServiceException as err:
            raise ClientError(
                {
                    "Error": {"Message": err.message, "Code": err.code},
                    "ResponseMetadata": {
                        "RequestId": request_id,
                        "HTTPStatusCode": err.status_code,
                        "HTTPHeaders": headers | {"x-amzn-errortype": err.code},
                        "RetryAttempts": 0,
                    },
                    "Type": "User" if err.sender_fault else "Service",
                    "Message": err.message,
                },
                "Invoke",
            ) from err
        body = response.get("Payload") or b""
        body = body if isinstance(body, bytes) else str(body).encode()
        response["Payload"] = StreamingBody(io.BytesIO(body), len(body))
        headers["content-length"] = str(len(body))
        if response.get("ExecutedVersion"):
            headers["x-amz-executed-version"] = response["ExecutedVersion"]
        if response.get("FunctionError"):
            headers["x-amz-function-error"] = response["FunctionError"]
        response["ResponseMetadata"] = {
            "RequestId": request_id,
            "HTTPStatusCode": response.get("StatusCode", 200),
            "HTTPHeaders": headers,
            "RetryAttempts": 0,
        }
        return response


def _direct_lambda_client_for(
    original: Callable[..., Any], service: str, region: str, state_credentials: Any
) -> Any:
    client = original(service=service, region=region, state_credentials=state_credentials)
    if service != "lambda":
        return client
    # kept on the client itself: one per cached client (speedup 3), gone with an uncached one
    direct = getattr(client, "_scones_direct", None)
    if direct is None:
        try:
            direct = client._scones_direct = DirectLambdaClient(client)
        except Exception as err:  # noqa: BLE001 -- botocore's internals moved: the plain client
            LOG.warning("speedups: Step Functions -> Lambda through the gateway (%s)", err)
            return client
    return direct


def install_lambda_invoke_direct() -> bool:
    """Step Functions' Lambda tasks get a DirectLambdaClient (``lambda_eval_utils`` asks
    ``boto_client_for`` for its client, and calls only ``invoke`` on it)."""
    try:
        utils = importlib.import_module(
            f"{SFN}.asl.component.state.state_execution.state_task.lambda_eval_utils"
        )
    except ImportError as err:
        LOG.warning("speedups: %s; Step Functions invokes Lambda through the gateway", err)
        return False
    return patching.guarded(
        utils,
        "boto_client_for",
        _direct_lambda_client_for,
        label="speedups: Step Functions -> Lambda in-process",
        params=("service", "region", "state_credentials"),
        check=lambda _: patching.source_has(
            utils._invoke_lambda_function,
            'boto_client_for(\n        service="lambda"',
            "lambda_client.invoke(**parameters)",
        ),
    )


# ------------------------------ 13. Lambda keep-alive timers on one thread ------------------


class SharedTimer:
    """``threading.Timer``'s ``start``/``cancel`` without a thread per timer: every pending one
    waits in one scheduler thread's heap. The function still runs in a thread of its own (a
    keep-alive that passes stops a runtime process, which may take a while)."""

    _lock = threading.Condition()
    _heap: list = []  # (due, sequence, timer); cancelled ones are dropped when seen
    _live = 0
    _sequence = 0
    _thread: threading.Thread | None = None

    def __init__(
        self, interval: float, function: Callable[..., Any], args: Any = None, kwargs: Any = None
    ) -> None:
        self.interval, self.function = interval, function
        self.args, self.kwargs = args or (), kwargs or {}
        self._state = "new"  # -> pending -> fired | cancelled

    def start(self) -> None:
        cls = SharedTimer
        with cls._lock:
            if self._state != "new":
                raise RuntimeError("timers can only be started once")
            self._state = "pending"
            cls._sequence += 1
            heapq.heappush(cls._heap, (time.monotonic() + self.interval, cls._sequence, self))
            cls._live += 1
            if len(cls._heap) > 1024 and len(cls._heap) > 4 * cls._live:  # mostly cancelled
                cls._heap = [entry for entry in cls._heap if entry[2]._state == "pending"]
                heapq.heapify(cls._heap)
            if cls._thread is None:
                cls._thread = threading.Thread(target=cls._run, name="scones-timers", daemon=True)
                cls._thread.start()
            cls._lock.notify()

    def cancel(self) -> None:
        with SharedTimer._lock:
            if self._state == "pending":
                SharedTimer._live -= 1
            if self._state in ("new", "pending"):
                self._state = "cancelled"

    @classmethod
    def _run(cls) -> None:
        while True:  # a daemon thread: it ends with the process
            with cls._lock:
                while cls._heap and cls._heap[0][2]._state != "pending":
                    heapq.heappop(cls._heap)
                if not cls._heap:
                    cls._lock.wait()
                    continue
                due, _, timer = cls._heap[0]
                if due > time.monotonic():
                    cls._lock.wait(due - time.monotonic())
                    continue
                heapq.heappop(cls._heap)
                timer._state = "fired"
                cls._live -= 1
            threading.Thread(
                target=timer.function,
                args=timer.args,
                kwargs=timer.kwargs,
                name="scones-timer-fired",
                daemon=True,
            ).start()


def install_shared_timers() -> bool:
    """Lambda execution environments' keep-alive and start-up timers become SharedTimers."""
    try:
        module = importlib.import_module(
            "localstack.services.lambda_.invocation.execution_environment"
        )
    except ImportError as err:
        LOG.warning("speedups: %s; a timer thread per Lambda invoke stays", err)
        return False
    environment = getattr(module, "ExecutionEnvironment", None)

    def only_start_and_cancel(_: Any) -> bool:  # what SharedTimer offers, and all they use
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            return False
        uses = {
            line.split("_timer.", 1)[1].split("(", 1)[0]
            for line in source.splitlines()
            if "_timer." in line
        }
        return environment is not None and uses == {"start", "cancel"}

    return patching.guarded(
        module,
        "Timer",
        SharedTimer,
        label="speedups: Lambda timers on one thread",
        params=("interval", "function", "args", "kwargs"),
        check=only_start_and_cancel,
        pass_target=False,
    )


# ------------------------------ 14. S3 -> EventBridge in-process ---------------------------


def _put_s3_event_in_process(original: Callable[..., Any], self: Any, ctx: Any, config: Any):
    """S3's EventBridge notifier, with the event handed to EventBridge's ``PutEvents``
    dispatcher in this process, in the bucket owner's account and the bucket's region (the
    internal client's credentials and region). It was a botocore call through the gateway:
    serialised, signed, routed, parsed, and its answer serialised and parsed again, which
    nobody reads (~8 % of the emulator's time under load). The entry needs no conversion:
    ``Time`` is the naive datetime botocore would send as UTC seconds and EventBridge formats
    to the second either way. Failures are logged as the original logs them."""
    found = _operation_handler("events", "PutEvents")
    if found is None:
        return original(self, ctx, config)
    service, dispatch = found
    request = {"Entries": [self._get_event_payload(ctx)]}
    context = _request_context(
        service, "PutEvents", ctx.bucket_account_id, ctx.bucket_location, request, "/", {}
    )
    try:
        dispatch(context, request)
    except Exception:  # noqa: BLE001 -- as the original: S3's request never fails for it
        LOG.error(
            'Unable to send notification for S3 bucket "%s" to EventBridge',
            ctx.bucket_name,
            exc_info=LOG.isEnabledFor(logging.DEBUG),
        )


def install_s3_events_direct() -> bool:
    """S3's EventBridge notifications go to EventBridge in-process."""
    try:
        notifications = importlib.import_module("localstack.services.s3.notifications")
    except ImportError as err:
        LOG.warning("speedups: %s; S3 sends its events through the gateway", err)
        return False
    return patching.guarded(
        notifications.EventBridgeNotifier,
        "notify",
        _put_s3_event_in_process,
        label="speedups: S3 -> EventBridge in-process",
        params=("self", "ctx", "config"),
        source=(
            "aws_access_key_id=ctx.bucket_account_id, region_name=ctx.bucket_location",
            "entry = self._get_event_payload(ctx)",
            "events_client.put_events(Entries=[entry])",
        ),
    )


def install() -> None:
    """Apply every speedup whose target still looks as expected (idempotent).

    SCONES_EMULATOR_SPEEDUPS_OFF: comma-separated names to leave out (``jsonpath_cache``,
    ``internal_router_skip`` ...: the ``install_`` functions' names), to measure one at a time.
    """
    off = {n.strip() for n in os.environ.get("SCONES_EMULATOR_SPEEDUPS_OFF", "").split(",")}
    for install_one in (
        install_jsonpath_cache,
        install_program_cache,
        install_boto_client_cache,
        install_status_event_filter,
        install_log_batching,
        install_snake_case_cache,
        install_unsynced_metrics,
        install_internal_router_skip,
        install_lambda_warm_first,
        install_metrics_direct,
        install_internal_signing,
        install_lambda_invoke_direct,
        install_shared_timers,
        install_s3_events_direct,
    ):
        if install_one.__name__.removeprefix("install_") not in off:
            install_one()

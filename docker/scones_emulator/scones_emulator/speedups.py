"""Speed up LocalStack's Step Functions and Lambda (eight documented monkeypatches).

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
   emulator's cache, not something persistence.py restores).
8. LocalStack's ``/_localstack/...`` resource router (health, info, plugins ...) is asked first
   about every request, internal service-to-service calls included, and answers through a
   werkzeug URL match (~9 % of the emulator's GIL time in a busy workflow). A request whose path
   does not start with ``/_`` skips it when every route of that router starts with ``/_``
   (checked again whenever routes are added).

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

import dataclasses
import functools
import importlib
import inspect
import json
import logging
import threading
import time
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


class _UnsyncedSqlite:
    """The ``sqlite3`` module as the metrics database helper sees it: connections to the metrics
    database skip the fsync per commit; everything else is the real module."""

    def __init__(self, sqlite3: Any, database: str) -> None:
        self._sqlite3, self._database = sqlite3, database

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqlite3, name)

    def connect(self, database: Any, *args: Any, **kwargs: Any) -> Any:
        conn = self._sqlite3.connect(database, *args, **kwargs)
        if database == self._database:  # not the read-only URI the queries open
            conn.execute("PRAGMA synchronous=OFF")
        return conn


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
        and patching.source_has(database.add_metric_data, "sqlite3.connect(self.METRICS_DB)")
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


def install() -> None:
    """Apply every speedup whose target still looks as expected (idempotent).

    SCONES_EMULATOR_SPEEDUPS_OFF: comma-separated names to leave out (``jsonpath_cache``,
    ``internal_router_skip`` ...: the ``install_`` functions' names), to measure one at a time.
    """
    import os

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
    ):
        if install_one.__name__.removeprefix("install_") not in off:
            install_one()

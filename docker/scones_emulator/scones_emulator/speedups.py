"""Speed up LocalStack's Step Functions interpreter (three documented monkeypatches).

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

Measured on 2 shared cores (another process training a model alongside), SPEEDUPS=0 -> all three:
bench_stepfunctions.py -n 40: JSONPath machine 6.2/s -> 24.3/s, JSONata 12.6/s -> 26.2/s, three
lambda:invoke tasks 2.9/s -> 10.7/s (median execution 1251 ms -> 209 ms); `scones bench workflow`
(300 S3 events) 1.36/s -> 8.35/s, warm p50 651 ms -> 120 ms; with IN_MEMORY_CLIENT=1 as well
10.8/s (300 events), 13.3/s over 1,000 events, p50 94 ms.

Each patch checks the signature of what it replaces and skips itself (with a warning) when
LocalStack has changed it. Disable all with SCONES_EMULATOR_SPEEDUPS=0.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger(__name__)

CACHE_SIZE = 4096  # distinct JSONPath strings; a workflow has tens
PROGRAM_CACHE_SIZE = 256  # distinct state machine definitions
SFN = "localstack.services.stepfunctions"

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
            setattr(module, attribute, cached_parse(original))
            patched.append(module_name)
    LOG.debug("speedups: jsonpath_ng parse cached in %s", ", ".join(patched))


def _has_parameters(function: Callable[..., Any], expected: tuple[str, ...]) -> bool:
    try:
        return tuple(inspect.signature(function).parameters) == expected
    except (TypeError, ValueError):
        return False


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
    ExecutionWorker._get_evaluation_entrypoint = _get_evaluation_entrypoint
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
    for name, module in list(sys.modules.items()):
        if name.startswith(SFN) and getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = cached
    return True


def install() -> None:
    """Apply every speedup whose target still looks as expected (idempotent)."""
    install_jsonpath_cache()
    install_program_cache()
    install_boto_client_cache()

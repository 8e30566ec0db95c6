"""Cache jsonpath_ng parsing for LocalStack's Step Functions interpreter.

Every JSONPath field of every state (InputPath, Parameters' ``.$`` keys, ResultSelector,
ResultPath, OutputPath) is parsed again on every evaluation, and ``jsonpath_ng.ext.parse``
builds a fresh PLY parser each time: ~29 ms per call on this machine, against ~12 us for
parse-once-then-find (200 x 5 paths, LocalStack venv, Python 3.13). bench_stepfunctions.py,
40 concurrent executions of a 5-state workflow-shaped machine (2 cores):

    JSONPath machine  4.2/s -> 18.7/s, median execution 446 ms -> 22 ms
    JSONata machine   9.1/s -> 18.2/s, median execution  96 ms -> 17 ms

Parsed expressions are immutable trees (``find`` and ``update_or_create`` only read them), so
one parse per distinct path string is safe to share between executions and threads.
Disable with SCONES_EMULATOR_SPEEDUPS=0; ``bench_stepfunctions.py`` measures the effect.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger(__name__)

CACHE_SIZE = 4096  # distinct JSONPath strings; a workflow has tens

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


def install() -> None:
    """Replace each target's ``parse`` with its cached version (idempotent)."""
    import importlib

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

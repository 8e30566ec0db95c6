"""Plugins that LocalStack discovers through entry points (see pyproject.toml); importing is free.

- ``SconesExecutorPlugin``: the ``scones`` Lambda runtime executor (LAMBDA_RUNTIME_EXECUTOR=scones).
- ``dynamodb_moto`` (dynamodb.py): the ``dynamodb:scones`` provider, moto's DynamoDB.
- ``scones_bind_gateway``: LocalStack's Twisted gateway listens on GATEWAY_LISTEN's host only,
  and a stop before it serves ends it (gateway.py).
- ``scones_reap_threads``: forgets LocalStack's finished background threads (threads.py).
- ``scones_patch_stepfunctions``: an on_infra_start hook that gives Step Functions JSONata without
  Java, makes its execution histories match AWS's where LocalStack differs (fidelity.py) and
  applies the Step Functions speedups (speedups.py).
"""

from __future__ import annotations

import logging
import os

from localstack.runtime import hooks
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin

LOG = logging.getLogger(__name__)


class SconesExecutorPlugin(RuntimeExecutorPlugin):
    """Runs Lambda execution environments as host processes (no Docker)."""

    name = "scones"

    def load(self, *args, **kwargs) -> type:
        from scones_emulator.executor import SconesRuntimeExecutor

        return SconesRuntimeExecutor


@hooks.on_infra_start()
def scones_patch_stepfunctions() -> None:
    """Swap the JVM JSONata bridge for jsonata-python; apply fidelity fixes and speedups.

    Fidelity (fidelity.py, always applied: it changes what executions record, to AWS's): a direct
    Lambda ARN task's error cause is the runtime's own text; a payload-template JSONPath that finds
    nothing fails the execution with States.Runtime, no TaskFailed, Retry or Catch; lambda:invoke
    returns SdkHttpMetadata and SdkResponseMetadata; a Distributed Map honours its tolerated
    failures; ListExecutions answers by mapRunArn.
    Speedups: cached jsonpath_ng parses, parsed programs and task boto clients (speedups.py).
    SCONES_EMULATOR_SPEEDUPS=0 turns the speedups off (for measuring or if in doubt).
    """
    from scones_emulator import fidelity, jsonata

    jsonata.install()
    fidelity.install()
    if os.environ.get("SCONES_EMULATOR_SPEEDUPS", "1") != "0":
        from scones_emulator import speedups

        speedups.install()


@hooks.on_infra_start()
def scones_bind_gateway() -> None:
    """Before the gateway server is registered: LocalStack's Twisted server binds 0.0.0.0
    whatever GATEWAY_LISTEN's host; this makes it listen there only, and lets a SIGTERM that
    comes before it serves stop it (gateway.py)."""
    from scones_emulator import gateway

    gateway.install()


@hooks.on_infra_start()
def scones_reap_threads() -> None:
    """Join and drop LocalStack's finished threads as they finish, not at shutdown: kept, they
    exhaust the process's memory mappings after a few thousand executions (threads.py)."""
    from scones_emulator import threads

    threads.install()


@hooks.on_infra_start(priority=-10)
def scones_load_state() -> None:
    """Load the saved state (SCONES_EMULATOR_PERSIST) after the services are created, before the
    gateway serves a request, then save every change (persistence.py)."""
    from scones_emulator import persistence

    persistence.install()


@hooks.on_infra_shutdown(priority=10)
def scones_save_state() -> None:
    """Write the last changes on an orderly stop (SIGTERM), without waiting for the debounce;
    before LocalStack's own hook stops the services (priority 10 runs first)."""
    from scones_emulator import persistence

    persistence.shutdown()

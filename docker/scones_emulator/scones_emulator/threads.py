"""Forget LocalStack's finished background threads, so a long-lived emulator keeps running.

LocalStack keeps every thread it starts through ``localstack.utils.threads.start_thread`` (one
or more per Step Functions execution, Lambda invoke, SQS delivery ...) in the module list
``TMP_THREADS`` until the process shuts down, so that shutdown can stop them. Under Python 3.13
a thread that has finished but is still referenced and never joined keeps its stack mapped
(two memory mappings each): a busy emulator passed ``vm.max_map_count`` (65,530) after about
5,500 workflow executions and then failed every call that starts a thread ("can't start new
thread", MemoryError), which is how the 10,000-execution bench died at ~3,100 on a warmed stack.

A reaper thread joins and drops the finished ones every REAP_S seconds. Shutdown only stops
threads that are still running, so it loses nothing. Removing one entry at a time
(``list.remove``, atomic under the GIL) never drops a thread appended meanwhile. This is a
leak fix, not a speedup: it is always on.
"""

from __future__ import annotations

import logging
import threading
import time

LOG = logging.getLogger(__name__)

REAP_S = 1.0  # a busy workflow finishes ~100 threads a second: a second's worth is cheap to scan

_started = threading.Event()


def reap_once(threads: list) -> int:
    """Join and remove the finished threads of ``threads``; how many were removed.

    The list also holds other things shutdown stops (thread pools) and may hold a thread not
    started yet (no ident): those stay.
    """
    finished = [
        t
        for t in list(threads)
        if isinstance(t, threading.Thread) and t.ident is not None and not t.is_alive()
    ]
    for thread in finished:
        thread.join(0)  # finished: returns at once, and lets Python free its stack
        try:
            threads.remove(thread)
        except ValueError:  # LocalStack's shutdown cleared the list meanwhile
            pass
    return len(finished)


def install() -> bool:
    """Start the reaper (once); False when LocalStack no longer has ``TMP_THREADS``."""
    try:
        from localstack.utils.threads import TMP_THREADS
    except ImportError as err:
        LOG.warning("threads: %s; LocalStack's finished threads are kept until shutdown", err)
        return False
    if not isinstance(TMP_THREADS, list):
        LOG.warning("threads: TMP_THREADS is no longer a list; finished threads are kept")
        return False
    if _started.is_set():
        return True
    _started.set()

    def reap_forever() -> None:
        while True:  # a daemon thread: it ends with the process
            try:
                reap_once(TMP_THREADS)
            except Exception:  # noqa: BLE001 -- never let the reaper die of one bad entry
                LOG.exception("threads: reaping LocalStack's finished threads failed")
            time.sleep(REAP_S)

    threading.Thread(target=reap_forever, name="scones-thread-reaper", daemon=True).start()
    return True

"""ServiceSaver's group commit, with a save that records what it covered (no LocalStack).

The save here stands for a service snapshot: it copies the changes made so far, as the real
one pickles the stores. A SIGKILL of a real emulator after a waited response is
tests/scones/test_durability.py's.
"""

import threading
import time
from itertools import pairwise

from scones_emulator import persistence
from scones_emulator.persistence import ServiceSaver


class Store:
    """Changes, and the saves that covered them: (thread, changes covered, start, end)."""

    def __init__(self, save_s: float = 0.0, fail_first: int = 0) -> None:
        self.lock = threading.Lock()
        self.changes: list[int] = []
        self.saves: list[tuple[str, int, float, float]] = []
        self.save_s = save_s
        self.fail_first = fail_first

    def change(self) -> int:
        with self.lock:
            self.changes.append(len(self.changes))
            return len(self.changes)

    def save(self) -> None:
        began = time.monotonic()
        with self.lock:
            covered = len(self.changes)
            if self.fail_first:
                self.fail_first -= 1
                raise OSError("disk full (the test's)")
        time.sleep(self.save_s)
        with self.lock:
            self.saves.append((threading.current_thread().name, covered, began, time.monotonic()))

    def covered(self) -> int:
        with self.lock:
            return max((s[1] for s in self.saves), default=0)


def stop(saver: ServiceSaver) -> None:
    saver.flush()
    assert not saver._thread.is_alive()


def test_a_waited_change_is_saved_before_touch_returns_without_the_debounce(monkeypatch):
    monkeypatch.setattr(persistence, "DEBOUNCE_S", 60.0)  # a waiter held for it would hang
    store = Store()
    saver = ServiceSaver("test", store.save)
    try:
        for _ in range(3):
            mine = store.change()
            done = threading.Thread(target=saver.touch, args=(True,))
            done.start()
            done.join(timeout=20)
            assert not done.is_alive()
            assert store.covered() >= mine
    finally:
        stop(saver)


def test_a_change_nobody_waits_for_is_saved_by_the_saver_thread_within_the_debounce():
    store = Store()
    saver = ServiceSaver("test", store.save)
    try:
        mine = store.change()
        saver.touch(wait=False)
        deadline = time.monotonic() + persistence.DEBOUNCE_S + 5
        while store.covered() < mine and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.covered() >= mine
        assert store.saves[0][0] == "scones-save-test"
    finally:
        stop(saver)


def test_concurrent_waiters_share_saves_that_never_overlap_and_each_covers_its_change():
    store = Store(save_s=0.02)
    saver = ServiceSaver("test", store.save)
    results: dict[int, tuple[int, float]] = {}
    start = threading.Barrier(16)

    def request() -> None:
        start.wait(timeout=5)
        mine = store.change()
        saver.touch(wait=True)
        results[mine] = (mine, time.monotonic())

    threads = [threading.Thread(target=request) for _ in range(16)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(results) == 16
        spans = sorted((s[2], s[3]) for s in store.saves)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in pairwise(spans))
        for mine, returned in results.values():
            # a save that covered this change ended before its touch returned
            assert any(s[1] >= mine and s[3] <= returned for s in store.saves), mine
        assert len(store.saves) < 16  # group commit: waiters arriving during a save share one
    finally:
        stop(saver)


def test_a_failed_save_is_retried_and_the_waiter_returns_once_its_change_is_saved(monkeypatch):
    monkeypatch.setattr(persistence, "RETRY_S", 0.05)
    store = Store(fail_first=1)
    saver = ServiceSaver("test", store.save)
    try:
        mine = store.change()
        saver.touch(wait=True)
        assert store.covered() >= mine
        assert [s[0] for s in store.saves] == ["scones-save-test"]  # the retry
    finally:
        stop(saver)


def test_flush_saves_what_is_pending_and_stops_the_saver_thread():
    store = Store()
    saver = ServiceSaver("test", store.save)
    mine = store.change()
    saver.touch(wait=False)
    saver.flush()
    assert store.covered() >= mine
    assert not saver._thread.is_alive()

"""The SQS message journals on real files: replay, a torn tail, compaction, deleted queues.

Messages here are plain dicts (the journal pickles whatever a queue gives it); the SIGKILL of a
real emulator with real queues is tests/scones/test_durability.py's.
"""

import os
import threading

from scones_emulator import persistence
from scones_emulator.persistence import MessageJournals

QUEUE = "arn:aws:sqs:us-east-1:000000000000:orders"


def test_replay_keeps_sent_messages_in_order_and_forgets_deleted_and_purged(tmp_path):
    journals = MessageJournals(tmp_path)
    for i in range(5):
        journals.append(QUEUE, "put", f"m{i}", {"Body": str(i)})
    journals.append(QUEUE, "del", "m1")
    journals.append(QUEUE, "put", "m3", {"Body": "a FIFO duplicate"})  # ignored: m3 is there
    journals.commit()
    other = "arn:aws:sqs:us-east-1:000000000000:other"
    journals.append(other, "put", "x", {"Body": "x"})
    journals.append(other, "clear")
    journals.append(other, "put", "y", {"Body": "y"})
    journals.commit()

    again = MessageJournals(tmp_path)

    assert [m["Body"] for m in again.load(QUEUE)] == ["0", "2", "3", "4"]
    assert again.load(other) == [{"Body": "y"}]


def test_a_torn_tail_is_dropped_and_later_records_still_replay(tmp_path):
    journals = MessageJournals(tmp_path)
    journals.append(QUEUE, "put", "kept", {"Body": "kept"})
    journals.append(QUEUE, "put", "torn", {"Body": "torn"})
    journals.commit()
    path = journals.path(QUEUE)
    os.truncate(path, path.stat().st_size - 3)  # a write cut short by a SIGKILL

    after_crash = MessageJournals(tmp_path)
    assert after_crash.load(QUEUE) == [{"Body": "kept"}]
    after_crash.append(QUEUE, "put", "later", {"Body": "later"})
    after_crash.commit()

    assert MessageJournals(tmp_path).load(QUEUE) == [{"Body": "kept"}, {"Body": "later"}]


def test_a_journal_of_mostly_deleted_messages_is_compacted(tmp_path, monkeypatch):
    monkeypatch.setattr(persistence, "COMPACT_MIN_RECORDS", 50)
    journals = MessageJournals(tmp_path)
    sizes = []
    for i in range(1000):
        journals.append(QUEUE, "put", f"m{i}", {"Body": "x" * 200})
        if i % 100:  # one in a hundred stays
            journals.append(QUEUE, "del", f"m{i}")
        journals.commit()
        sizes.append(journals.path(QUEUE).stat().st_size)

    # bounded by the live messages plus the dead allowance, not by the 2,000 records written
    assert max(sizes[500:]) < 200 * (10 + 50 + 2 * 10) * 1.5
    assert [m["Body"] for m in MessageJournals(tmp_path).load(QUEUE)] == ["x" * 200] * 10


def test_concurrent_senders_share_fsyncs_and_lose_nothing(tmp_path):
    journals = MessageJournals(tmp_path)

    def send(worker: int) -> None:
        for i in range(200):
            journals.append(QUEUE, "put", f"{worker}-{i}", worker)
            journals.commit()

    threads = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert sorted(MessageJournals(tmp_path).load(QUEUE)) == sorted(list(range(4)) * 200)


def test_journals_of_deleted_queues_are_removed(tmp_path):
    journals = MessageJournals(tmp_path)
    gone = "arn:aws:sqs:us-east-1:000000000000:gone"
    journals.append(QUEUE, "put", "a", 1)
    journals.append(gone, "put", "b", 2)
    journals.commit()

    journals.keep_only({QUEUE})

    assert journals.path(QUEUE).exists() and not journals.path(gone).exists()
    assert MessageJournals(tmp_path).load(gone) == []

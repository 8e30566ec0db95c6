"""Durable emulator state: service stores saved to disk crash-safely and loaded at start.

LocalStack core ships the state API (``Service.accept_state_visitor``, ``StateLifecycleHook``,
``AssetDirectory``) but saving and loading is its paid edition's; this module is that part.
Layout under ``SCONES_EMULATOR_PERSIST`` (one directory per stack):

- ``<service>.pickle``: each service's ``AccountRegionBundle`` (every account/region store's
  attributes), written to a temp file, fsynced, renamed over the old one, directory fsynced:
  a reader (or a SIGKILL) sees the old snapshot or the new one, never half of one.
- ``s3/bodies/<bucket>/<sha256>``: S3 object bodies, one file per object version, written (same
  temp + fsync + rename) before the record that names them; a body whose object was overwritten
  or deleted is removed once the record saying so is on disk, and any file no record names
  (left by a crash between the two) at load and on shutdown.
- ``s3/objects/<sha256 of the bucket name>.journal``: each bucket's objects, one record per
  object version or delete marker (its metadata and its place among the key's versions),
  appended when LocalStack's key store sets or pops it; the S3 snapshot keeps the buckets
  without their objects (multipart uploads in progress stay in it). A write used to wait for a
  snapshot that pickled every object of every bucket, so each upload cost more as a bucket grew
  (the bench's 10,000 images: throughput fell 38 %); a record costs the same at any bucket size.
  A journal per bucket, not a file per object version beside its body: the body is already one
  fsync per upload, and a journal adds one fsync per bucket per batch (group commit) where a
  record file would add one per object; the SQS journals' code (framing, torn-tail replay,
  compaction when mostly dead) serves both. The key stores' set/pop are patched through
  patching.guarded; if LocalStack's have changed, objects stay in the S3 snapshot (a write
  then waits for a whole snapshot, as before). A snapshot says which of the two it is, so a
  load never mixes a stale journal into a whole snapshot.
- ``stepfunctions/<sha256>.pickle``: one record per execution (its description and history),
  written at StartExecution and again when it ends; the store snapshot leaves executions out,
  so a busy workflow rewrites small files, not the whole history.
- ``sqs/<sha256 of the queue ARN>.journal``: each queue's messages, as appended records (sent,
  deleted, purged; length + CRC framed, fsynced before the call's response leaves), rewritten
  with only its live messages when mostly dead; the SQS snapshot keeps the queues without their
  messages. A send used to wait for a snapshot that pickled every message of every queue, so
  each send cost more as queues nobody drains (a bench's review and notification queues) grew;
  a journal record costs the same at any queue length. Replay stops at a torn tail (a record
  whose fsync never returned, so never acknowledged). Receipts and visibility are not kept:
  after a restart a received but undeleted message is visible again, as after its timeout.
  The queues' methods are patched through patching.guarded; if LocalStack's have changed, the
  messages stay in the SQS snapshot (a send then waits for a whole snapshot, as before).

Group commit: a response handler marks a service dirty after each successful mutating request;
one saver thread per service writes the next snapshot. Control-plane calls, S3 writes and
StartExecution wait until a snapshot that includes them is on disk before their response
leaves, SQS sends/deletes until their journal records are, and S3 object writes until their
bodies and records are (one fsync covers every record written before it), so a committed
object, message or execution survives SIGKILL; an
execution's end is saved at once (its own thread waits for the save, milliseconds after the
status changes); other changes (execution progress, messages delivered by internal calls
no response handler sees) are saved within DEBOUNCE_S.
Executions that were running when the emulator stopped are loaded as FAILED with the error
``EmulatorRestarted`` (they cannot resume mid-state); ``scones redrive`` runs them again.
"""

from __future__ import annotations

import copy
import copyreg
import gc
import hashlib
import io
import logging
import os
import pickle
import shutil
import struct
import threading
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path

from scones_emulator import patching

LOG = logging.getLogger(__name__)

# default: unset = no persistence. The stack sets it to <state dir>/emulator/state.
PERSIST_DIR = os.environ.get("SCONES_EMULATOR_PERSIST") or ""
# Services whose state is saved; the workflow's. Logs are left out (rebuilt by new runs).
SERVICES = ("iam", "s3", "sqs", "sns", "lambda", "events", "stepfunctions")
DEBOUNCE_S = 0.5  # changes nobody waits for are batched this long before a save
RETRY_S = 1.0  # seconds before a failed save (a store changing under the pickler) is tried again
COMMIT_TIMEOUT_S = 30.0  # a waiting request gives up (and logs) after this; it is still saved
COMPACT_MIN_RECORDS = 1000  # a queue journal is rewritten when dead records exceed live by this
PICKLE_RETRIES = 5  # another thread may resize a dict mid-pickle: take the snapshot again
RESTART_ERROR = "EmulatorRestarted"
RESTART_CAUSE = (
    "the emulator stopped while this execution was running; it cannot resume mid-state. "
    "`scones redrive` runs it again with the same input"
)
# Operations that change nothing worth keeping, or whose effect is saved elsewhere.
READ_PREFIXES = ("Get", "List", "Describe", "Head", "Select", "Test", "Validate")
NO_STATE = {
    ("lambda", "Invoke"),
    ("lambda", "InvokeAsync"),
    ("lambda", "InvokeWithResponseStream"),
    ("sns", "Publish"),  # delivery to a queue is the queue's SendMessage
    ("sns", "PublishBatch"),
    ("events", "PutEvents"),  # the target's own call (StartExecution) is saved
    ("stepfunctions", "StartSyncExecution"),
    # receipts and visibility are not kept: after a restart a message is visible again
    ("sqs", "ChangeMessageVisibility"),
    ("sqs", "ChangeMessageVisibilityBatch"),
}
# SQS calls that change messages: their records are in the queue journals, which they sync
# (a ReceiveMessage may move messages to a dead-letter queue).
SQS_JOURNALLED = {
    "SendMessage",
    "SendMessageBatch",
    "DeleteMessage",
    "DeleteMessageBatch",
    "PurgeQueue",
    "ReceiveMessage",
}
# S3 calls that change an object's metadata in place (no key store set/pop sees them): the
# object named in the request is recorded again.
S3_OBJECT_METADATA = {"PutObjectAcl", "PutObjectLegalHold", "PutObjectRetention", "RestoreObject"}
BUCKET_TAG = "_scones_bucket"  # set on a key store once its bucket is known: saves a lookup
# Saved, but nobody waits: losing one only re-runs an execution.
NO_WAIT = {
    ("stepfunctions", "SendTaskSuccess"),
    ("stepfunctions", "SendTaskFailure"),
    ("stepfunctions", "SendTaskHeartbeat"),
}
# Step Functions calls that change only executions (each saved in its own record): the store's
# other state (state machines, versions, aliases, activities) is not pickled again for them.
EXECUTIONS_ONLY = {
    "StartExecution",
    "StopExecution",
    "SendTaskSuccess",
    "SendTaskFailure",
    "SendTaskHeartbeat",
}


# ------------------------------ Files ------------------------------


def write_atomic(path: Path, data: bytes, sync_dir: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old file or the new, whole.

    ``sync_dir=False`` when the caller fsyncs the directory once after a batch of files.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        f = open(tmp, "wb")  # noqa: SIM115 -- closed by the with below
    except FileNotFoundError:  # the folder's first file: pathlib's mkdir on every write was
        path.parent.mkdir(parents=True, exist_ok=True)  # ~1.4 % of the emulator's GIL time
        f = open(tmp, "wb")  # noqa: SIM115
    with f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if sync_dir:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX: the directory entry is data of the directory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_lock():
    return threading.Lock()


def _new_rlock():
    return threading.RLock()


# Locks come back new and released: whoever held one is gone with the old process.
_DISPATCH = copyreg.dispatch_table.copy()
_DISPATCH[type(threading.Lock())] = lambda _lock: (_new_lock, ())
_DISPATCH[type(threading.RLock())] = lambda _lock: (_new_rlock, ())


def dumps(obj: object) -> bytes:
    """Pickle with locks reduced to fresh ones; retried when a dict changes under the pickler.

    The C pickler is fast enough to run per commit; what it cannot pickle (LocalStack 4.9's SQS
    queues hold lambdas) goes through LocalStack's own dill-based pickler instead.
    """
    for attempt in range(PICKLE_RETRIES):
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.dispatch_table = _DISPATCH
        try:
            pickler.dump(obj)
            return buffer.getvalue()
        except (pickle.PicklingError, AttributeError, TypeError):
            from localstack.state import pickle as localstack_pickle

            return localstack_pickle.dumps(obj)
        except RuntimeError as err:  # "dictionary changed size during iteration"
            if attempt == PICKLE_RETRIES - 1:
                raise
            LOG.debug("snapshot raced a writer (%s); again", err)
            time.sleep(0.01)
    raise AssertionError("unreachable")


def loads(data: bytes) -> object:
    """Either kind ``dumps`` wrote (dill reads plain pickles too)."""
    from localstack.state import pickle as localstack_pickle

    return localstack_pickle.loads(data)


# ------------------------------ Store bundles ------------------------------


def bundle_state(bundle, skip: tuple[str, ...] = ()) -> dict:
    """An ``AccountRegionBundle``'s data: each store's attributes, cross-region and -account."""
    attrs_of = {}
    globals_of = {}
    for account_id, regions in dict(bundle).items():
        globals_of[account_id] = dict(regions._global)
        attrs_of[account_id] = {
            region: {
                k: v
                for k, v in dict(vars(store)).items()
                if k.startswith("attr_") and k[len("attr_") :] not in skip
            }
            for region, store in dict(regions).items()
        }
    return {"stores": attrs_of, "global": globals_of, "universal": dict(bundle._universal)}


def restore_bundle(bundle, state: dict) -> None:
    """Put saved data back into the live bundle (modules hold it by reference: fill, not swap)."""
    bundle.reset()
    bundle._universal.update(state["universal"])
    for account_id, regions in state["stores"].items():
        region_bundle = bundle[account_id]
        region_bundle._global.update(state["global"].get(account_id, {}))
        for region, attrs in regions.items():
            store = region_bundle[region]
            for name, value in attrs.items():
                setattr(store, name, value)


# ------------------------------ Step Functions executions ------------------------------


class FrozenHistory:
    """Stands in for a finished (or interrupted) execution's worker: it only answers history."""

    def __init__(self, events: list[dict]) -> None:
        self.events = events

    def get_event_history(self) -> list[dict]:
        return list(self.events)


class FrozenWorker:
    """``Execution.exec_worker`` after a load: ``env.event_manager`` gives the saved history."""

    def __init__(self, events: list[dict]) -> None:
        self.env = self
        self.event_manager = FrozenHistory(events)

    def stop(self, *args, **kwargs) -> None:
        """Nothing runs any more; StopExecution of a loaded execution only changes its status."""


def history_snapshot(event_manager) -> list[dict]:
    """The events of an execution's history so far, for its record.

    LocalStack's ``get_event_history`` deep-copies the whole history, the image's base64 in
    several events included: ~8 % of the emulator's GIL time under load, for a copy that is
    only pickled. Its history events are built once, appended under the manager's lock and
    never changed afterwards (the log copy is made before its fields are removed), so the list
    taken under that lock is a consistent prefix that pickles the same. A manager that does not
    look like that gets the deep copy."""
    lock = getattr(event_manager, "_mutex", None)
    events = getattr(event_manager, "_history_event_list", None)
    if lock is None or not isinstance(events, list):
        return event_manager.get_event_history()
    with lock:
        return list(events)


def execution_record(execution) -> object:
    """A copy of the execution fit to pickle: its history instead of its live worker."""
    worker = execution.exec_worker
    events = []
    if worker is not None and getattr(worker, "env", None) is not None:
        events = history_snapshot(worker.env.event_manager)
    record = copy.copy(execution)
    record.exec_worker = FrozenWorker(events)
    record._cloud_watch_logging_session = None
    record._activity_store = {}
    return record


def mark_interrupted(execution) -> None:
    """A RUNNING execution from before the restart ends FAILED, with a history that says why."""
    now = datetime.now(tz=UTC)
    execution.exec_status = "FAILED"
    execution.stop_date = now
    execution.error = RESTART_ERROR
    execution.cause = RESTART_CAUSE
    events = execution.exec_worker.event_manager.events
    last = events[-1]["id"] if events else 0
    events.append(
        {
            "timestamp": now,
            "type": "ExecutionFailed",
            "id": last + 1,
            "previousEventId": last,
            "executionFailedEventDetails": {"error": RESTART_ERROR, "cause": RESTART_CAUSE},
        }
    )


# ------------------------------ SQS message journals ------------------------------

_FRAME = struct.Struct("<II")  # length, crc32 of the pickled record that follows


def _frame(record: tuple) -> bytes:
    data = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
    return _FRAME.pack(len(data), zlib.crc32(data)) + data


def read_frames(data: bytes) -> tuple[list[tuple[tuple, bytes]], int]:
    """The whole records in ``data`` (each with its frame) and where the last whole one ends.

    A record cut short or garbled can only be the tail (appends are sequential) and was never
    acknowledged (its fsync had not returned): replay stops there.
    """
    records, at = [], 0
    while at + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, at)
        end = at + _FRAME.size + length
        body = data[at + _FRAME.size : end]
        if end > len(data) or zlib.crc32(body) != crc:
            break
        try:
            records.append((pickle.loads(body), data[at:end]))
        except Exception:  # a crc collision on garbage: stop as for a torn tail
            break
        at = end
    return records, at


class MessageJournals:
    """One append-only journal per SQS queue: ``put`` / ``del`` / ``clear`` records.

    S3 uses a second instance: one journal per bucket (the bucket's name in place of a queue
    ARN), one ``put`` per object version keyed ``key\0version``.

    A send appends its message and the response waits for an fsync (group commit: whoever
    syncs covers every record written so far), so the cost of a send does not grow with the
    queue as a whole-store snapshot's did. A journal whose dead records outnumber the live ones
    (plus COMPACT_MIN_RECORDS) is rewritten with only its live messages (temp file, fsync,
    rename), so its size stays proportional to the queue. Receipts and visibility are not
    journalled: after a restart every live message is visible again, as after its timeout.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()  # files, live records, counters
        self._sync_lock = threading.Lock()  # one fsync round (and compaction) at a time
        self._fds: dict[str, int] = {}
        self._live: dict[str, dict[str, bytes]] = {}  # queue arn -> message id -> its frame
        self._records: dict[str, int] = {}  # records in each journal file, live or dead
        self._dirty: set[str] = set()
        self._new_files = False
        self._seq = 0  # records appended
        self._synced = 0  # records known on disk

    def path(self, queue_arn: str) -> Path:
        return self.folder / f"{hashlib.sha256(queue_arn.encode()).hexdigest()}.journal"

    def _open(self, queue_arn: str) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path(queue_arn), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._fds[queue_arn] = fd
        self._records.setdefault(queue_arn, 0)
        self._live.setdefault(queue_arn, {})
        self._new_files = True
        return fd

    def append(self, queue_arn: str, op: str, key: str = "", payload: object = None) -> None:
        """Write one record (not yet synced: ``commit`` makes it durable)."""
        frame = _frame((op, key, payload)) if op == "put" else None
        with self._lock:
            live = self._live.get(queue_arn, {})
            if op == "put" and key in live:
                return  # a FIFO duplicate: the message is already there
            if op == "del" and key not in live:
                return  # not a message this journal holds (nothing to undo)
            if op == "clear" and not live:
                return
            frame = frame or _frame((op, key, payload))
            fd = self._fds.get(queue_arn) or self._open(queue_arn)
            os.write(fd, frame)
            live = self._live[queue_arn]
            if op == "put":
                live[key] = frame
            elif op == "del":
                del live[key]
            else:
                live.clear()
            self._records[queue_arn] += 1
            self._dirty.add(queue_arn)
            self._seq += 1

    def commit(self) -> None:
        """Return once every record appended before the call is on disk."""
        upto = self._seq
        if self._synced >= upto:
            return
        with self._sync_lock:
            if self._synced >= upto:
                return  # another thread's fsync covered it (group commit)
            with self._lock:
                target, dirty, self._dirty = self._seq, self._dirty, set()
                fds = [self._fds[arn] for arn in dirty if arn in self._fds]
                new_files, self._new_files = self._new_files, False
            for fd in fds:
                os.fsync(fd)
            if new_files:
                fsync_dir(self.folder)
            self._synced = target
            self._compact_due()

    def _compact_due(self) -> None:
        """Rewrite journals that are mostly dead records (called with the sync lock held)."""
        for queue_arn in [
            arn
            for arn, records in list(self._records.items())
            if records > COMPACT_MIN_RECORDS + 2 * len(self._live.get(arn, {}))
        ]:
            with self._lock:
                self._rewrite(queue_arn)

    def _rewrite(self, queue_arn: str) -> None:
        """The journal with only its live messages, atomically (lock held)."""
        live = self._live.setdefault(queue_arn, {})
        write_atomic(self.path(queue_arn), b"".join(live.values()))
        old = self._fds.pop(queue_arn, None)
        if old is not None:
            os.close(old)
        self._open(queue_arn)
        self._new_files = False  # write_atomic synced the directory
        self._records[queue_arn] = len(live)

    def load(self, queue_arn: str) -> list:
        """The queue's live messages, in the order they were sent; the journal rewritten
        without dead records (and without a torn tail, so later appends follow whole ones)."""
        path = self.path(queue_arn)
        data = path.read_bytes() if path.exists() else b""
        records, _end = read_frames(data)
        live: dict[str, bytes] = {}
        messages: dict[str, object] = {}
        for (op, key, payload), frame in records:
            if op == "put" and key not in live:
                live[key], messages[key] = frame, payload
            elif op == "del":
                live.pop(key, None)
                messages.pop(key, None)
            elif op == "clear":
                live.clear()
                messages.clear()
        with self._sync_lock, self._lock:
            self._live[queue_arn] = live
            if data or path.exists():
                self._rewrite(queue_arn)
        return list(messages.values())

    def keep_only(self, queue_arns: set[str]) -> None:
        """Remove the journals of queues that no longer exist (deleted, or from a lost store)."""
        with self._sync_lock, self._lock:
            keep = {self.path(arn).name for arn in queue_arns}
            for arn in [a for a in self._fds if a not in queue_arns]:
                os.close(self._fds.pop(arn))
                self._live.pop(arn, None)
                self._records.pop(arn, None)
                self._dirty.discard(arn)
            removed = False
            for path in self.folder.glob("*.journal") if self.folder.exists() else []:
                if path.name not in keep:
                    path.unlink(missing_ok=True)
                    removed = True
            if removed:
                fsync_dir(self.folder)

    def close(self) -> None:
        self.commit()
        with self._sync_lock, self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


def sent_copy(message):
    """An ``SqsMessage`` as it was sent: its receive state reset, its dicts copied (a receiver
    may change the live ones while the record is pickled)."""
    record = copy.copy(message)
    record.message = dict(message.message)
    attributes = dict(message.message.get("Attributes") or {})
    attributes["ApproximateReceiveCount"] = "0"
    attributes.pop("ApproximateFirstReceiveTimestamp", None)
    record.message["Attributes"] = attributes
    record.receive_count = 0
    record.receipt_handles = set()
    record.last_received = record.first_received = record.visibility_deadline = None
    record.deleted = False
    return record


def queue_shell(queue):
    """A queue without its messages (they live in its journal): what the SQS snapshot keeps."""
    shell = copy.copy(queue)
    shell.delayed, shell.inflight, shell.receipts = set(), {}, {}
    if hasattr(queue, "visible"):
        shell.visible = type(queue.visible)()
    if hasattr(queue, "message_groups"):
        shell.message_groups, shell.inflight_groups, shell.deduplication = {}, set(), {}
        shell.message_group_queue = type(queue.message_group_queue)()
    return shell


def bucket_shell(bucket):
    """A bucket without its objects (they live in its journal): what the S3 snapshot keeps.

    The key store keeps its kind (versioned or not); multipart uploads stay in the shell."""
    shell = copy.copy(bucket)
    shell.objects = type(bucket.objects)()
    return shell


def object_ident(bucket: str, key: str, version_id: str | None) -> tuple[str, str, str]:
    """An object version's identity; unversioned is ``null``, as S3 names it (and as
    ``VersionedKeyStore.from_key_store`` renames it when versioning is turned on)."""
    return bucket, key, version_id or "null"


# ------------------------------ Saver ------------------------------


class ServiceSaver:
    """Writes one service's snapshot when it is dirty; waiters get group commit."""

    def __init__(self, name: str, save) -> None:
        self.name = name
        self._save = save
        self._cond = threading.Condition()
        self._dirty = 0  # generation of the latest change
        self._saved = 0  # generation the last finished save covers
        self._waiting = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"scones-save-{name}", daemon=True)
        self._thread.start()

    def touch(self, wait: bool) -> None:
        """Record a change; with ``wait``, return once a snapshot including it is on disk."""
        with self._cond:
            self._dirty += 1
            mine = self._dirty
            if not wait:
                self._cond.notify_all()
                return
            self._waiting += 1
            self._cond.notify_all()
            try:
                if not self._cond.wait_for(
                    lambda: self._saved >= mine or self._stopped, COMMIT_TIMEOUT_S
                ):
                    LOG.warning(
                        "%s: a change is not on disk after %.0f s", self.name, COMMIT_TIMEOUT_S
                    )
            finally:
                self._waiting -= 1

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._dirty > self._saved or self._stopped)
                if self._stopped:
                    return
                if not self._waiting:  # nobody blocks on it: let more changes gather
                    self._cond.wait_for(lambda: self._waiting or self._stopped, DEBOUNCE_S)
                target = self._dirty
            if not self._save_logged():
                time.sleep(RETRY_S)  # the changes stay unsaved: try again, not at full speed
                continue
            with self._cond:
                self._saved = max(self._saved, target)
                self._cond.notify_all()

    def _save_logged(self) -> bool:
        try:
            self._save()
            return True
        except Exception:
            LOG.exception("%s: saving state failed; the previous snapshot stays", self.name)
            return False

    def flush(self) -> None:
        """Save now, in the caller's thread, and stop the saver (shutdown)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=COMMIT_TIMEOUT_S)
        self._save_logged()


class Persistence:
    """Every persisted service's save and load, and the request hook that drives saving."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.savers: dict[str, ServiceSaver] = {}
        # each service's last snapshot written, by digest: an S3 write that changed only
        # objects (in their journals) leaves the bucket snapshot as it was, and is not rewritten
        self._snapshot_digests: dict[str, bytes] = {}
        self._executions_dirty: set[str] = set()
        self._executions_lock = threading.Lock()
        # bodies known to be on disk, by identity: a save then stats and hashes only new
        # objects instead of every object in every bucket (which grew with each upload)
        self._saved_bodies: set[tuple] = set()
        self.journals = MessageJournals(root / "sqs")
        # set by install once the queues write their journals (_watch_queues); if LocalStack
        # changed them, messages stay in the SQS snapshot as before the journals
        self.journalled = False
        # S3 objects in a journal per bucket (set by install once the key stores report their
        # changes, _watch_objects); False: objects stay in the S3 snapshot, as before
        self.objects_recorded = False
        self.object_journals = MessageJournals(root / "s3" / "objects")
        self._objects_lock = threading.Lock()  # key store changes and the bookkeeping below
        self._objects_dirty: set[tuple[str, str, str]] = set()  # changed since the last save
        # each live object version's place in its key's versions (VersionedKeyStore.get with
        # no version is the last one set): kept across a restart by replaying in this order
        self._object_seq: dict[tuple[str, str, str], int] = {}
        self._next_seq = 0
        self._object_bodies: dict[tuple[str, str, str], Path] = {}  # body of each record
        self._loading_objects = False  # set while load puts objects back (nothing to record)
        self._s3_stores = None  # S3's AccountRegionBundle, found once
        self._saved_buckets: set[str] | None = None  # bucket names in the last snapshot
        self._whole_s3_due = False  # records loaded without the patch: save them whole
        self._dead_lettered = threading.local()  # a ReceiveMessage's moved messages
        # each service's AccountRegionBundles, found once per service object (walking its state
        # visitor before every save was ~3 % of the emulator's time under load)
        self._bundles: dict[str, tuple[object, list]] = {}
        # Step Functions' store beyond its executions changed since its last snapshot: most
        # saves are an execution's start or end, and pickling the state machines again for each
        # only to find the same digest was most of a save's cost
        self._sfn_store_due = True

    # -- services --
    def service(self, name: str):
        from localstack.services.plugins import SERVICE_PLUGINS

        container = SERVICE_PLUGINS.get_service_container(name)
        return container.service if container else None

    def provider(self, name: str):
        service = self.service(name)
        return getattr(service, "_provider", None) if service else None

    def bundles(self, name: str) -> list:
        """The service's AccountRegionBundles, found the way LocalStack's visitors find them."""
        from localstack.services.stores import AccountRegionBundle
        from localstack.state import StateVisitor

        service = self.service(name)
        cached = self._bundles.get(name)
        if cached is not None and cached[0] is service:
            return cached[1]
        found = []

        class Collect(StateVisitor):
            def visit(self, state_container) -> None:
                if isinstance(state_container, AccountRegionBundle):
                    found.append(state_container)

        if service is not None:
            service.accept_state_visitor(Collect())
        self._bundles[name] = (service, found)
        return found

    # -- save --
    def save(self, name: str) -> None:
        service = self.service(name)
        if service is None:
            return
        hook = service.lifecycle_hook
        hook.on_before_state_save()
        if name == "s3" and self.objects_recorded:
            self._save_s3_records()
        elif name == "s3":
            self._save_s3_bodies()
        if name != "stepfunctions":
            self._save_snapshot(name)
        else:
            self._save_executions()
            # cleared before the snapshot, so a change made during it is saved again; when
            # only executions changed, their records above are the whole save
            due, self._sfn_store_due = self._sfn_store_due, False
            try:
                if due:
                    self._save_snapshot(name, skip=("executions",))
            except Exception:
                self._sfn_store_due = True  # not on disk: the next save tries it again
                raise
        hook.on_after_state_save()

    def _save_snapshot(self, name: str, skip: tuple[str, ...] = ()) -> None:
        """The service's stores as one pickle, rewritten only when it differs from the last."""
        states = [bundle_state(b, skip) for b in self.bundles(name)]
        if name == "s3" and self.objects_recorded:  # objects are in the journals: buckets only
            buckets = set()
            for state in states:
                state["objects_recorded"] = True
                for account_globals in state["global"].values():
                    shells = {
                        n: bucket_shell(b)
                        for n, b in dict(account_globals.get("buckets") or {}).items()
                    }
                    if "buckets" in account_globals:
                        account_globals["buckets"] = shells
                    buckets |= set(shells)
        if name == "sqs" and self.journalled:  # messages are in the journals: the queues only
            for state in states:
                for regions in state["stores"].values():
                    for attrs in regions.values():
                        queues = attrs.get("attr_queues") or {}
                        attrs["attr_queues"] = {n: queue_shell(q) for n, q in queues.items()}
        data = dumps(states)
        digest = hashlib.blake2b(data, digest_size=16).digest()
        if digest != self._snapshot_digests.get(name):  # the same as on disk: nothing to write
            write_atomic(self.root / f"{name}.pickle", data)
            self._snapshot_digests[name] = digest
        if name == "s3" and self.objects_recorded and buckets != self._saved_buckets:
            # on disk without them now: deleted buckets' journals go
            self.object_journals.keep_only(buckets)
            self._saved_buckets = buckets

    def _s3_objects(self):
        from localstack.services.s3.models import S3DeleteMarker

        (s3_stores,) = self.bundles("s3")
        seen = set()
        for regions in dict(s3_stores).values():
            for region_store in dict(regions).values():
                for bucket_name, bucket in dict(region_store.buckets).items():
                    if bucket_name in seen:
                        continue
                    seen.add(bucket_name)
                    for obj in bucket.objects.values(with_versions=True):
                        if not isinstance(obj, S3DeleteMarker):
                            yield bucket_name, obj
                break  # buckets are cross-region: one region's view has them all

    def _s3_buckets(self) -> dict:
        """Every bucket by name (buckets are cross-region: one region's view has them all)."""
        if self._s3_stores is None:  # one bundle for the process (a load fills it, not swaps)
            (self._s3_stores,) = self.bundles("s3")
        s3_stores = self._s3_stores
        found = {}
        for regions in dict(s3_stores).values():
            for region_store in dict(regions).values():
                found.update(dict(region_store.buckets))
                break
        return found

    def _bucket_of(self, key_store) -> str | None:
        """The bucket a key store belongs to; None while it belongs to none (being built by
        ``from_key_store``, whose objects are recorded already, or its bucket deleted)."""
        name = getattr(key_store, BUCKET_TAG, None)
        if name is None:
            name = next((n for n, b in self._s3_buckets().items() if b.objects is key_store), None)
            if name is not None:
                setattr(key_store, BUCKET_TAG, name)
        return name

    def object_changed(self, key_store, key: str, version_id: str | None, popped: bool) -> None:
        """A key store set or popped an object version (called with ``_objects_lock`` held):
        the next save records it. A version set again keeps its place, as a dict key does."""
        if self._loading_objects:
            return
        bucket = self._bucket_of(key_store)
        if bucket is None:
            return
        ident = object_ident(bucket, key, version_id)
        if popped:
            self._object_seq.pop(ident, None)
        elif ident not in self._object_seq:
            self._object_seq[ident] = self._next_seq
            self._next_seq += 1
        self._objects_dirty.add(ident)
        saver = self.savers.get("s3")
        if saver is not None:  # a change no request waits for (internal) is saved in DEBOUNCE_S
            saver.touch(wait=False)

    def object_metadata_changed(self, bucket: str, key: str, version_id: str | None) -> None:
        """A call changed an object's metadata in place: record that version again."""
        found = self._s3_buckets().get(bucket)
        if found is None:
            return
        with self._objects_lock:
            store = found.objects
            obj = store.get(key, version_id) if hasattr(store, "from_key_store") else store.get(key)
            if obj is not None:
                self._objects_dirty.add(object_ident(bucket, key, obj.version_id))

    def _save_s3_records(self) -> None:
        """The changed object versions: bodies to files, then each one's record (or its
        removal) to its bucket's journal, synced; then the bodies nothing names any more."""
        from localstack.services.s3.models import S3Object

        with self._objects_lock:  # a change after this is dirty again for the next save
            dirty, self._objects_dirty = self._objects_dirty, set()
            buckets = self._s3_buckets()
            changes = []
            for ident in dirty:
                bucket_name, key, version = ident
                bucket = buckets.get(bucket_name)
                obj = None
                if bucket is not None:
                    store = bucket.objects
                    obj = (
                        store.get(key, version)
                        if hasattr(store, "from_key_store")
                        else store.get(key)
                    )
                    if obj is not None and (obj.version_id or "null") != version:
                        obj = None  # another version now: this one is gone
                seq = self._object_seq.get(ident)
                if obj is not None and seq is None:  # set while its store had no bucket yet
                    seq = self._object_seq[ident] = self._next_seq
                    self._next_seq += 1
                changes.append((ident, obj, seq))
        backend = self.provider("s3")._storage_backend
        journals = self.object_journals
        written_dirs, bodies, failed = set(), {}, set()
        for ident, obj, _seq in changes:
            if isinstance(obj, S3Object):
                body = bodies[ident] = self.body_path(ident[0], obj)
                if body == self._object_bodies.get(ident):
                    continue  # a metadata change: the body on disk is this one's
                if not self._write_body(backend, ident[0], obj, body):
                    failed.add(ident)  # overwritten or deleted meanwhile: dirty again anyway
                    continue
                written_dirs.add(body.parent)
        for directory in written_dirs:
            fsync_dir(directory)  # every body is on disk before a record names it
        unreferenced, recorded = [], {}
        for ident, obj, seq in changes:
            if ident in failed:
                continue
            bucket_name, key, version = ident
            name = f"{key}\0{version}"
            journals.append(bucket_name, "del", name)
            if obj is not None:
                journals.append(bucket_name, "put", name, (seq, obj))
            body = recorded[ident] = bodies.get(ident)
            old_body = self._object_bodies.get(ident)
            if old_body is not None and old_body != body:
                unreferenced.append(old_body)
        try:
            journals.commit()
        except Exception:
            with self._objects_lock:
                self._objects_dirty |= set(recorded) | failed
            raise
        with self._objects_lock:
            self._objects_dirty |= failed
        for ident, body in recorded.items():
            if body is None:
                self._object_bodies.pop(ident, None)
            else:
                self._object_bodies[ident] = body
        for path in unreferenced:  # a crash before this leaves files that load collects
            path.unlink(missing_ok=True)

    def _write_body(self, backend, bucket: str, obj, path: Path) -> bool:
        """An object's body to its file (not yet durable: the caller syncs the directory)."""
        if path.exists():
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with backend.open(bucket, obj, mode="r") as stored, open(tmp, "wb") as f:
                while chunk := stored.read(1 << 20):
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except Exception as err:
            LOG.debug("s3 body %s/%s not saved: %s", bucket, obj.key, err)
            tmp.unlink(missing_ok=True)
            return False
        os.replace(tmp, path)
        return True

    def body_path(self, bucket: str, s3_object) -> Path:
        ident = f"{s3_object.key}\0{s3_object.version_id or 'null'}\0"
        ident += f"{s3_object.internal_last_modified}\0{s3_object.etag}"
        return self.root / "s3" / "bodies" / bucket / hashlib.sha256(ident.encode()).hexdigest()

    def _save_s3_bodies(self) -> None:
        """Each object's body to its own file, before the snapshot that names it (objects in
        the snapshot: LocalStack's key stores were not the ones _watch_objects patches)."""
        backend = self.provider("s3")._storage_backend
        written_dirs, pending, live = set(), set(), set()
        for bucket, obj in self._s3_objects():
            ident = (bucket, obj.key, obj.version_id, obj.internal_last_modified, obj.etag)
            live.add(ident)
            if ident in self._saved_bodies:
                continue
            path = self.body_path(bucket, obj)
            if path.exists():
                self._saved_bodies.add(ident)
                continue
            if not self._write_body(backend, bucket, obj, path):
                continue  # deleted meanwhile: the next snapshot will not name it
            written_dirs.add(path.parent)
            pending.add(ident)
        for directory in written_dirs:
            fsync_dir(directory)
        self._saved_bodies |= pending  # on disk only once its directory is synced
        if len(self._saved_bodies) > 2 * len(live) + 1000:  # forget deleted objects
            self._saved_bodies &= live

    def mark_execution(self, arn: str) -> None:
        with self._executions_lock:
            self._executions_dirty.add(arn)

    def _save_executions(self) -> None:
        (sfn_stores,) = self.bundles("stepfunctions")
        with self._executions_lock:
            arns, self._executions_dirty = self._executions_dirty, set()
        if not arns:
            return
        folder = self.root / "stepfunctions"  # write_atomic makes it with the first record
        try:
            for regions in dict(sfn_stores).values():
                for store in dict(regions).values():
                    for arn in [a for a in arns if a in store.executions]:
                        data = dumps(execution_record(store.executions[arn]))
                        name = f"{hashlib.sha256(arn.encode()).hexdigest()}.pickle"
                        write_atomic(folder / name, data, sync_dir=False)
                        arns.discard(arn)
        except Exception:
            # a record that failed to save stays dirty: the next save tries it again, so an
            # execution's end is never left behind by one failed attempt
            with self._executions_lock:
                self._executions_dirty |= arns
            raise
        fsync_dir(folder)

    # -- load --
    def load_all(self) -> None:
        for name in SERVICES:
            path = self.root / f"{name}.pickle"
            if not path.exists() or self.service(name) is None:
                continue
            began = time.monotonic()
            try:
                self.load(name, path)
            except Exception:
                LOG.exception("%s: the saved state could not be loaded; starting empty", name)
                continue
            LOG.info("%s: state loaded in %.2f s", name, time.monotonic() - began)

    def load(self, name: str, path: Path) -> None:
        states = loads(path.read_bytes())
        hook = self.service(name).lifecycle_hook
        hook.on_before_state_load()
        for bundle, state in zip(self.bundles(name), states, strict=True):
            restore_bundle(bundle, state)
        if name == "s3":
            self._load_s3(states)
        if name == "stepfunctions":
            self._load_executions()
        if name == "events":
            self._load_events()
        if name == "sqs" and self.journalled:
            self._load_messages()
        hook.on_after_state_load()

    def durable_s3(self) -> str:
        """Swap the S3 provider's object store for one that reads saved bodies; its root."""
        from scones_emulator.durable_s3 import DurableS3ObjectStore

        provider = self.provider("s3")
        backend = provider._storage_backend
        if not isinstance(backend, DurableS3ObjectStore):
            backend = DurableS3ObjectStore(backend.root_directory, self.body_path)
            provider._storage_backend = backend
        return backend.root_directory

    def _load_s3(self, states: list) -> None:
        root = self.durable_s3()
        if any(state.get("objects_recorded") for state in states):
            self._load_objects()
            self._whole_s3_due = not self.objects_recorded  # LocalStack changed: save whole
        else:
            # a whole snapshot (from before the journals, or saved without them) holds the
            # objects; a journal beside it is stale. Recorded, its objects go to journals.
            shutil.rmtree(self.object_journals.folder, ignore_errors=True)
            if self.objects_recorded:
                self._record_all_objects()
        referenced = set()
        for bucket, obj in self._s3_objects():
            os.makedirs(os.path.join(root, bucket), exist_ok=True)
            referenced.add(self.body_path(bucket, obj))
        self.collect_bodies(referenced)

    def _load_objects(self) -> None:
        """Each bucket's objects from its journal, set in the order they were first set (so
        each key's current version, and ``is_current``, come out as they were)."""
        from localstack.services.s3.models import S3Object

        buckets = self._s3_buckets()
        records = []
        for name in buckets:
            records += [(seq, name, obj) for seq, obj in self.object_journals.load(name)]
        records.sort(key=lambda record: record[0])
        self._loading_objects = True
        try:
            for seq, name, obj in records:
                store = buckets[name].objects
                if hasattr(store, "from_key_store"):
                    if obj.version_id is None:
                        obj.version_id = "null"  # recorded before versioning was turned on
                    obj.is_current = True  # as when it was set; the next one set clears it
                store.set(obj.key, obj)
                ident = object_ident(name, obj.key, obj.version_id)
                self._object_seq[ident] = seq
                if isinstance(obj, S3Object):
                    self._object_bodies[ident] = self.body_path(name, obj)
        finally:
            self._loading_objects = False
        self._next_seq = records[-1][0] + 1 if records else 0
        self.object_journals.keep_only(set(buckets))
        self._saved_buckets = set(buckets)
        LOG.info("s3: %d object versions loaded from %d buckets", len(records), len(buckets))

    def _record_all_objects(self) -> None:
        """Every object of a whole snapshot to be recorded by the next save (which then drops
        them from the snapshot: records first, so a crash between keeps the whole one)."""
        with self._objects_lock:
            for name, bucket in self._s3_buckets().items():
                for obj in bucket.objects.values(with_versions=True):
                    ident = object_ident(name, obj.key, obj.version_id)
                    self._object_seq[ident] = self._next_seq
                    self._next_seq += 1
                    self._objects_dirty.add(ident)

    def collect_bodies(self, referenced: set[Path] | None = None) -> None:
        """Remove body files that no saved object names (deleted or overwritten objects)."""
        if referenced is None:
            referenced = {self.body_path(b, o) for b, o in self._s3_objects()}
        bodies = self.root / "s3" / "bodies"
        if not bodies.exists():
            return
        for path in bodies.rglob("*"):
            if path.is_file() and path not in referenced:
                path.unlink(missing_ok=True)

    def _load_executions(self) -> None:
        (sfn_stores,) = self.bundles("stepfunctions")
        folder = self.root / "stepfunctions"
        loaded = []
        for path in folder.glob("*.pickle") if folder.exists() else []:
            try:
                loaded.append(loads(path.read_bytes()))
            except Exception as err:  # a record is written whole or not at all; say if not
                LOG.warning("execution record %s unreadable (%s); skipped", path.name, err)
        loaded.sort(key=lambda e: e.start_date)
        interrupted = []
        for execution in loaded:
            store = sfn_stores[execution.account_id][execution.region_name]
            execution._activity_store = store.activities
            if str(execution.exec_status) in ("RUNNING", "ExecutionStatus.RUNNING"):
                mark_interrupted(execution)
                interrupted.append(execution.exec_arn)
            store.executions[execution.exec_arn] = execution
        for arn in interrupted:
            self.mark_execution(arn)
        if interrupted:
            LOG.warning(
                "%d executions were running when the emulator stopped: now FAILED with %s",
                len(interrupted),
                RESTART_ERROR,
            )
            self._save_executions()

    def _queues(self) -> list:
        found = []
        for bundle in self.bundles("sqs"):
            for regions in dict(bundle).values():
                for store in dict(regions).values():
                    found += list(dict(store.queues).values())
        return found

    def _load_messages(self) -> None:
        """Each queue's messages from its journal (a snapshot from before the journals kept
        them in the queue itself: those are journalled now, so the next snapshot may drop them)."""
        queues = self._queues()
        for queue in queues:
            had_journal = self.journals.path(queue.arn).exists()
            for message in self.journals.load(queue.arn):
                if message.is_delayed:
                    queue.delayed.add(message)
                else:
                    queue._put_message(message)
                if message.message_deduplication_id and hasattr(queue, "deduplication"):
                    queue.deduplication[message.message_deduplication_id] = message
            if not had_journal:
                for message in queue_messages(queue):
                    self.journals.append(
                        queue.arn, "put", message.message["MessageId"], sent_copy(message)
                    )
        self.journals.keep_only({queue.arn for queue in queues})
        self.journals.commit()

    def _load_events(self) -> None:
        """Rebuild the provider's runtime objects (rule services, target senders) from the store."""
        from localstack.services.events.event_bus import EventBusService
        from localstack.services.events.rule import RuleService

        provider = self.provider("events")
        (events_stores,) = self.bundles("events")
        for account_id, regions in dict(events_stores).items():
            for region, store in dict(regions).items():
                for bus in store.event_buses.values():
                    provider._event_bus_services_store[bus.arn] = EventBusService(bus)
                    for rule in bus.rules.values():
                        provider._rule_services_store[rule.arn] = RuleService(rule)
                        for target in (rule.targets or {}).values():
                            if ":events:" in target["Arn"] and ":archive/" in target["Arn"]:
                                continue
                            provider.create_target_sender(
                                target, rule.arn, rule.name, region, account_id
                            )

    # -- requests --
    def on_response(self, chain, context, response) -> None:
        """Response handler: a successful mutating call marks its service dirty (and may wait)."""
        service = context.service.service_name if context.service else None
        operation = context.operation.name if context.operation else ""
        if service not in self.savers or response.status_code >= 400:
            return
        if service == "sqs" and self.journalled and operation in SQS_JOURNALLED:
            if operation == "ReceiveMessage":
                self._journal_dead_lettered()
            self.journals.commit()
            return
        if operation.startswith(READ_PREFIXES) or (service, operation) in NO_STATE:
            return
        if service == "s3" and self.objects_recorded and operation in S3_OBJECT_METADATA:
            request = context.service_request or {}
            self.object_metadata_changed(
                request.get("Bucket", ""), request.get("Key", ""), request.get("VersionId")
            )
        if service == "stepfunctions":
            arn = (context.service_response or {}).get("executionArn")
            if operation == "StartExecution" and arn:
                self.mark_execution(arn)
            elif operation in ("StopExecution",):
                self.mark_execution(context.service_request.get("executionArn", ""))
            if operation not in EXECUTIONS_ONLY:
                self._sfn_store_due = True
        self.savers[service].touch(wait=(service, operation) not in NO_WAIT)
        if (service, operation) == ("sqs", "DeleteQueue"):  # on disk without it: its journal goes
            self.journals.keep_only({queue.arn for queue in self._queues()})

    def _journal_dead_lettered(self) -> None:
        """Messages a ReceiveMessage moved to a dead-letter queue leave their source's journal
        after the dead-letter queue's put is written (a crash between keeps both, never none)."""
        moved = getattr(self._dead_lettered, "moved", None)
        if moved:
            self._dead_lettered.moved = []
            for queue_arn, message_id in moved:
                self.journals.append(queue_arn, "del", message_id)

    def start(self) -> None:
        if self.service("s3") is not None:
            self.durable_s3()
        for name in SERVICES:
            if self.service(name) is not None:
                self.savers[name] = ServiceSaver(name, lambda n=name: self.save(n))
        if "s3" in self.savers and (self._whole_s3_due or self._objects_dirty):
            self.savers["s3"].touch(wait=False)  # a load changed the layout: save it soon
        if "sqs" in self.savers and self.journalled:
            flusher = threading.Thread(target=self._flush_journals, name="scones-journal")
            flusher.daemon = True
            flusher.start()

    def _flush_journals(self) -> None:
        """Records written by calls no response handler sees (internal deliveries) reach the
        disk within DEBOUNCE_S."""
        while True:
            time.sleep(DEBOUNCE_S)
            try:
                self.journals.commit()
            except Exception:
                LOG.exception("sqs: syncing the message journals failed")

    def shutdown(self) -> None:
        began = time.monotonic()
        for saver in self.savers.values():
            saver.flush()
        if "s3" in self.savers:
            self.collect_bodies()
        self.journals.close()
        self.object_journals.close()
        LOG.info("state saved for shutdown in %.2f s", time.monotonic() - began)


PERSISTENCE: Persistence | None = None


def install() -> None:
    """Load saved state (before the gateway serves) and start saving changes."""
    global PERSISTENCE
    if not PERSIST_DIR:
        return
    from localstack.aws import handlers

    root = Path(PERSIST_DIR)
    root.mkdir(parents=True, exist_ok=True)
    persistence = Persistence(root)
    persistence.journalled = _watch_queues(persistence)
    persistence.objects_recorded = _watch_objects(persistence)
    persistence.load_all()
    # What was loaded stays for the emulator's life (executions, objects, messages) and is
    # pointer-heavy (every saved history): left to the cycle collector, each full pass walked
    # all of it again (1.1-2 s of held GIL per pass with ~12,500 saved executions, several a
    # minute while busy). Frozen, it is out of those passes; refcounting still frees what is
    # deleted, only a reference cycle among frozen objects would now outlive its last use.
    # Measured on a stack restarted with 10,000 saved executions, two interleaved pairs of
    # 600-event benches: emulator CPU per execution 52.8 -> 49.7 and 54.5 -> 51.2 ms.
    gc.collect()
    gc.freeze()
    persistence.start()
    handlers.run_custom_response_handlers.append(persistence.on_response)
    _watch_executions(persistence)
    PERSISTENCE = persistence
    LOG.info("state persisted under %s", root)


def queue_messages(queue) -> list:
    """Every message a queue holds: visible, in flight, delayed (FIFO: in its groups)."""
    found = list(queue.inflight) + list(queue.delayed)
    if hasattr(queue, "visible"):
        found += list(queue.visible.queue)
    for group in getattr(queue, "message_groups", {}).values():
        found += list(group.messages)
    return found


def _watch_queues(persistence: Persistence) -> bool:
    """Sends, deletes and purges write their queue's journal record as they happen; False (and
    nothing patched) when LocalStack's queues are not the ones this was written for."""
    from localstack.services.sqs import models

    journals = persistence.journals

    def put(original, self, *args, **kwargs):
        message = original(self, *args, **kwargs)
        deduplication = getattr(self, "deduplication", None)
        if (
            deduplication is not None
            and deduplication.get(message.message_deduplication_id) is not message
        ):
            return message  # a FIFO duplicate: not queued (its original may be gone)
        journals.append(self.arn, "put", message.message["MessageId"], sent_copy(message))
        return message

    def receive(original, self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if result.dead_letter_messages:  # journalled once the provider has moved them
            moved = getattr(persistence._dead_lettered, "moved", None) or []
            moved += [(self.arn, m.message["MessageId"]) for m in result.dead_letter_messages]
            persistence._dead_lettered.moved = moved
        return result

    def clear(original, self):
        original(self)
        journals.append(self.arn, "clear")

    def remove(original, self, receipt_handle: str):
        message = self.receipts.get(receipt_handle)
        original(self, receipt_handle)
        if message is not None and message.deleted:
            journals.append(self.arn, "del", message.message["MessageId"])

    put_params = (
        "self",
        "message",
        "visibility_timeout",
        "message_deduplication_id",
        "message_group_id",
        "delay_seconds",
    )
    receive_params = (
        "self",
        "num_messages",
        "wait_time_seconds",
        "visibility_timeout",
        "poll_empty_queue",
    )
    # FifoQueue.remove calls SqsQueue.remove through super(): one patch covers both
    targets = [patching.Target(models.SqsQueue, "remove", remove, ("self", "receipt_handle"))]
    for cls in (models.StandardQueue, models.FifoQueue):
        targets += [
            patching.Target(cls, "put", put, put_params),
            patching.Target(cls, "receive", receive, receive_params),
            patching.Target(cls, "clear", clear, ("self",)),
        ]
    return patching.guarded(targets, label="persistence: SQS message journals")  # fmt: skip


def _watch_objects(persistence: Persistence) -> bool:
    """Key stores report each object version they set or pop, so a save records exactly
    those; False (and nothing patched) when LocalStack's key stores are not the ones this was
    written for."""
    from localstack.services.s3 import models

    lock = persistence._objects_lock

    def put(original, self, object_key, s3_object):
        with lock:
            original(self, object_key, s3_object)
            persistence.object_changed(self, object_key, s3_object.version_id, popped=False)

    def pop(original, self, object_key, default=None):
        with lock:
            found = original(self, object_key, default)
            if found is not None and found is not default:
                persistence.object_changed(self, object_key, found.version_id, popped=True)
            return found

    def pop_version(original, self, object_key, version_id=None, default=None):
        with lock:
            found = original(self, object_key, version_id, default)
            if found is not None and found is not default:
                persistence.object_changed(self, object_key, found.version_id, popped=True)
            return found

    set_params = ("self", "object_key", "s3_object")
    versioned = models.VersionedKeyStore
    targets = [
        patching.Target(models.KeyStore, "set", put, set_params, ("self._store[object_key]",)),
        patching.Target(models.KeyStore, "pop", pop, ("self", "object_key", "default")),
        patching.Target(versioned, "set", put, set_params, ("self._store[object_key]",)),
        patching.Target(
            versioned, "pop", pop_version, ("self", "object_key", "version_id", "default")
        ),
    ]
    return patching.guarded(targets, label="persistence: S3 object journals")


def _watch_executions(persistence: Persistence) -> None:
    """An execution that ends is saved (with its history) by the next Step Functions save."""
    from localstack.services.stepfunctions.backend import execution as execution_module

    def terminated(original, self) -> None:
        try:
            original(self)
        finally:  # the status is set before the status-change event, which may raise: save anyway
            persistence.mark_execution(self.execution.exec_arn)
            saver = persistence.savers.get("stepfunctions")
            if saver:
                # the execution's own thread waits until its end is on disk (group commit, as
                # for StartExecution), not for the debounce: an outcome is saved milliseconds
                # after it is set, so a restart soon after cannot undo it
                saver.touch(wait=True)

    patching.guarded(
        execution_module.BaseExecutionWorkerCommunication,
        "terminated",
        terminated,
        label="persistence: an execution's end saved as it happens",
        params=("self",),
    )


def shutdown() -> None:
    """Final save on an orderly stop (SIGTERM): nothing waits for the debounce."""
    if PERSISTENCE is not None:
        PERSISTENCE.shutdown()

"""`scones stage`: extract CIFAR-100, transform it to SageMaker's image format, load it into S3."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import os
import random
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from local_model.lst import LstEntry, format_lst
from scones import QUIET, SconesError, Show, UsageError, aws, config
from scones.aws import BucketError, ensure_bucket
from scones.dataset import (
    CIFAR100_FINE_NAMES,
    CLASSES_FILE,
    DEFAULT_CLASSES,
    MARKER,
    SPLITS,
    VEHICLE_CLASSES,
    ClassInfo,
    DatasetError,
    SourceData,
    classes_json,
    is_staged,
    load_classes,
    load_lst,
    open_source,
    resolve_classes,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "StageError",
    "ChecksumMismatch",
    "SourceUnreachable",
    "DownloadInterrupted",
    "BucketError",
    "UploadError",
    "StageSummary",
    "stage",
    "fetch",
    "transform",
    "upload_folder",
    "load_lst",
    "load_classes",
    "is_staged",
]

LOG = logging.getLogger(__name__)

SEED = 0  # validation split: fixed, so re-staging picks the same images
CHUNK_BYTES = 1 << 20  # download read size; 1 MiB keeps the progress bar smooth at 160 MB
HTTP_TIMEOUT = 30.0  # seconds without a byte before a download counts as interrupted
DOWNLOAD_ATTEMPTS = 3  # per run; each retry resumes with an HTTP Range request
UPLOAD_WORKERS = 16  # small PNGs: latency-bound, so more threads than cores
CONTENT_TYPES = {".png": "image/png", ".lst": "text/plain", ".json": "application/json"}


class StageError(SconesError):
    """Staging cannot complete; nothing complete-looking was left behind."""


class StageUsageError(StageError, UsageError):
    """Bad options: staging was given a value it cannot use (exit code 2)."""


class ChecksumMismatch(StageError):
    """A downloaded or given tarball's MD5 differs from the expected one."""


class SourceUnreachable(StageError):
    """The --source URL cannot be fetched (offline, refused, HTTP error)."""


class DownloadInterrupted(StageError):
    """A download stopped before its end; the partial file is kept for a resume."""


class UploadError(StageError):
    """Some objects could not be uploaded."""


class NoStagedDataset(StageError, UsageError):
    """A command needs a dataset, none was given and `scones stage` has not written one."""


# ------------------------------ Summary ------------------------------


@dataclass
class StageSummary:
    """What one `scones stage` run did; `to_dict()` is the --json output."""

    name: str
    source: str
    source_kind: str  # "url", "tarball", "cifar-folder" or "staged-folder"
    source_md5: str | None
    out: str
    classes: list[dict]  # label, name, fine_label, counts per split
    counts: dict[str, int]  # images per split
    bytes: int  # dataset size on disk (PNGs, .lst, classes.json, marker)
    bucket: str | None = None
    prefix: str | None = None
    uploaded: int = 0
    skipped: int = 0
    deleted: int = 0  # stale objects under the prefix from an earlier, different staging
    uploaded_bytes: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def s3_uri(self) -> str | None:
        """s3://bucket/prefix of the uploaded dataset, or None when not uploaded."""
        return f"s3://{self.bucket}/{self.prefix}" if self.bucket else None

    def to_dict(self) -> dict:
        """Plain JSON-able dict (includes s3_uri)."""
        return {**asdict(self), "s3_uri": self.s3_uri}


@dataclass
class UploadResult:
    """Counts from one upload of a staged folder."""

    uploaded: int = 0
    skipped: int = 0
    deleted: int = 0
    uploaded_bytes: int = 0


# ------------------------------ Pipeline ------------------------------


def stage(
    source: str | Path | None = None,
    classes: str | Sequence[str] = DEFAULT_CLASSES,
    bucket: str | None = None,
    prefix: str | None = None,
    out: Path | None = None,
    upload: bool = True,
    *,
    validation_fraction: float = 0.0,
    md5: str | None = None,
    cache_dir: Path | None = None,
    attempts: int = DOWNLOAD_ATTEMPTS,
    show: Show = QUIET,
) -> StageSummary:
    """Extract, transform and (optionally) load a dataset; return what was done.

    :param source: the official CIFAR-100 URL (default), another http(s) URL, a tarball, an
        extracted cifar-100-python/ folder, or a staged folder of PNGs with train.lst/test.lst.
    :param classes: CIFAR-100 fine names (list or comma-separated; `vehicles` = the ten vehicle
        classes); their order gives the labels 0..N-1.
    :param bucket: default config.BUCKET. Created when missing.
    :param prefix: S3 key prefix; default `datasets/<name>/`.
    :param out: where the staged folder goes; default <STATE_DIR>/datasets/<name>.
    :param md5: expected MD5 of a tarball (always the official one for the official URL).
    :param show: how progress is reported (bars for download, stage, upload); default silent.
    """
    started = time.monotonic()
    timings: dict[str, float] = {}
    source = str(source or config.DATASET_URL)  # the official URL, a mirror, a test server
    if not 0.0 <= validation_fraction < 1.0:
        raise StageUsageError(f"--validation-fraction must be in [0, 1), got {validation_fraction}")
    if md5 is not None and not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
        raise StageUsageError(f"--md5 must be 32 hex digits, got {md5!r}")
    is_url = urllib.parse.urlparse(source).scheme in ("http", "https")
    if is_url:  # catch a typo before a 160 MB download
        resolve_classes(classes, CIFAR100_FINE_NAMES)

    s3 = None
    if upload:  # fail fast on a bad bucket, before any download or transform
        bucket = bucket or config.BUCKET
        s3 = s3_client()
        ensure_bucket(s3, bucket)

    t = time.monotonic()
    if is_url:
        tarball = fetch(
            source,
            md5=known_md5(source) or md5,
            cache_dir=cache_dir,
            attempts=attempts,
            show=show,
        )
        source_md5: str | None = file_md5(tarball)
        data = open_source(tarball)
        kind = "url"
    else:
        path = Path(source).expanduser()
        source_md5 = None
        if path.is_file():
            source_md5 = file_md5(path)
            if md5 and source_md5 != md5.lower():
                raise ChecksumMismatch(
                    f"{path} has MD5 {source_md5}, expected {md5.lower()} (--md5); "
                    "is it the right or a complete file?"
                )
        elif md5:
            raise StageUsageError(f"--md5 checks a tarball, but {path} is not a file")
        data = open_source(path)
        kind = data.kind
    timings["extract"] = time.monotonic() - t

    names = resolve_classes(classes, data.class_names, data.vehicles)
    name = dataset_name(names)
    out = Path(out) if out else config.STATE_DIR / "datasets" / name
    t = time.monotonic()
    infos = transform(
        data,
        names,
        out,
        validation_fraction=validation_fraction,
        seed=SEED,
        provenance={"source": source, "source_md5": source_md5},
        show=show,
    )
    timings["transform"] = time.monotonic() - t

    summary = StageSummary(
        name=name,
        source=source,
        source_kind=kind,
        source_md5=source_md5,
        out=str(out),
        classes=[asdict(c) for c in infos],
        counts={s: sum(c.counts.get(s, 0) for c in infos) for s in SPLITS},
        bytes=sum(p.stat().st_size for p in out.rglob("*") if p.is_file()),
    )
    if upload and s3 is not None and bucket:
        prefix = normalize_prefix(f"datasets/{name}/" if prefix is None else prefix)
        t = time.monotonic()
        result = upload_folder(out, bucket, prefix, s3=s3, show=show)
        timings["upload"] = time.monotonic() - t
        summary.bucket, summary.prefix = bucket, prefix
        summary.uploaded, summary.skipped = result.uploaded, result.skipped
        summary.deleted, summary.uploaded_bytes = result.deleted, result.uploaded_bytes
    summary.timings = {k: round(v, 3) for k, v in timings.items()}
    summary.seconds = round(time.monotonic() - started, 3)
    LOG.info("staged %s: %s", name, summary.counts)
    return summary


def dataset_name(names: Sequence[str]) -> str:
    """A folder/prefix name for a class list: `vehicles`, `bicycle-motorcycle`, or a short hash."""
    if list(names) == list(VEHICLE_CLASSES):
        return "vehicles"
    if len(names) <= 4:
        return "-".join(names)
    digest = hashlib.sha256(",".join(names).encode()).hexdigest()[:8]
    return f"{len(names)}-classes-{digest}"


def default_dataset(classes: Sequence[str] = DEFAULT_CLASSES) -> Path:
    """Where `scones stage` writes these classes by default: <STATE_DIR>/datasets/<name>."""
    return config.STATE_DIR / "datasets" / dataset_name(classes)


def dataset_or_default(data: str | Path | None, option: str = "--data") -> Path:
    """``data`` as given, else the default staged dataset; NoStagedDataset when there is none.

    The CLI's data options default here, never to a copy beside the repository.
    """
    if data:
        return Path(data)
    folder = default_dataset()
    if not is_staged(folder):
        raise NoStagedDataset(
            f"no dataset given and none staged at {folder}; run `scones stage` (add --source PATH "
            f"offline) or pass {option} FOLDER"
        )
    return folder


def normalize_prefix(prefix: str) -> str:
    """`a/b` -> `a/b/`; `` and `/` -> `` (bucket root)."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def known_md5(url: str) -> str | None:
    """The MD5 we know for a URL: SCONES_DATASET_MD5 for SCONES_DATASET_URL (by default the
    official CIFAR-100 tarball's), else None."""
    return config.DATASET_MD5 if url == config.DATASET_URL else None


def file_md5(path: Path) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------ Extract (download) ------------------------------


def fetch(
    url: str,
    *,
    md5: str | None = None,
    cache_dir: Path | None = None,
    attempts: int = DOWNLOAD_ATTEMPTS,
    show: Show = QUIET,
) -> Path:
    """Download url into the cache (resuming a partial file with Range) and check its MD5.

    The file only gets its final name once complete and checked; a partial download stays
    as `<name>.part` for the next attempt or run.
    """
    cache_dir = Path(cache_dir) if cache_dir else config.STATE_DIR / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    base = Path(urllib.parse.urlparse(url).path).name or "download"
    dest = cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{base}"
    part = dest.with_name(dest.name + ".part")
    md5 = md5.lower() if md5 else None
    if dest.is_file():
        if md5 is None or file_md5(dest) == md5:
            LOG.info("using cached %s", dest)
            return dest
        LOG.warning("cached %s has the wrong MD5; downloading it again", dest)
        dest.unlink()
    for attempt in range(1, max(1, attempts) + 1):
        try:
            _download_once(url, part, show)
            break
        except DownloadInterrupted as err:
            if attempt >= attempts:
                raise
            LOG.warning("%s (attempt %d of %d); resuming", err, attempt, attempts)
    got = file_md5(part)
    if md5 and got != md5:
        part.unlink()  # a wrong file cannot be resumed into a right one
        raise ChecksumMismatch(
            f"{url} downloaded with MD5 {got}, expected {md5}; the download was deleted. "
            "Check --source/--md5, or pass --source PATH to a verified local copy"
        )
    os.replace(part, dest)
    return dest


def _offline_hint() -> str:
    return "cifar-100-python.tar.gz, its extracted folder or a staged folder"


def _download_once(url: str, part: Path, show: Show) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "scones-stage"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        request = urllib.request.Request(url, headers=headers)
        resp = urllib.request.urlopen(request, timeout=HTTP_TIMEOUT)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing after `have`: the part is whole, or larger
            total = _content_range_total(err.headers.get("Content-Range"))
            err.close()
            if total == have:
                return
            part.unlink()
            return _download_once(url, part, show)
        raise SourceUnreachable(
            f"cannot download {url}: HTTP {err.code} {err.reason}; check --source, "
            f"or pass --source PATH to a local copy such as {_offline_hint()}"
        ) from err
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise SourceUnreachable(
            f"cannot reach {url} ({reason}; offline?); pass --source PATH to a local copy "
            f"such as {_offline_hint()}"
        ) from err
    with resp:
        start = 0
        if have and resp.status == 206:
            start = _content_range_start(resp.headers.get("Content-Range"))
            if start != have:  # an answer for another range: trust nothing, restart
                LOG.warning("server resumed %s at byte %s, not %d; restarting", url, start, have)
                start = 0
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        if have and start == 0:
            LOG.info("%s does not support resuming; downloading from the start", url)
        size = start
        download = show.bar("download", total, completed=start, url=url)
        with download as tick, part.open("r+b" if start else "wb") as fh:
            fh.seek(start)
            fh.truncate()
            try:
                while chunk := resp.read(CHUNK_BYTES):
                    fh.write(chunk)
                    size += len(chunk)
                    tick(completed=size)
            except (OSError, http.client.HTTPException) as err:  # reset, timeout, IncompleteRead
                raise DownloadInterrupted(
                    f"download of {url} stopped at {size} bytes ({err}); run the same command "
                    "again to resume"
                ) from err
    if total is not None and size < total:
        raise DownloadInterrupted(
            f"download of {url} stopped at {size} of {total} bytes; run the same command again "
            "to resume"
        )


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-", value or "")
    return int(match.group(1)) if match else None


def _content_range_total(value: str | None) -> int | None:
    match = re.search(r"/(\d+)$", value or "")
    return int(match.group(1)) if match else None


# ------------------------------ Transform ------------------------------


def transform(
    data: SourceData,
    names: Sequence[str],
    out: Path,
    *,
    validation_fraction: float = 0.0,
    seed: int = SEED,
    provenance: dict | None = None,
    show: Show = QUIET,
) -> list[ClassInfo]:
    """Write the chosen classes as a staged folder: PNGs, .lst files, classes.json, marker.

    Everything goes to a temporary sibling folder first, the marker last; then the folder is
    renamed into place, replacing an earlier staged folder. Labels are 0..N-1 in `names` order.
    """
    from PIL import Image  # lazy: Pillow only to write PNGs; `scones --help` stays light

    out = Path(out).expanduser().resolve()
    if out.exists() and not is_staged(out) and (not out.is_dir() or any(out.iterdir())):
        raise StageError(
            f"--out {out} exists and is not a staged dataset; pick a new or empty folder"
        )
    label_of = {n: i for i, n in enumerate(names)}
    # (split, filename, label, source split, source index), per output split
    plan: dict[str, list[tuple[str, int, str, int]]] = {s: [] for s in SPLITS}
    for split in ("train", "test"):
        src = data.splits[split]
        chosen = [i for i, n in enumerate(src.names) if n in label_of]
        seen: set[str] = set()
        for i in chosen:
            fn = src.filenames[i]
            if "/" in fn or "\\" in fn or fn.startswith(".") or not fn:
                raise DatasetError(f"{data.path}: unsafe file name {fn!r} in {split}")
            if fn in seen:
                raise DatasetError(f"{data.path}: two {split} images are named {fn}")
            seen.add(fn)
            plan[split].append((fn, label_of[src.names[i]], split, i))
    if validation_fraction:
        rng = random.Random(seed)
        keep, carve = [], []
        for label in range(len(names)):
            items = sorted(e for e in plan["train"] if e[1] == label)
            k = round(validation_fraction * len(items))
            picked = set(rng.sample(range(len(items)), k))
            carve += [e for j, e in enumerate(items) if j in picked]
            keep += [e for j, e in enumerate(items) if j not in picked]
        plan["train"], plan["validation"] = keep, carve
    for split in SPLITS:
        plan[split].sort(key=lambda e: (e[1], e[0]))  # label, then file name: stable output
    if not plan["train"] or not plan["test"]:
        raise DatasetError(f"{data.path}: no train or test images for {', '.join(names)}")

    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        total = sum(len(v) for v in plan.values())
        with show.bar("stage", total) as tick:
            for split, entries in plan.items():
                if not entries:
                    continue
                (tmp / split).mkdir(parents=True, exist_ok=True)
                for fn, _, src_split, i in entries:
                    pixels = data.splits[src_split].pixels(i)
                    Image.fromarray(pixels, "RGB").save(tmp / split / fn, format="PNG")
                    tick(advance=1)
                lst = [LstEntry(j, label, fn) for j, (fn, label, _, _) in enumerate(entries)]
                (tmp / f"{split}.lst").write_text(format_lst(lst), encoding="utf-8")
        infos = [
            ClassInfo(
                label=label,
                name=name,
                fine_label=data.fine_labels.get(name),
                counts={s: sum(1 for e in plan[s] if e[1] == label) for s in SPLITS if plan[s]},
            )
            for label, name in enumerate(names)
        ]
        (tmp / CLASSES_FILE).write_text(classes_json(infos), encoding="utf-8")
        marker = {
            "format": "sagemaker-image-classification-lst",
            "classes": list(names),
            "counts": {s: len(plan[s]) for s in SPLITS if plan[s]},
            "validation_fraction": validation_fraction,
            "seed": seed,
            **(provenance or {}),
        }
        # Marker last: only a folder holding it is a complete dataset.
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        _commit(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return infos


def _commit(tmp: Path, out: Path) -> None:
    """Rename tmp to out; an older staged out is moved aside first, then deleted."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old) if any(out.iterdir()) else out.rmdir()
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


# ------------------------------ Load (S3) ------------------------------


def s3_client(workers: int = UPLOAD_WORKERS):  # noqa: ANN201 - boto3 client type is dynamic
    """A boto3 S3 client for the upload threads; AWS_ENDPOINT_URL (the emulator) or real S3."""
    return aws.s3_client(workers)


def _managed(key: str, prefix: str) -> bool:
    """Keys a staging owns under its prefix (and may delete when stale)."""
    rest = key[len(prefix) :] if key.startswith(prefix) else None
    if rest is None:
        return False
    owned_files = {f"{s}.lst" for s in SPLITS} | {CLASSES_FILE, MARKER}
    return rest in owned_files or rest.split("/", 1)[0] in SPLITS and "/" in rest


def upload_folder(
    folder: Path,
    bucket: str,
    prefix: str,
    *,
    s3=None,  # noqa: ANN001
    workers: int = UPLOAD_WORKERS,
    show: Show = QUIET,
) -> UploadResult:
    """Upload a staged folder to s3://bucket/prefix, skipping objects whose ETag is the file's MD5.

    Order keeps S3 readers safe: the old marker goes first, then images, then .lst files and
    classes.json, then objects the new staging no longer has, then the new marker.
    """
    folder = Path(folder)
    if not is_staged(folder):
        raise StageError(f"{folder} is not a complete staged dataset (no {MARKER}); stage it first")
    s3 = s3 or s3_client(workers)
    ensure_bucket(s3, bucket)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    wanted = {prefix + p.relative_to(folder).as_posix(): p for p in files}
    marker_key = prefix + MARKER
    try:
        existing: dict[str, str] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                existing[obj["Key"]] = obj["ETag"].strip('"')
    except (ClientError, BotoCoreError) as err:
        raise UploadError(f"cannot list s3://{bucket}/{prefix}: {err}") from err

    md5s = {key: file_md5(path) for key, path in wanted.items()}
    todo = [k for k in wanted if existing.get(k) != md5s[k]]
    stale = [k for k in existing if k not in wanted and _managed(k, prefix)]
    result = UploadResult(skipped=len(wanted) - len(todo))
    if not todo and not stale:
        return result

    def put(key: str) -> int:
        body = wanted[key].read_bytes()
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentMD5=base64.b64encode(bytes.fromhex(md5s[key])).decode(),
            ContentType=CONTENT_TYPES.get(wanted[key].suffix, "application/octet-stream"),
        )
        return len(body)

    is_image = re.compile(rf"^{re.escape(prefix)}({'|'.join(SPLITS)})/")
    waves = [
        [k for k in todo if is_image.match(k)],
        [k for k in todo if not is_image.match(k) and k != marker_key],
    ]
    try:
        if marker_key in existing:  # the prefix is being changed: not complete until re-marked
            s3.delete_object(Bucket=bucket, Key=marker_key)
        with show.bar("upload", len(todo)) as tick, ThreadPoolExecutor(workers) as pool:
            for wave in waves:
                futures = [pool.submit(put, key) for key in wave]
                for future in as_completed(futures):
                    result.uploaded_bytes += future.result()
                    result.uploaded += 1
                    tick(advance=1)
            for i in range(0, len(stale), 1000):  # DeleteObjects takes up to 1,000 keys
                batch = [{"Key": k} for k in stale[i : i + 1000]]
                s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            result.deleted = len(stale)
            result.uploaded_bytes += put(marker_key)
            result.uploaded += 1
            result.skipped = len(wanted) - result.uploaded
            tick(advance=1)
    except (ClientError, BotoCoreError) as err:
        raise UploadError(
            f"upload to s3://{bucket}/{prefix} failed ({err}); run the same command again: "
            "objects already there are skipped"
        ) from err
    return result


# ------------------------------ CLI ------------------------------

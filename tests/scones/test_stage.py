"""`scones stage`: download, transform and load CIFAR-100, with its failure modes."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scones import PROJECT_ROOT, aws, config, stage
from scones.dataset import (
    CIFAR100_FINE_NAMES,
    MARKER,
    VEHICLE_CLASSES,
    ClassInfo,
    CorruptArchive,
    NotADataset,
    UnknownClass,
    is_staged,
    load_classes,
    load_lst,
)
from scones.stack import free_port

TARBALL_PATH = "/cifar-100-python.tar.gz"
SHARED_CLASSES_JSON = PROJECT_ROOT.parent / "shared" / "data" / "cifar100_classes.json"


def assert_nothing_left(out: Path) -> None:
    """No staged folder, and no temp folder beside where it would go."""
    assert not out.exists(), f"{out} was left behind"
    leftovers = list(out.parent.glob(f".{out.name}.*")) if out.parent.exists() else []
    assert leftovers == [], leftovers


def lst_by_file(path: Path) -> dict[str, int]:
    return {e.path: e.label for e in load_lst(path)}


# ------------------------------ .lst format ------------------------------


def test_load_lst_reads_sagemaker_lines_and_float_labels(tmp_path):
    path = tmp_path / "train.lst"
    path.write_text("0\t0\ta.png\n1\t1.000000\tsub/b.png\n\n")
    assert [(e.index, e.label, e.path) for e in load_lst(path)] == [
        (0, 0, "a.png"),
        (1, 1, "sub/b.png"),
    ]


def test_load_lst_rejects_a_line_without_three_tab_fields(tmp_path):
    path = tmp_path / "train.lst"
    path.write_text("0\t0\ta.png\n1 1 b.png\n")
    with pytest.raises(NotADataset, match=r"train.lst:2: expected index<TAB>label<TAB>path"):
        load_lst(path)


def test_embedded_class_names_match_the_shared_class_list():
    if not SHARED_CLASSES_JSON.exists():
        pytest.skip(f"needs {SHARED_CLASSES_JSON}")
    shared = json.loads(SHARED_CLASSES_JSON.read_text())
    assert list(CIFAR100_FINE_NAMES) == shared["fine_label_names"]
    vehicles = shared["vehicle_fine_labels"]
    assert sorted(VEHICLE_CLASSES) == sorted(vehicles)
    coarse = shared["fine_to_coarse"]
    # our order: superclass, then fine label
    assert list(VEHICLE_CLASSES) == sorted(
        vehicles, key=lambda n: (coarse[vehicles[n]], vehicles[n])
    )


# ------------------------------ Download + transform ------------------------------


def test_download_stages_pngs_lst_and_classes_json(cifar, http_server, tmp_path):
    url = http_server.serve(TARBALL_PATH, cifar.tarball.read_bytes())
    out = tmp_path / "out"
    summary = stage.stage(url, "bicycle,motorcycle", out=out, upload=False, md5=cifar.md5)

    assert http_server.requests == [(TARBALL_PATH, None)]
    assert summary.source_md5 == cifar.md5 and summary.source_kind == "url"
    assert is_staged(out)
    for split in ("train", "test"):
        labels = lst_by_file(out / f"{split}.lst")
        expected = {fn: 0 for fn in cifar.names_of(split, "bicycle")}
        expected |= {fn: 1 for fn in cifar.names_of(split, "motorcycle")}
        assert labels == expected
        assert sorted(p.name for p in (out / split).iterdir()) == sorted(expected)
        for fn in expected:  # pixels survive the channel-planar -> HxWx3 -> PNG round trip
            with Image.open(out / split / fn) as im:
                assert im.mode == "RGB" and im.size == (32, 32)
                np.testing.assert_array_equal(np.asarray(im), cifar.images[split][fn][1])
        assert summary.counts[split] == len(expected)
    assert any(fn.startswith("bike_") for fn in cifar.names_of("train", "motorcycle"))
    assert load_classes(out) == [
        ClassInfo(0, "bicycle", 8, {"train": 6, "test": 2}),
        ClassInfo(1, "motorcycle", 48, {"train": 6, "test": 2}),
    ]
    assert not (out / "validation.lst").exists()

    # a second run uses the cached download: no new request
    stage.stage(url, "bicycle,motorcycle", out=out, upload=False, md5=cifar.md5)
    assert len(http_server.requests) == 1


def test_vehicles_yield_ten_classes_with_their_real_fine_labels(cifar, tmp_path):
    out = tmp_path / "vehicles"
    summary = stage.stage(cifar.tarball, "vehicles", out=out, upload=False)

    # order from the tarball's meta: vehicles_1 then vehicles_2, each by fine label
    expected = [
        ("bicycle", 8), ("bus", 13), ("motorcycle", 48), ("pickup_truck", 58), ("train", 90),
        ("lawn_mower", 41), ("rocket", 69), ("streetcar", 81), ("tank", 85), ("tractor", 89),
    ]  # fmt: skip
    classes = load_classes(out)
    assert [(c.label, c.name, c.fine_label) for c in classes] == [
        (i, name, fine) for i, (name, fine) in enumerate(expected)
    ]
    assert all(c.counts == {"train": 6, "test": 2} for c in classes)
    assert summary.name == "vehicles" and summary.counts["train"] == 60
    label_of_fine = {fine: i for i, (_, fine) in enumerate(expected)}
    for split in ("train", "test"):
        for fn, label in lst_by_file(out / f"{split}.lst").items():
            assert label == label_of_fine[cifar.images[split][fn][0]]


def test_md5_mismatch_is_rejected_and_nothing_is_left(cifar, http_server, tmp_path, state_dir):
    url = http_server.serve(TARBALL_PATH, cifar.tarball.read_bytes())
    out = tmp_path / "out"
    with pytest.raises(stage.ChecksumMismatch, match=f"MD5 {cifar.md5}, expected 0{{32}}"):
        stage.stage(url, out=out, upload=False, md5="0" * 32)
    assert_nothing_left(out)
    assert list((state_dir / "cache").iterdir()) == []  # a wrong file is not kept for resuming


def test_official_url_always_checks_the_official_md5(cifar, http_server, tmp_path, monkeypatch):
    url = http_server.serve(TARBALL_PATH, cifar.tarball.read_bytes())
    monkeypatch.setattr(config, "DATASET_URL", url)  # pretend our server is cs.toronto.edu
    out = tmp_path / "out"
    with pytest.raises(stage.ChecksumMismatch, match=f"expected {config.DATASET_MD5}"):
        stage.stage(url, out=out, upload=False)
    assert_nothing_left(out)


def test_interrupted_download_resumes_with_range_on_the_next_run(
    cifar, http_server, tmp_path, state_dir
):
    body = cifar.tarball.read_bytes()
    url = http_server.serve(TARBALL_PATH, body)
    http_server.drops[TARBALL_PATH] = 1
    out = tmp_path / "out"
    with pytest.raises(stage.DownloadInterrupted, match="run the same command again to resume"):
        stage.stage(url, out=out, upload=False, md5=cifar.md5, attempts=1)
    assert_nothing_left(out)
    (part,) = (state_dir / "cache").glob("*.part")
    half = len(body) // 2
    assert part.stat().st_size == half

    summary = stage.stage(url, out=out, upload=False, md5=cifar.md5, attempts=1)
    assert http_server.requests == [(TARBALL_PATH, None), (TARBALL_PATH, f"bytes={half}-")]
    assert summary.source_md5 == cifar.md5 and is_staged(out)
    assert list((state_dir / "cache").glob("*.part")) == []


def test_interrupted_download_is_retried_within_one_run(cifar, http_server, tmp_path):
    body = cifar.tarball.read_bytes()
    url = http_server.serve(TARBALL_PATH, body)
    http_server.drops[TARBALL_PATH] = 1
    summary = stage.stage(url, out=tmp_path / "out", upload=False, md5=cifar.md5)
    assert http_server.requests == [
        (TARBALL_PATH, None),
        (TARBALL_PATH, f"bytes={len(body) // 2}-"),
    ]
    assert summary.source_md5 == cifar.md5


def test_truncated_tarball_is_rejected(cifar, tmp_path):
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(cifar.tarball.read_bytes()[: cifar.tarball.stat().st_size * 6 // 10])
    out = tmp_path / "out"
    with pytest.raises(CorruptArchive, match="cut.tar.gz is truncated or damaged"):
        stage.stage(cut, out=out, upload=False)
    assert_nothing_left(out)


class _Exploit:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (str(self.target),))


def test_pickle_that_would_run_code_is_refused(cifar, tmp_path):
    evil = tmp_path / "evil"
    shutil.copytree(cifar.folder, evil / "cifar-100-python")
    pwned = tmp_path / "pwned"
    (evil / "cifar-100-python" / "meta").write_bytes(pickle.dumps({b"x": _Exploit(pwned)}))
    with pytest.raises(
        CorruptArchive, match=r"cannot read the meta pickle \(refusing to load posix"
    ):
        stage.stage(evil, out=tmp_path / "out", upload=False)
    assert not pwned.exists()
    assert_nothing_left(tmp_path / "out")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy 2 aliases numpy.core
def test_pickles_written_by_old_numpy_load(cifar, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(cifar.folder, old)
    for name in ("train", "test"):  # the official tarball names numpy.core, not numpy._core
        blob = (old / name).read_bytes()
        assert b"numpy._core.multiarray" in blob
        (old / name).write_bytes(blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    summary = stage.stage(old, out=tmp_path / "out", upload=False)
    assert summary.counts["train"] == 12


def test_local_tarball_with_wrong_md5_is_rejected(cifar, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(stage.ChecksumMismatch, match=f"has MD5 {cifar.md5}, expected f{{32}}"):
        stage.stage(cifar.tarball, out=out, upload=False, md5="f" * 32)
    assert_nothing_left(out)


def test_unknown_class_lists_the_valid_names_before_downloading(cifar, http_server, tmp_path):
    url = http_server.serve(TARBALL_PATH, cifar.tarball.read_bytes())
    out = tmp_path / "out"
    with pytest.raises(UnknownClass, match=r"unknown class 'unicorn' for --classes; valid: apple,"):
        stage.stage(url, "bicycle,unicorn", out=out, upload=False)
    assert http_server.requests == []
    assert_nothing_left(out)


def test_vehicles_from_a_two_class_folder_names_the_missing_classes(cifar, tmp_path):
    two = tmp_path / "two"
    stage.stage(cifar.tarball, "bicycle,motorcycle", out=two, upload=False)
    out = tmp_path / "out"
    with pytest.raises(UnknownClass, match=r"'bus'.*valid: bicycle, motorcycle"):
        stage.stage(two, "vehicles", out=out, upload=False)
    assert_nothing_left(out)


def test_folder_that_is_not_a_dataset_is_rejected(tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    out = tmp_path / "out"
    with pytest.raises(NotADataset, match="junk is not a dataset: expected train.lst"):
        stage.stage(junk, out=out, upload=False)
    with pytest.raises(NotADataset, match="notes.txt is not a tarball"):
        stage.stage(junk / "notes.txt", out=out, upload=False)
    assert_nothing_left(out)


def test_staged_folder_with_a_missing_image_is_rejected(cifar, tmp_path):
    src = tmp_path / "src"
    stage.stage(cifar.tarball, out=src, upload=False)
    victim = sorted((src / "test").iterdir())[0]
    victim.unlink()
    out = tmp_path / "out"
    with pytest.raises(NotADataset, match=f"lists {victim.name}, missing from"):
        stage.stage(src, out=out, upload=False)
    assert_nothing_left(out)


def test_unreachable_url_names_the_source_option(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/cifar-100-python.tar.gz"
    out = tmp_path / "out"
    with pytest.raises(stage.SourceUnreachable) as info:
        stage.stage(url, out=out, upload=False)
    message = str(info.value)
    assert message.startswith(f"cannot reach {url} (")
    assert "offline?); pass --source PATH to a local copy such as" in message
    assert "\n" not in message
    assert_nothing_left(out)


def test_out_folder_that_is_not_staged_is_never_replaced(cifar, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(stage.StageError, match="exists and is not a staged dataset"):
        stage.stage(cifar.tarball, out=out, upload=False)
    assert (out / "precious.txt").read_text() == "keep me"


def test_extracted_and_restaged_folders_give_the_same_dataset(cifar, tmp_path):
    runs = {
        "tarball": cifar.tarball,
        "folder": cifar.folder,  # cifar-100-python/
        "parent": cifar.folder.parent,  # a folder holding cifar-100-python/
    }
    outs = {k: tmp_path / k for k in runs}
    for key, src in runs.items():
        stage.stage(src, "motorcycle,bicycle", out=outs[key], upload=False)
    summary = stage.stage(
        outs["tarball"], "motorcycle,bicycle", out=tmp_path / "again", upload=False
    )
    assert summary.source_kind == "staged-folder"
    outs["again"] = tmp_path / "again"
    reference = outs["tarball"]
    assert (
        lst_by_file(reference / "train.lst")[sorted(cifar.names_of("train", "motorcycle"))[0]] == 0
    )
    for out in outs.values():
        for rel in ("train.lst", "test.lst", "classes.json"):
            assert (out / rel).read_text() == (reference / rel).read_text(), (out, rel)
        for png in (reference / "train").iterdir():
            assert (out / "train" / png.name).read_bytes() == png.read_bytes()


def test_validation_split_is_seeded_disjoint_and_carved_from_train(cifar, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    summary = stage.stage(cifar.tarball, out=a, upload=False, validation_fraction=0.34)
    stage.stage(cifar.tarball, out=b, upload=False, validation_fraction=0.34)
    assert summary.counts == {"train": 8, "validation": 4, "test": 4}  # round(0.34 * 6) = 2
    train, val = lst_by_file(a / "train.lst"), lst_by_file(a / "validation.lst")
    assert not set(train) & set(val)
    official = cifar.names_of("train", "bicycle") | cifar.names_of("train", "motorcycle")
    assert set(train) | set(val) == official
    assert sorted(p.name for p in (a / "validation").iterdir()) == sorted(val)
    assert (a / "validation.lst").read_text() == (b / "validation.lst").read_text()
    assert [c.counts for c in load_classes(a)] == [{"train": 4, "validation": 2, "test": 2}] * 2
    # restaging a folder with a validation split folds it back into train
    again = stage.stage(a, out=tmp_path / "c", upload=False)
    assert again.counts == {"train": 12, "validation": 0, "test": 4}


# ------------------------------ CLI ------------------------------


def run_cli(*args: str, state: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SCONES_STATE_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "scones", "stage", *args],
        capture_output=True, text=True, env=env, timeout=180, cwd=PROJECT_ROOT,
    )  # fmt: skip


def test_cli_prints_json_summary_and_writes_default_folder(cifar, tmp_path):
    proc = run_cli("--source", str(cifar.tarball), "--no-upload", "--json", state=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["counts"] == {"train": 12, "validation": 0, "test": 4}
    assert summary["out"] == str(tmp_path / "datasets" / "bicycle-motorcycle")
    assert is_staged(Path(summary["out"])) and summary["bucket"] is None


def test_cli_error_is_one_line_and_an_unknown_class_exits_2(cifar, tmp_path):
    args = ("--source", str(cifar.tarball), "--classes", "bicycle,unicorn", "--no-upload")
    proc = run_cli(*args, state=tmp_path)
    assert proc.returncode == 2  # a bad --classes is a usage error
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown class 'unicorn'"), proc.stderr
    assert not (tmp_path / "datasets").exists()


# ------------------------------ Load into S3 (emulator) ------------------------------


def bucket_keys(s3, bucket: str, prefix: str = "") -> dict[str, str]:
    keys: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys |= {o["Key"]: o["ETag"].strip('"') for o in page.get("Contents", [])}
    return keys


@pytest.mark.integration
def test_shared_data_lands_in_the_bucket_once(shared_data, aws_client, tmp_path):
    s3 = aws_client("s3")
    bucket = f"stage-{uuid.uuid4().hex[:12]}"
    summary = stage.stage(shared_data, bucket=bucket, prefix="scones", out=tmp_path / "out")

    keys = bucket_keys(s3, bucket)
    train = [k for k in keys if k.startswith("scones/train/")]
    test = [k for k in keys if k.startswith("scones/test/")]
    assert len(train) == len(load_lst(shared_data / "train.lst")) == 1000
    assert len(test) == len(load_lst(shared_data / "test.lst")) == 200
    for name in ("train.lst", "test.lst", "classes.json", MARKER):
        body = s3.get_object(Bucket=bucket, Key=f"scones/{name}")["Body"].read()
        assert body == (tmp_path / "out" / name).read_bytes()
    # the shared labels survive: same file -> label map as the source .lst
    assert lst_by_file(tmp_path / "out" / "train.lst") == lst_by_file(shared_data / "train.lst")
    assert summary.uploaded == len(keys) and summary.skipped == 0
    assert [c["name"] for c in summary.classes] == ["bicycle", "motorcycle"]

    # second run, through the CLI: everything is already there
    proc = run_cli(
        "--source", str(shared_data), "--bucket", bucket, "--prefix", "scones/",
        "--out", str(tmp_path / "out"), "--json", state=tmp_path / "state",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    assert again["uploaded"] == 0 and again["skipped"] == len(keys)
    assert bucket_keys(s3, bucket) == keys


@pytest.mark.integration
def test_restaging_other_classes_removes_stale_objects(cifar, aws_client, tmp_path):
    s3 = aws_client("s3")
    bucket = f"stage-{uuid.uuid4().hex[:12]}"
    first = stage.stage(cifar.tarball, "vehicles", bucket=bucket, out=tmp_path / "v")
    assert first.prefix == "datasets/vehicles/"
    assert first.uploaded == 80 + 4  # 10 classes x 8 PNGs, 2 .lst, classes.json, marker

    pair = stage.stage(
        cifar.tarball, bucket=bucket, prefix="datasets/vehicles/", out=tmp_path / "p"
    )
    assert pair.deleted == 64  # the eight other classes' PNGs
    # bicycle/motorcycle PNGs are byte-identical: only .lst, classes.json, marker change
    assert pair.uploaded == 4 and pair.skipped == 16
    keys = bucket_keys(s3, bucket, "datasets/vehicles/")
    local = {"datasets/vehicles/" + p.relative_to(tmp_path / "p").as_posix()
             for p in (tmp_path / "p").rglob("*") if p.is_file()}  # fmt: skip
    assert set(keys) == local


def test_unreachable_s3_fails_before_staging(cifar, tmp_path, monkeypatch):
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    out = tmp_path / "out"
    with pytest.raises(aws.Unreachable, match=f"cannot reach S3 at {endpoint} .*scones up"):
        stage.stage(cifar.tarball, bucket="scones-data", out=out)
    assert_nothing_left(out)


@pytest.mark.integration
def test_bucket_that_cannot_be_created_fails_before_staging(cifar, aws_client, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(stage.BucketError, match=r"cannot create bucket 'ab'.*pass --bucket NAME"):
        stage.stage(cifar.tarball, bucket="ab", out=out)
    assert_nothing_left(out)

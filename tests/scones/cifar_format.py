"""CIFAR-100's python format as the tests write it: the split and meta pickles, the tarball."""

from __future__ import annotations

import hashlib
import pickle
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def write_split(
    folder: Path,
    split: str,
    images: Sequence[np.ndarray],
    fine: list[int],
    coarse: list[int],
    filenames: list[str],
) -> None:
    """One split's pickle: HxWx3 uint8 images stored as the real arrays are."""
    # CIFAR rows are channel-planar: all R, then all G, then all B (row-major each)
    data = [np.concatenate([img[:, :, c].ravel() for c in range(3)]) for img in images]
    body = {
        b"filenames": [f.encode() for f in filenames],
        b"batch_label": f"{split}ing batch 1 of 1".encode(),
        b"fine_labels": fine,
        b"coarse_labels": coarse,
        b"data": np.stack(data),
    }
    (folder / split).write_bytes(pickle.dumps(body, protocol=2))


def write_tarball(
    folder: Path, fine_names: Sequence[str], coarse_names: Sequence[str]
) -> tuple[Path, str]:
    """`meta` beside the split pickles, then cifar-100-python.tar.gz next to folder; (path, md5)."""
    meta = {
        b"fine_label_names": [n.encode() for n in fine_names],
        b"coarse_label_names": [n.encode() for n in coarse_names],
    }
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    tarball = folder.parent / "cifar-100-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(folder, arcname="cifar-100-python")
    return tarball, hashlib.md5(tarball.read_bytes()).hexdigest()

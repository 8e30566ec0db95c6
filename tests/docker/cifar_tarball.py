"""A cifar-100-python.tar.gz in the official layout, built from the shared copy's real images."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1] / "scones"))  # the tests' CIFAR writer
from cifar_format import write_split, write_tarball  # noqa: E402


def build_cifar_tarball(shared: Path, out_dir: Path) -> tuple[Path, str]:
    """Write out_dir/cifar-100-python.tar.gz from a staged folder with index_map.csv; (path, md5).

    Every image of the folder, with its CIFAR-100 fine and coarse labels from index_map.csv and
    the class names of ../cifar100_classes.json beside the folder.
    """
    names = json.loads((shared.parent / "cifar100_classes.json").read_text(encoding="utf-8"))
    rows = list(csv.DictReader((shared / "index_map.csv").open(encoding="utf-8")))
    folder = out_dir / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        chosen = [r for r in rows if r["split"] == split]
        images = []
        for row in chosen:
            with Image.open(shared / split / row["filename"]) as img:
                images.append(np.asarray(img.convert("RGB"), dtype=np.uint8))
        write_split(
            folder,
            split,
            images,
            [int(r["fine_label"]) for r in chosen],
            [int(r["coarse_label"]) for r in chosen],
            [r["filename"] for r in chosen],
        )
    return write_tarball(folder, names["fine_label_names"], names["coarse_label_names"])

"""Test helpers (not fixtures) for demo, load, report and the explorer: data staged, workflow up.

Staged data: the real shared test split when it is beside the repo, else a small synthetic
dataset (red bicycles, blue motorcycles) staged the same way, so these tests run anywhere.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from scones import config
from scones.deploy import DeployResult, deploy
from scones.stage import stage

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data" / "cifar100-scones"
DATASET = "bicycle-motorcycle"
SYNTHETIC_PER_CLASS = {"train": 2, "test": 6}


def synthetic_staged_folder(folder: Path) -> Path:
    """A staged folder (train/ test/ PNGs, .lst, classes.json): reddish bicycles, bluish motos."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(3)
    classes = {
        "0": {"name": "bicycle", "fine_label": 8, "counts": {}},
        "1": {"name": "motorcycle", "fine_label": 48, "counts": {}},
    }
    for split, per_class in SYNTHETIC_PER_CLASS.items():
        (folder / split).mkdir(parents=True, exist_ok=True)
        lines = []
        for label in (0, 1):
            for i in range(per_class):
                pixels = rng.integers(0, 90, (32, 32, 3), dtype=np.uint8)
                pixels[:, :, 0 if label == 0 else 2] += 160
                name = f"{classes[str(label)]['name']}_{split}_{i}.png"
                buffer = io.BytesIO()
                Image.fromarray(pixels).save(buffer, "PNG")
                (folder / split / name).write_bytes(buffer.getvalue())
                lines.append(f"{len(lines)}\t{label}\t{name}\n")
        (folder / f"{split}.lst").write_text("".join(lines))
    (folder / "classes.json").write_text(json.dumps(classes))
    return folder


def staged_source(tmp: Path) -> Path:
    """The folder to stage: the real shared data if present, else a synthetic one under tmp."""
    if (SHARED_DATA / "test.lst").is_file():
        return SHARED_DATA
    return synthetic_staged_folder(tmp / "synthetic-cifar")


def stage_test_data(tmp: Path) -> Path:
    """Stage (idempotently) into the test stack's bucket; returns the source used."""
    source = staged_source(tmp)
    stage(source, ("bicycle", "motorcycle"), out=tmp / "staged")
    return source


def deployed_workflow() -> DeployResult:
    """The workflow as `scones deploy` leaves it (resets what other tests changed)."""
    config.apply_target_env()
    return deploy()


def staged_test_images(source: Path) -> list[tuple[str, str]]:
    """(S3 key, class) of each staged test image."""
    names = {0: "bicycle", 1: "motorcycle"}
    out = []
    for line in (source / "test.lst").read_text().splitlines():
        _, label, path = line.split("\t")
        out.append((f"datasets/{DATASET}/test/{path}", names[int(float(label))]))
    return out

"""Fixtures for `scones import`/`execute`: a model, a dataset, what the model says per image."""

from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from scones import config
from tests.support.tiny_model import build_tiny_model

PROJECT = Path(__file__).resolve().parent / "course_project"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar100-scones"
# The data's label order (shared/data/README.md: 0 = bicycle, 1 = motorcycle); the tiny model's too.
DATASET_CLASSES = ["bicycle", "motorcycle"]
# Synthetic stand-ins when ../shared is absent: the names the project's events use, plus more.
SYNTHETIC = {"bicycle_s_000513.png": 0, "bike_s_000041.png": 1, "bicycle_s_000030.png": 0,
             "minibike_s_000052.png": 1}  # fmt: skip


@pytest.fixture(scope="session")
def byo_model(request, emulator):
    """The running model server: the configured model, else a tiny bicycle/motorcycle one."""
    if not (config.MODEL_DIR / "model.onnx").exists():
        config.MODEL_DIR = build_tiny_model(
            config.STATE_DIR / "byo-tiny-model", DATASET_CLASSES, with_ood=False
        )
    return request.getfixturevalue("model_server")


def _synthetic_dataset(root: Path) -> Path:
    """A staged-folder layout (train/ test/ PNGs, .lst files, classes.json): red = 0, blue = 1."""
    from PIL import Image

    for split in ("train", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
        lines = []
        for i, (name, label) in enumerate(sorted(SYNTHETIC.items())):
            colour = (200, 40, 30) if label == 0 else (30, 40, 200)
            Image.new("RGB", (32, 32), colour).save(root / split / name)
            lines.append(f"{i}\t{label}\t{name}")
        (root / f"{split}.lst").write_text("\n".join(lines) + "\n")
    classes = {str(i): {"name": n, "fine_label": f}
               for i, (n, f) in enumerate(zip(DATASET_CLASSES, (8, 48), strict=True))}  # fmt: skip
    (root / "classes.json").write_text(json.dumps(classes))
    return root


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory) -> Path:
    """The real CIFAR-100 pair beside the repo, else a small synthetic one in the same layout."""
    if (SHARED / "test.lst").exists():
        return SHARED
    return _synthetic_dataset(tmp_path_factory.mktemp("byo-dataset"))


@dataclass
class ModelView:
    """What the served model says about an image, asked directly (not through the workflow)."""

    url: str
    classes: list[str]

    def probabilities(self, png: bytes) -> list[float]:
        request = urllib.request.Request(
            self.url + "/invocations", data=png, headers={"Content-Type": "image/png"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


@pytest.fixture(scope="session")
def model_view(byo_model) -> ModelView:
    with urllib.request.urlopen(byo_model.url + "/health", timeout=10) as response:
        classes = json.loads(response.read())["classes"]
    return ModelView(byo_model.url, classes)


@pytest.fixture(scope="session")
def test_images(dataset_dir, model_view) -> list[dict]:
    """Every test image with its true label and the model's own answer, in test.lst order."""
    images = []
    for line in (dataset_dir / "test.lst").read_text().splitlines():
        _, label, name = line.split("\t")
        png = (dataset_dir / "test" / name).read_bytes()
        probs = model_view.probabilities(png)
        images.append({
            "name": name,
            "truth": DATASET_CLASSES[int(label)],
            "predicted": model_view.classes[max(range(len(probs)), key=probs.__getitem__)],
            "confidence": max(probs),
            "probabilities": probs,
        })  # fmt: skip
    return images


@pytest.fixture(scope="session")
def threshold() -> float:
    """The course filter's THRESHOLD, read from the project's own filterInferences.py."""
    text = (PROJECT / "lambdas" / "filterInferences.py").read_text()
    return float(re.search(r"^THRESHOLD = ([\d.]+)", text, re.M).group(1))


@pytest.fixture(scope="session")
def confident(test_images, threshold) -> dict:
    """An image the model labels right with more than the filter's threshold (the event's own
    image when it is one): the course workflow SUCCEEDS with it on AWS."""
    own = Path(json.loads((PROJECT / "events" / "test_event.json").read_text())["s3_key"]).name
    good = [i for i in test_images if i["confidence"] > threshold and i["predicted"] == i["truth"]]
    if not good:
        pytest.skip(f"the served model is not confident and right on any test image ({threshold})")
    return next((i for i in good if i["name"] == own), good[0])


@pytest.fixture(scope="session")
def doubtful(test_images, threshold) -> dict:
    """An image the model scores at or below the threshold: the course filter raises on it."""
    low = [i for i in test_images if i["confidence"] <= threshold]
    if not low:
        pytest.skip(f"the served model is confident (> {threshold}) on every test image")
    return low[0]

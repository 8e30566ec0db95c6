"""Evaluate an exported model (model.onnx + model.json) with onnxruntime, as the server runs it."""

# Data: a staged dataset folder (<split>.lst + <split>/) or a folder with one sub-folder per class
# name holding photos of any size and format; an OOD folder is any folder of images (searched
# recursively) that are none of the classes. No torch here.

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from local_model import preprocess
from local_model.lst import BadLst, parse_lst

LOG = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
BATCH = 64  # images per onnxruntime call
ECE_BINS = 15  # equal-width confidence bins, the usual choice (Guo et al. 2017)


class EvaluationError(ValueError):
    """The model or the data given to evaluation cannot be used."""


@dataclass
class Model:
    """An ONNX session plus its model.json."""

    session: object
    meta: dict
    path: Path

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def spec(self) -> dict:
        return dict(self.meta["input"])


def load_model(model_dir: Path, threads: int = 2) -> Model:
    """Open model.onnx with onnxruntime (CPU) and read model.json."""
    import onnxruntime as ort

    model_dir = Path(model_dir)
    onnx_path, meta_path = model_dir / "model.onnx", model_dir / "model.json"
    if not onnx_path.is_file() or not meta_path.is_file():
        raise EvaluationError(
            f"no model at {model_dir} (needs model.onnx + model.json); run `scones train` first"
        )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    return Model(session, json.loads(meta_path.read_text()), model_dir)


def predict_outputs(model: Model, arrays: np.ndarray) -> dict[str, np.ndarray]:
    """(N, 3, H, W) prepared float32 -> every output model.json names, by its key there."""
    keys = list(model.meta["outputs"])
    names = [model.meta["outputs"][k] for k in keys]
    parts: dict[str, list] = {k: [] for k in keys}
    for i in range(0, len(arrays), BATCH):
        result = model.session.run(names, {model.spec["name"]: arrays[i : i + BATCH]})
        for key, value in zip(keys, result, strict=True):
            parts[key].append(value)
    return {k: np.concatenate(v) if v else np.zeros(0, np.float32) for k, v in parts.items()}


def predict(model: Model, arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, H, W) prepared float32 -> (probabilities (N, K), ood_score (N,))."""
    outputs = model.meta["outputs"]
    names = [outputs["probabilities"]]
    if outputs.get("ood_score"):
        names.append(outputs["ood_score"])
    probs, oods = [], []
    for i in range(0, len(arrays), BATCH):
        result = model.session.run(names, {model.spec["name"]: arrays[i : i + BATCH]})
        probs.append(result[0])
        oods.append(result[1] if len(result) > 1 else np.zeros(len(result[0]), np.float32))
    if not probs:
        k = len(model.classes)
        return np.zeros((0, k), np.float32), np.zeros(0, np.float32)
    return np.concatenate(probs), np.concatenate(oods)


# ------------------------------ Data ------------------------------
@dataclass
class Labelled:
    """Image files with labels (indices into the model's classes)."""

    files: list[Path]
    labels: np.ndarray
    source: str
    skipped: list[str] = field(default_factory=list)


def _staged_class_names(root: Path) -> list[str] | None:
    if (root / "classes.json").is_file():
        body = json.loads((root / "classes.json").read_text())
        return [str(body[k]["name"]) for k in sorted(body, key=int)]
    if (root / "classes.txt").is_file():
        return [c.strip() for c in (root / "classes.txt").read_text().splitlines() if c.strip()]
    if (root / "index_map.csv").is_file():
        names = {}
        with open(root / "index_map.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("binary_label") not in (None, "") and row.get("fine_name"):
                    names[int(row["binary_label"])] = row["fine_name"]
        return [names[i] for i in sorted(names)] if names else None
    return None


def image_files(folder: Path) -> list[Path]:
    """Every image file under folder (recursively, sorted, hidden files skipped)."""
    return sorted(
        p
        for p in Path(folder).rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def load_labelled(data: Path, classes: list[str], split: str = "test") -> Labelled:
    """A staged folder's split, or a folder of per-class sub-folders, mapped to model classes."""
    data = Path(data)
    if not data.is_dir():
        raise EvaluationError(f"no data folder at {data}")
    lst = data / f"{split}.lst"
    if lst.is_file():
        names = _staged_class_names(data) or classes
        index = {c.lower(): i for i, c in enumerate(classes)}
        if [n.lower() for n in names] != [c.lower() for c in classes]:
            LOG.warning(
                "dataset classes %s differ from the model's %s; mapping by name", names, classes
            )
        try:
            entries = parse_lst(lst.read_text(), str(lst))
        except BadLst as err:
            raise EvaluationError(str(err)) from err
        files, labels = [], []
        for entry in entries:
            name = names[entry.label].lower() if 0 <= entry.label < len(names) else ""
            if name not in index:
                raise EvaluationError(f"{lst}: label {entry.label} ({name!r}) is not a model class")
            files.append(data / split / entry.path)
            labels.append(index[name])
        return Labelled(files, np.array(labels, dtype=np.int64), f"{data} ({split}.lst)")
    index = {c.lower(): i for i, c in enumerate(classes)}
    folders = sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in folders if p.name.lower() not in index]
    if unknown or not folders:
        raise EvaluationError(
            f"{data} is neither a staged dataset (no {split}.lst) nor a folder of class "
            f"sub-folders named {classes}"
            + (f" (unknown: {', '.join(unknown)})" if unknown else "")
        )
    files, labels = [], []
    for folder in folders:
        found = image_files(folder)
        files.extend(found)
        labels.extend([index[folder.name.lower()]] * len(found))
    if not files:
        raise EvaluationError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {data}")
    return Labelled(files, np.array(labels, dtype=np.int64), str(data))


def prepare_files(files: list[Path], spec: dict) -> tuple[np.ndarray, list[int], list[str]]:
    """Read and prepare files; unreadable ones are skipped and reported, not fatal."""
    arrays, kept, skipped = [], [], []
    min_size = 2 * max(int(spec["height"]), int(spec["width"]))
    for i, path in enumerate(files):
        try:
            img = preprocess.decode_image(Path(path).read_bytes(), min_size=min_size)
        except (OSError, preprocess.InvalidImage, preprocess.ImageTooLarge) as err:
            skipped.append(f"{path}: {err}")
            continue
        arrays.append(preprocess.prepare(img, spec))
        kept.append(i)
    h, w = int(spec["height"]), int(spec["width"])
    batch = np.stack(arrays) if arrays else np.zeros((0, 3, h, w), np.float32)
    return batch.astype(np.float32, copy=False), kept, skipped


# ------------------------------ Metrics ------------------------------
def expected_calibration_error(conf: np.ndarray, right: np.ndarray, bins: int = ECE_BINS) -> float:
    if not len(conf):
        return 0.0
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    return float(
        sum(
            abs(right[idx == b].mean() - conf[idx == b].mean()) * (idx == b).mean()
            for b in range(bins)
            if (idx == b).any()
        )
    )


def metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str], threshold: float) -> dict:
    """Accuracy, per-class precision/recall, confusion matrix, coverage, confidently wrong, ECE."""
    n = len(labels)
    pred, conf = probs.argmax(1), probs.max(1)
    right = pred == labels
    passed = conf >= threshold
    k = len(classes)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (labels, pred), 1)
    per_class = {}
    for c, name in enumerate(classes):
        predicted, actual = confusion[:, c].sum(), confusion[c].sum()
        per_class[name] = {
            "precision": float(confusion[c, c] / predicted) if predicted else 0.0,
            "recall": float(confusion[c, c] / actual) if actual else 0.0,
            "n": int(actual),
        }
    return {
        "n": int(n),
        "threshold": threshold,
        "accuracy": float(right.mean()) if n else 0.0,
        "coverage": float(passed.mean()) if n else 0.0,
        "confidently_wrong": float((passed & ~right).mean()) if n else 0.0,
        # accuracy among the images that pass the filter: what the workflow actually delivers
        "accuracy_when_passed": float(right[passed].mean()) if passed.any() else None,
        "ece": expected_calibration_error(conf, right),
        "per_class": per_class,
        "confusion_matrix": {"labels": classes, "rows_true_cols_predicted": confusion.tolist()},
    }


def evaluate(
    model_dir: Path,
    data: Path,
    split: str = "test",
    threshold: float = 0.93,
    ood_data: Path | None = None,
) -> dict:
    """The evaluation as one JSON-ready dict (fractions, not percentages)."""
    model = load_model(model_dir)
    labelled = load_labelled(data, model.classes, split)
    t0 = time.perf_counter()
    arrays, kept, skipped = prepare_files(labelled.files, model.spec)
    probs, ood = predict(model, arrays)
    result = metrics(probs, labelled.labels[kept], model.classes, threshold)
    result.update(
        {
            "model": str(model_dir),
            "data": labelled.source,
            "split": split,
            "skipped": skipped,
            "mean_ood_score": float(ood.mean()) if len(ood) else 0.0,
            "seconds": round(time.perf_counter() - t0, 2),
        }
    )
    if ood_data is not None:
        result.update(evaluate_ood(model, Path(ood_data), threshold))
    return result


def ood_folder(root: Path, path: Path) -> str:
    """The first-level sub-folder of root that holds path ("." for files directly in root)."""
    parts = Path(path).relative_to(root).parts
    return parts[0] if len(parts) > 1 else "."


def unknown_cut(threshold: float, num_classes: int) -> float:
    """The ood_score u from which no image can pass: (1-u)*1 + u/K < threshold.

    The same rule as lambdas/filter_inferences.unknown_cut (Lambdas import nothing of ours).
    """
    return (1 - threshold) / (1 - 1 / num_classes)


def ood_outputs(model: Model, root: Path) -> tuple[dict[str, np.ndarray], np.ndarray, list[str]]:
    """Every output for the images under root, each image's ood_folder, and unreadable files."""
    files = image_files(root)
    if not files:
        raise EvaluationError(f"no images under --ood-data {root}")
    arrays, kept, skipped = prepare_files(files, model.spec)
    folders = np.array([ood_folder(root, files[i]) for i in kept])
    return predict_outputs(model, arrays), folders, skipped


def evaluate_ood(model: Model, root: Path, threshold: float) -> dict:
    """Pass rate at threshold over all images under root and per first-level sub-folder."""
    out, folders, skipped = ood_outputs(model, root)
    top = out["probabilities"].max(1) if len(folders) else np.zeros(0)
    scores = out.get("ood_score", np.zeros(len(top), np.float32))
    unknown = scores >= unknown_cut(threshold, len(model.classes))
    by_folder = {}
    for name in sorted(set(folders.tolist())):
        mask = folders == name
        by_folder[name] = {
            "n": int(mask.sum()),
            "pass_rate": float((top[mask] >= threshold).mean()),
            "unknown_rate": float(unknown[mask].mean()),
        }
    return {
        "ood_data": str(root),
        "ood_n": int(len(top)),
        "ood_pass_rate": float((top >= threshold).mean()) if len(top) else 0.0,
        "ood_mean_score": float(scores.mean()) if len(top) else 0.0,
        # u alone keeps these below the threshold: the workflow's NotATwoWheeler
        "ood_unknown_rate": float(unknown.mean()) if len(top) else 0.0,
        "ood_flagged_rate": float((scores >= 0.5).mean()) if len(top) else 0.0,
        "ood_by_folder": by_folder,
        "ood_skipped": skipped,
    }


# ------------------------------ Choosing the prior's ramp ------------------------------
# The rule that set HYP["vehicle_quantile"] in local_model/train.py: the largest quantile of the
# grid (least genuine images sent to review) whose pass rate on the development photos of other
# vehicles, pooled, is at most VEHICLE_DEV_TARGET (the 10 %, less a margin for unseen
# kinds of vehicle).
VEHICLE_QUANTILES = (0.98, 0.985, 0.99, 0.995, 0.998)
VEHICLE_DEV_TARGET = 0.08


def pass_at_quantile(
    out: dict[str, np.ndarray], genuine: np.ndarray, quantile: float, threshold: float
) -> np.ndarray:
    """Which images pass if the prior's ramp started at this quantile of genuine scores."""
    lo, mid = float(np.quantile(genuine, quantile)), float(np.median(genuine))
    hi = lo + max(lo - mid, 1e-3)
    ramp = np.clip((out["vehicle_score"] - lo) / max(hi - lo, 1e-6), 0, 1)
    u = np.maximum(out["distance_score"], ramp)[:, None]
    logits = out["logits"] - out["logits"].max(1, keepdims=True)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    k = p.shape[1]
    return ((1 - u) * p + u / k).max(1) >= threshold


def choose_quantile(
    out: dict[str, np.ndarray], genuine: np.ndarray, mask: np.ndarray, threshold: float
) -> float:
    """The rule above, on the development images selected by mask."""
    chosen = VEHICLE_QUANTILES[0]
    for q in VEHICLE_QUANTILES:
        if pass_at_quantile(out, genuine, q, threshold)[mask].mean() <= VEHICLE_DEV_TARGET:
            chosen = q
    return chosen


def leave_one_class_out(
    out: dict[str, np.ndarray], folders: np.ndarray, genuine: np.ndarray, threshold: float
) -> dict:
    """Each sub-folder held out in turn: the rule picks the quantile on the others (and genuine
    train images); the held-out folder's pass rate estimates a kind of vehicle never looked at."""
    names = sorted(set(folders.tolist()))
    held: dict[str, dict] = {}
    for name in names if len(names) > 1 else []:  # one folder leaves nothing to choose on
        quantile = choose_quantile(out, genuine, folders != name, threshold)
        passed = pass_at_quantile(out, genuine, quantile, threshold)[folders == name]
        held[name] = {"quantile": quantile, "pass_rate": float(passed.mean())}
    rates = [h["pass_rate"] for h in held.values()]
    return {
        "held_out": held,
        "worst": max(rates) if rates else None,
        "mean": float(np.mean(rates)) if rates else None,
        "quantile_all_folders": choose_quantile(
            out, genuine, np.ones(len(folders), bool), threshold
        ),
    }


# ------------------------------ Synthetic checks ------------------------------
def synthetic_ood_images(n: int, size: int = 32, seed: int = 0) -> list:
    """Images that are not vehicles: noise, gratings, checkerboards, blobs, gradients, flat colour.

    Only a far-OOD check: no bus or truck photos exist offline. Real other vehicles are a harder
    case, which the model's ImageNet-head signal targets but this cannot measure.
    """
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for i in range(n):
        kind = i % 6
        if kind == 0:  # coloured noise, blurred a random amount
            arr = rng.integers(0, 256, (size, size, 3)).astype(np.uint8)
            img = Image.fromarray(arr).filter(ImageFilter.GaussianBlur(rng.uniform(0, 2)))
        elif kind == 1:  # sinusoidal grating
            f, a = rng.uniform(1, 8), rng.uniform(0, math.pi)
            wave = np.sin(2 * math.pi * f * (xx * math.cos(a) + yy * math.sin(a)))
            colours = rng.integers(0, 256, (2, 3))
            arr = colours[0] + (colours[1] - colours[0]) * (wave[..., None] + 1) / 2
            img = Image.fromarray(arr.astype(np.uint8))
        elif kind == 2:  # checkerboard
            cells = int(rng.integers(2, 9))
            board = ((xx * cells).astype(int) + (yy * cells).astype(int)) % 2
            colours = rng.integers(0, 256, (2, 3))
            img = Image.fromarray(colours[board].astype(np.uint8))
        elif kind == 3:  # soft blobs
            arr = np.zeros((size, size, 3))
            for _ in range(int(rng.integers(2, 6))):
                cx, cy, r = rng.uniform(0, 1, 2).tolist() + [rng.uniform(0.05, 0.3)]
                mask = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
                arr += mask[..., None] * rng.uniform(0, 255, 3)
            img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        elif kind == 4:  # linear gradient
            c0, c1 = rng.integers(0, 256, (2, 3))
            t = (xx if rng.random() < 0.5 else yy)[..., None]
            img = Image.fromarray((c0 + (c1 - c0) * t).astype(np.uint8))
        else:  # flat colour with a little sensor noise
            arr = rng.integers(0, 256, 3) + rng.normal(0, 4, (size, size, 3))
            img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        out.append(img.convert("RGB"))
    return out


def photo_like(image, rng: np.random.Generator) -> bytes:
    """A thumbnail made to look like a phone photo: big, non-square, rotated, JPEG, EXIF-rotated.

    The pixels are upscaled (so there is no new detail), placed on a 4:3 or 3:4 canvas extended
    by reflection, rotated a little, JPEG re-encoded and stored sideways with an EXIF orientation
    tag that the reader must undo.
    """
    from PIL import Image, ImageOps

    img = image.convert("RGB")
    long_side = int(rng.integers(256, 1600))
    img = img.resize((long_side, long_side), Image.Resampling.BICUBIC)
    img = img.rotate(float(rng.uniform(-8, 8)), Image.Resampling.BILINEAR, fillcolor=(128,) * 3)
    landscape = rng.random() < 0.5
    pad = long_side // 6  # 4:3 canvas around the square, filled by mirroring like a scene would be
    border = (pad, 0, pad, 0) if landscape else (0, pad, 0, pad)
    arr = np.pad(
        np.asarray(img),
        ((border[1], border[3]), (border[0], border[2]), (0, 0)),
        mode="reflect",
    )
    img = Image.fromarray(arr)
    orientation = int(rng.choice([1, 3, 6, 8]))
    # Store the pixels as a camera would before orientation: EXIF 6 = rotate 90 CW to display
    stored = {1: img, 3: img.rotate(180), 6: img.rotate(90, expand=True),
              8: img.rotate(-90, expand=True)}[orientation]  # fmt: skip
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=int(rng.integers(55, 95)), exif=exif.tobytes())
    data = buf.getvalue()
    # sanity: the reader must see the upright picture again
    assert ImageOps.exif_transpose(Image.open(io.BytesIO(data))).size == img.size
    return data


def write_photo_like_split(data: Path, split: str, classes: list[str], out: Path, seed: int = 0):
    """The staged split as a class-folder tree of photo-like JPEGs (for `scones evaluate`)."""
    from PIL import Image

    labelled = load_labelled(data, classes, split)
    rng = np.random.default_rng(seed)
    for path, label in zip(labelled.files, labelled.labels, strict=True):
        folder = out / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as img:
            (folder / (Path(path).stem + ".jpg")).write_bytes(photo_like(img, rng))
    return out


def write_images(images: list, out: Path, prefix: str = "img") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        img.save(out / f"{prefix}_{i:04d}.png")
    return out


def latency(model_dir: Path, runs: int = 200, threads: int = 1) -> dict:
    """Single-image onnxruntime latency (model only, prepared input), milliseconds."""
    model = load_model(model_dir, threads=threads)
    h, w = int(model.spec["height"]), int(model.spec["width"])
    x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
    for _ in range(10):
        predict(model, x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        predict(model, x)
        times.append((time.perf_counter() - t0) * 1000)
    return {
        "threads": threads,
        "runs": runs,
        "p50_ms": float(np.percentile(times, 50)),
        "p95_ms": float(np.percentile(times, 95)),
        "model_mb": round(
            sum(os.path.getsize(model_dir / f) for f in ("model.onnx", "model.json")) / 2**20, 2
        ),
    }


SHAPE_COLOURS = [(220, 40, 40), (40, 180, 60), (40, 80, 220), (230, 200, 40), (200, 60, 200)]


def write_synthetic_shapes(
    out: Path, num_classes: int = 10, per_class: int = 30, test_per_class: int = 10, seed: int = 0
) -> Path:
    """A staged dataset (train.lst/test.lst + PNGs + classes.json) of coloured shapes.

    Class c = shape (disc, square, triangle, cross, ring) x colour family; 32 px with jittered
    position, size and background, so it is learnable but not trivial. For tests and smoke runs
    where the real data is absent.
    """
    from PIL import Image, ImageDraw

    shapes = ["disc", "square", "triangle", "cross", "ring"]
    rng = np.random.default_rng(seed)
    names = [f"{shapes[c % 5]}_{c // 5}" for c in range(num_classes)]
    out = Path(out)
    for split, count in (("train", per_class), ("test", test_per_class)):
        (out / split).mkdir(parents=True, exist_ok=True)
        lines = []
        for c in range(num_classes):
            for j in range(count):
                bg = tuple(int(v) for v in rng.integers(0, 90, 3))
                img = Image.new("RGB", (32, 32), bg)
                draw = ImageDraw.Draw(img)
                base = np.array(SHAPE_COLOURS[(c // 5 * 2 + c % 5) % len(SHAPE_COLOURS)])
                colour = tuple(int(v) for v in np.clip(base + rng.integers(-25, 26, 3), 0, 255))
                r = int(rng.integers(7, 13))
                cx, cy = (int(v) for v in rng.integers(r + 1, 32 - r - 1, 2))
                box = (cx - r, cy - r, cx + r, cy + r)
                kind = shapes[c % 5]
                if kind == "disc":
                    draw.ellipse(box, fill=colour)
                elif kind == "square":
                    draw.rectangle(box, fill=colour)
                elif kind == "triangle":
                    draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
                elif kind == "cross":
                    w = max(2, r // 3)
                    draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=colour)
                    draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=colour)
                else:
                    draw.ellipse(box, outline=colour, width=max(2, r // 3))
                if c >= 5:  # second colour family: a stripe marks it beyond colour alone
                    draw.line((0, 31, 31, 31), fill=(255, 255, 255), width=2)
                name = f"{names[c]}_{j:03d}.png"
                img.save(out / split / name)
                lines.append(f"{len(lines)}\t{c}\t{name}")
        (out / f"{split}.lst").write_text("\n".join(lines) + "\n")
    body = {str(c): {"name": n, "fine_label": None, "counts": {}} for c, n in enumerate(names)}
    (out / "classes.json").write_text(json.dumps(body, indent=2) + "\n")
    return out


def other_vehicle_figures(model_dir: Path, data: Path, dev: Path, threshold: float) -> dict:
    """The development set of other-vehicle photos (one sub-folder per kind): pass rate in total
    and per folder, and the leave-one-class-out estimate of the prior's ramp rule (which needs
    the model's vehicle_score and the train split's genuine images; None without them)."""
    model = load_model(model_dir)
    figures = evaluate_ood(model, dev, threshold)
    result = {
        "ood_dev": str(dev),
        "ood_dev_n": figures["ood_n"],
        "ood_pass_rate_dev": figures["ood_pass_rate"],
        "ood_unknown_rate_dev": figures["ood_unknown_rate"],
        "ood_by_folder": figures["ood_by_folder"],
        "ood_leave_one_class_out": None,
    }
    if not {"vehicle_score", "distance_score", "logits"} <= set(model.meta["outputs"]):
        return result
    out, folders, _ = ood_outputs(model, dev)
    train = load_labelled(data, model.classes, "train")
    arrays, _, _ = prepare_files(train.files, model.spec)
    genuine = predict_outputs(model, arrays)["vehicle_score"]
    result["ood_leave_one_class_out"] = leave_one_class_out(out, folders, genuine, threshold)
    return result

"""`scones train`, `scones evaluate`, `scones bench model`: the SageMaker training stand-in."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from scones import QUIET, SconesError, Show, UsageError, config
from scones.stage import dataset_or_default

# The targets, printed beside the figures (benchmarks print, they never fail).
TARGETS = {
    "accuracy": (">=", 0.97),
    "coverage": (">=", 0.92),
    "confidently_wrong": ("<=", 0.005),
    "training_seconds": ("<=", 300.0),
    "latency_p50_ms": ("<=", 10.0),
    "ood_pass_rate": ("<=", 0.10),
    "ood_pass_rate_dev": ("<=", 0.10),
    "photo_like_accuracy": (">=", 0.935),
    "model_mb": ("<=", 25.0),
}


class ModelCommandError(SconesError):
    """Training, evaluation or the model benchmark was given something it cannot use."""


class ModelUsageError(ModelCommandError, UsageError):
    """Bad options, or no staged dataset to work on (exit code 2, like NoStagedDataset)."""


# ------------------------------ scones train ------------------------------


def run_training(
    data: str,
    out: Path,
    overrides: dict,
    arch: str | None = None,
    show: Show = QUIET,
    export_pytorch: bool = False,
    cv: int = 0,
) -> dict:
    """Resolve hyperparameters and train, ticking ``show.bar("train", epochs)``; returns model.json.

    ``cv`` >= 2: cross-validate instead; writes and returns cv.json.
    """
    from local_model import train as trainer  # lazy: torch (seconds to import), training only

    try:
        hyp = trainer.resolve_hyp(overrides, arch)
    except (trainer.TrainingError, ValueError) as err:
        raise ModelCommandError(str(err)) from err
    with show.bar("train", hyp["epochs"] * max(cv, 1), stats="loading data...") as tick:

        def progress(row: dict) -> None:
            stats = f"loss {row['train_loss']:.3f} acc {row['train_accuracy']:.3f}"
            if "val_accuracy" in row:
                stats += f" | val loss {row['val_loss']:.3f} acc {row['val_accuracy']:.3f}"
            tick(advance=1, stats=stats)

        try:
            if not cv:
                return trainer.run(
                    data, Path(out), hyp, progress, config.CONFIDENCE_THRESHOLD, export_pytorch
                )
            result = trainer.cross_validate(data, hyp, cv, progress, config.CONFIDENCE_THRESHOLD)
        except trainer.TrainingError as err:
            raise ModelCommandError(str(err)) from err
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "cv.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


# ------------------------------ scones evaluate ------------------------------


# ------------------------------ scones bench model ------------------------------
def run_benchmark(
    smoke: bool,
    model_dir: Path | None = None,
    data: Path | None = None,
    ood_data: Path | None = None,
) -> dict:
    """Train (full: the default recipe; smoke: tiny), evaluate on test, photos, OOD, latency.

    ood_data: the development set of other-vehicle photos; without it those figures are None.
    """
    from local_model import evaluate as ev  # lazy: onnxruntime, only when evaluating

    data = dataset_or_default(data)
    if not (data / "test.lst").is_file():
        raise ModelUsageError(f"no staged dataset at {data}; the model benchmark needs it")
    work = Path(tempfile.mkdtemp(prefix="scones-bench-model-"))
    try:
        result: dict = {"mode": "smoke" if smoke else "full", "data": str(data)}
        out = work / "model"
        overrides = {}
        if smoke:  # exercises the whole path, says nothing about the targets
            overrides = {"epochs": 1, "cached_views": 1, "image_shape": "3,64,64"}
        t0 = time.perf_counter()
        meta = run_training(str(data), out, overrides)
        result["training_seconds"] = meta["training_seconds"]
        result["trained_wall_seconds"] = round(time.perf_counter() - t0, 1)
        result["hyperparameters"] = meta["hyperparameters"]
        if not smoke:  # the committed default must be what the default recipe trains
            default = Path(config.MODEL_DIR) / "model.onnx"
            result["reproduces_default_model"] = default.is_file() and (
                default.read_bytes() == (out / "model.onnx").read_bytes()
            )
        # The figures below are for the model just trained in full mode, and for the committed
        # default model in smoke mode (a one-epoch model says nothing).
        target = out if not smoke else Path(model_dir or config.MODEL_DIR)
        if not (target / "model.onnx").is_file():
            target = out
        result["evaluated_model"] = str(target)
        test = ev.evaluate(target, data, "test", config.CONFIDENCE_THRESHOLD)
        for key in ("n", "accuracy", "coverage", "confidently_wrong", "ece"):
            result[key] = test[key]
        classes = ev.load_model(target).classes
        photos = ev.write_photo_like_split(data, "test", classes, work / "photos")
        ood = ev.write_images(ev.synthetic_ood_images(60 if smoke else 300), work / "ood")
        phot = ev.evaluate(target, photos, "test", config.CONFIDENCE_THRESHOLD, ood)
        result["photo_like"] = {k: phot[k] for k in ("n", "accuracy", "coverage",
                                                      "confidently_wrong")}  # fmt: skip
        result["photo_like_accuracy"] = phot["accuracy"]
        result["ood_n"], result["ood_pass_rate"] = phot["ood_n"], phot["ood_pass_rate"]
        result["ood_kind"] = "synthetic textures/noise"
        if ood_data is not None:  # real photos of other vehicles
            result.update(
                ev.other_vehicle_figures(target, data, Path(ood_data), config.CONFIDENCE_THRESHOLD)
            )
        else:
            result.update(ood_pass_rate_dev=None, ood_by_folder=None, ood_leave_one_class_out=None)
        lat = ev.latency(target, runs=50 if smoke else 300)
        result["latency_p50_ms"], result["latency_p95_ms"] = lat["p50_ms"], lat["p95_ms"]
        result["model_mb"] = lat["model_mb"]
        result["targets"] = {k: f"{op} {v}" for k, (op, v) in TARGETS.items()}
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)

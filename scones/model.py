"""`scones train`, `scones evaluate`, `scones bench model`: the SageMaker training stand-in."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from scones import SconesError, config, sagemaker_local
from scones.stage import dataset_or_default

OUT = Console()
ERR = Console(stderr=True)
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


# ------------------------------ scones train ------------------------------
def train(
    data: str = typer.Option(
        None,
        help="Staged dataset folder or s3://bucket/prefix (default: what `scones stage` wrote).",
    ),
    out: Path = typer.Option(
        None, help="Output model dir (model.onnx + model.json); default SCONES_MODEL_DIR."
    ),
    arch: str = typer.Option(
        None, help="efficientnet-lite0 (ImageNet weights, fine-tuned) or resnet (from scratch)."
    ),
    epochs: int = typer.Option(None, help="Passes over the training data."),
    learning_rate: float = typer.Option(None, help="Peak learning rate (one-cycle)."),
    mini_batch_size: int = typer.Option(None, help="Images per step."),
    optimizer: str = typer.Option(None, help="sgd | nag | adam | adamw | rmsprop."),
    momentum: float = typer.Option(None, help="Momentum (beta1 for Adam)."),
    weight_decay: float = typer.Option(None, help="L2 weight decay."),
    augmentation_type: str = typer.Option(None, help="crop | crop_color | crop_color_transform."),
    num_layers: int = typer.Option(None, help="ResNet depth 20/32/44/56/110 (arch resnet)."),
    image_shape: str = typer.Option(None, help="Backbone resolution 'C,H,W' (default 3,160,160)."),
    use_pretrained_model: int = typer.Option(None, help="1: EfficientNet-Lite0, 0: ResNet."),
    seed: int = typer.Option(None, help="Random seed (also picks the validation split)."),
    hp: list[str] = typer.Option(None, help="Any other hyperparameter as key=value (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    export_pytorch: bool = typer.Option(
        False,
        "--export-pytorch",
        help="Also write model.pt2 (for `scones bench endpoint`); not with --cv.",
    ),
    cv: int = typer.Option(
        0,
        "--cv",
        help="K-fold cross-validation on the train split instead of one model: held-out"
        " figures per epoch in DIR/cv.json, for comparing recipes without the test split.",
    ),
    target: str = typer.Option(
        None,
        "--target",
        help="local (here), cloud (a SageMaker job) or sagemaker-local (the same job's request"
        " run in Docker: the training container, artifact to the emulator's S3); default"
        " SCONES_TARGET.",
    ),
) -> None:
    """Train a classifier (CPU, or CUDA when present) and export model.onnx + model.json.

    With SCONES_TARGET=cloud: a SageMaker training job instead (SCONES_CLOUD_TRAINER), with the
    options given as its hyperparameters; --cv always runs here. --target sagemaker-local runs
    that job's request in Docker (always the PyTorch trainer: local_model/train.py).
    """
    target = sagemaker_local.check_target(target)
    overrides = {
        "epochs": epochs,
        "learning_rate": learning_rate,
        "mini_batch_size": mini_batch_size,
        "optimizer": optimizer,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "augmentation_type": augmentation_type,
        "num_layers": num_layers,
        "image_shape": image_shape,
        "use_pretrained_model": use_pretrained_model,
        "seed": seed,
    }
    for item in hp or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ModelCommandError(f"--hp {item!r}: expected key=value")
        overrides[key.strip()] = value.strip()
    if target != "local" and not cv:
        import cloud

        given = {k: v for k, v in overrides.items() if v is not None}
        if target == "cloud":
            result = cloud.train_and_remember(given)
        else:
            result = sagemaker_local.train(given)
        OUT.print(
            f"training job {result['job_name']}: {result['status']} {result['model_data_url']}"
        )
        return
    if cv and out is None:  # cv.json beside the served model would look like part of it
        raise ModelCommandError("--cv writes DIR/cv.json: pass --out DIR")
    out = Path(out or config.MODEL_DIR)
    if cv and export_pytorch:  # silently writing no model.pt2 would look like a lost file
        raise ModelCommandError(
            "--export-pytorch writes model.pt2 beside a trained model; --cv writes no model"
            " (it trains one per fold to measure the recipe). Drop one of the two options."
        )
    data = data or str(dataset_or_default(None))  # a str: Path() would mangle s3://
    if cv:
        result = run_training(data, out, overrides, arch, quiet, cv=cv)
        print_cross_validation(result)
        return
    meta = run_training(data, out, overrides, arch, quiet, export_pytorch)
    val = meta["metrics"]["validation"]
    OUT.print(
        f"[green]saved[/green] {out}/model.onnx  classes={meta['classes']}  "
        f"val accuracy={val['accuracy']:.3f} coverage@{meta['metrics']['threshold']}="
        f"{val['coverage']:.3f}  {meta['training_seconds']:.0f}s"
    )


def run_training(
    data: str,
    out: Path,
    overrides: dict,
    arch: str | None = None,
    quiet: bool = True,
    export_pytorch: bool = False,
    cv: int = 0,
) -> dict:
    """Resolve hyperparameters and train with a rich progress bar; returns model.json.

    ``cv`` >= 2: cross-validate instead; writes and returns cv.json.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from local_model import train as trainer

    try:
        hyp = trainer.resolve_hyp(overrides, arch)
    except (trainer.TrainingError, ValueError) as err:
        raise ModelCommandError(str(err)) from err
    with Progress(
        TextColumn("[bold]train[/bold] epoch {task.completed}/{task.total}"),
        BarColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        console=ERR,
        disable=quiet,
    ) as bar:
        task = bar.add_task("train", total=hyp["epochs"] * max(cv, 1), stats="loading data...")

        def progress(row: dict) -> None:
            stats = f"loss {row['train_loss']:.3f} acc {row['train_accuracy']:.3f}"
            if "val_accuracy" in row:
                stats += f" | val loss {row['val_loss']:.3f} acc {row['val_accuracy']:.3f}"
            bar.update(task, advance=1, stats=stats)

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


def print_cross_validation(result: dict) -> None:
    t = result["threshold"]
    table = Table(title=f"{result['folds']}-fold cross-validation, {result['n']} held-out images")
    for name in ("epoch", "accuracy", f"coverage >= {t}", "confidently wrong", "ECE"):
        table.add_column(name, justify="right")
    rows = [(str(i), m) for i, m in enumerate(result["per_epoch"], 1)]
    rows.append(("selected", result["selected_epoch"]))
    for label, m in rows:
        table.add_row(
            label,
            f"{m['accuracy']:.2%}",
            f"{m['coverage']:.2%}",
            f"{m['confidently_wrong']:.2%}",
            f"{m['ece']:.4f}",
        )
    OUT.print(table)
    OUT.print(
        "the last epoch is the unbiased estimate; 'selected' is the epoch each fold's validation"
        f" picked ({', '.join(map(str, result['selected_epochs']))}), as scones train does,"
        " and flatters"
    )


# ------------------------------ scones evaluate ------------------------------
def evaluate(
    data: Path = typer.Option(
        None, help="Staged dataset or class-folder tree (default: `scones stage`'s)."
    ),
    model: Path = typer.Option(None, help="Model dir; default SCONES_MODEL_DIR."),
    split: str = typer.Option("test", help="Split of a staged dataset."),
    threshold: float = typer.Option(None, help="Confidence filter; SCONES_CONFIDENCE_THRESHOLD."),
    ood_data: Path = typer.Option(
        None,
        help="Folder of images that are none of the classes; its sub-folders (kinds of vehicle)"
        " are reported one by one too.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Accuracy, per-class precision/recall, coverage and confidently-wrong at threshold, ECE;
    with --ood-data, the share of other images passing the threshold, per sub-folder and in all."""
    from local_model import evaluate as ev

    threshold = config.CONFIDENCE_THRESHOLD if threshold is None else threshold
    try:
        result = ev.evaluate(
            model or config.MODEL_DIR, dataset_or_default(data), split, threshold, ood_data
        )
    except ev.EvaluationError as err:
        raise ModelCommandError(str(err)) from err
    if as_json:
        print(json.dumps(result))
        return
    print_evaluation(result)


def print_evaluation(result: dict) -> None:
    t = result["threshold"]
    table = Table(title=f"scones evaluate: {result['data']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("images", str(result["n"]))
    table.add_row("accuracy", f"{result['accuracy']:.2%}")
    table.add_row(f"coverage (top prob >= {t})", f"{result['coverage']:.2%}")
    table.add_row(f"confidently wrong (>= {t}, wrong)", f"{result['confidently_wrong']:.2%}")
    table.add_row("ECE (15 bins)", f"{result['ece']:.4f}")
    for name, row in result["per_class"].items():
        table.add_row(f"{name} precision / recall", f"{row['precision']:.2%} / {row['recall']:.2%}")
    if "ood_n" in result:
        table.add_row("OOD images", str(result["ood_n"]))
        table.add_row(f"OOD passing >= {t}", f"{result['ood_pass_rate']:.2%}")
        table.add_row("OOD sent to review as NotATwoWheeler", f"{result['ood_unknown_rate']:.2%}")
        for name, row in result["ood_by_folder"].items():
            table.add_row(f"  {name}/ ({row['n']}) passing", f"{row['pass_rate']:.2%}")
    OUT.print(table)
    labels = result["confusion_matrix"]["labels"]
    cm = Table(title="confusion matrix (rows: true, columns: predicted)")
    cm.add_column("")
    for name in labels:
        cm.add_column(name, justify="right")
    for name, row in zip(
        labels, result["confusion_matrix"]["rows_true_cols_predicted"], strict=True
    ):
        cm.add_row(name, *map(str, row))
    OUT.print(cm)
    if result["skipped"]:
        ERR.print(f"[yellow]skipped {len(result['skipped'])} unreadable files[/yellow]")


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
    from local_model import evaluate as ev

    data = dataset_or_default(data)
    if not (data / "test.lst").is_file():
        raise ModelCommandError(f"no staged dataset at {data}; the model benchmark needs it")
    work = Path(tempfile.mkdtemp(prefix="scones-bench-model-"))
    try:
        result: dict = {"mode": "smoke" if smoke else "full", "data": str(data)}
        out = work / "model"
        overrides = {}
        if smoke:  # exercises the whole path, says nothing about the targets
            overrides = {"epochs": 1, "cached_views": 1, "image_shape": "3,64,64"}
        t0 = time.perf_counter()
        meta = run_training(str(data), out, overrides, quiet=True)
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


def bench_model(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    smoke: bool = typer.Option(False, "--smoke", help="Tiny training run (< 2 min) for CI."),
    model: Path = typer.Option(None, help="Model evaluated in --smoke mode (default model)."),
    data: Path = typer.Option(None, help="Staged dataset (default: what `scones stage` wrote)."),
    ood_data: Path = typer.Option(
        None,
        help="Other-vehicle photos, a sub-folder per kind (default: none; those figures are"
        " skipped).",
    ),
) -> None:
    """Train and measure the model against the issue's targets (prints figures, never fails)."""
    if not as_json:
        ERR.print(f"model benchmark ({'smoke' if smoke else 'full: trains the default recipe'})")
    result = run_benchmark(smoke, model, data, ood_data)
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"scones bench model ({result['mode']})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    rows = [
        ("accuracy", result["accuracy"], "{:.2%}"),
        ("coverage", result["coverage"], "{:.2%}"),
        ("confidently_wrong", result["confidently_wrong"], "{:.2%}"),
        ("ece", result["ece"], "{:.4f}"),
        (
            "training_seconds" + (" (1-epoch smoke run)" if result["mode"] == "smoke" else ""),
            result["training_seconds"],
            "{:.0f}",
        ),
        ("latency_p50_ms", result["latency_p50_ms"], "{:.2f}"),
        ("ood_pass_rate", result["ood_pass_rate"], "{:.2%}"),
        ("model_mb", result["model_mb"], "{:.1f}"),
        ("photo_like_accuracy", result["photo_like_accuracy"], "{:.2%}"),
        ("photo_like coverage", result["photo_like"]["coverage"], "{:.2%}"),
    ]
    if result["ood_pass_rate_dev"] is not None:
        rows.append(("ood_pass_rate_dev", result["ood_pass_rate_dev"], "{:.2%}"))
        for name, row in result["ood_by_folder"].items():
            rows.append((f"  {name}/ ({row['n']}) passing", row["pass_rate"], "{:.2%}"))
        loco = result["ood_leave_one_class_out"]
        if loco and loco["worst"] is not None:
            rows.append(("leave-one-class-out worst", loco["worst"], "{:.2%}"))
            rows.append(("leave-one-class-out mean", loco["mean"], "{:.2%}"))
    for name, value, fmt in rows:
        target = result["targets"].get(name.split(" ")[0], "")
        table.add_row(name, fmt.format(value), target)
    OUT.print(table)
    OUT.print(f"evaluated: {result['evaluated_model']}; OOD set: {result['ood_kind']}")
    if result["ood_pass_rate_dev"] is None:
        OUT.print("other-vehicle figures skipped: pass --ood-data FOLDER (a sub-folder per kind)")
    if "reproduces_default_model" in result:
        same = result["reproduces_default_model"]
        OUT.print(f"model.onnx {'identical to' if same else 'DIFFERS from'} the default model's")


def register(app: typer.Typer) -> None:
    """Add `scones train` and `scones evaluate`."""
    app.command("train")(train)
    app.command("evaluate")(evaluate)


def register_bench(bench: typer.Typer) -> None:
    """Add `scones bench model` to the shared `bench` group."""
    bench.command("model")(bench_model)

"""`scones train`, `scones evaluate`, `scones bench model`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

import cloud
from scones import QUIET, config, sagemaker_local
from scones.cli import output
from scones.cli.output import ERR
from scones.model import (
    ModelCommandError,
    ModelUsageError,
    run_benchmark,
    run_training,
)
from scones.stage import dataset_or_default

OUT = Console()


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
            raise ModelUsageError(f"--hp {item!r}: expected key=value")
        overrides[key.strip()] = value.strip()
    if target != "local" and not cv:
        given = {k: v for k, v in overrides.items() if v is not None}
        if target == "cloud":
            result = cloud.train_and_remember(config.cloud_settings(), config.STATE_DIR, given)
        else:
            result = sagemaker_local.train(given)
        OUT.print(
            f"training job {result['job_name']}: {result['status']} {result['model_data_url']}"
        )
        return
    if cv and out is None:  # cv.json beside the served model would look like part of it
        raise ModelUsageError("--cv writes DIR/cv.json: pass --out DIR")
    out = Path(out or config.MODEL_DIR)
    if cv and export_pytorch:  # silently writing no model.pt2 would look like a lost file
        raise ModelUsageError(
            "--export-pytorch writes model.pt2 beside a trained model; --cv writes no model"
            " (it trains one per fold to measure the recipe). Drop one of the two options."
        )
    data = data or str(dataset_or_default(None))  # a str: Path() would mangle s3://
    shown = QUIET if quiet else output.show(off_terminal=True)  # the epochs' bar, logs too
    if cv:
        result = run_training(data, out, overrides, arch, shown, cv=cv)
        print_cross_validation(result)
        return
    meta = run_training(data, out, overrides, arch, shown, export_pytorch)
    val = meta["metrics"]["validation"]
    OUT.print(
        f"[green]saved[/green] {out}/model.onnx  classes={meta['classes']}  "
        f"val accuracy={val['accuracy']:.3f} coverage@{meta['metrics']['threshold']}="
        f"{val['coverage']:.3f}  {meta['training_seconds']:.0f}s"
    )


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
    from local_model import evaluate as ev  # lazy: onnxruntime; keeps `scones --help` fast

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

"""`scones serve`, `scones bench endpoint`: the SageMaker-contract model server."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from scones import config
from scones.endpoint import (
    TARGET_P50_MS_C1,
    TARGET_RATIO_C16,
    run_benchmark,
)

OUT = Console()

ERR = Console(stderr=True)


def serve(
    model: Path = typer.Option(None, help="Model dir (model.onnx + model.json); SCONES_MODEL_DIR."),
    host: str = typer.Option(None, help="Bind address; SCONES_MODEL_HOST (127.0.0.1)."),
    port: int = typer.Option(None, help="Port; SCONES_MODEL_PORT (8080)."),
    endpoint_name: str = typer.Option(None, help="Endpoint name; SCONES_ENDPOINT_NAME."),
    alias: list[str] = typer.Option(None, help="Another endpoint name served (repeatable)."),
    capture: bool = typer.Option(None, "--capture/--no-capture", help="SCONES_CAPTURE_ENABLED."),
    capture_destination: str = typer.Option(None, help="s3://bucket/prefix for capture files."),
    capture_sampling: float = typer.Option(None, help="Percent of requests captured (0-100)."),
    capture_mode: str = typer.Option(None, help="Input, Output or InputAndOutput."),
) -> None:
    """Serve a model as a local SageMaker endpoint (/ping, /invocations, runtime API, /metrics)."""
    # lazy: onnxruntime and FastAPI; only `serve` needs them
    from local_model import serve as server

    argv: list[str] = []
    for flag, value in (
        ("--model", model),
        ("--host", host),
        ("--port", port),
        ("--endpoint-name", endpoint_name),
        ("--capture-destination", capture_destination),
        ("--capture-sampling", capture_sampling),
        ("--capture-mode", capture_mode),
    ):
        if value is not None:
            argv += [flag, str(value)]
    for name in alias or []:
        argv += ["--alias", name]
    if capture is not None:
        argv.append("--capture" if capture else "--no-capture")
    config.apply_target_env()  # local target: capture goes to the emulator
    server.main(argv)


def bench_endpoint(
    model: Path = typer.Option(
        None, help="Model dir; SCONES_MODEL_DIR. Needs model.pt2 or model.pt too."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    smoke: bool = typer.Option(False, "--smoke", help="Short run (< 60 s) for CI."),
    data: Path = typer.Option(
        None,
        help="Staged dataset whose test images are the requests (default: what `scones stage`"
        " wrote; synthetic PNGs when there is none).",
    ),
) -> None:
    """Throughput and latency of our endpoint vs a plain FastAPI + PyTorch server."""
    model_dir = Path(model or config.MODEL_DIR).expanduser().resolve()
    if not as_json:
        ERR.print(f"benchmarking {model_dir} ({'smoke' if smoke else 'full'} run)...")
    result = run_benchmark(model_dir, smoke, data)
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"scones bench endpoint ({result['images']})")
    for col in ("server", "c", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "CPU ms/req"):
        table.add_column(col, justify="right" if col != "server" else "left")
    for name in ("ours", "baseline"):
        for p in result["phases"][name]:
            table.add_row(
                name,
                str(p["concurrency"]),
                str(p["requests"]),
                f"{p['rps']:.0f}",
                f"{p['p50_ms']:.2f}",
                f"{p['p90_ms']:.2f}",
                f"{p['p99_ms']:.2f}",
                f"{p['cpu_ms_per_request']:.2f}",
            )
    OUT.print(table)
    ok = "[green]met[/green]"
    miss = "[red]missed[/red]"
    OUT.print(
        f"throughput at c16: {result['ratio_c16']:.2f}x the baseline "
        f"(target >= {TARGET_RATIO_C16}x: {ok if result['target_ratio_c16_met'] else miss})"
    )
    OUT.print(
        f"p50 at c1: {result['ours_p50_ms_c1']:.2f} ms "
        f"(target <= {TARGET_P50_MS_C1} ms: {ok if result['target_p50_ms_c1_met'] else miss})"
    )


def register(app: typer.Typer) -> None:
    """Add `scones serve`."""
    app.command("serve")(serve)


def register_bench(bench: typer.Typer) -> None:
    """Add `scones bench endpoint` to the shared `bench` group."""
    bench.command("endpoint")(bench_endpoint)

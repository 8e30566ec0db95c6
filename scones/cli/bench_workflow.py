"""`scones bench workflow`: the command and its printout (the bench: scones.bench_workflow)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from scones.bench_workflow import VARIANTS, bench_with_second_stacks
from scones.cli.output import show

OUT = Console(stderr=True)


def _print(result: dict) -> None:
    OUT.print(
        f"path {result['path']} (data {result['data']}), speedups "
        f"{'on' if result['speedups'] else 'off'}, load average {result['loadavg']}"
    )
    if "warmup_events" in result:
        OUT.print(
            f"warm-up: {result['warmup_executions_per_s']} executions/s over "
            f"{result['warmup_events']} events; outcomes {result['warmup_outcomes']}"
        )
    OUT.print(
        f"latency (warm, {result['latency_runs']} runs): p50 {result['p50_ms']} ms, "
        f"p95 {result['p95_ms']} ms (server-side p50 {result['server_p50_ms']} ms); "
        f"outcomes {result['latency_outcomes']}"
    )
    OUT.print(
        f"throughput: {result['executions_per_s']} executions/s over {result['events']} events; "
        f"outcomes {result['outcomes']}; still running {result['still_running']}, "
        f"not sent {result['not_sent']}, lost {result['lost']}"
    )
    if result.get("windows_per_s"):
        OUT.print(
            f"per {result['window']} executions: {result['windows_per_s']} executions/s; "
            f"drift (last window vs first) {result['drift']}"
        )
    cpu, bound = result.get("cpu_ms_per_execution"), result.get("cpu_bound_per_s")
    if cpu and bound:
        OUT.print(
            f"CPU per execution: emulator {cpu['emulator']} ms, Lambda runtimes "
            f"{cpu['lambda_runtimes']} ms, model {cpu['model']} ms, bench {cpu['bench']} ms "
            f"(total {cpu['total']} ms): at most {bound['all_cores']} executions/s with all "
            f"{bound['cores']} cores busy, {bound['emulator_one_core']}/s with the emulator "
            "(one Python process) on one core"
        )
    for variant, ratio in (("stock", "ratio_vs_stock"), ("no_persistence", "persistence_cost")):
        other = result.get(variant)
        if other and "error" in other:
            OUT.print(f"{variant}: not measured: {other['error']}", markup=False)
        elif other:
            emulator_cpu = (other.get("cpu_ms_per_execution") or {}).get("emulator")
            OUT.print(
                f"{variant}: {other['executions_per_s']} executions/s, p50 {other['p50_ms']} ms, "
                f"emulator CPU per execution {emulator_cpu} ms, "
                f"outcomes {other['outcomes']}, still running {other['still_running']}, not "
                f"sent {other['not_sent']}, lost {other['lost']}; {ratio} {result[ratio]}"
            )


def register_bench(bench: typer.Typer) -> None:
    """Add `scones bench workflow`."""

    @bench.command("workflow")
    def bench_workflow_cmd(
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        smoke: bool = typer.Option(False, "--smoke", help="A quick run (< 60 s), fewer events."),
        events: int = typer.Option(None, help="S3 events for the throughput part (default 1000)."),
        warmup_events: int = typer.Option(
            None, help="Events run first, reported apart (default: the test split once; 0: none)."
        ),
        data: Path = typer.Option(
            None,
            "--data",
            help="A staged dataset (test.lst + test/); default: the one `scones stage` writes.",
        ),
        path: str = typer.Option(
            "mix",
            "--path",
            help="mix: the test split in order (~85 % succeed, ~15 % review) plus 10 % bad "
            "inputs; success / review: only the images that took that path in the warm-up.",
        ),
        seed: int = typer.Option(0, help="Where the bad inputs go in the mix."),
        window: int = typer.Option(
            None,
            "--window",
            help="Executions per throughput window (default 1000; --smoke 10): executions/s "
            "per window and the drift, the last window against the first. For the long-lived "
            "check: --events 10000.",
        ),
        baseline: bool = typer.Option(
            False,
            "--baseline",
            help="Also run the same events on a second stack with the speedups off "
            "(SCONES_EMULATOR_SPEEDUPS=0): ratio_vs_stock.",
        ),
        no_persistence: bool = typer.Option(
            False,
            "--no-persistence",
            help="Also run them on a second stack without persistence: persistence_cost.",
        ),
    ) -> None:
        """Executions/s on the path orders take, p50/p95, outcomes, CPU per process."""
        result = bench_with_second_stacks(
            smoke,
            events,
            warmup_events,
            data,
            path,
            seed,
            baseline,
            no_persistence,
            window,
            show=show(OUT),
        )
        if as_json:
            print(json.dumps(result, indent=2))
        else:
            _print(result)
        if any("error" in result.get(v, {}) for v in VARIANTS):
            raise typer.Exit(1)

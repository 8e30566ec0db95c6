"""`scones bench faults`: every order accounted for under each fault."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer
from rich.console import Console

from scones.faults import (
    FAULTS,
    run_fault,
)
from scones.report import clients

OUT = Console(stderr=True)


def bench_faults(
    faults: tuple[str, ...] = FAULTS,
    rate: float = 4.0,
    duration: float = 30.0,
    outage_s: float = 20.0,
) -> list[dict]:
    """Every fault in turn on the running stack; one FaultResult each."""
    c = clients()
    results = []
    for fault in faults:
        OUT.print(f"fault {fault}: {rate:g}/s for {duration:g} s ...")
        results.append(asdict(run_fault(c, fault, rate, duration, outage_s)))
        c = clients()
    return results


def register_bench(bench: typer.Typer) -> None:
    """Add `scones bench faults`."""

    @bench.command("faults")
    def bench_faults_cmd(
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        smoke: bool = typer.Option(False, "--smoke", help="Short streams and a 5 s outage."),
        outage: float = typer.Option(20.0, "--outage", min=1, help="Seconds the endpoint is down."),
        rate: float = typer.Option(4.0, "--rate", min=0.1, help="Orders per second."),
        duration: float = typer.Option(30.0, "--duration", min=2, help="Seconds of each stream."),
        fault: list[str] = typer.Option(None, "--fault", help=f"Only these: {', '.join(FAULTS)}."),
    ) -> None:
        """Orders streamed while the endpoint, a Lambda runtime and the emulator are killed."""
        if smoke:
            rate, duration, outage = 2.0, 8.0, 5.0
        unknown = set(fault or ()) - set(FAULTS)
        if unknown:
            raise typer.BadParameter(f"unknown fault {sorted(unknown)}; one of {FAULTS}")
        results = bench_faults(tuple(fault or FAULTS), rate, duration, outage)
        if as_json:
            print(json.dumps(results, indent=2))
            return
        for r in results:
            extra = ""
            if r["objects_before"] is not None:
                extra = f", objects {r['objects_before']} -> {r['objects_after']}"
            OUT.print(
                f"{r['fault']:9} sent {r['sent']}: succeeded {r['succeeded']}, reviewed "
                f"{r['reviewed']}, failed_bad_input {r['failed_bad_input']}, failed_infra "
                f"{r['failed_infra']}, lost {r['lost']}, redriven {r['redriven']}, "
                f"recovery {r['recovery_s']} s{extra} ({r['fault_detail']})"
            )

"""`scones up`, `down`, `status`, `reset`, `bench stack`: the local stack."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

from scones import StackDown, deploy, recovery
from scones.cli.output import ERR as OUT
from scones.cli.output import show
from scones.stack import (
    bench_stack,
    down,
    persist_dir,
    reset,
    setup_emulator,
    status,
    up,
)


def register(app: typer.Typer) -> None:
    """Add setup/up/down/status to the CLI."""

    @app.command("setup")
    def setup_cmd(force: bool = typer.Option(False, help="Reinstall even if up to date.")) -> None:
        """Install or refresh the emulator's own venv (LocalStack core + our plugin)."""
        venv = setup_emulator(force=force, show=show())
        OUT.print(f"emulator venv ready: {venv}")

    @app.command("up")
    def up_cmd(
        only: list[str] = typer.Option(None, "--only", help="Start just these components."),
        no_deploy: bool = typer.Option(
            False, "--no-deploy", help="Do not deploy the workflow once the stack is healthy."
        ),
    ) -> None:
        """Start the local stack (emulator, model server) and deploy the workflow; idempotent."""
        timings = up(only, show())
        OUT.print(f"stack up in {sum(timings.values()):.1f} s")
        if not only and not no_deploy:
            with OUT.status("deploying the workflow ..."):
                result = deploy.deploy()
            OUT.print(f"[green]✓[/green] workflow deployed ({len(result.changed)} changes)")
            with OUT.status("reconciling uploads and interrupted executions ..."):
                done = recovery.reconcile()
            if done.redriven or done.started:
                OUT.print(
                    f"[green]✓[/green] {len(done.redriven)} interrupted executions redriven, "
                    f"{len(done.started)} uploads without an execution started"
                )

    @app.command("down")
    def down_cmd() -> None:
        """Stop the local stack: SIGTERM, then SIGKILL after ~10 s; nothing left running."""
        stopped = down()
        OUT.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")

    @app.command("reset")
    def reset_cmd(
        yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    ) -> None:
        """Delete the emulator's saved state (objects, queues, functions, executions) for good."""
        where = persist_dir()
        if not yes and not typer.confirm(
            f"delete every S3 object, queued message, function and execution saved in {where}?"
        ):
            raise typer.Exit(1)
        reset()
        OUT.print(f"emulator state deleted ({where}); `scones up` starts empty")

    @app.command("status")
    def status_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Each component's pid, url and health; exit code 3 when one is down."""
        rows = status()
        if as_json:
            print(json.dumps({r.name: asdict(r) for r in rows}, indent=2))
            return
        for r in rows:
            mark = "[green]healthy[/green]" if r.healthy else "[red]down[/red]"
            OUT.print(f"{r.name:10} {mark:24} pid={r.pid} {r.url}")
        down = [r.name for r in rows if not r.healthy]
        if down:
            raise StackDown(f"down: {', '.join(down)}; start the stack with `scones up`")


def register_bench(bench: typer.Typer) -> None:
    """Add `scones bench stack`."""

    @bench.command("stack")
    def bench_stack_cmd(
        invokes: int = typer.Option(20, help="Warm invokes to time."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        smoke: bool = typer.Option(False, "--smoke", help="Fewer invokes, for CI."),
    ) -> None:
        """Emulator cold/warm start and memory, Lambda cold/warm invoke latency."""
        figures = bench_stack(invokes=3 if smoke else invokes)
        if as_json:
            print(json.dumps(figures))
            return
        for name, value in figures.items():
            OUT.print(f"{name:28} {value}")

"""`scones import`, `scones execute`: run an existing Step Functions + Lambda project."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from scones.byo import (
    ImportResult,
    execute,
    import_project,
    render,
)
from scones.byo.errors import ByoUsageError

OUT = Console(stderr=True, soft_wrap=True)  # long ARNs and names stay on one line

STDOUT = Console(soft_wrap=True, highlight=False)


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise ByoUsageError(f"{option} expects NAME=VALUE, got {value!r}")
        pairs[key] = rest
    return pairs


def run_command(
    state_machine: str, input_path: str, as_json: bool = False, timeout: float | None = None
) -> int:
    """`scones execute` / `scones run --state-machine`: run, print like the console; exit code."""
    execution = execute(state_machine, input_path, timeout=timeout)
    if as_json:
        print(json.dumps(execution.to_dict(), indent=2, ensure_ascii=False))
    else:
        for line in render(execution):
            STDOUT.print(line, markup=False)
    return 0 if execution.status == "SUCCEEDED" else 1


def _print_import(result: ImportResult) -> None:
    OUT.print(
        f"[green]✓[/green] imported {result.name} into account {result.account}, "
        f"{result.region} in {result.seconds:.1f} s"
    )
    OUT.print(f"  state machine  {result.state_machine_arn}", markup=False)
    for fn, info in result.functions.items():
        quals = f"  (+ {', '.join(info['qualifiers'])})" if info["qualifiers"] else ""
        OUT.print(
            f"  function       {fn}: {info['handler']} {info['runtime']}{quals}", markup=False
        )
    for use in result.endpoints:
        where = f", {Path(use['file']).name}:{use['line']}" if use["line"] else ""
        OUT.print(f"  endpoint       {use['name']} ({use['how']}{where})", markup=False)
    if result.endpoints:
        OUT.print(f"                 {result.endpoint_status}", markup=False)
    if result.services:
        added = (
            f" (enabled now: {', '.join(result.services_enabled)})"
            if result.services_enabled
            else ""
        )
        OUT.print(f"  services       {', '.join(result.services)}{added}", markup=False)
    for staged in result.staged:
        OUT.print(
            f"  data           s3://{staged['bucket']}/{staged['prefix']} "
            f"({staged['uploaded']} objects uploaded)",
            markup=False,
        )
    for warning in result.warnings:
        OUT.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)
    OUT.print(
        f"run it: scones execute --state-machine {result.name} --input EVENT.json", markup=False
    )


def register(app: typer.Typer) -> None:
    """Add import and execute to the CLI."""

    @app.command("import")
    def import_cmd(
        definition: Path = typer.Argument(
            ..., help="The state machine definition (exported JSON)."
        ),
        sources: list[Path] = typer.Argument(None, help="Lambda .py files or folders."),
        name: str = typer.Option(None, help="State machine name (default: the file's name)."),
        function: list[str] = typer.Option(
            None, "--function", help="NAME=FILE[:HANDLER] for a function not matched by name."
        ),
        runtime: list[str] = typer.Option(
            None, "--runtime", help="python3.X for all functions, or NAME=python3.X."
        ),
        event: list[Path] = typer.Option(
            None, "--event", help="A test event: its buckets/keys get the staged dataset."
        ),
        env: list[str] = typer.Option(None, "--env", help="NAME=VALUE for every function."),
        account: str = typer.Option(None, help="Account id (default: the ARNs' account)."),
        region: str = typer.Option(None, help="Region (default: the ARNs' region)."),
        timeout: int = typer.Option(
            None, help="Lambda timeout, s (default SCONES_LAMBDA_TIMEOUT)."
        ),
        memory: int = typer.Option(None, help="Lambda memory, MB (default SCONES_LAMBDA_MEMORY)."),
        dataset: Path = typer.Option(
            None, help="Staged dataset folder (default: what `scones stage` wrote)."
        ),
        endpoint: list[str] = typer.Option(
            None, "--endpoint", help="An endpoint name to serve that code and events do not show."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Deploy an existing AWS project (exported definition + Lambda files) to the emulator."""
        default_runtime = next((r for r in runtime or [] if "=" not in r), None)
        per_function = _pairs([r for r in runtime or [] if "=" in r], "--runtime")
        with OUT.status(f"importing {definition} ..."):
            result = import_project(
                definition,
                sources or [],
                name=name,
                functions=_pairs(function, "--function"),
                runtime=default_runtime,
                runtimes=per_function,
                events=event or [],
                environment=_pairs(env, "--env"),
                account=account,
                region=region,
                timeout=timeout,
                memory=memory,
                dataset=dataset,
                endpoints=endpoint or [],
            )
        if as_json:
            print(json.dumps(result.to_dict(), indent=2))
        else:
            _print_import(result)

    @app.command("execute")
    def execute_cmd(
        state_machine: str = typer.Option(
            ..., "--state-machine", help="An imported state machine."
        ),
        input_path: str = typer.Option(..., "--input", help="The input: a JSON file or JSON text."),
        as_json: bool = typer.Option(False, "--json", help="Print the raw history as JSON."),
        timeout: float = typer.Option(None, help="Seconds to wait (default SCONES_RUN_TIMEOUT)."),
    ) -> None:
        """Run an imported state machine; print it like the console (exit 1 unless SUCCEEDED)."""
        raise typer.Exit(run_command(state_machine, input_path, as_json, timeout))

"""The `scones` command line: the Typer app; one module per verb group registers its commands.

The commands are a thin layer over the core (scones/*.py): they parse options, call one domain
operation and print its typed result. The core never imports this package.
"""

import importlib.metadata
import logging

import typer
from rich.console import Console
from rich.markup import escape

from cloud import CloudError
from local_model import LocalModelError
from scones import SconesError, StackDown, UsageError, config
from scones.cli import (
    bench_workflow,
    byo,
    containers,
    demo,
    deploy,
    endpoint,
    explore,
    faults,
    keeper,
    load,
    model,
    recovery,
    report,
    stack,
    stage,
    workflow,
)

# The exit codes, in one place (the epilog of `scones --help` says the same).
EXIT_OK, EXIT_SAID_NO, EXIT_USAGE, EXIT_STACK_DOWN = 0, 1, 2, 3
EPILOG = (
    "Exit codes: 0 success; 1 the workflow said no (an execution FAILED or went to review) or the"
    " work could not be done; 2 a usage or configuration error; 3 the stack is down (emulator,"
    " model server or AWS unreachable)."
)

app = typer.Typer(
    help="Scones Unlimited: run the vehicle-classification workflow offline and on AWS.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ERR = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"scones {importlib.metadata.version('scones')}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug output."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Scones Unlimited: run the vehicle-classification workflow offline and on AWS."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING)
    config.apply_target_env()


# Each module registers its own commands; heavy things (torch, onnxruntime) load lazily.
# (one line per module, keep alphabetical)
for _module in (
    byo,
    demo,
    deploy,
    endpoint,
    explore,
    keeper,
    load,
    model,
    recovery,
    report,
    stack,
    stage,
    workflow,
):
    _module.register(app)

# `scones bench X`: every speed or memory target is a benchmark that prints figures.
bench = typer.Typer(help="Benchmarks: print figures, never pass/fail.", no_args_is_help=True)
app.add_typer(bench, name="bench")
for _module in (bench_workflow, containers, endpoint, faults, model, stack):
    _module.register_bench(bench)


def exit_code(err: SconesError | LocalModelError | CloudError) -> int:
    """The exit code of a named error: 3 stack down, 2 usage or a bad setting, else 1."""
    if isinstance(err, StackDown):
        return EXIT_STACK_DOWN
    if isinstance(err, config.ConfigError | UsageError):  # like a bad option: nothing started
        return EXIT_USAGE
    return EXIT_SAID_NO


def run() -> None:
    """Entry point: named errors print one line and exit with exit_code(), never a traceback."""
    try:
        app()
    except (SconesError, LocalModelError, CloudError) as err:  # the layers below have their own
        ERR.print(f"[red]error:[/red] {escape(str(err))}", soft_wrap=True)
        raise SystemExit(exit_code(err)) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None

"""The `scones` command line: one sub-command per verb, each defined beside the code it drives."""

import logging

import typer
from rich.console import Console
from rich.markup import escape

from cloud import CloudError
from local_model import LocalModelError
from scones import (
    SconesError,
    bench_workflow,
    byo,
    config,
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

app = typer.Typer(
    help="Scones Unlimited: run the vehicle-classification workflow offline and on AWS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ERR = Console(stderr=True)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug output.")) -> None:
    """Scones Unlimited: run the vehicle-classification workflow offline and on AWS."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING)
    config.apply_target_env()


# Each module registers its own commands; the module imports heavy things lazily.
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


def run() -> None:
    """Entry point: named errors print one line and exit 1 (a bad setting: 2), never a traceback."""
    try:
        app()
    except config.ConfigError as err:  # like a bad option: the command never started
        ERR.print(f"[red]error:[/red] {escape(str(err))}", soft_wrap=True)
        raise SystemExit(2) from None
    except (SconesError, LocalModelError, CloudError) as err:  # the layers below have their own
        ERR.print(f"[red]error:[/red] {escape(str(err))}", soft_wrap=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None

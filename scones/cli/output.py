"""What the commands draw while the core works: lines, spinners and progress bars (rich).

The core reports through ``scones.Show`` and prints nothing; ``show()`` builds the rich one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from scones import Show, Tick

ERR = Console(stderr=True)

COLUMNS: dict[str, Callable[[], tuple[ProgressColumn, ...]]] = {
    "download": lambda: (TextColumn("download"), BarColumn(), DownloadColumn(),
                         TransferSpeedColumn(), TimeRemainingColumn()),
    "stage": lambda: (TextColumn("stage"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn()),
    "upload": lambda: (TextColumn("upload"), BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn()),
    "train": lambda: (TextColumn("[bold]train[/bold] epoch {task.completed}/{task.total}"),
                      BarColumn(), TextColumn("{task.fields[stats]}"), TimeElapsedColumn()),
    "load": lambda: (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                     TimeElapsedColumn(), TextColumn("{task.fields[counts]}")),
}  # fmt: skip


def show(console: Console = ERR, *, bars: bool = True, off_terminal: bool = False) -> Show:
    """Lines and spinners on ``console``; progress bars too when ``bars``.

    :param off_terminal: draw bars even when ``console`` is no terminal (training's bar);
        otherwise they are drawn on a terminal only (logs and tests stay clean).
    """

    @contextmanager
    def bar(kind: str, total: float | None = None, **fields: object) -> Iterator[Tick]:
        drawn = bars and (off_terminal or console.is_terminal)
        with Progress(*COLUMNS[kind](), console=console, disable=not drawn) as progress:
            if kind == "load":
                yield _load_tick(progress, total)
            elif kind == "download":
                yield _download_tick(progress, console, total, bars, **fields)
            else:
                task = progress.add_task(kind, total=total, **fields)
                yield lambda **update: progress.update(task, **update)

    return Show(say=console.print, busy=console.status, bar=bar)


def _load_tick(progress: Progress, total: float | None) -> Tick:
    """`scones load`'s bar: executions started, and finished with their outcomes so far."""
    sent = progress.add_task("started ", total=total, counts="")
    done = progress.add_task("finished", total=total, counts="")

    def tick(*, started: int, finished: int, counts: dict[str, int]) -> None:
        progress.update(sent, completed=started)
        progress.update(
            done,
            completed=finished,
            counts=(
                f"ok {counts['succeeded']} · review {counts['reviewed']} · "
                f"not a two-wheeler {counts['not_a_two_wheeler']} · "
                f"failed {counts['failed']} · running {counts['unaccounted']}"
            ),
        )

    return tick


def _download_tick(
    progress: Progress,
    console: Console,
    total: float | None,
    wanted: bool,
    *,
    url: str,
    completed: int = 0,
) -> Tick:
    """The download's bar; no terminal (a container's log): a line every tenth instead."""
    task = progress.add_task("download", total=total, completed=completed)
    lines = wanted and not console.is_terminal
    step = int(total) // 10 if total else 16 << 20
    reported = [completed // step if step else 0]

    def tick(*, completed: int) -> None:
        progress.update(task, completed=completed)
        if lines and step and completed // step > reported[0]:
            reported[0] = completed // step
            done = f"{completed / total:.0%} of {total / 1e6:.0f} MB" if total else ""
            console.print(f"download {url}: {completed / 1e6:.0f} MB {done}".rstrip())

    return tick

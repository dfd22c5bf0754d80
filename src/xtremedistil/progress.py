"""Progress reporting at the edges: library functions take a ``Reporter``; the CLI passes a rich one."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

log = logging.getLogger("xtremedistil")

Advance = Callable[..., None]  # advance(n=1, **fields) where fields update the bar's status text


class Reporter(Protocol):
    def bar(self, description: str, total: int | None) -> contextlib.AbstractContextManager[Advance]: ...

    def info(self, message: str) -> None: ...


class SilentReporter:
    """For library use and tests: messages go to the ``xtremedistil`` logger, no bars."""

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Advance]:
        yield lambda n=1, **fields: None

    def info(self, message: str) -> None:
        log.info(message)


class RichReporter:
    """Progress bars with ETA on stderr and concise log lines."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Advance]:
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
        )
        with Progress(*columns, console=self.console, transient=False) as progress:
            task = progress.add_task(description, total=total, status="")

            def advance(n: int = 1, **fields: object) -> None:
                status = "  ".join(
                    f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items()
                )
                progress.update(task, advance=n, **({"status": status} if fields else {}))

            yield advance

    def info(self, message: str) -> None:
        self.console.print(message, highlight=False)

"""Progress reporting at the edges: library functions take a ``Reporter``; the CLI passes a rich one."""

from __future__ import annotations

import contextlib
import logging
import time
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
        if not self.console.is_terminal:  # a log file: a plain status line now and then, not a redraw
            with self._log_lines(description, total) as advance:
                yield advance
            return
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

    @contextlib.contextmanager
    def _log_lines(self, description: str, total: int | None, every: float = 30.0) -> Iterator[Advance]:
        start = last = time.perf_counter()
        done = 0
        status = ""

        def line() -> str:
            elapsed = time.perf_counter() - start
            rate = done / elapsed if elapsed > 0 else 0.0
            eta = f", eta {(total - done) / rate:.0f}s" if total and rate > 0 else ""
            of = f"/{total}" if total else ""
            return f"{description}: {done}{of} in {elapsed:.0f}s ({rate:.2f}/s{eta}) {status}".rstrip()

        def advance(n: int = 1, **fields: object) -> None:
            nonlocal done, last, status
            done += n
            if fields:
                status = _status(fields)
            if time.perf_counter() - last >= every:
                last = time.perf_counter()
                self.console.print(line(), highlight=False, soft_wrap=True)

        yield advance
        self.console.print(line(), highlight=False, soft_wrap=True)

    def info(self, message: str) -> None:
        self.console.print(message, highlight=False, soft_wrap=True)


def _status(fields: dict[str, object]) -> str:
    return "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items())


class Stopwatch:
    """Wall seconds per named phase of a job (``with watch("cache"): ...``); repeated phases add up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

"""Dynamic micro-batching: texts of concurrent requests share one forward pass.

Requests wait in a queue; one worker takes the oldest, then, in arrival order, what is already queued behind
it, then waits up to ``max_wait`` for more, until ``max_batch`` texts are gathered. A request is never split
and never overtaken: one that does not fit closes the batch and leads the next. The batch runs in one
worker thread, so the event loop keeps accepting while the model computes, and requests that
arrive meanwhile form the next batch. With ``max_wait = 0`` the worker only takes what is already queued.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

Run = Callable[[list[str]], list[Any]]


@dataclass
class _Item:
    texts: list[str]
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """``await submit(texts)`` returns ``run(texts)``'s results, computed in a batch with other requests'
    texts. ``on_batch(n_texts, n_requests)`` is called for each forward pass (metrics)."""

    def __init__(
        self,
        run: Run,
        max_batch: int = 64,
        max_wait: float = 0.002,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_wait < 0:
            raise ValueError("max_batch must be >= 1 and max_wait >= 0")
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait
        self.on_batch = on_batch or (lambda texts, requests: None)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xtremedistil-model")
        self._queue: asyncio.Queue[_Item] | None = None
        self._worker: asyncio.Task | None = None
        self._held: _Item | None = None  # taken from the queue but too large for the batch being built
        self._current: list[_Item] = []  # the batch being gathered or computed

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._loop(), name="xtremedistil-batcher")

    async def stop(self) -> None:
        """Finish what is queued, then stop the worker and its thread."""
        if self._worker is not None:
            while self._queue is not None and (not self._queue.empty() or self._held is not None):
                await asyncio.sleep(0.005)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self.executor.shutdown(wait=True)

    @property
    def queued(self) -> int:
        return (self._queue.qsize() if self._queue is not None else 0) + (self._held is not None)

    async def submit(self, texts: Sequence[str]) -> list[Any]:
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Item(list(texts), future))
        return await future

    async def _next(self, timeout: float | None) -> _Item | None:
        assert self._queue is not None
        if self._held is not None:
            item, self._held = self._held, None
            return item
        if timeout is None:
            return await self._queue.get()
        if not self._queue.empty():
            return self._queue.get_nowait()
        if timeout <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def _gather(self) -> list[_Item]:
        loop = asyncio.get_running_loop()
        first = await self._next(None)
        assert first is not None
        items, size = [first], len(first.texts)
        deadline = loop.time() + self.max_wait
        while size < self.max_batch:
            item = await self._next(deadline - loop.time())
            if item is None:
                break
            if size + len(item.texts) > self.max_batch:
                self._held = item  # it leads the next batch
                break
            items.append(item)
            size += len(item.texts)
        return items

    async def _loop(self) -> None:
        try:
            await self._serve()
        except asyncio.CancelledError:  # stopping: nobody is left waiting for ever
            self._fail_waiting(RuntimeError("the server is stopping"))
            raise

    def _fail_waiting(self, exc: Exception) -> None:
        waiting = [*self._current, *([self._held] if self._held else [])]
        while self._queue is not None and not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for item in waiting:
            if not item.future.done():
                item.future.set_exception(exc)
        self._current, self._held = [], None

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._current = []
            items = self._current = await self._gather()
            texts = [t for item in items for t in item.texts]
            self.on_batch(len(texts), len(items))
            try:
                results = await loop.run_in_executor(self.executor, self.run, texts)
            except Exception as exc:  # every request of the batch gets the error
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            start = 0
            for item in items:
                if not item.future.done():  # a client that went away leaves a cancelled future
                    item.future.set_result(results[start : start + len(item.texts)])
                start += len(item.texts)


class Unbatched:
    """The same interface without batching: each request is its own forward pass (in the same single
    worker thread), for comparison."""

    def __init__(self, run: Run, on_batch: Callable[[int, int], None] | None = None) -> None:
        self.run = run
        self.on_batch = on_batch or (lambda texts, requests: None)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xtremedistil-model")
        self.queued = 0

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.executor.shutdown(wait=True)

    async def submit(self, texts: Sequence[str]) -> list[Any]:
        self.queued += 1
        try:
            self.on_batch(len(texts), 1)
            return await asyncio.get_running_loop().run_in_executor(self.executor, self.run, list(texts))
        finally:
            self.queued -= 1

"""The micro-batcher on its own (no model, no HTTP): how it groups requests, and what a failure does."""

from __future__ import annotations

import asyncio
import threading

import pytest

from xtremedistil.serve.batcher import MicroBatcher


class Recorder:
    """A ``run`` that upper-cases its texts, records each batch, and can be held until released."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.release = threading.Event()
        self.release.set()
        self.fail_on = fail_on

    def __call__(self, texts: list[str]) -> list[str]:
        self.release.wait(10)
        self.batches.append(list(texts))
        if self.fail_on in texts:
            raise ValueError("bad text")
        return [t.upper() for t in texts]


async def _with(batcher: MicroBatcher, body):
    await batcher.start()
    try:
        return await body()
    finally:
        await batcher.stop()


def test_requests_queued_behind_a_running_batch_form_the_next_one():
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=10, max_wait=0)

    async def body():
        run.release.clear()  # the first request's pass blocks; the others queue meanwhile
        first = asyncio.create_task(batcher.submit(["a"]))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batcher.submit([t, t + t])) for t in "bcd"]
        await asyncio.sleep(0.05)
        run.release.set()
        return await first, await asyncio.gather(*rest)

    first, rest = asyncio.run(_with(batcher, body))
    assert first == ["A"] and rest == [["B", "BB"], ["C", "CC"], ["D", "DD"]]
    assert run.batches == [["a"], ["b", "bb", "c", "cc", "d", "dd"]]


def test_a_batch_keeps_arrival_order_stays_within_max_batch_and_never_splits_a_request():
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=4, max_wait=0.2)

    async def body():
        requests = [["a", "b", "c"], ["d", "e"], ["f"], ["g", "h", "i", "j", "k"]]
        return await asyncio.gather(*(batcher.submit(r) for r in requests))

    results = asyncio.run(_with(batcher, body))
    assert results == [["A", "B", "C"], ["D", "E"], ["F"], ["G", "H", "I", "J", "K"]]
    # in arrival order: a request that does not fit closes the batch and leads the next one (no overtaking)
    assert run.batches == [list("abc"), list("def"), list("ghijk")]


def test_a_failing_batch_fails_each_of_its_requests_and_the_next_batch_still_runs():
    run = Recorder(fail_on="boom")
    batcher = MicroBatcher(run, max_batch=8, max_wait=0.1)

    async def body():
        together = await asyncio.gather(
            batcher.submit(["ok"]), batcher.submit(["boom"]), return_exceptions=True
        )
        after = await batcher.submit(["later"])
        return together, after

    together, after = asyncio.run(_with(batcher, body))
    assert all(isinstance(r, ValueError) for r in together)
    assert after == ["LATER"]


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError):
        MicroBatcher(lambda texts: texts, max_batch=0)
    with pytest.raises(ValueError):
        MicroBatcher(lambda texts: texts, max_wait=-1)


def test_stopping_fails_the_requests_still_waiting_instead_of_leaving_them_hanging():
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=1, max_wait=0)

    async def body():
        await batcher.start()
        run.release.clear()
        running = asyncio.create_task(batcher.submit(["a"]))  # computing when the stop comes
        await asyncio.sleep(0.05)
        stopping = asyncio.create_task(batcher.stop())
        await asyncio.sleep(0.05)
        run.release.set()
        await stopping
        return await asyncio.gather(running, return_exceptions=True)

    (result,) = asyncio.run(body())
    assert isinstance(result, RuntimeError) and "stopping" in str(result)

"""Devices and processes: the one module that knows this process's rank, the world size and the device.

A run launched by ``torchrun`` (``torchrun --nproc-per-node N -m xtremedistil distil CONFIG``) reads its rank
from the environment torchrun sets; ``setup`` joins the process group (gloo on CPU, NCCL on GPU) and every
other module asks ``current()``: ``is_main`` (only rank 0 writes the run folder, logs and reports),
``shard`` (a rank's part of a list), ``rows_of`` (a rank's rows of a global batch), ``broadcast`` (a value
rank 0 decided, e.g. a dev score), ``barrier``, ``wrap`` (DistributedDataParallel around a model being
trained). A plain ``xtremedistil`` command is a world of one on which all of these are no-ops.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import nn

from xtremedistil.errors import ConfigError, XtremeDistilError

T = TypeVar("T")
B = TypeVar("B")
DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"
# rank 0 alone evaluates on dev and test, saves and writes the report while the others wait at the next
# collective: the process group's timeout must cover that (hours at the paper's scale)
TIMEOUT_MINUTES = float(os.environ.get("XTREMEDISTIL_DIST_TIMEOUT_MIN", "240"))


@dataclass(frozen=True)
class Context:
    """Rank, world size and device of this process (a world of one by default)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's part of ``items``: every ``world_size``-th one from position ``rank``."""
        return list(items[self.rank :: self.world_size])

    def rows_of(self, rows: int) -> slice | None:
        """This rank's contiguous part of a global batch of ``rows`` rows (sizes differ by at most one);
        None when the batch has fewer rows than ranks (every rank skips it alike, so none waits for another)."""
        if rows < self.world_size:
            return None
        base, extra = divmod(rows, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (any picklable object)."""
        if not self.distributed:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, work: Callable[[], T]) -> T:
        """Run ``work`` on rank 0 only; every rank returns its result, or raises its error (so that no rank
        waits for ever on one that failed)."""
        if not self.distributed:
            return work()
        result: Any = None
        failure: tuple[bool, str, str] | None = None  # (a user error?, its type, its message)
        if self.is_main:
            try:
                with _machine_threads():  # the machine's other ranks wait idle meanwhile: use their cores
                    result = work()
            except Exception as exc:
                self.broadcast((None, (isinstance(exc, XtremeDistilError), type(exc).__name__, str(exc))))
                raise
        result, failure = self.broadcast((result, failure))
        if failure is not None:
            user_error, kind, message = failure
            if user_error:
                raise XtremeDistilError(message)
            raise RuntimeError(f"rank 0 failed ({kind}): {message}")
        return result

    def all_sum(self, value: float) -> float:
        """The sum of ``value`` over ranks."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(tensor)
        return float(tensor.item())

    def wrap(self, model: nn.Module, *, find_unused_parameters: bool = False) -> nn.Module:
        """``model`` under DistributedDataParallel (gradients averaged over ranks at every backward) when
        there are several ranks, else ``model`` itself. Build it after the trainable set is fixed: DDP
        registers the parameters that require gradients when it is made (a new unfreezing step, a new
        wrapper)."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(
            model,
            device_ids=device_ids,
            find_unused_parameters=find_unused_parameters,
            forward_sync_buffers=False,  # buffers (a frozen embedding table, ids) are equal on every rank
        )


_CONTEXT = Context()


def local_processes() -> int:
    """How many processes torchrun started on this machine (1 without torchrun)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def take_machine_threads() -> int:
    """Threads for all the cores torchrun shared among the ranks of this machine (for rank 0 alone at work
    while the others wait or have finished); returns the threads it had."""
    share = torch.get_num_threads()
    torch.set_num_threads(min(len(os.sched_getaffinity(0)), share * local_processes()))
    return share


@contextlib.contextmanager
def _machine_threads() -> Iterator[None]:
    """``take_machine_threads`` for the length of the block, then back to this rank's share."""
    share = take_machine_threads()
    try:
        yield
    finally:
        torch.set_num_threads(share)


def current() -> Context:
    return _CONTEXT


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``: this rank's GPU when there is one, else the CPU; ``cuda``: this rank's GPU; ``cuda:N``."""
    if not re.fullmatch(DEVICE_PATTERN, name):
        raise ConfigError(f"device = {name!r}: expected auto, cpu, cuda or cuda:N")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device = {name!r}, but this torch sees no GPU (torch {torch.__version__}, CUDA "
            f'{torch.version.cuda or "not built in"}): use device = "cpu" or "auto"'
        )
    index = int(name.split(":")[1]) if ":" in name else local_rank
    if index >= torch.cuda.device_count():
        raise ConfigError(f"device = {name!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    return torch.device("cuda", index)


def setup(device: str = "auto") -> Context:
    """Read rank and world size from torchrun's environment, pick the device, join the process group once.
    Called by the outermost run function (side effects at the edges)."""
    global _CONTEXT
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world > 1 and not torch.distributed.is_initialized():
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        torch.distributed.init_process_group(
            "nccl" if resolved.type == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=TIMEOUT_MINUTES),
        )
    _CONTEXT = Context(rank, world, local_rank, resolved)
    return _CONTEXT


def teardown() -> None:
    """Leave the process group (the end of a torchrun command) and return to a world of one."""
    global _CONTEXT
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    _CONTEXT = Context(device=_CONTEXT.device)


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision for the teacher on a GPU (bf16 where the GPU has it, else fp16); none on the CPU,
    where bf16 autocast is slower than fp32 on AVX2 machines (the CPU path stays exact fp32)."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def training_autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Autocast for training steps: bf16 only (fp16 training needs loss scaling; a GPU without bf16 trains
    in fp32)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def rank_parts(batches: Iterable[B], context: Context) -> Iterator[B]:
    """This rank's rows of every global batch (``Batch.rows``): the ranks together make the single-process
    run's steps, each row on one rank. A world of one gets the batches as they are."""
    for batch in batches:
        if not context.distributed:
            yield batch
            continue
        part = context.rows_of(len(batch))  # type: ignore[arg-type]
        if part is not None:
            yield batch.rows(part.start, part.stop)  # type: ignore[attr-defined]


@contextlib.contextmanager
def on_its_own() -> Iterator[Context]:
    """Inside: this rank works as a world of one (its own experiment cells, say: no collective, it writes
    its own files); outside again: the process group as before."""
    global _CONTEXT
    outer = _CONTEXT
    _CONTEXT = Context(device=outer.device)
    try:
        yield _CONTEXT
    finally:
        _CONTEXT = outer


@contextlib.contextmanager
def launched(device: str = "auto") -> Iterator[Context]:
    """``setup`` for the length of a command, ``teardown`` after it (also when it fails)."""
    context = setup(device)
    try:
        yield context
    finally:
        if context.distributed:
            teardown()

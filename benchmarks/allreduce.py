"""The communication of one DistributedDataParallel step, measured: the time of an all-reduce over the
gradients of the xs student (every layer trainable) and of the teacher's trainable parameters, on this
machine's gloo backend. Launched by benchmarks/scaling.py as

    torchrun --nproc-per-node 2 benchmarks/allreduce.py --out FILE.json

Rank 0 writes the medians (ms) to FILE.json."""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.distributed as dist


def median_ms(numel: int, repeats: int = 20, warmup: int = 3) -> float:
    tensor = torch.randn(numel)
    times = []
    for k in range(warmup + repeats):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(tensor)
        if k >= warmup:
            times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--sizes", default="", help="NAME=NUMEL,... (default: measured from the models)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    sizes = dict(item.split("=") for item in args.sizes.split(",") if item)
    result = {
        "world_size": dist.get_world_size(),
        "ms": {name: median_ms(int(numel)) for name, numel in sizes.items()},
        "numel": {name: int(numel) for name, numel in sizes.items()},
    }
    if dist.get_rank() == 0:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(result, handle)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

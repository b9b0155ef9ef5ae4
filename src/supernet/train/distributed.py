"""Data-parallel runs on PyTorch's own engine: ``torch.distributed`` launched by ``torchrun``.

One process per device (nanoGPT / torchrun conventions): ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE`` come from the environment (read once by :func:`supernet.runtime.detect_runtime`);
the process group uses gloo on CPU and nccl on CUDA; rank 0 alone writes checkpoints, logs and the
progress bar. Training wraps the supernet in ``DistributedDataParallel``; evaluating many subnets
splits the subnets across ranks with :func:`shard_map` and merges the results in their original
order, so the answer equals one process's.

Launch::

    torchrun --nproc_per_node 2 -m supernet train --preset fashion-mnist-quick
    supernet train --nproc 2 --preset fashion-mnist-quick      # the same, launched for you
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

from supernet.errors import ConfigError
from supernet.runtime import Runtime

__all__ = [
    "all_gather_objects",
    "all_reduce_mean",
    "barrier",
    "distributed_session",
    "is_main_process",
    "launch_torchrun",
    "shard_map",
    "world_size",
    "wrap_ddp",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@contextlib.contextmanager
def distributed_session(rt: Runtime) -> Iterator[None]:
    """Join the process group for the duration of a run when ``rt`` has several processes.

    gloo on CPU, nccl on CUDA. A group that is already initialized (e.g. by the caller) is used
    as is and left open; one opened here is destroyed on exit. A no-op for one process.
    """
    if not rt.is_distributed or dist.is_initialized():
        yield
        return
    backend = "nccl" if rt.device.type == "cuda" else "gloo"
    if rt.device.type == "cuda":
        torch.cuda.set_device(rt.device)
    dist.init_process_group(backend=backend)
    log.info("joined %s process group as rank %d of %d", backend, rt.rank, rt.world_size)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Processes in the current group (1 without one)."""
    return dist.get_world_size() if _active() else 1


def is_main_process() -> bool:
    """True on rank 0, or without a process group: the process that writes files."""
    return not _active() or dist.get_rank() == 0


def barrier() -> None:
    """Wait for every rank (a no-op without a process group)."""
    if _active():
        dist.barrier()


def all_gather_objects(obj: T) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` without a process group."""
    if not _active():
        return [obj]
    out: list[T] = [None] * dist.get_world_size()  # type: ignore[list-item]
    dist.all_gather_object(out, obj)
    return out


def shard_map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(item) for item in items]`` with the items split round-robin across ranks.

    Rank ``r`` computes items ``r, r + W, r + 2W, ...``; the results are all-gathered and put back
    in the order of ``items``, so every rank returns the same list one process would (``fn`` must
    be deterministic and must not depend on the rank). Without a process group it is a plain map.
    """
    if not _active():
        return [fn(item) for item in items]
    rank, world = dist.get_rank(), dist.get_world_size()
    mine = [(i, fn(items[i])) for i in range(rank, len(items), world)]
    merged: dict[int, R] = {}
    for part in all_gather_objects(mine):
        merged.update(part)
    return [merged[i] for i in range(len(items))]


def wrap_ddp(model: nn.Module, rt: Runtime) -> nn.Module:
    """``DistributedDataParallel(model)`` when ``rt`` has several processes, else ``model``.

    ``find_unused_parameters=True``: a sampled subnet leaves blocks (depth) and kernel
    transformations (kernel size) unused, and several subnets contribute to one step; DDP then
    averages exactly the gradients that exist. Buffers (BN running statistics) are broadcast from
    rank 0 at every forward, so all ranks hold the same statistics for re-calibration to reset.
    """
    if not rt.is_distributed:
        return model
    # channels_last inputs give channels_last gradients of 1x1 convs while DDP's buckets follow
    # the (contiguous) parameters: DDP copies them, correctly; its warning would only be noise.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    device_ids = [rt.device.index] if rt.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=device_ids, find_unused_parameters=True
    )


def all_reduce_mean(values: list[float], rt: Runtime) -> list[float]:
    """Element-wise mean of ``values`` over ranks."""
    if not rt.is_distributed or not _active():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=rt.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return (t / rt.world_size).tolist()


def launch_torchrun(nproc: int, argv: Sequence[str]) -> int:
    """Run ``torchrun --standalone --nproc_per_node nproc -m supernet ARGV`` and return its
    exit code (the convenience behind ``supernet train --nproc N``).

    Raises:
        ConfigError: ``nproc`` is not an int >= 1.
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ConfigError(f"nproc = {nproc!r} must be an integer >= 1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", "-m", "supernet", *argv]  # fmt: skip
    log.info("launching %s", " ".join(cmd))
    return subprocess.call(cmd)

"""Data-parallel training across processes (``torchrun``), for ImageNet-scale pretraining.

The training loop runs unchanged in one process or in ``N`` processes started by ``torchrun``
(``torchrun --standalone --nproc_per_node=N -m clbench.cli train ...``, which sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``). In ``N`` processes:

- every process draws the same *global* batch (the configured ``batch_size``) from the same
  ``(seed, epoch)`` order and keeps its share ``batch[rank::N]`` (:class:`ShardedBatches`), so the
  global batches, and MCL's one-cluster batches, are those of a single-process run;
- the contrastive objectives see the whole global batch: :func:`gather` concatenates the
  embeddings (and :func:`gather_labels` the labels) of all ranks
  (:mod:`clbench.models.collective`) with
  ``torch.distributed.nn.all_gather``, whose backward sums the gradients flowing to each rank's
  own rows. With DistributedDataParallel averaging parameter gradients over the ``N`` ranks, the
  update equals the single-process update on the global batch (tested on CPU with gloo);
- BatchNorm layers become SyncBatchNorm on CUDA, so their statistics are over the global batch
  too (SyncBatchNorm has no CPU kernel; on CPU each rank normalises its own share);
- only rank 0 writes checkpoints, the model and the logs' metrics.

The backend is NCCL on CUDA and gloo on the CPU.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from clbench.models.collective import gather, gather_labels, world_size

__all__ = [
    "Context", "LossTerms", "ShardedBatches", "barrier", "from_environment", "gather", "gather_labels", "init",
    "mean_over_ranks", "prepare", "shutdown", "sum_over_ranks", "wrap", "world_size",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """Where this process sits in the job: ``rank`` of ``world`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> Context:
    """The torchrun variables, or a single process when they are absent."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context()
    return Context(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def init(ctx: Context, device: torch.device) -> torch.device:
    """Join the process group (once) and return this rank's device (``cuda:LOCAL_RANK`` on GPUs)."""
    if not ctx.distributed:
        return device
    if device.type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
        device = torch.device("cuda", ctx.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=ctx.rank, world_size=ctx.world)
    log.info("rank %d of %d on %s (%s)", ctx.rank, ctx.world, device, dist.get_backend())
    return device


def _summed(values: list[float]) -> list[float]:
    """Element-wise sum over the ranks (NCCL reduces CUDA tensors only)."""
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().tolist()


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Average per-rank epoch statistics (loss terms, accuracies) for logging."""
    if world_size() == 1 or not values:
        return values
    keys = sorted(values)
    return {k: v / world_size() for k, v in zip(keys, _summed([values[k] for k in keys]))}


def sum_over_ranks(value: int) -> int:
    return value if world_size() == 1 else int(_summed([value])[0])


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class ShardedBatches:
    """A batch sampler's global batches, each cut to this rank's share ``batch[rank::world]``.

    The global batch size must be divisible by the world size, so every rank holds the same number
    of rows (the gathered batch is then the global batch, rank-interleaved).
    """

    def __init__(self, batches, rank: int, world: int):
        self.batches, self.rank, self.world = batches, rank, world

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.batches, "set_epoch"):
            self.batches.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for batch in self.batches:
            batch = list(batch)
            if len(batch) % self.world:
                raise ValueError(f"a batch of {len(batch)} cannot be split evenly over {self.world} processes; "
                                 f"use a batch_size divisible by the number of GPUs")
            yield batch[self.rank :: self.world]


def prepare(method: torch.nn.Module, ctx: Context, device: torch.device) -> torch.nn.Module:
    """Make a freshly built method ready for ``ctx``: refuse what DDP cannot train, sync BatchNorm on GPUs."""
    if not ctx.distributed:
        return method
    if method.auxiliary_parameters():
        raise ValueError("distributed training does not support methods with an auxiliary MI estimator "
                         "(CLEAR-TC/CLUB-S/L1Out); run them with one process")
    if device.type == "cuda":  # converts the children in place: parameters stay the same objects
        method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
    return method


def wrap(step: torch.nn.Module, ctx: Context, device: torch.device) -> torch.nn.Module:
    """The module the loop calls each step: ``step`` itself, or DistributedDataParallel around it."""
    if not ctx.distributed:
        return step
    return torch.nn.parallel.DistributedDataParallel(step, device_ids=[device.index] if device.type == "cuda" else None)


class LossTerms(torch.nn.Module):
    """``forward = method.loss_terms``: DDP synchronises gradients only through ``forward``."""

    def __init__(self, method: torch.nn.Module):
        super().__init__()
        self.method = method

    def forward(self, views: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.method.loss_terms(views, labels)

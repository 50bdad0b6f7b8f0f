"""Training-time data: a dataset split as tensors, per-sample augmentation views, loaders."""

from __future__ import annotations

import functools
import random

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from clbench.data.augment import CROPS_FIRST, augmentation  # noqa: F401  (the recipes, re-exported here)
from clbench.data.dataset_dir import LazyImages


class ViewDataset(Dataset):
    """Items are ``(views [V, C, H, W] uint8, label, index)``; views are independent augmentations.

    With ``second`` (a dataset's paired view ``x2``), view 1 is drawn from it instead of ``x``:
    the pair then differs by the factor the generator varied, plus augmentation.

    ``x`` is an array, or the :class:`~clbench.data.dataset_dir.LazyImages` of a path-index split
    (ImageNet), decoded here, per item, in the loader's workers. With ``full_resolution`` such
    images are decoded at the file's size, for recipes that begin with a random resized crop (the
    ImageNet practice); otherwise at the dataset's size.
    """

    def __init__(self, x, y: np.ndarray, transform=None, views: int = 1, second: np.ndarray | None = None,
                 full_resolution: bool = False):
        self.x = x if isinstance(x, LazyImages) else torch.from_numpy(np.ascontiguousarray(x))
        self.second = torch.from_numpy(np.ascontiguousarray(second)) if second is not None else None
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64))
        self.transform = transform
        self.views = views
        self.full_resolution = full_resolution

    def __len__(self) -> int:
        return len(self.y)

    def _first(self, i: int) -> torch.Tensor:
        if isinstance(self.x, LazyImages):
            return torch.from_numpy(self.x.decode(i, None if self.full_resolution else "dataset"))
        return self.x[i]

    def __getitem__(self, i: int):
        first = self._first(i)
        imgs = [first if v == 0 or self.second is None else self.second[i] for v in range(self.views)]
        if self.transform is not None:
            imgs = [self.transform(img) for img in imgs]
        return torch.stack(imgs), self.y[i], i


def make_loader(dataset: Dataset, batch_size: int, *, seed: int, epoch: int, device: torch.device,
                num_workers: int = 0, batch_sampler=None, rank: int = 0, world: int = 1) -> DataLoader:
    """A loader whose order depends only on (seed, epoch): a resumed run sees the same batches.

    ``batch_size`` is the global batch. With ``world > 1`` (torchrun), every rank draws the same
    global batches and keeps its share ``batch[rank::world]``; augmentation streams differ per rank.
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    common = dict(num_workers=num_workers, pin_memory=device.type == "cuda", generator=g,
                  persistent_workers=False)
    drop_last = len(dataset) > batch_size
    if batch_sampler is None and world == 1:
        return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=drop_last, **common)
    if batch_sampler is None:
        batch_sampler = BatchSampler(RandomSampler(dataset, generator=g), batch_size, drop_last=drop_last)
    elif hasattr(batch_sampler, "set_epoch"):
        batch_sampler.set_epoch(epoch)
    if world > 1:
        from clbench.train.distributed import ShardedBatches

        batch_sampler = ShardedBatches(batch_sampler, rank, world)
        common["worker_init_fn"] = functools.partial(_reseed_worker, rank)
    return DataLoader(dataset, batch_sampler=batch_sampler, **common)


def _reseed_worker(rank: int, worker_id: int) -> None:
    # DataLoader seeds workers from the shared generator, identical on every rank; without this,
    # rank r's k-th image would get the same random crop as rank 0's k-th image.
    seed = (torch.initial_seed() + rank * 1_000_003) % 2**63
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)

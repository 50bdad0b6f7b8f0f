"""MCL's cluster batch sampler: every batch is drawn from one cluster of the previous stage(s).

In multistage contrastive learning (MCL, arXiv 2402.11816), stage ``s`` clusters the data with
K-means on the stage-``s`` representation; stage ``s+1`` then takes each batch (hence each set of
negatives) from a single cluster, so the new stage cannot separate samples by the features the
earlier stages already captured. The cluster of a sample is the tuple of its cluster ids in all
earlier stages ``0..s``, combined by :func:`combine_cluster_ids`: stage ``s+1`` uses the combined
clusters of stages ``0..s``, as the paper describes (``labels="joint"``: K, then K**2, ... clusters).
The official ``cluster.py`` of MajorDavidZhang/MCL (lines 76-80) loads stage ``stage``'s labels
where its combining loop means stage ``s``, so its pseudo-labels are stage ``s``'s own K clusters
(``labels="previous"``: K clusters at every stage); that is how the paper's CLIP numbers were made.
:func:`stage_cluster_ids` gives either.

:class:`ClusterBatchSampler` is pure numpy and works as a PyTorch ``batch_sampler``
(``DataLoader(ds, batch_sampler=sampler)``): ``__iter__`` yields lists of indices, ``__len__`` is the
number of batches (the same every epoch), ``set_epoch(e)`` picks the epoch, and the batches depend
only on ``(seed, epoch)``.

Per epoch, each cluster's members are shuffled and cut into batches of ``batch_size``. The defaults
(``small="skip"``, ``drop_last=True``) are the official sampler's (``MCL_batch_sampler_DDP`` in
``my_training/data.py``): only full batches, the remainder of every cluster dropped, clusters
smaller than one batch skipped in that stage; every batch is one cluster's, with no sample repeated.
With cluster sizes 1000/700/300/120/50 and batches of 256 that is 3 + 2 + 1 = 6 pure batches of
1,536 samples from 3 of the 5 clusters (:meth:`ClusterBatchSampler.summary` says so per stage).
The official sampler visits clusters round-robin: batch b comes from the next cluster (in order of
cluster id) that still has a full batch left. ``order="round_robin"`` does the same; the default
(``"shuffled"``) shuffles the order of all batches every epoch (the official code calls its
schedule naive; the set of batches is the same).

Other policies, kept as options (MCL's training uses the defaults):

- ``drop_last=False``: the last, partial batch of a cluster is completed with other members of the
  same cluster drawn without replacement;
- ``small``: clusters with fewer than ``batch_size`` members are skipped (``"skip"``), pooled into one
  group batched like a cluster (``"merge"``: those batches mix clusters; a pooled group still smaller
  than a batch is topped up with replacement), given one batch each filled by sampling their own
  members with replacement (``"replace"``), or given one short batch each (``"keep"``, dropped under
  ``drop_last``).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from clbench.data.embedded import rng_for

SMALL_POLICIES = ("skip", "merge", "replace", "keep")
ORDERS = ("shuffled", "round_robin")
# which clusters a stage draws its batches from: the joint clusters of all earlier stages (the paper's
# text) or the previous stage's alone (the official cluster.py)
STAGE_LABELS = ("joint", "previous")


def stage_cluster_ids(stages: Sequence[np.ndarray | Sequence[int]], labels: str = "joint") -> np.ndarray:
    """The cluster id of each sample for the stage after ``stages`` (the K-means ids of stages 0..s, in order).

    ``labels="joint"``: :func:`combine_cluster_ids` of all of them; ``"previous"``: the last stage's ids
    alone, relabelled ``0..M-1``.
    """
    if labels not in STAGE_LABELS:
        raise ValueError(f"labels must be one of {STAGE_LABELS}, got {labels!r}")
    if not len(stages):
        raise ValueError("need the cluster ids of at least one stage")
    return combine_cluster_ids(*stages) if labels == "joint" else combine_cluster_ids(stages[-1])


def combine_cluster_ids(*stages: np.ndarray | Sequence[int], dense: bool = True) -> np.ndarray:
    """One cluster id per sample from the cluster ids of several stages (mixed radix).

    ``id = ((c_1 * K_2 + c_2) * K_3 + c_3) ...`` with ``K_s = max(c_s) + 1``; with ``dense`` the ids
    are relabelled ``0..M-1`` in increasing order of the mixed-radix value (only combinations
    that occur get an id). Accepts several 1-D arrays, or one 2-D array ``[stages, N]``.
    """
    if len(stages) == 1 and np.asarray(stages[0]).ndim == 2:
        stages = tuple(np.asarray(stages[0]))
    arrays = [np.asarray(s, dtype=np.int64) for s in stages]
    if not arrays:
        raise ValueError("need at least one array of cluster ids")
    n = len(arrays[0])
    if any(a.ndim != 1 or len(a) != n for a in arrays):
        raise ValueError("cluster id arrays must be 1-D and of equal length")
    if any(len(a) and a.min() < 0 for a in arrays):
        raise ValueError("cluster ids must be >= 0")
    combined = np.zeros(n, dtype=np.int64)
    for a in arrays:
        radix = int(a.max()) + 1 if len(a) else 1
        if combined.size and int(combined.max()) > (np.iinfo(np.int64).max - radix) // max(radix, 1):
            raise OverflowError("too many cluster combinations for int64; use dense ids per stage")
        combined = combined * radix + a
    if dense:
        combined = np.unique(combined, return_inverse=True)[1].astype(np.int64).reshape(n)
    return combined


class ClusterBatchSampler:
    """Batches of indices, each drawn from one cluster (see the module docstring).

    Parameters: ``cluster_ids`` ([N] ints, or [stages, N] / a list of arrays, combined with
    :func:`combine_cluster_ids`), ``batch_size``, ``seed``, ``small`` (``"skip"``, ``"merge"``,
    ``"replace"`` or ``"keep"``), ``drop_last``. The defaults are the official MCL sampler's.
    """

    def __init__(self, cluster_ids, batch_size: int, *, seed: int = 0, small: str = "skip", drop_last: bool = True,
                 order: str = "shuffled"):
        ids = np.asarray(cluster_ids)
        if ids.ndim == 2:  # [stages, N] or a list of per-stage arrays
            ids = combine_cluster_ids(ids)
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 1 or len(ids) == 0:
            raise ValueError("cluster_ids must be a non-empty 1-D array (or a list of them)")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if small not in SMALL_POLICIES:
            raise ValueError(f"small must be one of {SMALL_POLICIES}, got {small!r}")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        self.order = order
        self.cluster_ids = ids
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.small = small
        self.drop_last = bool(drop_last)
        self.epoch = 0
        order = np.argsort(ids, kind="stable")
        values, starts = np.unique(ids[order], return_index=True)
        members = np.split(order, starts[1:])
        big = [m for m in members if len(m) >= self.batch_size]
        tiny = [m for m in members if len(m) < self.batch_size]
        if small == "skip":
            self.groups = big
            self.group_kind = ["cluster"] * len(big)
        elif small == "merge" and tiny:
            self.groups = big + [np.sort(np.concatenate(tiny))]
            self.group_kind = ["cluster"] * len(big) + ["merged"]
        else:
            self.groups = big + tiny
            self.group_kind = ["cluster"] * len(big) + ["small"] * len(tiny)
        self.n_clusters = len(values)
        self.cluster_sizes = np.array([len(m) for m in members], dtype=np.int64)

    def summary(self) -> dict:
        """What one epoch uses (the same every epoch): clusters and samples in all and in its batches.

        ``clusters_used`` / ``samples_used`` count the distinct clusters and samples that appear in
        the epoch's batches, ``mixed_batches`` the batches holding more than one cluster (0 under
        the default policies).
        """
        batches = self.batches(0)
        flat = np.concatenate(batches) if batches else np.empty(0, dtype=np.int64)
        ids = self.cluster_ids
        return {"batch_size": self.batch_size, "small_clusters": self.small, "drop_last": self.drop_last,
                **({"order": self.order} if self.order != "shuffled" else {}),  # recorded where it is not the default
                "clusters": int(self.n_clusters), "clusters_used": int(len(np.unique(ids[flat]))),
                "samples": int(len(ids)), "samples_used": int(len(np.unique(flat))), "batches": len(batches),
                "mixed_batches": int(sum(len(np.unique(ids[b])) > 1 for b in batches)),
                "cluster_sizes": sorted((int(m) for m in self.cluster_sizes), reverse=True)}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _n_batches(self, size: int, kind: str) -> int:
        B = self.batch_size
        if size >= B:
            return size // B if self.drop_last else -(-size // B)
        if kind == "small" and self.small == "keep" and self.drop_last:
            return 0
        return 1  # a merged pool or small cluster below one batch still yields one (topped-up or short) batch

    def __len__(self) -> int:
        return sum(self._n_batches(len(g), k) for g, k in zip(self.groups, self.group_kind))

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """All batches of ``epoch`` (default: the current one), in iteration order."""
        rng = rng_for(self.seed, "cluster_batch_sampler", self.epoch if epoch is None else int(epoch))
        B = self.batch_size
        out: list[np.ndarray] = []
        per_group: list[int] = []  # batches of each group, for the round-robin order
        for group, kind in zip(self.groups, self.group_kind):
            per_group.append(len(out))
            perm = group[rng.permutation(len(group))]
            if len(group) < B:
                if kind == "small" and self.small == "keep":
                    if not self.drop_last:
                        out.append(perm)
                    continue
                fill = group[rng.integers(0, len(group), B - len(group))]
                out.append(np.concatenate([perm, fill]))
                continue
            full = len(perm) // B
            out.extend(perm[: full * B].reshape(full, B))
            rest = perm[full * B:]
            if len(rest) and not self.drop_last:
                others = perm[: full * B]
                fill = others[rng.choice(len(others), B - len(rest), replace=False)]
                out.append(np.concatenate([rest, fill]))
        if self.order == "round_robin":
            return _round_robin(out, per_group)
        order = rng.permutation(len(out))
        return [out[i] for i in order]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches():
            yield batch.tolist()


def _round_robin(batches: list[np.ndarray], starts: list[int]) -> list[np.ndarray]:
    """The groups' batches interleaved: round r takes the r-th batch of every group that has one, in group order."""
    ends = starts[1:] + [len(batches)]
    queues = [batches[s:e] for s, e in zip(starts, ends)]
    return [q[r] for r in range(max((len(q) for q in queues), default=0)) for q in queues if r < len(q)]

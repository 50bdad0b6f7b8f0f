"""CLEAR's mutual-information simulation: a labelled Gaussian mixture whose spread changes in phases.

``n_components`` (3) isotropic Gaussian components in ``d`` dimensions, equally likely, with fixed
means at pairwise distance ``separation`` (a regular simplex when ``d >= n_components``, else a
regular polygon in the first two dimensions, or a line when ``d == 1``). The common standard
deviation ("spread") is piecewise constant in the training step: ``spreads[(step // period) % len(spreads)]``,
so it changes every ``period`` (100) steps and I(X; Y) changes with it.

- :class:`GaussianMixtureSim`: ``batch(step, batch_size)`` (seeded per step, so any step can be
  regenerated on its own), ``stream(n_steps, batch_size)``, ``true_mi(spread)`` (Monte-Carlo of the
  exact posterior: ``E[log p(y|x)] + log K``, in nats).
- :func:`simulate`: all batches of a run as arrays.
- :func:`knn_mi`: the k-nearest-neighbour estimate of I(X; Y) for continuous X and discrete Y
  (Ross 2014, the estimator behind scikit-learn's ``mutual_info_classif``), applied to the joint
  ``d``-dimensional X; :func:`knn_mi_per_feature` is scikit-learn's ``mutual_info_classif`` itself
  (one estimate per dimension). For ``d == 1`` the two agree.

Dataset directory (``build``): not images. Each split stores ``features`` float32 [N, d] (the
samples), ``y`` (component), ``factor_spread`` (index into ``spreads``), ``step`` (the training step
the sample belongs to) and, because the format requires an ``x``, a uint8 [N, 1, 1, d]
quantisation of ``features`` (``features ~= x * meta["x_scale"] + meta["x_offset"]``) for generic
code; use ``features``. train is the stream ``n_steps x batch_size`` in step order; val and test
draw ``n_val`` / ``n_test`` samples at uniformly random steps of the same run. ``meta["mi"]`` lists,
per spread, the Monte-Carlo I(X; Y) and the KNN estimates on ``mi_samples`` fresh samples.

Spec keys (extras may also sit under ``options:``)
--------------------------------------------------
``generator`` ``"gaussian_mixture"``; ``d`` (2); ``n_components`` (3); ``period`` (100); ``spreads``
([0.25, 0.5, 1.0, 2.0]); ``separation`` (2.0); ``n_steps`` (1000); ``batch_size`` (128); ``n_train``
(optional; must equal ``n_steps * batch_size``); ``n_val`` (2000); ``n_test`` (2000); ``mi_samples``
(2000); ``n_neighbors`` (3); ``seed`` (0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
from scipy.special import digamma, logsumexp

from clbench.data import dataset_dir
from clbench.data.embedded import rng_for, spec_params

DEFAULTS: dict[str, Any] = {
    "d": 2,
    "n_components": 3,
    "period": 100,
    "spreads": [0.25, 0.5, 1.0, 2.0],
    "separation": 2.0,
    "n_steps": 1000,
    "batch_size": 128,
    "n_train": None,
    "n_val": 2000,
    "n_test": 2000,
    "mi_samples": 2000,
    "n_neighbors": 3,
    "seed": 0,
    "name": "gaussian_mixture",
    "source": None,
}


def component_means(n_components: int = 3, d: int = 2, separation: float = 2.0) -> np.ndarray:
    """Means [K, d] with all (simplex) or neighbouring (polygon, line) pairs ``separation`` apart."""
    K = int(n_components)
    means = np.zeros((K, d))
    if d >= K:
        simplex = np.eye(K) * separation / np.sqrt(2.0)
        means[:, :K] = simplex - simplex.mean(0)
    elif d >= 2:
        radius = separation / (2.0 * np.sin(np.pi / K))
        a = 2.0 * np.pi * np.arange(K) / K
        means[:, 0], means[:, 1] = radius * np.cos(a), radius * np.sin(a)
    else:
        means[:, 0] = (np.arange(K) - (K - 1) / 2.0) * separation
    return means


@dataclass(frozen=True)
class GaussianMixtureSim:
    d: int = 2
    n_components: int = 3
    period: int = 100
    spreads: Sequence[float] = (0.25, 0.5, 1.0, 2.0)
    separation: float = 2.0
    seed: int = 0
    means: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.d < 1 or self.n_components < 2 or self.period < 1 or not len(self.spreads):
            raise ValueError(f"invalid simulation parameters {self}")
        object.__setattr__(self, "spreads", tuple(float(s) for s in self.spreads))
        object.__setattr__(self, "means", component_means(self.n_components, self.d, self.separation))

    def spread_index(self, step: int | np.ndarray) -> np.ndarray | int:
        return (np.asarray(step) // self.period) % len(self.spreads)

    def spread(self, step: int | np.ndarray) -> np.ndarray | float:
        return np.asarray(self.spreads)[self.spread_index(step)]

    def sample(self, steps: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One sample at each of ``steps``: (x float32 [n, d], y int64 [n])."""
        steps = np.asarray(steps)
        y = rng.integers(0, self.n_components, len(steps))
        x = self.means[y] + rng.standard_normal((len(steps), self.d)) * self.spread(steps)[:, None]
        return x.astype(np.float32), y.astype(np.int64)

    def batch(self, step: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """The batch of training step ``step`` (deterministic in ``(seed, step)``)."""
        return self.sample(np.full(batch_size, step), rng_for(self.seed, "gaussian_mixture", "batch", int(step)))

    def stream(self, n_steps: int, batch_size: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        for step in range(n_steps):
            x, y = self.batch(step, batch_size)
            yield step, x, y

    def log_posterior(self, x: np.ndarray, spread: float) -> np.ndarray:
        """log p(y | x) [n, K] under equal priors and the given spread."""
        sq = ((np.asarray(x, np.float64)[:, None, :] - self.means[None]) ** 2).sum(-1)
        logits = -sq / (2.0 * spread ** 2)
        return logits - logsumexp(logits, axis=1, keepdims=True)

    def true_mi(self, spread: float, n: int = 20000, seed: int = 0) -> float:
        """I(X; Y) in nats at ``spread`` by Monte-Carlo over the exact posterior."""
        rng = rng_for(self.seed, "gaussian_mixture", "true_mi", seed)
        y = rng.integers(0, self.n_components, n)
        x = self.means[y] + rng.standard_normal((n, self.d)) * spread
        return float(np.mean(self.log_posterior(x, spread)[np.arange(n), y]) + np.log(self.n_components))


def simulate(n_steps: int, batch_size: int, d: int = 2, n_components: int = 3, period: int = 100,
             spreads: Sequence[float] = (0.25, 0.5, 1.0, 2.0), separation: float = 2.0, seed: int = 0) -> dict[str, np.ndarray]:
    """Every training batch of a run: ``x`` [T, B, d] float32, ``y`` [T, B], ``spread`` [T], ``spread_index`` [T]."""
    sim = GaussianMixtureSim(d, n_components, period, tuple(spreads), separation, seed)
    xs, ys = zip(*((x, y) for _, x, y in sim.stream(n_steps, batch_size))) if n_steps else ((), ())
    steps = np.arange(n_steps)
    return {
        "x": np.stack(xs) if n_steps else np.zeros((0, batch_size, d), np.float32),
        "y": np.stack(ys) if n_steps else np.zeros((0, batch_size), np.int64),
        "spread": np.asarray(sim.spread(steps), np.float64),
        "spread_index": np.asarray(sim.spread_index(steps), np.int64),
        "means": sim.means,
    }


def knn_mi(x: np.ndarray, y: np.ndarray, n_neighbors: int = 3) -> float:
    """KNN estimate of I(X; Y) (nats) for continuous X [n, d] (or [n]) and discrete Y (Ross 2014).

    The estimator of scikit-learn's ``mutual_info_classif`` (max-norm neighbourhoods), applied to the
    joint X: ``psi(N) + <psi(k)> - <psi(N_y)> - <psi(m)>``, where ``m`` counts all points within the
    distance to the k-th neighbour of the same class. Points alone in their class are ignored.
    """
    from sklearn.neighbors import KDTree, NearestNeighbors

    x = np.asarray(x, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    y = np.asarray(y)
    n = len(y)
    radius = np.empty(n)
    label_counts = np.empty(n)
    k_all = np.empty(n)
    nn = NearestNeighbors(metric="chebyshev")
    for label in np.unique(y):
        mask = y == label
        count = int(mask.sum())
        if count > 1:
            k = min(n_neighbors, count - 1)
            nn.set_params(n_neighbors=k)
            nn.fit(x[mask])
            r = nn.kneighbors()[0]
            radius[mask] = np.nextafter(r[:, -1], 0)
            k_all[mask] = k
        label_counts[mask] = count
    keep = label_counts > 1
    n_kept = int(keep.sum())
    if n_kept == 0:
        return 0.0
    x, radius, label_counts, k_all = x[keep], radius[keep], label_counts[keep], k_all[keep]
    m_all = KDTree(x, metric="chebyshev").query_radius(x, radius, count_only=True, return_distance=False)
    mi = digamma(n_kept) + np.mean(digamma(k_all)) - np.mean(digamma(label_counts)) - np.mean(digamma(np.asarray(m_all)))
    return float(max(0.0, mi))


def knn_mi_per_feature(x: np.ndarray, y: np.ndarray, n_neighbors: int = 3, seed: int = 0) -> np.ndarray:
    """scikit-learn's ``mutual_info_classif``: one KNN estimate of I(X_j; Y) per dimension (nats)."""
    from sklearn.feature_selection import mutual_info_classif

    x = np.asarray(x, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    return mutual_info_classif(x, np.asarray(y), n_neighbors=n_neighbors, random_state=seed)


def mi_table(sim: GaussianMixtureSim, n_samples: int = 2000, n_neighbors: int = 3) -> list[dict[str, Any]]:
    """Per spread: true (Monte-Carlo) I(X; Y) and the KNN estimates on ``n_samples`` fresh samples."""
    rows = []
    for i, s in enumerate(sim.spreads):
        rng = rng_for(sim.seed, "gaussian_mixture", "mi_table", i)
        x, y = sim.sample(np.full(n_samples, i * sim.period), rng)
        rows.append({
            "spread": s,
            "true_mi": sim.true_mi(s),
            "knn_mi": knn_mi(x, y, n_neighbors),
            "knn_mi_per_feature": knn_mi_per_feature(x, y, n_neighbors, sim.seed).tolist(),
        })
    return rows


def generate(spec: Mapping[str, Any], resources_dir: str | Path = "resources") -> tuple[dict, dict]:
    """The dataset in memory: ``(splits, meta)`` (see the module docstring)."""
    p = spec_params(spec, DEFAULTS, "gaussian_mixture")
    seed = int(p["seed"])
    n_steps, batch = int(p["n_steps"]), int(p["batch_size"])
    if p["n_train"] is not None and int(p["n_train"]) != n_steps * batch:
        raise ValueError(f"gaussian_mixture: n_train={p['n_train']} but n_steps * batch_size = {n_steps * batch}; "
                         f"set n_steps/batch_size instead")
    if n_steps < 1 or batch < 1:
        raise ValueError("gaussian_mixture needs n_steps >= 1 and batch_size >= 1")
    sim = GaussianMixtureSim(int(p["d"]), int(p["n_components"]), int(p["period"]), tuple(p["spreads"]),
                             float(p["separation"]), seed)
    run = simulate(n_steps, batch, sim.d, sim.n_components, sim.period, sim.spreads, sim.separation, seed)
    feats = {"train": (run["x"].reshape(-1, sim.d), run["y"].reshape(-1), np.repeat(np.arange(n_steps), batch))}
    for split in ("val", "test"):
        n = int(p[f"n_{split}"])
        rng = rng_for(seed, "gaussian_mixture", split)
        steps = np.sort(rng.integers(0, n_steps, n))
        x, y = sim.sample(steps, rng)
        feats[split] = (x, y, steps)
    bound = float(max(np.abs(f[0]).max() for f in feats.values() if len(f[0]))) or 1.0
    scale, offset = 2.0 * bound / 255.0, -bound
    splits = {}
    for split, (x, y, steps) in feats.items():
        q = np.clip(np.rint((x - offset) / scale), 0, 255).astype(np.uint8)
        splits[split] = {
            "x": q.reshape(len(x), 1, 1, sim.d),
            "features": x.astype(np.float32),
            "y": y.astype(np.int64),
            "factor_spread": np.asarray(sim.spread_index(steps), np.int64),
            "step": steps.astype(np.int64),
        }
    meta = {
        "name": p["name"],
        "generator": "gaussian_mixture",
        "source": "simulation",
        "kind": "features",
        "classes": [f"component {k}" for k in range(sim.n_components)],
        "factors": {"spread": [f"{s:g}" for s in sim.spreads]},
        "recipe": {"name": "spread_schedule", "period": sim.period, "spreads": list(sim.spreads), "n_steps": n_steps,
                   "batch_size": batch},
        "means": sim.means.tolist(),
        "x_scale": scale,
        "x_offset": offset,
        "mi": mi_table(sim, int(p["mi_samples"]), int(p["n_neighbors"])),
        "seed": seed,
        "spec": dict(p),
    }
    return splits, meta


def build(spec: dict, out_dir: Path, resources_dir: Path) -> dict:
    splits, meta = generate(spec, resources_dir)
    return dataset_dir.save(out_dir, splits, meta)

"""Disentanglement metrics: CLEAR's gMIG, the standard MIG, and a KNN mutual-information helper.

All inputs are array-likes (NumPy arrays, lists, or CPU/GPU torch tensors) laid out sample-major:
``(n_samples, n_dims)``. Torch is never imported here; tensors are converted through
``.detach().cpu().numpy()`` when they have it.

gMIG (CLEAR, arXiv 2507.18794)
    gMIG = ( mean_d I(z_c,d ; y) - mean_d I(z_s,d ; y) ) / H(y)

    where z_c,d / z_s,d is the d-th content / style latent dimension, y the content label,
    I(. ; y) the Kraskov/Ross k-nearest-neighbour estimate of the mutual information between a
    continuous variable and a discrete one (``sklearn.feature_selection.mutual_info_classif`` with
    ``discrete_features=False``), and H(y) the empirical entropy of the labels, in nats. It is the
    estimator of the official code (``code/src/losses.py: mutual_info_gap`` in scotsun/clear-vae),
    with ``random_state`` fixed (sklearn adds a tiny random jitter to continuous features) and
    labels of any integer (or string) values.

MIG (Chen et al. 2018, as implemented in disentanglement_lib)
    Each code dimension j is discretised into ``n_bins`` equal-width bins over its range
    (``np.histogram``/``np.digitize``, as ``_histogram_discretize``); the discrete mutual
    information I(v_j ; k) with every factor k is computed by ``sklearn.metrics.mutual_info_score``
    (nats); then

    MIG = 1/K * sum_k ( I(v_(1) ; k) - I(v_(2) ; k) ) / H(k)

    with v_(1), v_(2) the codes with the largest and second-largest I(. ; k), and
    H(k) = I(k ; k) the factor's discrete entropy. Factors are expected discrete; continuous
    factors can be discretised the same way (``discretize_factors``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "as_numpy",
    "label_entropy",
    "knn_mutual_information",
    "gmig",
    "gmig_details",
    "histogram_discretize",
    "discrete_mutual_info",
    "discrete_entropy",
    "mig",
    "mig_details",
    "gaussian_blobs",
]


def as_numpy(x: Any) -> np.ndarray:
    """Convert a NumPy array, list or torch tensor (any device) to a NumPy array."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _as_2d(x: Any, name: str) -> np.ndarray:
    a = as_numpy(x)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D (n_samples, n_dims); got shape {a.shape}")
    return a


def _as_labels(y: Any, n: int | None = None, name: str = "labels") -> np.ndarray:
    a = as_numpy(y)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,); got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name} has {a.shape[0]} samples, expected {n}")
    return a


def label_entropy(labels: Any) -> float:
    """Empirical entropy H(y) = -sum_c p_c log p_c of discrete labels, in nats."""
    y = _as_labels(labels)
    if y.size == 0:
        raise ValueError("labels is empty")
    _, counts = np.unique(y, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def knn_mutual_information(
    x: Any,
    labels: Any,
    *,
    n_neighbors: int = 3,
    random_state: int | None = 0,
    reduce: str = "none",
) -> np.ndarray | float:
    """KNN (Kraskov/Ross) estimate of I(x_d ; y) for every column d of ``x``, in nats.

    ``x``: (n_samples, n_dims) continuous; ``labels``: (n_samples,) discrete.
    Uses ``sklearn.feature_selection.mutual_info_classif(discrete_features=False)``, the estimator
    of CLEAR's MI-simulation figure (``code/mi_experiment.ipynb``). ``reduce``: "none" (per-dim
    array), "mean" or "sum" (a float).
    """
    from sklearn.feature_selection import mutual_info_classif

    X = _as_2d(x, "x").astype(np.float64, copy=False)
    y = _as_labels(labels, X.shape[0])
    mi = mutual_info_classif(
        X, y, discrete_features=False, n_neighbors=n_neighbors, random_state=random_state
    )
    mi = np.asarray(mi, dtype=np.float64)
    if reduce == "none":
        return mi
    if reduce == "mean":
        return float(mi.mean())
    if reduce == "sum":
        return float(mi.sum())
    raise ValueError(f"reduce must be 'none', 'mean' or 'sum'; got {reduce!r}")


def gmig_details(
    z_content: Any,
    z_style: Any,
    labels: Any,
    random_state: int | None = 0,
    n_neighbors: int = 3,
) -> dict:
    """gMIG with its parts: per-dimension MI of content and style latents, H(y), and the gap.

    gMIG = ( mean_d I(z_c,d ; y) - mean_d I(z_s,d ; y) ) / H(y); see the module docstring.
    Returns a dict with keys ``gmig``, ``mi_content`` (list), ``mi_style`` (list),
    ``mi_content_mean``, ``mi_style_mean``, ``entropy``, ``n_samples``.
    """
    zc = _as_2d(z_content, "z_content")
    zs = _as_2d(z_style, "z_style")
    if zc.shape[0] != zs.shape[0]:
        raise ValueError(f"z_content has {zc.shape[0]} samples but z_style has {zs.shape[0]}")
    y = _as_labels(labels, zc.shape[0])
    h = label_entropy(y)
    if h <= 0:
        raise ValueError("labels take a single value: H(y) = 0 and gMIG is undefined")
    mi_c = knn_mutual_information(zc, y, n_neighbors=n_neighbors, random_state=random_state)
    mi_s = knn_mutual_information(zs, y, n_neighbors=n_neighbors, random_state=random_state)
    value = (float(mi_c.mean()) - float(mi_s.mean())) / h
    return {
        "gmig": float(value),
        "mi_content": mi_c.tolist(),
        "mi_style": mi_s.tolist(),
        "mi_content_mean": float(mi_c.mean()),
        "mi_style_mean": float(mi_s.mean()),
        "entropy": float(h),
        "n_samples": int(zc.shape[0]),
    }


def gmig(z_content: Any, z_style: Any, labels: Any, random_state: int | None = 0) -> float:
    """CLEAR's gMIG = ( mean_d I(z_c,d ; y) - mean_d I(z_s,d ; y) ) / H(y).

    I is the KNN estimate of ``sklearn.feature_selection.mutual_info_classif``
    (``discrete_features=False``, ``n_neighbors=3``, the given ``random_state``); H(y) is the
    empirical label entropy in nats. Ranges roughly in [-1, 1]: positive when the content
    latents carry the label and the style latents do not.
    ``z_content``: (n, d_c); ``z_style``: (n, d_s); ``labels``: (n,).
    """
    return gmig_details(z_content, z_style, labels, random_state=random_state)["gmig"]


# --------------------------------------------------------------------------------------------
# MIG (disentanglement_lib)
# --------------------------------------------------------------------------------------------


def histogram_discretize(values: Any, n_bins: int = 20) -> np.ndarray:
    """Discretise every column into ``n_bins`` equal-width bins over its own range.

    As ``disentanglement_lib.evaluation.metrics.utils._histogram_discretize`` (which is laid out
    dims-major): ``np.digitize(x, np.histogram(x, n_bins)[1][:-1])``, giving bin ids 1..n_bins.
    ``values``: (n_samples, n_dims) -> int array of the same shape.
    """
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    X = _as_2d(values, "values")
    out = np.zeros(X.shape, dtype=np.int64)
    for j in range(X.shape[1]):
        col = X[:, j]
        if not np.all(np.isfinite(col)):
            raise ValueError(f"column {j} has non-finite values")
        edges = np.histogram(col, n_bins)[1]
        out[:, j] = np.digitize(col, edges[:-1])
    return out


def discrete_mutual_info(codes: Any, factors: Any) -> np.ndarray:
    """Matrix m[i, j] = I(code_i ; factor_j) of discrete columns (``sklearn.metrics.mutual_info_score``, nats).

    ``codes``: (n_samples, n_codes) discrete; ``factors``: (n_samples, n_factors) discrete.
    """
    from sklearn.metrics import mutual_info_score

    C = _as_2d(codes, "codes")
    F = _as_2d(factors, "factors")
    if C.shape[0] != F.shape[0]:
        raise ValueError(f"codes has {C.shape[0]} samples but factors has {F.shape[0]}")
    m = np.zeros((C.shape[1], F.shape[1]))
    for i in range(C.shape[1]):
        for j in range(F.shape[1]):
            m[i, j] = mutual_info_score(F[:, j], C[:, i])
    return m


def discrete_entropy(factors: Any) -> np.ndarray:
    """Entropy H(k) = I(k ; k) of every discrete column, in nats (as disentanglement_lib)."""
    from sklearn.metrics import mutual_info_score

    F = _as_2d(factors, "factors")
    return np.array([mutual_info_score(F[:, j], F[:, j]) for j in range(F.shape[1])])


def _needs_discretizing(F: np.ndarray) -> bool:
    if not np.issubdtype(F.dtype, np.floating):
        return False
    return not np.all(np.equal(np.mod(F, 1), 0))


def mig_details(
    codes: Any,
    factors: Any,
    n_bins: int = 20,
    discretize_factors: bool | None = None,
) -> dict:
    """MIG with its parts. See :func:`mig`.

    Returns a dict with ``mig`` (mean over factors with H(k) > 0), ``per_factor`` (list; NaN for a
    constant factor), ``mutual_info`` (n_codes x n_factors list), ``entropy`` (per factor),
    ``top_code`` (per factor, index of the most informative code).
    """
    C = _as_2d(codes, "codes")
    F = _as_2d(factors, "factors")
    if C.shape[0] != F.shape[0]:
        raise ValueError(f"codes has {C.shape[0]} samples but factors has {F.shape[0]}")
    if C.shape[1] < 2:
        raise ValueError("MIG needs at least 2 code dimensions (top-1 minus top-2)")
    if discretize_factors is None:
        discretize_factors = _needs_discretizing(F)
    if discretize_factors:
        F = histogram_discretize(F, n_bins)
    codes_d = histogram_discretize(C, n_bins)
    m = discrete_mutual_info(codes_d, F)
    h = discrete_entropy(F)
    sorted_m = np.sort(m, axis=0)[::-1]
    gap = sorted_m[0] - sorted_m[1]
    per_factor = np.full(F.shape[1], np.nan)
    ok = h > 0
    per_factor[ok] = gap[ok] / h[ok]
    value = float(np.mean(per_factor[ok])) if ok.any() else float("nan")
    return {
        "mig": value,
        "per_factor": per_factor.tolist(),
        "mutual_info": m.tolist(),
        "entropy": h.tolist(),
        "top_code": np.argmax(m, axis=0).tolist(),
        "n_samples": int(C.shape[0]),
    }


def mig(codes: Any, factors: Any, n_bins: int = 20, discretize_factors: bool | None = None) -> float:
    """Mutual Information Gap (Chen et al. 2018), as disentanglement_lib computes it.

    MIG = 1/K sum_k ( I(v_(1) ; k) - I(v_(2) ; k) ) / H(k), with each code dimension discretised
    into ``n_bins`` equal-width bins, I the discrete mutual information
    (``sklearn.metrics.mutual_info_score``) and H(k) = I(k ; k). ``codes``: (n, n_codes) continuous;
    ``factors``: (n, K) or (n,) discrete ground-truth factors. Float factors with non-integer values
    are discretised into ``n_bins`` bins too unless ``discretize_factors=False``. Constant factors
    (H = 0) are left out of the mean. 1 = each factor is captured by exactly one code; 0 = none is.
    """
    return mig_details(codes, factors, n_bins=n_bins, discretize_factors=discretize_factors)["mig"]


# --------------------------------------------------------------------------------------------
# MI simulation (CLEAR, code/mi_experiment.ipynb)
# --------------------------------------------------------------------------------------------


def gaussian_blobs(
    n_samples: int = 1500,
    dim: int = 3,
    centers: tuple[float, ...] = (-1.0, 2.0, 7.0),
    cluster_std: float = 1.0,
    rng: np.random.Generator | int | None = 0,
    shuffle: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic Gaussian blobs as in CLEAR's MI simulation: blob i is centred at ``centers[i]`` in
    every coordinate, ``n_samples // len(centers)`` points each, std ``cluster_std``.

    Returns ``(x, y)``: float32 (n, dim) and int64 (n,). Sweeping ``cluster_std`` (1 -> 4 or back)
    moves the true I(x ; y) down (or up); :func:`knn_mutual_information` is the reference curve
    the SNN / PS-SNN losses are plotted against.
    """
    g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    per = n_samples // len(centers)
    xs, ys = [], []
    for i, c in enumerate(centers):
        xs.append(g.normal(loc=c, scale=cluster_std, size=(per, dim)))
        ys.append(np.full(per, i, dtype=np.int64))
    x = np.concatenate(xs).astype(np.float32)
    y = np.concatenate(ys)
    if shuffle:
        perm = g.permutation(len(y))
        x, y = x[perm], y[perm]
    return x, y


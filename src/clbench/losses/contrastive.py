"""Pairwise contrastive objectives over one B x B similarity matrix.

``info_nce`` (SimCLR NT-Xent), ``supcon`` (Khosla et al. L_out), ``snn`` / ``ps_snn`` (CLEAR's
soft-nearest-neighbour loss and its pair-switched, anti-contrastive twin) and ``adnce`` (CL-DRO's
ADNCE). Each is one similarity matmul followed by a masked log-softmax / logsumexp over its rows:
no Python loop over anchors and nothing bigger than B x B.

Notation: ``s_ij`` is the similarity of rows i and j (cosine unless ``similarity=`` says
otherwise, see :func:`clbench.losses._common.scaled_logits`), ``t`` the temperature and
``lse`` the log-sum-exp.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from clbench.losses._common import (
    flatten_views,
    as_compute,
    check_embeddings,
    check_labels,
    check_positive,
    check_similarity,
    embed_for,
    scaled_logits,
    zero_loss,
)

__all__ = ["info_nce", "supcon", "snn", "ps_snn", "adnce"]

_NEG_INF = float("-inf")


def _pair_views(z1: Tensor, z2: Tensor) -> tuple[Tensor, int]:
    check_embeddings(z1, "z1")
    check_embeddings(z2, "z2")
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.dtype != z2.dtype or z1.device != z2.device:
        raise ValueError("z1 and z2 must share dtype and device")
    return torch.cat([as_compute(z1), as_compute(z2)], dim=0), z1.shape[0]


def _other_view_targets(n: int, device: torch.device) -> Tensor:
    """Index of row i's other view in ``cat([z1, z2])``: i + n for the first half, i - n after."""
    idx = torch.arange(n, device=device)
    return torch.cat([idx + n, idx])


def info_nce(z1: Tensor, z2: Tensor, temperature: float = 0.5, similarity: str = "cosine") -> Tensor:
    r"""SimCLR's NT-Xent loss over two views.

    With ``z = cat([z1, z2])`` (2N rows) and ``p(i)`` the other view of row i::

        loss = 1/(2N) * sum_i  -log( exp(s_{i,p(i)}/t) / sum_{j != i} exp(s_ij/t) )

    i.e. the positive of anchor i is its other view and the 2N-2 remaining rows are its negatives;
    the mean runs over all 2N anchors. Equals ``pytorch_metric_learning.losses.NTXentLoss(t)`` on
    ``cat([z1, z2])`` with labels ``cat([arange(N), arange(N)])``.

    Args:
        z1, z2: ``[N, D]`` embeddings of the two views (row i of each is the same sample).
        temperature: ``t > 0``.
        similarity: ``"cosine"`` (default, L2-normalised inside), ``"dot"`` or ``"l2"``
            (negative squared Euclidean distance).

    Returns:
        A scalar in the dtype of ``z1`` (computed in float32 for half-precision inputs).
        ``N = 1`` gives an exact 0 (the positive is the only candidate).
    """
    t = check_positive(temperature, "temperature")
    check_similarity(similarity)
    z, n = _pair_views(z1, z2)
    logits = scaled_logits(z, t, similarity)
    logits.diagonal().fill_(_NEG_INF)  # in place: B writes, no B x B copy
    loss = F.cross_entropy(logits, _other_view_targets(n, z.device))
    return loss.to(z1.dtype)


def supcon(z: Tensor, labels: Tensor, temperature: float = 0.1, similarity: str = "cosine") -> Tensor:
    r"""Supervised contrastive loss, the "L_out" form of Khosla et al. (2020), eq. 2.

    With ``P(i) = {j != i : y_j = y_i}`` and ``A = {i : |P(i)| > 0}``::

        loss = 1/|A| * sum_{i in A}  -1/|P(i)| * sum_{p in P(i)}
                   log( exp(s_ip/t) / sum_{j != i} exp(s_ij/t) )

    computed as ``lse_{j != i}(s_ij/t) - mean_{p in P(i)} s_ip/t``: one B x B matrix (diagonal
    masked in place) for the log-sum-exp, and the positive sums in O(B*C*D) as inner products with
    per-class sums of rows (exact for inner-product similarities; for ``"l2"`` the B x B matrix is
    clamped at 0 against rounding, the positive sums are not). Anchors without a positive are
    dropped; if none has one the loss is an exact 0 (as ``pytorch_metric_learning.losses.SupConLoss``,
    which it equals on multi-class batches).

    Args:
        z: ``[B, D]`` embeddings, or ``[B, V, D]`` with V views per sample (flattened to
            ``[B*V, D]``, labels repeated per view, so the views of a sample are positives).
        labels: ``[B]`` integer class ids.
        temperature: ``t > 0`` (0.1 as in the paper and pytorch-metric-learning).
        similarity: ``"cosine"`` (default), ``"dot"`` or ``"l2"``.
    """
    t = check_positive(temperature, "temperature")
    check_similarity(similarity)
    out_dtype = z.dtype
    z, labels = flatten_views(z, labels)
    z = as_compute(z)
    b = z.shape[0]
    if b < 2:  # a lone row has no positive (and an empty softmax): nothing to contrast
        return zero_loss(z, dtype=out_dtype)
    logits = scaled_logits(z, t, similarity)
    logits.diagonal().fill_(_NEG_INF)
    lse = torch.logsumexp(logits, dim=1)  # lse_{j != i} s_ij / t
    pos_sum, n_pos = _positive_logit_sums(z, labels, t, similarity)
    valid = (n_pos > 0).to(z.dtype)
    pos_mean = pos_sum / n_pos.clamp(min=1).to(z.dtype)
    # masked mean over anchors with a positive (no host sync; 0 with zero gradients if none)
    loss = ((lse - pos_mean) * valid).sum() / valid.sum().clamp(min=1.0)
    return loss.to(out_dtype)


def _positive_logit_sums(z: Tensor, labels: Tensor, t: float, similarity: str) -> tuple[Tensor, Tensor]:
    """``sum_{p in P(i)} s_ip / t`` and ``|P(i)|`` (``P(i)`` = same label, ``p != i``) in O(B*C*D).

    The similarities are inner products (after normalisation for cosine), so the sum over a class
    is the inner product with the class's sum of rows, less the anchor's own term; for ``"l2"``,
    ``sum_p -|z_i - z_p|^2 = -(|P(i)| |z_i|^2 + sum_p |z_p|^2 - 2 z_i . sum_p z_p)``.
    """
    classes, inverse = torch.unique(labels, return_inverse=True)
    n_classes = classes.shape[0]
    e = embed_for(z, similarity)
    class_sum = torch.zeros(n_classes, e.shape[1], dtype=e.dtype, device=e.device).index_add(0, inverse, e)
    others = class_sum[inverse] - e  # sum over the anchor's positives of their rows
    n_pos = torch.bincount(inverse, minlength=n_classes)[inverse] - 1
    if similarity in ("cosine", "dot"):
        return (e * others).sum(1) / t, n_pos
    sq = (e * e).sum(1)
    class_sq = torch.zeros(n_classes, dtype=e.dtype, device=e.device).index_add(0, inverse, sq)
    pos_sq = class_sq[inverse] - sq
    pos_sum = -(n_pos.to(e.dtype) * sq + pos_sq - 2.0 * (e * others).sum(1))
    return pos_sum / t, n_pos


def _snn_family(
    z: Tensor, labels: Tensor, temperature: float, similarity: str, switched: bool
) -> Tensor:
    t = check_positive(temperature, "temperature")
    check_similarity(similarity)
    out_dtype = z.dtype
    check_embeddings(z, "z")
    labels = check_labels(labels, z.shape[0], z.device)
    z = as_compute(z)
    b = z.shape[0]
    if b < 2:  # a lone row has no positive (and an empty softmax): nothing to contrast
        return zero_loss(z, dtype=out_dtype)
    same = labels[:, None] == labels[None, :]
    if switched:
        pos = ~same
    else:
        pos = same
        pos.diagonal().fill_(False)
    valid = pos.any(1)
    logits = scaled_logits(z, t, similarity)
    logits.diagonal().fill_(_NEG_INF)
    lse_all = torch.logsumexp(logits, dim=1)
    # rows without a positive would be an all -inf logsumexp (NaN gradient): give them a dummy
    # finite mask (their off-diagonal) and drop them afterwards
    pos |= ~valid[:, None]
    pos.diagonal().fill_(False)
    lse_pos = torch.logsumexp(logits.masked_fill(~pos, _NEG_INF), dim=1)
    w = valid.to(z.dtype)
    loss = ((lse_all - lse_pos) * w).sum() / w.sum().clamp(min=1.0)
    return loss.to(out_dtype)


def snn(z: Tensor, labels: Tensor, temperature: float = 0.1, similarity: str = "cosine") -> Tensor:
    r"""CLEAR's soft-nearest-neighbour (SNN) loss.

    With ``P(i) = {j != i : y_j = y_i}``::

        l_i  = -lse_{j in P(i)} s_ij/t + lse_{j != i} s_ij/t      (= -log sum_{P(i)} softmax_{j!=i})
        loss = mean of l_i over the anchors with |P(i)| > 0

    (an exact 0 when no anchor has a positive). Pulls same-label rows together; CLEAR applies it to
    the content means ``mu_c``.

    Args:
        z: ``[B, D]`` embeddings. labels: ``[B]`` class ids. temperature: ``t > 0``.
        similarity: ``"cosine"`` (default), ``"dot"`` or ``"l2"`` (``-|z_i - z_j|^2`` on the raw,
            unnormalised embeddings, CLEAR's L2 ablation).
    """
    return _snn_family(z, labels, temperature, similarity, switched=False)


def ps_snn(z: Tensor, labels: Tensor, temperature: float = 0.1, similarity: str = "cosine") -> Tensor:
    r"""Pair-switched SNN (PS-SNN): SNN with the positives switched to the *other* labels.

    With ``P(i) = {j : y_j != y_i}``::

        l_i  = -lse_{j in P(i)} s_ij/t + lse_{j != i} s_ij/t
        loss = mean of l_i over the anchors with |P(i)| > 0   (0 for a single-class batch)

    Minimising it pulls rows of *different* labels together, making ``z`` uninformative of ``y``;
    CLEAR applies it to the style means ``mu_s``. Same arguments as :func:`snn`.
    """
    return _snn_family(z, labels, temperature, similarity, switched=True)


def adnce(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.5,
    mu: float = 0.7,
    sigma: float = 1.0,
    similarity: str = "cosine",
) -> Tensor:
    r"""ADNCE (CL-DRO, Wu et al. 2023): InfoNCE with Gaussian-reweighted negatives.

    With ``z = cat([z1, z2])``, ``p(i)`` the other view of row i, ``N(i)`` its 2N-2 negatives and::

        w_ij = g(s_ij) / mean_{k in N(i)} g(s_ik),   g(s) = exp(-(s - mu)^2 / (2 sigma^2))

    (the Gaussian density of the similarity; its constant cancels in the normalisation, so the
    weights have mean 1 over each anchor's negatives and are detached)::

        loss = 1/(2N) * sum_i  -log( exp(s_{i,p(i)}/t)
                                     / (exp(s_{i,p(i)}/t) + sum_{j in N(i)} w_ij exp(s_ij/t)) )

    The positive term is unweighted. ``mu`` and ``sigma`` are the official code's ``tau_plus`` and
    ``beta``; the paper's settings are CIFAR-10 ``t`` 0.4, ``mu`` 0.7, ``sigma`` 0.5; CIFAR-100 0.3,
    0.5, 1.0; STL-10 0.2, 0.8, 1.0 (the defaults here, 0.5 / 0.7 / 1.0, are no paper's setting).
    Computed in the log domain (``log w_ij + s_ij/t`` inside one log-softmax), so small ``sigma`` or
    ``t`` cannot overflow.

    Args:
        z1, z2: ``[N, D]`` embeddings of the two views. temperature: ``t > 0``.
        mu: centre of the weighting Gaussian. sigma: its width, ``> 0``.
        similarity: ``"cosine"`` (default, the paper's), ``"dot"`` or ``"l2"``.
    """
    t = check_positive(temperature, "temperature")
    sigma = check_positive(sigma, "sigma")
    mu = float(mu)
    if not math.isfinite(mu):
        raise ValueError(f"mu must be finite, got {mu}")
    check_similarity(similarity)
    z, n = _pair_views(z1, z2)
    m = 2 * n
    targets = _other_view_targets(n, z.device)
    logits = scaled_logits(z, t, similarity)
    if n > 1:
        with torch.no_grad():
            rows = torch.arange(m, device=z.device)
            g = -((logits * t - mu) ** 2) / (2.0 * sigma**2)  # log g(s_ij), s_ij = t * logit
            g.diagonal().fill_(_NEG_INF)
            g[rows, targets] = _NEG_INF
            log_w = g - (torch.logsumexp(g, dim=1, keepdim=True) - math.log(m - 2))
            log_w.diagonal().fill_(0.0)  # positive (and the diagonal, masked below) unweighted
            log_w[rows, targets] = 0.0
        logits = logits + log_w
    logits.diagonal().fill_(_NEG_INF)
    loss = F.cross_entropy(logits, targets)
    return loss.to(z1.dtype)

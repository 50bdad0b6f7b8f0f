"""Sub-embedding contrastive objectives ("Disentangle without VAEs", poster).

The embedding ``z`` of dimension D is split into K equal, contiguous slices
``z^(1), ..., z^(K)`` of dimension ``d = D / K`` (``z^(a)_i = z_i[(a-1)d : a d]``).
``sub_info_max`` is the InfoMax objective trained on view pairs; ``r_info_min``, ``r_ortho`` and
``r_hess`` are the regularisers R added as ``lambda * R`` to push the slices to carry different
information. Each docstring states its formula: ``r_info_min`` is the poster's R_InfoMin term for
term; for Ortho / P-Ortho and Hess the docstrings say how the poster's definitions are computed.
"""

from __future__ import annotations

import math
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import Tensor

from clbench.losses._common import (
    as_compute,
    check_embeddings,
    check_positive,
    check_similarity,
    eye_mask,
    normalize,
    zero_loss,
)

__all__ = ["split_slices", "sub_info_max", "r_info_min", "r_ortho", "r_hess"]

_NEG_INF = float("-inf")


def _check_k(k: int, d: int, minimum: int = 1) -> int:
    if isinstance(k, bool) or int(k) != k or k < minimum:
        raise ValueError(f"k must be an integer >= {minimum}, got {k!r}")
    k = int(k)
    if d % k:
        raise ValueError(f"the embedding dimension {d} is not divisible into k={k} equal slices")
    return k


def split_slices(z: Tensor, k: int = 2) -> Tensor:
    """``[B, D]`` -> ``[B, K, D/K]``: the K contiguous equal slices (a view, no copy)."""
    check_embeddings(z, "z")
    k = _check_k(k, z.shape[1])
    return z.reshape(z.shape[0], k, z.shape[1] // k)


def _slice_similarity(a: Tensor, b: Tensor, similarity: str, scale: float = 1.0) -> Tensor:
    """Batched ``scale * s(a_i, b_j)`` for slices: ``a, b`` are ``[K, M, d]`` -> ``[K, M, M]``.

    The scale is folded into a ``[K, M, d]`` operand, so the result is a fresh matmul output.
    """
    if similarity == "cosine":
        a, b = normalize(a), normalize(b)
        return (a * scale) @ b.transpose(1, 2)
    if similarity == "dot":
        return (a * scale) @ b.transpose(1, 2)
    sq_a = (a * a).sum(-1) * scale
    sq_b = (b * b).sum(-1) * scale
    return ((a * (2.0 * scale)) @ b.transpose(1, 2) - sq_a[:, :, None] - sq_b[:, None, :]).clamp(max=0.0)


def sub_info_max(
    z1: Tensor, z2: Tensor, k: int = 2, temperature: float = 0.5, similarity: str = "cosine"
) -> Tensor:
    r"""Sub-InfoMax: NT-Xent (:func:`clbench.losses.info_nce`) summed over the K slices.

    ::

        loss = sum_{a=1..K} info_nce(z1^(a), z2^(a), t)

    each slice being normalised on its own (cosine). Computed for all slices at once as one
    batched ``[K, 2N, 2N]`` similarity and one cross-entropy.

    Args:
        z1, z2: ``[N, D]`` embeddings of two views, D divisible by ``k``.
        k: number of slices (``k = 1`` is plain ``info_nce``). temperature: ``t > 0``.
        similarity: ``"cosine"`` (default), ``"dot"`` or ``"l2"``, per slice.
    """
    t = check_positive(temperature, "temperature")
    check_similarity(similarity)
    check_embeddings(z1, "z1")
    check_embeddings(z2, "z2")
    if z1.shape != z2.shape or z1.dtype != z2.dtype:
        raise ValueError(f"z1 and z2 must have the same shape and dtype, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    k = _check_k(k, z1.shape[1])
    n = z1.shape[0]
    z = torch.cat([as_compute(z1), as_compute(z2)], 0)  # [2N, D]
    s = z.reshape(2 * n, k, -1).transpose(0, 1)  # [K, 2N, d]
    logits = _slice_similarity(s, s, similarity, scale=1.0 / t)
    logits.diagonal(dim1=1, dim2=2).fill_(_NEG_INF)  # in place on the fresh matmul output
    idx = torch.arange(n, device=z.device)
    targets = torch.cat([idx + n, idx]).repeat(k)
    loss = F.cross_entropy(logits.reshape(k * 2 * n, 2 * n), targets) * k
    return loss.to(z1.dtype)


def _rowwise_similarity(a: Tensor, b: Tensor, similarity: str) -> Tensor:
    """``s(a_i, b_i)`` for matching rows of ``a, b`` ``[..., d]`` -> ``[...]``."""
    if similarity == "cosine":
        return (normalize(a) * normalize(b)).sum(-1)
    if similarity == "dot":
        return (a * b).sum(-1)
    return -((a - b) ** 2).sum(-1)


def r_info_min(z: Tensor, k: int = 2, temperature: float = 0.5, similarity: str = "cosine") -> Tensor:
    r"""R_InfoMin, the poster's InfoMin regulariser, per sample.

    The poster defines, for slices ``z_{i,k}`` (sample i, slice k)::

        R_InfoMin = sum_{k != k'} sum_i log( exp(s(z_{i,k}, z_{i,k'})/t)
                                             / sum_{a != i} exp(s(z_{i,k}, z_{a,k})/t) )

    The numerator compares two different slices of the same sample; the denominator runs over the
    **same** slice k of the other samples of the batch. Minimising R makes a sample's slice k no
    more similar to its own other slices than to the same slice of other samples. This function
    returns that sum divided by the batch size B (a mean over samples i, still summed over the
    ``K(K-1)`` ordered slice pairs), the per-sample normalisation of :func:`sub_info_max` (a mean over
    anchors), so the weight lambda of ``sub_info_max + lambda * R`` does not change with the batch
    size. ``B = 1`` (no other sample) gives 0.

    Args:
        z: ``[B, D]`` embeddings (one view, or both views stacked), D divisible by ``k >= 2``.
        temperature: ``t > 0``. similarity: ``"cosine"`` (default), ``"dot"`` or ``"l2"``.
    """
    t = check_positive(temperature, "temperature")
    check_similarity(similarity)
    check_embeddings(z, "z")
    k = _check_k(k, z.shape[1], minimum=2)
    b = z.shape[0]
    if b < 2:
        return zero_loss(z, dtype=z.dtype)
    zc = as_compute(z)
    s = zc.reshape(b, k, -1).transpose(0, 1)  # [K, B, d]
    same = _slice_similarity(s, s, similarity, scale=1.0 / t)  # [K, B, B]: s(z_{i,k}, z_{a,k}) / t
    same.diagonal(dim1=1, dim2=2).fill_(_NEG_INF)  # a != i (in place on the fresh matmul output)
    log_den = torch.logsumexp(same, dim=2)  # [K, B]
    pairs = [(a, c) for a in range(k) for c in range(k) if a != c]
    left = s[[a for a, _ in pairs]]  # [P, B, d]
    right = s[[c for _, c in pairs]]
    num = _rowwise_similarity(left, right, similarity) / t  # [P, B]
    r = (num - log_den[[a for a, _ in pairs]]).sum() / b
    return r.to(z.dtype)


def _fixed_permutation(d: int, permute, seed: int, device: torch.device) -> Tensor | None:
    if permute is False or permute is None:
        return None
    if isinstance(permute, Tensor):
        perm = permute.to(device=device, dtype=torch.long)
        if perm.shape != (d,) or not torch.equal(perm.sort().values, torch.arange(d, device=device)):
            raise ValueError(f"permute must be a permutation of range({d}), got {permute!r}")
        return perm
    if permute is True:
        gen = torch.Generator().manual_seed(int(seed))
        return torch.randperm(d, generator=gen).to(device)
    raise ValueError(f"permute must be a bool or a permutation tensor, got {permute!r}")


def r_ortho(z: Tensor, k: int = 2, permute=False, seed: int = 0) -> Tensor:
    r"""Ortho / P-Ortho regulariser: mean absolute cosine between different slices of different samples.

    ::

        R = mean_{a < b} mean_{i != j} | cos( z_i^(a), P z_j^(b) ) |

    with ``P`` the identity (Ortho) or a fixed random permutation of the ``d`` slice coordinates
    (P-Ortho, ``permute=True``: ``torch.randperm(d)`` from a generator seeded with ``seed``, so the
    same P on every call; or pass the permutation tensor itself). ``B = 1`` gives 0 (no other
    sample). One ``[B, B]`` matmul per slice pair.

    Args:
        z: ``[B, D]`` embeddings, D divisible by ``k >= 2``.
        permute: ``False`` (Ortho), ``True`` (P-Ortho with the seeded P) or a ``[D/k]`` permutation.
        seed: seed of the fixed permutation.
    """
    check_embeddings(z, "z")
    k = _check_k(k, z.shape[1], minimum=2)
    b = z.shape[0]
    d = z.shape[1] // k
    perm = _fixed_permutation(d, permute, seed, z.device)
    if b < 2:
        return zero_loss(z, dtype=z.dtype)
    s = normalize(as_compute(z).reshape(b, k, d))  # [B, K, d]
    pairs = list(combinations(range(k), 2))
    left = s[:, [a for a, _ in pairs]].transpose(0, 1)  # [P, B, d]
    right = s[:, [c for _, c in pairs]].transpose(0, 1)
    if perm is not None:
        right = right[..., perm]
    cos = (left @ right.transpose(1, 2)).abs()  # [P, B, B]
    off = (~eye_mask(b, z.device)).to(cos.dtype)
    r = (cos * off).sum() / (len(pairs) * b * (b - 1))
    return r.to(z.dtype)


def r_hess(
    z1: Tensor, z2: Tensor, k: int = 2, temperature: float = 0.5, similarity: str = "cosine"
) -> Tensor:
    r"""Hess regulariser: norm of the cross-slice products of the InfoMax gradients.

    With ``L = 2N * sub_info_max(z1, z2, k, t)`` (the summed, not averaged, per-anchor losses, so a
    row's gradient does not shrink with the batch) and ``G = [dL/dz1; dL/dz2]`` (``[2N, D]``,
    obtained with autograd and ``create_graph=True``) split into slices ``G^(a)`` (``[2N, d]``)::

        R = mean_{a < b} || (G^(a))^T G^(b) ||_F / (2N)

    i.e. the Frobenius norm of the empirical Gauss-Newton (outer-product) approximation of the
    Hessian block coupling slices ``a`` and ``b``; minimising it decouples how the objective uses
    the slices. R is differentiable (double back-propagation). Inputs that do not require grad
    (e.g. evaluation under ``no_grad``) still give the value, without a graph.

    Args:
        z1, z2: ``[N, D]`` embeddings of two views, D divisible by ``k >= 2``.
        temperature: ``t > 0``. similarity: ``"cosine"`` (default), ``"dot"`` or ``"l2"``.
    """
    check_embeddings(z1, "z1")
    check_embeddings(z2, "z2")
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    k = _check_k(k, z1.shape[1], minimum=2)
    out_dtype = z1.dtype
    n = z1.shape[0]
    with torch.enable_grad():
        a1, a2 = as_compute(z1), as_compute(z2)
        differentiable = torch.is_grad_enabled() and (a1.requires_grad or a2.requires_grad)
        if not (a1.requires_grad and a2.requires_grad):
            # make every input a differentiation target; constants become leaves
            a1 = a1 if a1.requires_grad else a1.detach().requires_grad_(True)
            a2 = a2 if a2.requires_grad else a2.detach().requires_grad_(True)
        loss = sub_info_max(a1, a2, k=k, temperature=temperature, similarity=similarity) * (2 * n)
        g1, g2 = torch.autograd.grad(loss, (a1, a2), create_graph=differentiable)
    g = torch.cat([g1, g2], 0).reshape(2 * n, k, -1)  # [2N, K, d]
    pairs = list(combinations(range(k), 2))
    r = sum(torch.linalg.matrix_norm(g[:, a].T @ g[:, c]) for a, c in pairs) / (len(pairs) * 2 * n)
    if not differentiable:
        r = r.detach()
    return r.to(out_dtype)

"""CLEAR's mutual-information penalties between the content and style latents.

Each penalty is paired with a small network of :mod:`clbench.models.mi_estimators` that is
trained *alternately* on detached latents, while the penalty (a differentiable bound evaluated
with the current network) is added to the VAE loss::

    from clbench.losses import club_sample
    from clbench.models.mi_estimators import CLUBSample

    est = CLUBSample(z_c_dim, z_s_dim, hidden_size=z_c_dim + z_s_dim)
    est_opt = torch.optim.Adam(est.parameters(), lr=1e-3)
    ...
    loss = vae_terms + alpha * snn(mu_c, y) + lam * club_sample(est, z_c, z_s)
    vae_opt.zero_grad(); loss.backward(); vae_opt.step()        # only the VAE's parameters
    for _ in range(5):                                            # CLEAR: 5 estimator steps
        z_c, z_s = vae_latents(x)                                 # recompute or reuse, detached
        est_opt.zero_grad()
        est.learning_loss(z_c.detach(), z_s.detach()).backward()
        est_opt.step()

``est_opt.zero_grad()`` before the estimator's step discards the gradients the penalty left on
the estimator's parameters (or freeze them around the penalty). ``tc_penalty`` works the same
way with :class:`~clbench.models.mi_estimators.TCDiscriminator`, whose ``learning_loss`` tells
joint samples ``cat([z_c, z_s])`` from "marginal" ones ``cat([z_c, permute_style(z_s)])``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from clbench.losses._common import check_embeddings, compute_dtype

__all__ = ["permute_style", "tc_penalty", "club_sample", "l1out"]


def _check_pair(x: Tensor, y: Tensor, xname: str, yname: str) -> None:
    check_embeddings(x, xname)
    check_embeddings(y, yname)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{xname} and {yname} must have the same batch size, got {x.shape[0]} and {y.shape[0]}")


def permute_style(z_s: Tensor, strategy: str = "roll", generator: torch.Generator | None = None) -> Tensor:
    """Style latents re-paired with other samples' content: samples of the product of marginals.

    ``"roll"`` (the official CLEAR code's ``permute_1``): row i gets row ``(i + 1) mod B``, a
    deterministic derangement for ``B >= 2``. ``"random"``: a uniformly random permutation
    (``torch.randperm`` with ``generator``).
    """
    b = z_s.shape[0]
    if strategy == "roll":
        return torch.roll(z_s, shifts=-1, dims=0)
    if strategy == "random":
        perm = torch.randperm(b, generator=generator, device="cpu").to(z_s.device)
        return z_s[perm]
    raise ValueError(f"strategy must be 'roll' or 'random', got {strategy!r}")


def tc_penalty(discriminator, z_c: Tensor, z_s: Tensor, nonnegative: bool = True) -> Tensor:
    r"""Total-correlation penalty between ``z_c`` and ``z_s`` by the density-ratio trick.

    A discriminator ``D`` trained to tell joint samples ``(z_c, z_s)`` (label 1) from
    permuted-style "marginal" samples ``(z_c, permute_style(z_s))`` (label 0) estimates
    ``log q(z_c, z_s) / (q(z_c) q(z_s)) ~= logit D(z)``, so::

        TC ~= mean_i logit(D(cat[z_c, z_s]_i))                  (nonnegative=False)
        penalty = mean_i max(0, logit(D(cat[z_c, z_s]_i)))      (nonnegative=True, the official
                                                                 CLEAR code's relu)

    Args:
        discriminator: a module mapping ``cat([z_c, z_s], 1)`` (``[B, Dc + Ds]``) to one *logit*
            per row (``[B]`` or ``[B, 1]``), e.g.
            :class:`clbench.models.mi_estimators.TCDiscriminator`; train it on detached latents
            with its ``learning_loss(z_c.detach(), z_s.detach())``.
        z_c, z_s: ``[B, Dc]`` content and ``[B, Ds]`` style latents (not detached: the penalty's
            gradient reaches the encoder).
        nonnegative: clamp each row's log-ratio at 0 (default, as CLEAR).
    """
    _check_pair(z_c, z_s, "z_c", "z_s")
    logits = discriminator(torch.cat([z_c, z_s], dim=1))
    if logits.dim() == 2 and logits.shape[1] == 1:
        logits = logits[:, 0]
    if logits.shape != (z_c.shape[0],):
        raise ValueError(f"the discriminator must return one logit per row, got shape {tuple(logits.shape)}")
    logits = logits.to(compute_dtype(logits.dtype))
    if nonnegative:
        logits = F.relu(logits)
    return logits.mean().to(z_c.dtype)


def _gaussian_params(estimator, x: Tensor) -> tuple[Tensor, Tensor]:
    mu, logvar = estimator.get_mu_logvar(x)
    dt = compute_dtype(mu.dtype)
    return mu.to(dt), logvar.to(dt)


def club_sample(estimator, x: Tensor, y: Tensor, perm: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    r"""CLUB-S: the sampled contrastive log-ratio upper bound on ``I(x; y)`` (Cheng et al. 2020).

    With the estimator's Gaussian ``q(y|x) = N(mu(x), diag(exp(logvar(x))))`` and a random
    permutation ``k`` of the batch::

        bound = 1/B sum_i [ log q(y_i|x_i) - log q(y_{k(i)}|x_i) ]
              = 1/B sum_i sum_d [ (mu_i - y_{k(i)})^2 - (mu_i - y_i)^2 ]_d / (2 exp(logvar_i)_d)

    (the log-variance and normalising terms cancel). The estimator is fitted by maximum likelihood
    on detached latents (``estimator.learning_loss(x.detach(), y.detach())``); the bound, with its
    gradient to ``x`` and ``y``, is the penalty. ``B = 1`` gives 0.

    Args:
        estimator: exposes ``get_mu_logvar(x) -> (mu, logvar)``, each ``[B, Dy]``, e.g.
            :class:`clbench.models.mi_estimators.CLUBSample`.
        x, y: ``[B, Dx]`` and ``[B, Dy]`` (CLEAR: content -> style).
        perm: the permutation ``k`` (``[B]`` long); default ``torch.randperm(B, generator=...)``.
    """
    _check_pair(x, y, "x", "y")
    b = x.shape[0]
    mu, logvar = _gaussian_params(estimator, x)
    yc = y.to(mu.dtype)
    if mu.shape != yc.shape:
        raise ValueError(f"the estimator's mu has shape {tuple(mu.shape)}, y has {tuple(yc.shape)}")
    if perm is None:
        perm = torch.randperm(b, generator=generator, device="cpu")
    perm = perm.to(device=x.device, dtype=torch.long)
    if perm.shape != (b,):
        raise ValueError(f"perm must have shape ({b},), got {tuple(perm.shape)}")
    inv_var = torch.exp(-logvar)
    positive = -((mu - yc) ** 2 * inv_var).sum(1)
    negative = -((mu - yc[perm]) ** 2 * inv_var).sum(1)
    return ((positive - negative).mean() / 2.0).to(x.dtype)


def l1out(estimator, x: Tensor, y: Tensor, form: str = "leave_one_out") -> Tensor:
    r"""L1Out: the leave-one-out variational upper bound on ``I(x; y)`` (Poole et al. 2019).

    With the estimator's Gaussian ``q(y|x)``::

        bound = 1/B sum_i [ log q(y_i|x_i) - log( 1/(B-1) sum_{j != i} q(y_i|x_j) ) ]

    with ``log q(y|x) = sum_d [ -(y - mu(x))^2 / (2 exp(logvar(x))) - logvar(x)/2 ]`` (the
    ``-D/2 log 2 pi`` constant cancels). The B x B matrix ``log q(y_i|x_j)`` is built with three
    matmuls (no B x B x D tensor) and the inner sum is an exact logsumexp over ``j != i``. (The
    official CLEAR/CLUB code adds -20 on the diagonal and broadcasts to B x B x B by accident;
    this is the bound as written.)

    ``form="official"`` is what the official L1OutUB computes: its ``-20`` mask of shape ``[B, B, 1]``
    broadcasts the B x B matrix to B x B x B, so the log-sum-exp over the first axis adds
    ``log(B - 1)`` to every pair and the "negative" becomes ``log q(y_j|x_i)`` for every (i, j). The
    value is then ``1/B sum_i log q(y_i|x_i) - 1/B^2 sum_{i,j} log q(y_j|x_i)``: the all-pairs CLUB
    bound (up to ``e^-20`` terms). CLEAR's L1Out numbers come from that form. The leave-one-out form
    is unbounded below in the encoder's latents while the estimator lags (a log-sum-exp rewards
    moving ``y_i`` towards another sample's mean), and a VAE that minimises it can blow its style
    latents up; the all-pairs mean cannot be exploited that way.

    Train the estimator with ``estimator.learning_loss(x.detach(), y.detach())``; the bound is the
    penalty.

    Raises:
        ValueError: for ``B < 2`` (no sample to leave out against).
    """
    _check_pair(x, y, "x", "y")
    b = x.shape[0]
    if b < 2:
        raise ValueError("l1out needs a batch of at least 2 samples")
    mu, logvar = _gaussian_params(estimator, x)
    yc = y.to(mu.dtype)
    if mu.shape != yc.shape:
        raise ValueError(f"the estimator's mu has shape {tuple(mu.shape)}, y has {tuple(yc.shape)}")
    prec = torch.exp(-logvar)  # [B, D] precision of q(.|x_j)
    # logq[i, j] = log q(y_i | x_j) = -1/2 sum_d prec_j (y_i - mu_j)^2 - 1/2 sum_d logvar_j
    quad = (yc * yc) @ prec.T - 2.0 * (yc @ (mu * prec).T) + ((mu * mu) * prec).sum(1)[None, :]
    logq = -0.5 * quad - 0.5 * logvar.sum(1)[None, :]
    positive = logq.diagonal()
    if form == "official":
        return (positive.mean() - logq.mean()).to(x.dtype)
    if form != "leave_one_out":
        raise ValueError(f"unknown l1out form {form!r}; expected 'official' or 'leave_one_out'")
    off = logq.masked_fill(torch.eye(b, dtype=torch.bool, device=x.device), float("-inf"))
    negative = torch.logsumexp(off, dim=1) - math.log(b - 1)
    return (positive - negative).mean().to(x.dtype)

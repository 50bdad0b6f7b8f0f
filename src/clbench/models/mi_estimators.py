"""Small networks behind CLEAR's MI penalties (TC, CLUB-S, L1Out).

Each network is trained on *detached* latents with its ``learning_loss`` while the matching
penalty of :mod:`clbench.losses.mi_penalties` (``tc_penalty``, ``club_sample``, ``l1out``) is the
differentiable term added to the VAE loss; see that module's docstring for the alternating
update. Architectures follow the official CLEAR code (adapted from Cheng et al.'s CLUB):

- :class:`TCDiscriminator`: ``Linear(Dc+Ds, H) - ReLU - Linear(H, 1)`` returning a logit
  (``H = Dc + Ds`` by default);
- :class:`GaussianConditional` (and its aliases :class:`CLUBSample`, :class:`L1OutUB`): the
  variational ``q(y|x) = N(mu(x), diag(exp(logvar(x))))`` with
  ``mu = Linear(Dx, H/2) - ReLU - Linear(H/2, Dy)`` and
  ``logvar = Linear(Dx, H/2) - ReLU - Linear(H/2, Dy) - Tanh``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clbench.losses.mi_penalties import club_sample, l1out, permute_style, tc_penalty

__all__ = ["TCDiscriminator", "GaussianConditional", "CLUBSample", "L1OutUB", "build_mi_estimator"]


class TCDiscriminator(nn.Module):
    """Joint-vs-marginal classifier for the density-ratio estimate of TC(z_c, z_s).

    ``forward(z)`` maps ``cat([z_c, z_s], 1)`` to one logit per row (``[B]``); ``logit > 0`` means
    "joint". Usage::

        disc = TCDiscriminator(z_c_dim + z_s_dim)
        penalty = tc_penalty(disc, z_c, z_s)                       # in the VAE loss
        disc_opt.zero_grad()
        disc.learning_loss(z_c.detach(), z_s.detach()).backward()  # then train the discriminator
        disc_opt.step()
    """

    def __init__(self, z_dim: int, hidden_size: int | None = None):
        super().__init__()
        hidden = int(hidden_size or z_dim)
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)[:, 0]

    def learning_loss(self, z_c: Tensor, z_s: Tensor, strategy: str = "roll",
                      generator: torch.Generator | None = None) -> Tensor:
        """Binary cross-entropy: joint ``cat([z_c, z_s])`` -> 1, ``cat([z_c, permute_style(z_s)])`` -> 0.

        Pass detached latents. The mean runs over the 2B rows (as the official code's ``BCELoss``
        on the concatenation).
        """
        joint = self(torch.cat([z_c, z_s], 1))
        marginal = self(torch.cat([z_c, permute_style(z_s, strategy, generator)], 1))
        logits = torch.cat([joint, marginal])
        targets = torch.cat([torch.ones_like(joint), torch.zeros_like(marginal)])
        return F.binary_cross_entropy_with_logits(logits, targets)

    def penalty(self, z_c: Tensor, z_s: Tensor, nonnegative: bool = True) -> Tensor:
        """Same as :func:`clbench.losses.tc_penalty` with this discriminator."""
        return tc_penalty(self, z_c, z_s, nonnegative=nonnegative)


class GaussianConditional(nn.Module):
    """Variational ``q(y|x) = N(mu(x), diag(exp(logvar(x))))`` for the CLUB-S / L1Out bounds.

    ``learning_loss(x, y)`` is the official CLUB code's ``-loglikeli``:
    ``mean_i sum_d [ (mu_i - y_i)^2 / exp(logvar_i) + logvar_i ]`` (twice the Gaussian negative
    log-likelihood up to a constant); train on detached inputs. ``forward(x, y)`` evaluates the
    bound named by ``bound`` (``"club_sample"`` or ``"l1out"``).
    """

    bound = "club_sample"

    def __init__(self, x_dim: int, y_dim: int, hidden_size: int | None = None, l1out_form: str = "leave_one_out"):
        super().__init__()
        self.l1out_form = l1out_form
        hidden = max(int(hidden_size or (x_dim + y_dim)) // 2, 1)
        self.p_mu = nn.Sequential(nn.Linear(x_dim, hidden), nn.ReLU(), nn.Linear(hidden, y_dim))
        self.p_logvar = nn.Sequential(
            nn.Linear(x_dim, hidden), nn.ReLU(), nn.Linear(hidden, y_dim), nn.Tanh()
        )

    def get_mu_logvar(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.p_mu(x), self.p_logvar(x)

    def loglikeli(self, x: Tensor, y: Tensor) -> Tensor:
        mu, logvar = self.get_mu_logvar(x)
        return (-((mu - y) ** 2) / logvar.exp() - logvar).sum(dim=1).mean(dim=0)

    def learning_loss(self, x: Tensor, y: Tensor) -> Tensor:
        return -self.loglikeli(x, y)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if self.bound == "l1out":
            return l1out(self, x, y, form=self.l1out_form)
        return club_sample(self, x, y)


class CLUBSample(GaussianConditional):
    """:class:`GaussianConditional` whose ``forward`` is :func:`clbench.losses.club_sample`."""

    bound = "club_sample"


class L1OutUB(GaussianConditional):
    """:class:`GaussianConditional` whose ``forward`` is :func:`clbench.losses.l1out`."""

    bound = "l1out"


def build_mi_estimator(kind: str, x_dim: int, y_dim: int, hidden_size: int | None = None,
                       l1out_form: str = "leave_one_out") -> nn.Module:
    """``"tc"`` -> :class:`TCDiscriminator` (on ``x_dim + y_dim``), ``"club_sample"``/``"club-s"``
    -> :class:`CLUBSample`, ``"l1out"`` -> :class:`L1OutUB`. ``hidden_size`` defaults to
    ``x_dim + y_dim`` (the official code's ``hidden_size = z_dim``)."""
    key = kind.lower().replace("-", "_")
    if key == "tc":
        return TCDiscriminator(x_dim + y_dim, hidden_size)
    if key in ("club_sample", "club_s", "clubsample"):
        return CLUBSample(x_dim, y_dim, hidden_size)
    if key in ("l1out", "l1outub", "l1out_ub"):
        return L1OutUB(x_dim, y_dim, hidden_size, l1out_form=l1out_form)
    raise ValueError(f"unknown MI estimator {kind!r}; expected 'tc', 'club_sample' or 'l1out'")

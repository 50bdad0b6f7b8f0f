"""The objective library: pure functions of tensors (embeddings, labels) -> scalar loss.

Every function returns a differentiable scalar on the input's device and in the input's dtype
(half precision is computed in float32 internally), uses cosine similarity unless its
``similarity=`` argument says otherwise, and raises :class:`ValueError` on bad input. Their
docstrings state the formula.

Contrastive (one B x B matrix each): :func:`info_nce`, :func:`supcon`, :func:`snn`,
:func:`ps_snn`, :func:`adnce`. Centroid-based, O(B*C): :func:`varcon`. Sub-embeddings:
:func:`sub_info_max` and the regularisers :func:`r_info_min`, :func:`r_ortho`, :func:`r_hess`.
CLEAR's MI penalties (with the estimator networks of :mod:`clbench.models.mi_estimators`):
:func:`tc_penalty`, :func:`club_sample`, :func:`l1out`, plus :func:`permute_style`.
"""

from clbench.losses.contrastive import adnce, info_nce, ps_snn, snn, supcon
from clbench.losses.mi_penalties import club_sample, l1out, permute_style, tc_penalty
from clbench.losses.subembed import r_hess, r_info_min, r_ortho, split_slices, sub_info_max
from clbench.losses.varcon import varcon, varcon_temperature

__all__ = [
    "info_nce",
    "supcon",
    "snn",
    "ps_snn",
    "adnce",
    "varcon",
    "varcon_temperature",
    "sub_info_max",
    "r_info_min",
    "r_ortho",
    "r_hess",
    "split_slices",
    "tc_penalty",
    "club_sample",
    "l1out",
    "permute_style",
]

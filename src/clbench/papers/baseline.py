"""Baselines: experiments that belong to no paper (``paper: baseline``, the config's default).

Their section appears only when the configuration has such an experiment; it reports no paper
numbers and checks no claims.
"""

from __future__ import annotations

from clbench.papers.registry import register_paper
from clbench.report.paper import Paper

PAPER = register_paper(Paper(
    key="baseline",
    title="Baselines",
    heading="Baselines",
    summary="Experiments of no particular paper: every method on its dataset, probed the same way.",
    citation="",
    metrics=("linear_top1", "linear_auroc", "linear_aupr", "knn_top1"),
    section_without_experiments=False,
))

"""The papers' registry: :data:`PAPERS` and the look-ups generic code uses (no paper named here)."""

from __future__ import annotations

import importlib
from typing import Callable, Iterator

from clbench.report.paper import Analysis, Figure, Paper
from clbench.report.reported import paper_results_frame, paper_results_raw

PAPERS: dict[str, Paper] = {}  # key -> paper, in report order


def register_paper(paper: Paper, replace: bool = False) -> Paper:
    """Add ``paper`` to :data:`PAPERS` (its report section comes after those registered before).

    Refuses a second paper with the same key (unless ``replace``) and a figure or analysis whose name
    another paper already uses: figures and analyses share one namespace, ``results/figures/<name>``
    and ``results/analyses/<output>``.
    """
    if paper.key in PAPERS and not replace:
        raise ValueError(f"paper {paper.key!r} is already registered")
    others = [p for k, p in PAPERS.items() if k != paper.key]
    taken_figures = {f.name: p.key for p in others for f in p.figures}
    taken_analyses = {a.output: p.key for p in others for a in p.analyses}
    for f in paper.figures:
        if f.name in taken_figures:
            raise ValueError(f"paper {paper.key!r}: figure {f.name!r} is already paper {taken_figures[f.name]!r}'s")
    for a in paper.analyses:
        if a.output in taken_analyses:
            raise ValueError(f"paper {paper.key!r}: analysis {a.output!r} is already paper {taken_analyses[a.output]!r}'s")
    PAPERS[paper.key] = paper
    return paper


def unregister_paper(key: str) -> None:
    """Remove a paper from :data:`PAPERS` (tests that register a toy paper)."""
    PAPERS.pop(key, None)


def get_paper(key: str) -> Paper:
    try:
        return PAPERS[key]
    except KeyError:
        raise KeyError(f"unknown paper {key!r}; registered papers: {list(PAPERS)}") from None


def _figures() -> Iterator[tuple[Paper, Figure]]:
    for paper in PAPERS.values():
        for fig in paper.figures:
            yield paper, fig


def find_figure(name: str) -> Figure:
    """The registered figure ``name`` (``results/figures/<name>.png``)."""
    for _, fig in _figures():
        if fig.name == name:
            return fig
    known = [f.name for _, f in _figures()]
    raise KeyError(f"unknown figure {name!r}; the papers' figures: {known}")


def find_analysis(output: str) -> Analysis:
    """The registered analysis that writes ``results/analyses/<output>``."""
    for paper in PAPERS.values():
        for analysis in paper.analyses:
            if analysis.output == output:
                return analysis
    known = [a.output for p in PAPERS.values() for a in p.analyses]
    raise KeyError(f"unknown analysis {output!r}; the papers' analyses: {known}")


def resolve(path: str) -> Callable:
    """``"package.module:function"`` -> the function (imports the module)."""
    module, _, name = path.partition(":")
    if not name:
        raise ValueError(f"{path!r} is not 'module:function'")
    return getattr(importlib.import_module(module), name)


def all_claims() -> list[dict]:
    """Every registered paper's claims, in report order."""
    return [c for p in PAPERS.values() for c in p.claims]


def load_paper_results_raw() -> dict:
    """The registered papers' metadata and reported numbers (``papers`` and ``results``)."""
    return paper_results_raw(p for p in PAPERS.values() if p.reported)


def load_paper_results():
    """Every reported number of the registered papers as one DataFrame row (with title and arXiv id)."""
    return paper_results_frame(load_paper_results_raw())

"""The papers clbench reproduces, one module each, found through a registry.

Each module builds one :class:`~clbench.report.paper.Paper` (metadata, reported numbers with their
sources, claims, table columns, figures as functions of result files, the analyses those figures
plot, captions) and registers it with :func:`register_paper`. Generic code (the report, the CLI,
the workflow's rules) iterates :data:`PAPERS` and names none of them. Adding a paper is one module
in this package that calls :func:`register_paper` (imported with the package, after the built-in
papers), plus the config's experiments with ``paper: <key>``.

Importing this package imports no torch: figures plot files, and an analysis that needs a model
names its function by import path.
"""

from clbench.report.paper import Analysis, Figure, Paper, ResultFiles
from clbench.papers.registry import (
    PAPERS,
    all_claims,
    find_analysis,
    find_figure,
    get_paper,
    load_paper_results,
    load_paper_results_raw,
    register_paper,
    resolve,
    unregister_paper,
)

# The built-in papers, in report order (each module registers itself), then any other module of this
# package, in name order: adding a paper is adding its module.
from clbench.papers import clear, subembed, mcl, adnce, varcon, baseline  # noqa: E402,F401


def _import_added_papers() -> None:
    import importlib
    import pkgutil

    not_papers = {"registry", "targets"}
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if not module.startswith("_") and module not in not_papers:
            importlib.import_module(f"{__name__}.{module}")  # the built-ins are imported already


_import_added_papers()

__all__ = [
    "PAPERS",
    "Analysis",
    "Figure",
    "Paper",
    "ResultFiles",
    "register_paper",
    "unregister_paper",
    "get_paper",
    "find_figure",
    "find_analysis",
    "resolve",
    "all_claims",
    "load_paper_results",
    "load_paper_results_raw",
]

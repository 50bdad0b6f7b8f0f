"""Per-paper tables in the paper's shape: for every experiment of a paper, its methods as rows and the
paper's metrics as columns, our mean ± std over seeds in each cell, and the paper's own number in a
``<metric> (paper)`` column beside it wherever the paper reports one for that experiment, method and
metric (the cell is empty where the paper reports none).

One implementation for every output: :func:`paper_tables` builds one :class:`PaperTable` per
experiment; the HTML report shows exactly those, and :func:`write_paper_tables` writes them for each
paper of the configuration as ``paper_{paper}.csv`` (every experiment's rows stacked under an
``experiment`` column; a column an experiment lacks is empty), ``.md`` and ``.tex`` (one table per
experiment, booktabs, with the paper numbers' sources in the caption). A paper with no experiment in
the configuration gets no files, so the files a run writes follow from its configuration alone.

A paper is a :class:`clbench.report.paper.Paper`: its ``metrics`` are the columns, its ``reported``
numbers the ``(paper)`` cells, its ``metric_names`` map their metric names to the pipeline's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import pandas as pd

from clbench.io import write_text
from clbench.report.paper import papers_of
from clbench.report.reported import reported_frame
from clbench.report.tables import is_percent_metric, latex_escape, to_latex, to_markdown, wide_table

# On an OOD experiment the test split is the unseen one: its linear accuracy is reported as the OOD
# accuracy (tables.collect_evaluations), which is the name the papers' numbers use.
OOD_NAMES = {"linear_top1": "ood_top1", "linear_top1_relative": "ood_top1_relative"}

EXTENSIONS = ("csv", "md", "tex")


@dataclass
class PaperTable:
    """One experiment's table: ``table`` holds the display strings (method, then metric columns)."""

    experiment: str
    title: str
    dataset: str
    seeds: list
    table: pd.DataFrame
    sources: list[str] = field(default_factory=list)  # where each paper number shown comes from

    @property
    def heading(self) -> str:
        seeds = ", ".join(str(s) for s in self.seeds)
        return f"{self.title} (experiment {self.experiment}, dataset {self.dataset}, seed{'s' * (len(self.seeds) != 1)} {seeds})"


def config_papers(experiments: Mapping[str, Mapping], papers: Mapping[str, object]) -> list[str]:
    """The keys of ``papers`` with at least one experiment in the configuration, in ``papers``' order."""
    present = {p for cfg in experiments.values() for p in papers_of(cfg)}
    return [p for p in papers if p in present]


def references_for(ref: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """The paper numbers that apply to ``experiment``: those whose ``experiment`` is a prefix of its
    name (``adnce_cifar10`` covers ``adnce_cifar10_long``), and those that name no experiment."""
    prefixes = [e if isinstance(e, str) else "" for e in ref["experiment"]]
    return ref[[experiment.startswith(p) for p in prefixes]]


def paper_value_text(ref_row, percent: bool) -> str:
    """One paper number in the unit of our column: ``91.88``, ``≈0.3–0.4``, ``74.7`` (a fraction shown in %)."""
    factor = {("fraction", True): 100.0, ("%", False): 0.01}.get((ref_row.unit, percent), 1.0)

    def num(v: float) -> str:
        return f"{round(v * factor, 6):g}"  # round: 0.747 * 100 must print 74.7, not 74.69999999999999

    text = num(ref_row.value) if pd.notna(ref_row.value) else f"{num(ref_row.low)}–{num(ref_row.high)}"
    if pd.notna(ref_row.std):
        text += f" ± {num(ref_row.std)}"
    return ("≈" if ref_row.approx else "") + text


def _source_text(metric: str, ref_row) -> str:
    backbone = f", {ref_row.backbone}" if isinstance(ref_row.backbone, str) and ref_row.backbone else ""
    return f"{metric} of {ref_row.method_key}: {ref_row.source} ({ref_row.dataset}{backbone})"


def experiment_table(summary: pd.DataFrame, experiment: str, cfg: Mapping, columns: list[str],
                     ref: pd.DataFrame, names: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Methods x ``columns`` (those the experiment has) of one experiment, each metric followed by the
    paper's number where the paper reports one (``names`` maps the numbers' metric names to ours);
    returns the table and the sources of those numbers."""
    names = names or {}
    if cfg.get("ood"):
        columns = [OOD_NAMES.get(c, c) for c in columns]
    present = set(summary.loc[summary["experiment"] == experiment, "metric"])
    columns = list(dict.fromkeys(c for c in columns if c in present))
    ours = wide_table(summary, experiment, columns)
    refs = references_for(ref, experiment)
    ref_metric = refs["metric"].map(lambda m: names.get(m, m))
    out, sources = {"method": ours["method"].tolist()}, []
    for metric in columns:
        out[metric] = ours[metric].tolist()
        hits = refs[ref_metric == metric]
        cells = []
        for method in out["method"]:
            mine = list(hits[hits["method_key"] == method].itertuples())
            cells.append("; ".join(paper_value_text(r, is_percent_metric(metric)) for r in mine))
            sources += [_source_text(metric, r) for r in mine]
        if any(cells):
            out[f"{metric} (paper)"] = cells
    return pd.DataFrame(out, columns=list(out)), sources


def paper_tables(summary: pd.DataFrame, experiments: Mapping[str, Mapping], paper,
                 ref: pd.DataFrame | None = None) -> list[PaperTable]:
    """One :class:`PaperTable` per experiment of ``paper`` (a :class:`~clbench.report.paper.Paper`),
    in the configuration's order.

    ``summary`` is :func:`clbench.report.tables.summary_table`'s output; ``ref`` the paper numbers
    (default: the paper's own, :func:`clbench.report.reported.reported_frame`).
    """
    ref = reported_frame([paper]) if ref is None else ref
    ref = ref[ref["paper"] == paper.key]
    blocks = []
    for name, cfg in experiments.items():
        if paper.key not in papers_of(cfg):
            continue
        table, sources = experiment_table(summary, name, cfg, list(paper.metrics), ref, paper.metric_names)
        blocks.append(PaperTable(name, cfg.get("title", name), cfg.get("dataset", "?"), list(cfg.get("seeds", [0])),
                                 table, sources))
    return blocks


NOTE = "Our mean ± std over seeds (accuracies in %), the paper's number beside it where it reports one."


def paper_csv(blocks: list[PaperTable]) -> str:
    """Every experiment's rows under one header: ``experiment``, ``method``, then the union of columns."""
    frames = [b.table.assign(experiment=b.experiment)[["experiment", *b.table.columns]] for b in blocks]
    if not frames:
        return "experiment,method\n"
    return pd.concat(frames, ignore_index=True, sort=False).to_csv(index=False)


def paper_markdown(paper, blocks: list[PaperTable]) -> str:
    parts = [f"# {paper.heading}\n", NOTE + "\n"]
    for b in blocks:
        parts += [f"## {b.heading}\n", to_markdown(b.table)]
        if b.sources:
            parts.append("Paper numbers: " + "; ".join(b.sources) + ".\n")
    return "\n".join(parts)


def paper_latex(paper, blocks: list[PaperTable]) -> str:
    """One ``table`` float per experiment; the caption names the experiment and the paper numbers' sources."""
    lines = [f"% {paper.heading}", r"% Written by clbench; needs \usepackage{booktabs}.", ""]
    for b in blocks:
        caption = f"{b.heading}. {NOTE}" + (" Paper numbers: " + "; ".join(b.sources) + "." if b.sources else "")
        lines += [r"\begin{table}[ht]", r"\centering", r"\caption{" + latex_escape(caption) + "}",
                  r"\label{tab:" + f"{paper.key}-{b.experiment}".replace("_", "-") + "}",
                  to_latex(b.table, align="l" + "r" * (len(b.table.columns) - 1)).rstrip("\n"), r"\end{table}", ""]
    return "\n".join(lines)


def write_paper_tables(summary: pd.DataFrame, experiments: Mapping[str, Mapping], out_dir,
                       papers: Mapping[str, object], ref: pd.DataFrame | None = None) -> list[Path]:
    """``paper_{key}.csv``, ``.md`` and ``.tex`` in ``out_dir`` for every paper of ``papers`` (key ->
    :class:`~clbench.report.paper.Paper`) with an experiment in the configuration."""
    out_dir, written = Path(out_dir), []
    for key in config_papers(experiments, papers):
        paper = papers[key]
        blocks = paper_tables(summary, experiments, paper, ref)
        for ext, text in zip(EXTENSIONS, (paper_csv(blocks), paper_markdown(paper, blocks), paper_latex(paper, blocks))):
            path = out_dir / f"paper_{key}.{ext}"
            write_text(path, text)
            written.append(path)
    return written

"""What the workflow computes and draws for the papers of a configuration: the analyses' and
figures' files, their inputs and params (the report rules call these; no paper is named here).

:class:`PaperConfig` is the view of the configuration a paper's ``inputs``/``params``/``needed``/
``drawn`` functions receive: experiments of a paper, runs, run and dataset directories, merged
method settings, and the paths of tables and analyses. :class:`ReportTargets` answers the rules:
its methods taking ``wildcards`` are Snakemake input and params functions.

Torch-free and cheap: Snakemake imports it while it parses the workflow.
"""

from __future__ import annotations

import json
import os
from typing import Iterable, Mapping

from clbench import workflow as wf
from clbench.errors import ConfigError
from clbench.papers import PAPERS
from clbench.report.paper import Analysis, ExperimentRecord, Figure, Paper
from clbench.report.paper_tables import config_papers, papers_of


def planned_experiment(cfg: Mapping, experiment: str) -> ExperimentRecord:
    """The record of ``experiment`` as its runs will write it, from a validated configuration:
    each method's merged settings (run.json ``spec``; a multistage method's stage block kept), the
    dataset's settings with its generator's defaults (meta.json ``spec``), the evaluate job's
    settings (evaluation.json ``spec``)."""
    from clbench.data.build import effective

    exp = cfg["experiments"][experiment]
    return ExperimentRecord(
        experiment=experiment,
        papers=tuple(papers_of(exp)),
        methods={m: wf.method_spec(cfg, experiment, m) for m in exp["methods"]},
        dataset=effective(cfg["datasets"][exp["dataset"]]),
        evaluation=json.loads(wf.evaluation_spec(cfg, experiment)),
        seeds=tuple(exp["seeds"]),
        config={k: v for k, v in exp.items() if k not in ("methods", "method_overrides", "evaluation")}
        | _sweeps_of(cfg, experiment),
    )


def _sweeps_of(cfg: Mapping, experiment: str) -> dict:
    """``{"sweeps": {name: {distributions, trials, select}}}`` of the sweeps of ``experiment`` (none: {})."""
    from clbench.sweeps import selection_spec

    found = {}
    for name, sweep in cfg.get("sweeps", {}).items():  # those a selection kept (clbench.sweeps.expand)
        if sweep["experiment"] == experiment:
            spec = selection_spec(cfg, name)
            found[name] = {"distributions": spec["distributions"], "fixed": spec["fixed"],
                           "trials": len(spec["trials"]), "select": spec["select"]}
    return {"sweeps": found} if found else {}


class PaperConfig:
    """A validated configuration (defaults filled in), as the papers' functions see it."""

    def __init__(self, config: Mapping):
        self.config = config
        self.results = config["results_dir"]

    def experiments_of(self, paper: str) -> list[str]:
        """The experiments whose ``paper`` is (or lists) ``paper``, in config order."""
        return [name for name, exp in self.config["experiments"].items() if paper in papers_of(exp)]

    def runs(self, experiments: Iterable[str] | None = None) -> list[tuple[str, str, int]]:
        """(experiment, method, seed) of every run, or of the runs of ``experiments``."""
        keep = None if experiments is None else set(experiments)
        return [r for r in wf.experiment_runs(self.config) if keep is None or r[0] in keep]

    def run_dir(self, experiment: str, method: str, seed: int | str) -> str:
        return wf.run_dir(self.config, experiment, method, seed)

    def dataset_dir(self, dataset: str) -> str:
        return wf.dataset_dir(self.config, dataset)

    def method_spec(self, experiment: str, method: str) -> dict:
        """A method's settings in one experiment (``method_overrides`` merged in)."""
        return wf.method_spec(self.config, experiment, method)

    def table(self, name: str) -> str:
        """A table the collect step writes, e.g. ``table("metrics.csv")``."""
        return f"{self.results}/tables/{name}"

    def analysis(self, output: str) -> str:
        """The data file an analysis writes."""
        return f"{self.results}/analyses/{output}"


class ReportTargets:
    """The papers' tables, analyses and figures for one configuration (``papers``: default the registry)."""

    def __init__(self, config: Mapping, papers: Mapping[str, Paper] | None = None):
        self.cfg = PaperConfig(config)
        self.papers = PAPERS if papers is None else papers
        self.formats = list(config["report"]["figure_formats"])
        for name, exp in config["experiments"].items():  # refused before any job runs
            for key in papers_of(exp):
                if key not in self.papers:
                    raise ConfigError(f"experiments.{name}.paper",
                                      f"unknown paper {key!r}; the registered papers: {list(self.papers)}")

    # ---- what the configuration has

    @property
    def table_papers(self) -> list[str]:
        """The papers with an experiment in the configuration: one ``paper_<key>`` table each."""
        return config_papers(self.cfg.config["experiments"], self.papers)

    def _analyses(self) -> list[Analysis]:
        return [a for p in self.papers.values() for a in p.analyses if a.needed(self.cfg)]

    def _figures(self) -> list[Figure]:
        """The figures of the papers with an experiment in the configuration (a selection may leave a paper
        none: its section says what was not selected, and it draws nothing)."""
        present = set(self.table_papers)
        return [f for key, p in self.papers.items() if key in present for f in p.figures if f.drawn(self.cfg)]

    @property
    def analyses(self) -> list[str]:
        """Output file names (under ``results/analyses/``) of every analysis the configuration needs."""
        return [a.output for a in self._analyses()]

    @property
    def figures(self) -> list[str]:
        """Names of every paper figure the configuration draws."""
        return [f.name for f in self._figures()]

    @property
    def formats_arg(self) -> str:
        """The figure commands' ``--formats``."""
        return ",".join(self.formats)

    @property
    def extra_formats(self) -> list[str]:
        """The formats each figure is also written in, beside its PNG."""
        return [fmt for fmt in self.formats if fmt != "png"]

    @property
    def protocol_cards(self) -> list[str]:
        """Every experiment's protocol card (``tables/protocol_<experiment>.csv``)."""
        return [self.cfg.table(f"protocol_{name}.csv") for name in self.cfg.config["experiments"]]

    def experiment_regex(self) -> str:
        """Wildcard constraint: the configuration's experiments."""
        return wf.name_regex(self.cfg.config["experiments"])

    def figure_regex(self) -> str:
        """Wildcard constraint: every registered paper figure (not the training curves)."""
        return wf.name_regex(f.name for p in self.papers.values() for f in p.figures)

    def analysis_regex(self) -> str:
        return wf.name_regex(a.output for p in self.papers.values() for a in p.analyses)

    def _find(self, kind: str, name: str):
        for paper in self.papers.values():
            for item in (paper.figures if kind == "figure" else paper.analyses):
                if (item.name if kind == "figure" else item.output) == name:
                    return item
        raise KeyError(f"unknown {kind} {name!r}")

    # ---- Snakemake input and params functions

    def figure_inputs(self, wildcards) -> list[str]:
        return self._find("figure", wildcards.figure).inputs(self.cfg)

    def figure_caption(self, wildcards) -> str:
        return self._find("figure", wildcards.figure).report_caption

    def analysis_inputs(self, wildcards) -> list[str]:
        return self._find("analysis", wildcards.analysis).inputs(self.cfg)

    def analysis_params(self, wildcards) -> str:
        return wf.as_json(self._find("analysis", wildcards.analysis).params(self.cfg))

    def protocol_inputs(self, wildcards) -> list[str]:
        """What an experiment's card reads: its runs' run.json and evaluation.json, its dataset's meta.json."""
        runs = [self.cfg.run_dir(*r) for r in self.cfg.runs([wildcards.experiment])]
        return ([f"{d}/run.json" for d in runs] + [f"{d}/evaluation.json" for d in runs]
                + [wf.dataset_meta(self.cfg.config, wildcards.experiment)]
                + [f"{self.cfg.results}/sweeps/{name}/selection.json"
                   for name in planned_experiment(self.cfg.config, wildcards.experiment).config.get("sweeps", {})])

    def protocol_plan(self, wildcards) -> str:
        """The experiment's record from the configuration (the card's params: a changed setting re-runs it)."""
        return wf.as_json(planned_experiment(self.cfg.config, wildcards.experiment).to_dict())

    @staticmethod
    def results_dir(wildcards, output) -> str:
        """The results directory, from an output two levels below it (figures/x.png, analyses/x, report/index.html)."""
        return os.path.dirname(os.path.dirname(output[0]))

    def report_inputs(self, wildcards=None) -> list[str]:
        """What the HTML report reads beyond the tables: every figure's PNG, every analysis' file and
        every experiment's protocol card."""
        results = self.cfg.results
        return [f"{results}/figures/{name}.png" for name in self.figures] + \
               [self.cfg.analysis(name) for name in self.analyses] + self.protocol_cards

"""Each rule's ``params.code``: the hash of the package code its job runs (:mod:`clbench.code_hash`),
from the config and the job's wildcards, with the registered entries the job uses.

A training job adds its objective's loss and its domain's trainer (so editing ``losses/varcon.py``
re-runs VarCon's pretraining, and through its outputs everything downstream, but nothing of CLEAR's);
an evaluation its domain's evaluator; a dataset build its generator; a figure its paper and the module
that draws it, an analysis the module of its function (editing a figure re-runs that paper's figures and
the report, no training or evaluation); the tables, protocol cards and the report every paper.
"""

from __future__ import annotations

from collections.abc import Mapping

from clbench.code_hash import aggregated, job_hash, module_of

PAPERS_PACKAGE = "clbench.papers"


def train(cfg: Mapping, experiment: str, method: str) -> str:
    from clbench.train.trainers import training_code
    from clbench.workflow import method_spec

    return training_code(method_spec(cfg, experiment, method))


def evaluate(cfg: Mapping, experiment: str, method: str) -> str:
    from clbench.evaluate.evaluators import EVALUATORS
    from clbench.objectives import OBJECTIVES
    from clbench.workflow import method_spec

    domain = OBJECTIVES[method_spec(cfg, experiment, method)["objective"]].domain
    return job_hash("evaluate run", [module_of(EVALUATORS.get(domain))])


def dataset(cfg: Mapping, dataset: str) -> str:
    from clbench.data.build import GENERATORS

    generator = GENERATORS.get(cfg["datasets"][dataset].get("generator"))
    return job_hash("data build", [module_of(f"{generator.module}:build") if generator else None])


def command(name: str) -> str:
    """A job whose command uses no registered entry beyond what it imports."""
    return job_hash(name)


def all_papers(name: str) -> str:
    """A job that reads every paper (the tables, protocol cards, the report)."""
    return job_hash(name, aggregated(PAPERS_PACKAGE))


def _paper_module(key: str) -> str | None:
    return module_of(f"{PAPERS_PACKAGE}.{key}:paper")


def figure(cfg: Mapping, figure: str) -> str:
    from clbench.papers import PAPERS

    for paper in PAPERS.values():
        for fig in paper.figures:
            if fig.name == figure:
                drawn_in = getattr(fig.draw, "__module__", None)
                return job_hash("report figure", [_paper_module(paper.key), module_of(f"{drawn_in}:draw")])
    return job_hash("report figure", aggregated(PAPERS_PACKAGE))


def analysis(cfg: Mapping, analysis: str) -> str:
    from clbench.papers import PAPERS

    for paper in PAPERS.values():
        for item in paper.analyses:
            if item.output == analysis:
                return job_hash("analyse", [module_of(item.function)])
    return job_hash("analyse", aggregated(PAPERS_PACKAGE))

"""What the report needs to know about a paper: the types a paper module fills in.

A paper (one module of :mod:`clbench.papers`) is data plus functions of result files: its
metadata, the numbers it reports with their sources, its claims (checks for
:mod:`clbench.report.claims`), the metrics its tables show, its figures and the analyses that
compute the data files those figures plot. The report renders any :class:`Paper` it is given and
names none; the workflow plans every paper's analyses and figures through
:mod:`clbench.papers.targets`.

A paper also says where each setting of its experiments comes from (:class:`Source`, through
``protocol``): :mod:`clbench.report.protocol` compares them with what the runs recorded
(:class:`ExperimentRecord`) and writes each experiment's protocol card.

Nothing here imports torch: a figure plots files; an analysis that needs a model names its
function by import path (``"package.module:function"``), imported only by the job that runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence


@dataclass(frozen=True)
class ResultFiles:
    """What a figure or an analysis job is given: the files its rule declared, in declared order,
    the results directory, the configuration's experiments and the analysis' params."""

    results: Path
    inputs: tuple[Path, ...] = ()
    experiments: Mapping[str, Mapping] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    threads: int = 1

    @property
    def runs_root(self) -> Path:
        return self.results / "runs"


def _always(cfg) -> bool:
    return True


def _nothing(cfg) -> list[str]:
    return []


def _no_params(cfg) -> dict:
    return {}


@dataclass(frozen=True)
class Analysis:
    """A computation whose data file (``results/analyses/<output>``) figures plot or claims read:
    what needs a model or torch, or reads many runs' logs, runs here, once, as its own job.

    ``function`` is ``"module:function"``, called as ``function(files: ResultFiles, out: Path)``.
    ``inputs(cfg)`` and ``params(cfg)`` receive a :class:`clbench.papers.targets.PaperConfig`;
    the files are the paths the rule declares (results directory included).
    """

    output: str
    function: str
    inputs: Callable[[Any], list[str]] = _nothing
    params: Callable[[Any], dict] = _no_params
    needed: Callable[[Any], bool] = _always


@dataclass(frozen=True)
class Figure:
    """One figure, ``results/figures/<name>.png`` (plus the configured formats), drawn from files.

    ``draw(files, out)`` writes it with :func:`clbench.report.figures.save_figure`; ``inputs(cfg)``
    lists the files it reads (tables, analyses' outputs, runs' logs); ``drawn(cfg)`` says whether a
    configuration draws it at all. ``caption`` goes under it in the HTML report, ``description``
    (default: the caption) into ``snakemake --report``. ``note(results, config)``, when it returns
    text, replaces the figure in the report (and says why it is not drawn).
    """

    name: str
    caption: str
    draw: Callable[[ResultFiles, Path], None]
    inputs: Callable[[Any], list[str]] = _nothing
    drawn: Callable[[Any], bool] = _always
    description: str = ""
    note: Callable[[Path, Mapping], str] | None = None

    @property
    def report_caption(self) -> str:
        return self.description or self.caption


def papers_of(experiment: Mapping) -> list[str]:
    """The keys of the papers an experiment's config entry belongs to (``paper``: a key or a list)."""
    papers = experiment.get("paper", "baseline")
    return [papers] if isinstance(papers, str) else list(papers)


class _Unstated:
    def __repr__(self) -> str:
        return "UNSTATED"


UNSTATED = _Unstated()  # a source that names a setting without a value to compare


@dataclass(frozen=True)
class Source:
    """Where a setting's value comes from, and the value it gives there.

    ``where`` names a paper section, table or figure, or a file of the paper's official code
    (e.g. ``"<paper> official code, <file>"``); ``value`` is what it states (compared with the
    recorded value: a card cites ``where`` only when the two agree). ``unset`` is the value clbench
    uses when a configuration leaves the setting out (for settings without a schema default).
    """

    where: str
    value: Any = UNSTATED
    unset: Any = UNSTATED


@dataclass(frozen=True)
class ExperimentRecord:
    """What one experiment's runs were given, as they recorded it: the input of a protocol card.

    ``methods``: method -> its settings (a run.json's ``spec``); ``dataset``: the dataset's settings
    (its meta.json's ``spec``); ``evaluation``: what the evaluate job was given (evaluation.json's
    ``spec``); ``seeds``; ``config``: the experiment's own entry (paper, ood, k, baseline, ...).
    """

    experiment: str
    papers: tuple[str, ...]
    methods: Mapping[str, Mapping[str, Any]]
    dataset: Mapping[str, Any]
    evaluation: Mapping[str, Any]
    seeds: tuple = ()
    config: Mapping[str, Any] = field(default_factory=dict)

    def methods_with(self, **where) -> list[str]:
        """The methods whose settings have these top-level values, e.g. ``methods_with(objective="supcon")``."""
        return [m for m, spec in self.methods.items() if all(spec.get(k) == v for k, v in where.items())]

    def to_dict(self) -> dict:
        return {"experiment": self.experiment, "papers": list(self.papers), "methods": dict(self.methods),
                "dataset": dict(self.dataset), "evaluation": dict(self.evaluation), "seeds": list(self.seeds),
                "config": dict(self.config)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ExperimentRecord":
        return cls(experiment=d["experiment"], papers=tuple(d.get("papers", ())), methods=dict(d["methods"]),
                   dataset=dict(d.get("dataset") or {}), evaluation=dict(d.get("evaluation") or {}),
                   seeds=tuple(d.get("seeds", ())), config=dict(d.get("config") or {}))


# scope ("data", "evaluation", "run" or a method's name) -> setting (a dotted key) -> its source
ProtocolSources = Mapping[str, Mapping[str, Source]]


@dataclass(frozen=True)
class Paper:
    """One paper: everything the report shows about it and everything the workflow computes for it.

    ``reported`` holds the numbers the paper reports, one mapping per number with the fields of
    :data:`clbench.report.reported.RESULT_FIELDS` (``paper`` is filled in from ``key``).
    ``claims`` are claim mappings for :func:`clbench.report.claims.evaluate_claims`, evaluated
    with ``metric_names`` (the claims' and reported numbers' metric names -> the pipeline's).
    ``claim_data(results)`` adds long rows (experiment, method, seed, metric, value, ...) from
    result files beyond ``tables/metrics.csv`` for the claims to check. ``protocol(record)`` gives,
    for one experiment's :class:`ExperimentRecord`, the source of each setting the paper or its
    official code states (scopes: a method's name, ``"data"``, ``"evaluation"``, ``"run"``); every
    other setting of the experiment's protocol card reads "assumed".
    """

    key: str
    title: str  # the paper's own title
    heading: str  # the report's section heading
    summary: str  # what the paper adds, one sentence
    citation: str
    arxiv: str | None = None
    code: str | None = None
    metrics: Sequence[str] = ()  # the columns of its tables, in the paper's order
    reported: Sequence[Mapping[str, Any]] = ()
    claims: Sequence[Mapping[str, Any]] = ()
    metric_names: Mapping[str, str] = field(default_factory=dict)
    figures: Sequence[Figure] = ()
    analyses: Sequence[Analysis] = ()
    claim_data: Callable[[Path], Any] | None = None  # -> a DataFrame or None
    # where its experiments' settings come from: ExperimentRecord -> {scope: {setting: Source}}
    protocol: Callable[[ExperimentRecord], ProtocolSources] | None = None
    section_without_experiments: bool = True  # a section (saying where it runs) when the config has none

    def figure(self, name: str) -> Figure:
        for f in self.figures:
            if f.name == name:
                return f
        raise KeyError(name)

"""Protocol cards: every setting that shapes an experiment's numbers, with its value and its source.

A card is a function of one :class:`~clbench.report.paper.ExperimentRecord` (what the runs were
given, as they recorded it) and the papers the experiment belongs to. Each row is one setting:

    scope     a method's name, "all methods" (the same value and source for every method),
              "data", "evaluation" or "run"
    category  architecture, objective, optimiser, schedule, epochs, batch, augmentation, other,
              data recipe, evaluation protocol, seeds, provenance
    setting   the dotted configuration key (e.g. ``optimizer.lr``, ``loss.temperature``)
    value     the recorded value ("unset" where the configuration leaves it to the code)
    source    where the value comes from: the paper's or official code's place (a
              :class:`~clbench.report.paper.Source` of a paper module) when the recorded value is the
              one it states; ``"assumed; <where> gives <value>"`` when it states another;
              ``"not set; <where> gives <value>"`` when it states a setting the runs did not record;
              ``"assumed"`` when neither the paper nor its code states it.

The values come from the runs' files (:func:`recorded_experiment`: run.json ``spec``,
evaluation.json ``spec``, the dataset's meta.json ``spec``), so a card cannot drift from what ran;
:func:`clbench.papers.targets.planned_experiment` gives the same record from a configuration (what
those files will hold), for a dry plan. Generic: the sources come from the paper modules; nothing here names a paper.
No pandas, no torch: the card job stays a light process.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from clbench.report.paper import UNSTATED, ExperimentRecord, Source

CARD_COLUMNS = ("scope", "category", "setting", "value", "source")
ASSUMED = "assumed"
ALL_METHODS = "all methods"

# how a run is executed, not what it computes
OPERATIONAL = frozenset({"compile", "num_workers", "val_every", "gpus"})
DATA_OPERATIONAL = frozenset({"download", "root", "workers", "url", "md5"})
EVALUATION_OPERATIONAL = frozenset({"y_factor", "corruptions.granularity", "probe.num_workers"})
# the evaluation settings blocks each evaluation reads (clbench.evaluate.suite and clbench.evaluate.mmvp; a test
# keeps the names equal to the registry's): a card shows a block's settings only where one of the experiment's
# evaluations reads it. The MLP probe's rows are its settings as it trains (mlp_probe's over the probe's).
EVALUATION_READS = {
    "linear_probe": ("probe",), "mlp_probe": ("mlp_probe",), "own_head": (), "knn": ("knn",),
    "factor_probes": ("probe",), "gmig": ("probe",), "slice_probes": ("probe",), "stage_probes": ("probe",),
    "corruptions": ("probe", "corruptions"), "graph_svc": ("graph_svc",), "sts": (), "mmvp_pairs": (),
}
# an evaluation registered elsewhere and not listed above: assumed to fit the configured probe, as most do
UNLISTED_EVALUATION_READS = ("probe",)
SETTINGS_BLOCKS = ("probe", "mlp_probe", "knn", "corruptions")
# the evaluations an evaluation.json without a list ran (clbench.evaluate.runner.DEFAULTS)
DEFAULT_EVALUATIONS = ("linear_probe", "knn")
# evaluations that fit no probe of their own: an experiment of only these reads no probe setting
PROBE_FREE_EVALUATIONS = frozenset(e for e, blocks in EVALUATION_READS.items() if "probe" not in blocks)

# the evaluate job's values for probe settings a configuration leaves out (clbench.evaluate.runner.DEFAULTS;
# a test keeps the two equal): how the linear probe trains is a row of every card
PROBE_DEFAULTS = {"protocol": "features", "augment": "simclr"}
# the settings of the MLP probe (the schema's mlp_probe_settings): each is mlp_probe's where set, else the
# linear probe's (clbench.evaluate.context.EvaluationRun.mlp_probe_settings); it always trains on cached features
MLP_PROBE_KEYS = ("epochs", "lr", "weight_decay", "batch_size", "hidden_dim", "optimizer", "momentum", "schedule",
                  "milestones", "gamma", "standardize")
MLP_HIDDEN = 256  # clbench.evaluate.linear_probe.MLP_HIDDEN, the MLP probe's hidden units when unset

# (category, key prefixes), first match wins; a method setting matching none is "other"
METHOD_CATEGORIES = (
    ("architecture", ("encoder", "classifier", "projection_dim", "projection_hidden_dim", "projection_batch_norm",
                      "vae.z_content", "vae.z_style", "vae.width", "vae.architecture",
                      "graph.hidden_dim", "graph.num_layers")),
    ("objective", ("objective", "loss", "vae")),
    ("optimiser", ("optimizer",)),
    ("schedule", ("schedule", "warmup_epochs", "warmup_start_lr", "lr_floor")),
    ("epochs", ("epochs", "graph.eval_epochs")),
    ("batch", ("batch_size", "batch_sampler")),
    ("augmentation", ("augment", "views", "paired_views", "crop_size", "graph.augment", "graph.node_drop_rate",
                      "graph.subgraph_keep", "graph.edge_perturb_rate", "graph.attr_mask_rate", "graph.subgraph_growth")),
)
# a sentence method's sentence: block (clbench.models.sentence): the transformer, its dropout (the augmentation),
# the learning-rate schedule
METHOD_CATEGORIES = (("architecture", ("sentence.model", "sentence.max_length")),
                     ("schedule", ("sentence.schedule",)),
                     ("augmentation", ("sentence.dropout",))) + METHOD_CATEGORIES
# a CLIP method's clip: block (clbench.models.clip, clbench.train.clip_loop): the open_clip model and its weights,
# which towers train, AdamW's betas and eps, the warm-up and the crops
METHOD_CATEGORIES = (("architecture", ("clip.model", "clip.config", "clip.pretrained", "clip.quick_gelu")),
                     ("optimiser", ("clip.lock_text", "clip.unlocked_image_groups", "clip.betas", "clip.eps")),
                     ("schedule", ("clip.warmup_steps",)),
                     ("augmentation", ("clip.crop_scale",))) + METHOD_CATEGORIES
CATEGORY_ORDER = tuple(c for c, _ in METHOD_CATEGORIES) + ("other", "data recipe", "evaluation protocol", "seeds",
                                                           "provenance")
SCOPE_CATEGORY = {"data": "data recipe", "evaluation": "evaluation protocol"}
# evaluations of sentence encoders (clbench.evaluate.sts): they read none of the probe and k-NN settings
SENTENCE_EVALUATIONS = frozenset({"sts"})


# --------------------------------------------------------------------------------------------------
# settings as flat dotted keys


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"a.b": 1, "c": [1, 2]}`` (lists are values)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


# what a method's model reads (clbench.models): the VAE family builds its networks from vae: alone, only
# the contrastive and sub-embedding families have a projector, only the classifier family a classifier
# head; width, pool and feature_dim shape the small CNN, stem the ResNets
_UNREAD_BY_FAMILY = {"clear_vae": ("encoder", "projection_", "classifier"), "classifier": ("projection_",),
                     "contrastive": ("classifier",), "sub_embedding": ("classifier",),
                     # the GIN family (clbench.models.graph) reads its graph: block, not the image settings
                     "graph": ("encoder", "projection_", "classifier", "augment", "views", "paired_views",
                               "crop_size"),
                     # the sentence family (clbench.models.sentence, clbench.train.sentence) reads its sentence:
                     # block, epochs, batch_size and optimizer, not the image settings its spec carries
                     "sentence": ("encoder", "projection_", "classifier", "augment", "views", "paired_views",
                                  "crop_size", "schedule", "warmup_epochs", "warmup_start_lr", "lr_floor"),
                     # the CLIP family (clbench.models.clip, clbench.train.clip_loop) builds an open_clip model from
                     # its clip: block, crops by clip.crop_scale and warms up over clip.warmup_steps
                     "clip": ("encoder", "projection_", "classifier", "augment", "views", "paired_views",
                              "crop_size", "warmup_epochs", "warmup_start_lr", "lr_floor")}
_ENCODER_KEYS = {"small_cnn": ("encoder.name", "encoder.width", "encoder.pool", "encoder.feature_dim",
                                "encoder.layers")}
# settings read only when another setting (flat key, its value when unset) has one of some values
_MI_STYLES = ("tc", "club_sample", "l1out")
_READ_ONLY_WITH = {
    "optimizer.momentum": ("optimizer.name", "adam", ("sgd",)),
    "optimizer.nesterov": ("optimizer.name", "adam", ("sgd",)),
    "encoder.feature_dim": ("encoder.pool", "avg", ("avg",)),  # a flattened map has no further layer
    "classifier.hidden_dim": ("classifier.kind", "linear", ("mlp",)),
    "vae.penalty_weight": ("vae.style", "ps_snn", _MI_STYLES),  # the MI estimator's settings
    "vae.estimator_steps": ("vae.style", "ps_snn", _MI_STYLES),
    "vae.estimator_lr": ("vae.style", "ps_snn", _MI_STYLES),
    "vae.estimator_latents": ("vae.style", "ps_snn", _MI_STYLES),
    # the sub-embeddings' regulariser weight: no regulariser, nothing to weigh
    "loss.weight": ("loss.regularizer", "none", ("info_min", "ortho", "p_ortho", "hess")),
}
# a model's values for settings a method leaves out (clbench.models: SmallCNN, the Classifier family)
_MODEL_DEFAULTS = {"small_cnn": {"encoder.pool": "avg"}, "classifier": {"classifier.kind": "linear"}}


def method_settings(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A method's settings that shape its numbers, flat: its objective's parameters with their
    defaults filled in; no execution settings, no setting its model does not read, momentum only
    for SGD."""
    from clbench.objectives import OBJECTIVES, resolved_params

    spec = dict(spec)
    objective = OBJECTIVES.get(spec.get("objective"))
    if objective is not None:
        spec[objective.section] = resolved_params(spec)
    flat = flatten(spec)
    if objective is not None and objective.family == "classifier":
        defaults = {**_MODEL_DEFAULTS["classifier"], **_MODEL_DEFAULTS.get(flat.get("encoder.name", "small_cnn"), {})}
        flat = {**flat, **{k: v for k, v in defaults.items() if k not in flat}}
        if flat["classifier.kind"] == "mlp":
            flat.setdefault("classifier.hidden_dim", MLP_HIDDEN)
    return {k: v for k, v in flat.items() if reads(flat, k)}


def reads(flat_spec: Mapping[str, Any], setting: str) -> bool:
    """Whether a method with these (flat) settings reads ``setting``."""
    from clbench.objectives import OBJECTIVES

    if setting.split(".")[0] in OPERATIONAL:
        return False
    objective = OBJECTIVES.get(flat_spec.get("objective"))
    if objective is not None and setting.startswith(_UNREAD_BY_FAMILY.get(objective.family, ())):
        return False
    if setting.startswith("encoder."):
        encoder = flat_spec.get("encoder.name", "small_cnn")
        if setting not in _ENCODER_KEYS.get(encoder, ("encoder.name", "encoder.stem")):
            return False
    if setting in _READ_ONLY_WITH:
        other, unset, values = _READ_ONLY_WITH[setting]
        return flat_spec.get(other, unset) in values
    return True


def data_settings(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset's settings, flat (``options`` folded in); no operational key, and no default its
    generator fills in for a key it does not read for this spec (e.g. the OOD design of an independent
    recipe; the configuration checks refuse such a key when it is given)."""
    from clbench.data.build import GENERATORS, reads_key

    spec = {**{k: v for k, v in dataset.items() if k != "options"}, **(dataset.get("options") or {})}
    generator = GENERATORS.get(spec.get("generator"))
    defaults = {} if generator is None else generator.defaults()
    unread = {k for k, v in defaults.items() if spec.get(k) == v and not reads_key(spec, k)}
    return {k: v for k, v in flatten(spec).items()
            if k.split(".")[0] not in DATA_OPERATIONAL and v is not None and k not in unread}


def evaluation_reads(evaluation: Mapping[str, Any], setting: str) -> bool:
    """Whether the evaluate job reads ``setting``: a settings block's (probe, mlp_probe, knn, corruptions)
    only where one of the experiment's evaluations reads it (:data:`EVALUATION_READS`), the probe's
    augmentation only under protocol augmented."""
    evaluations = evaluation.get("evaluations") or DEFAULT_EVALUATIONS
    block = setting.split(".")[0]
    if block in SETTINGS_BLOCKS and "." in setting and not any(
            block in EVALUATION_READS.get(e, UNLISTED_EVALUATION_READS) for e in evaluations):
        return False
    if setting == "probe.augment":
        return (evaluation.get("probe") or {}).get("protocol", PROBE_DEFAULTS["protocol"]) == "augmented"
    return True


def evaluation_settings(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """The evaluate job's settings, flat: the linear probe's protocol (and its augmentation) always,
    the MLP probe's settings as it trains (``mlp_probe``'s over the probe's) where the experiment runs
    it, k-NN settings only where it runs k-NN."""
    if evaluation.get("evaluations") and set(evaluation["evaluations"]) <= SENTENCE_EVALUATIONS:
        return {"evaluations": evaluation["evaluations"]}  # STS: no probe, no k-NN, no convergence target
    probe = {**PROBE_DEFAULTS, **(evaluation.get("probe") or {})}
    own_mlp = {k: v for k, v in (evaluation.get("mlp_probe") or {}).items() if v is not None}
    mlp = {k: own_mlp.get(k, probe.get(k)) for k in MLP_PROBE_KEYS if own_mlp.get(k, probe.get(k)) is not None}
    mlp.setdefault("hidden_dim", MLP_HIDDEN)
    if mlp.get("optimizer", "adam") != "sgd":
        mlp.pop("momentum", None)
    if mlp.get("schedule", "constant") != "step":
        for key in ("milestones", "gamma"):
            mlp.pop(key, None)
    full = {**evaluation, "probe": probe, "mlp_probe": mlp}
    return {k: v for k, v in flatten(full).items() if k not in EVALUATION_OPERATIONAL and evaluation_reads(full, k)}


def method_category(setting: str) -> str:
    """The setting's category; another settings block (e.g. a multistage method's) is the objective's."""
    for category, prefixes in METHOD_CATEGORIES:
        if any(setting == p or setting.startswith(p + ".") for p in prefixes):
            return category
    return "objective" if "." in setting else "other"


# --------------------------------------------------------------------------------------------------
# values and sources


def format_value(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value) or "none"
    return str(value)


def same_value(recorded: Any, stated: Any) -> bool:
    """Whether a recorded value is the one a source states (numbers to float precision)."""
    if isinstance(recorded, bool) or isinstance(stated, bool):
        return recorded is stated or (isinstance(recorded, bool) and isinstance(stated, bool) and recorded == stated)
    if isinstance(recorded, (int, float)) and isinstance(stated, (int, float)):
        return math.isclose(float(recorded), float(stated), rel_tol=1e-9, abs_tol=1e-15)
    if isinstance(recorded, (list, tuple)) and isinstance(stated, (list, tuple)):
        return len(recorded) == len(stated) and all(same_value(a, b) for a, b in zip(recorded, stated))
    return recorded == stated


_MISSING = object()


def source_text(value: Any, source: Source | None) -> str:
    """The source column for a recorded ``value`` (``_MISSING`` when the runs did not record it)."""
    if source is None:
        return ASSUMED
    if source.value is UNSTATED:
        return source.where
    if value is _MISSING:
        return f"not set; {source.where} gives {format_value(source.value)}"
    if same_value(value, source.value):
        return source.where
    return f"{ASSUMED}; {source.where} gives {format_value(source.value)}"


def paper_sources(record: ExperimentRecord, papers: Mapping[str, Any]) -> dict[str, dict[str, Source]]:
    """{scope: {setting: Source}} of the record's papers (the first paper listed wins a setting both state)."""
    merged: dict[str, dict[str, Source]] = {}
    for key in record.papers:
        paper = papers.get(key)
        if paper is None or paper.protocol is None:
            continue
        for scope, settings in paper.protocol(record).items():
            for setting, source in settings.items():
                merged.setdefault(scope, {}).setdefault(setting, source)
    return merged


def _rows(scope: str, category_of, settings: Mapping[str, Any], sources: Mapping[str, Source]) -> list[dict]:
    rows = [{"scope": scope, "category": category_of(k), "setting": k, "value": format_value(v),
             "source": source_text(v, sources.get(k))} for k, v in settings.items()]
    for k, s in sources.items():
        if k in settings:
            continue
        if s.unset is UNSTATED:  # a setting the source states and the runs did not record
            rows.append({"scope": scope, "category": category_of(k), "setting": k, "value": "not recorded",
                         "source": source_text(_MISSING, s)})
        else:  # left out of the configuration: clbench's value for an unset key
            rows.append({"scope": scope, "category": category_of(k), "setting": k,
                         "value": f"unset ({format_value(s.unset)})", "source": source_text(s.unset, s)})
    return rows


def sweep_rows(record: ExperimentRecord, selections: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict]:
    """The rows of the experiment's sweeps (``record.config["sweeps"]``, :mod:`clbench.sweeps`): scope the sweep
    (the method it reports), each swept setting's value the selected trial's (``selections``: sweep ->
    its selection.json; "selected on validation" before the selection), its source the sweep; then the settings
    the sweep fixes for every trial (``fixed``), with their values."""
    rows = []
    for name, sweep in record.config.get("sweeps", {}).items():
        selection = (selections or {}).get(name, {})
        chosen = selection.get("settings", {})
        unselected = "no trial selected (every trial excluded)" if "selected" in selection and not selection[
            "selected"] else "selected on validation"
        rule = sweep["select"]
        for key, distribution in sweep["distributions"].items():
            rows.append({"scope": name, "category": method_category(key), "setting": key,
                         "value": format_value(chosen[key]) if key in chosen else unselected,
                         "source": f"selected on validation from {distribution} ({sweep['trials']} trials; sweep "
                                   f"{name}, {rule['direction']} {rule['metric']})"})
        rows += [{"scope": name, "category": method_category(key), "setting": key, "value": format_value(value),
                  "source": f"set for every trial of sweep {name} (not searched)"}
                 for key, value in sweep.get("fixed", {}).items()]
    return rows


def protocol_card(record: ExperimentRecord, papers: Mapping[str, Any],
                  provenance: str = "the configuration (planned)",
                  selections: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict]:
    """The card of one experiment: rows with :data:`CARD_COLUMNS`, ordered by category.

    A method setting whose value and source are the same for every method of the experiment is one
    row with scope "all methods". ``provenance`` says which files the values were read from. A sweep of the
    experiment adds its swept settings (:func:`sweep_rows`).
    """
    sources = paper_sources(record, papers)
    per_method = {}
    for m, spec in record.methods.items():
        settings = method_settings(spec)
        stated = {k: s for k, s in sources.get(m, {}).items() if reads(flatten(spec), k)}
        per_method[m] = _rows(m, method_category, settings, stated)
    methods = list(per_method)
    rows: list[dict] = []
    keyed = {m: {(r["category"], r["setting"]): r for r in rs} for m, rs in per_method.items()}
    order = list(dict.fromkeys(k for m in methods for k in keyed[m]))
    for key in order:
        cells = [keyed[m].get(key) for m in methods]
        if all(c is not None for c in cells) and len({(c["value"], c["source"]) for c in cells}) == 1:
            rows.append({**cells[0], "scope": ALL_METHODS})
        else:
            rows += [c for c in cells if c is not None]
    for scope in ("data", "evaluation"):
        settings = data_settings(record.dataset) if scope == "data" else evaluation_settings(record.evaluation)
        stated = sources.get(scope, {})
        if scope == "evaluation":
            stated = {k: s for k, s in stated.items() if evaluation_reads(record.evaluation, k)}
        rows += _rows(scope, lambda k, s=scope: SCOPE_CATEGORY[s], settings, stated)
    run_sources = sources.get("run", {})
    rows.append({"scope": "run", "category": "seeds", "setting": "seeds", "value": format_value(list(record.seeds)),
                 "source": source_text(list(record.seeds), run_sources.get("seeds"))})
    rows += sweep_rows(record, selections)
    rows.append({"scope": "run", "category": "provenance", "setting": "values read from", "value": provenance,
                 "source": "not applicable"})
    rank = {c: i for i, c in enumerate(CATEGORY_ORDER)}
    return sorted(rows, key=lambda r: rank.get(r["category"], len(rank)))  # stable: keeps the order within one


def card_counts(rows: Iterable[Mapping[str, str]]) -> dict[str, int]:
    """How many settings a card sources, and how many are assumed or not set (provenance left out)."""
    counts = {"settings": 0, "sourced": 0, "assumed": 0, "not set": 0}
    for r in rows:
        if r["category"] == "provenance":
            continue
        counts["settings"] += 1
        src = r["source"]
        key = "assumed" if src.startswith(ASSUMED) else "not set" if src.startswith("not set") else "sourced"
        counts[key] += 1
    return counts


def card_csv(rows: Sequence[Mapping[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CARD_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: r[c] for c in CARD_COLUMNS} for r in rows)
    return buf.getvalue()


def read_card(path: str | Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------------------------------
# records from the runs' files


def _run_of(path: Path) -> tuple[str, int]:
    """(method, seed) of ``.../<method>/seed<k>/<file>``."""
    seed_dir = path.parent
    if not seed_dir.name.startswith("seed"):
        raise ValueError(f"{path} is not in a run directory (<experiment>/<method>/seed<k>/)")
    return seed_dir.parent.name, int(seed_dir.name.removeprefix("seed"))


# what a cluster batch sampler's summary (run.json ``batch_sampler``) says of how batches are drawn: its
# policy (card setting: summary key), the same for every seed; its counts of clusters and samples used vary
# with the clustering, and the stage logs give them
SAMPLER_POLICY = {"small_clusters": "small_clusters", "drop_last": "drop_last"}


def _sampler_policy(summaries: Sequence[Mapping[str, Any] | None]) -> dict | None:
    """The batch sampler the stages after the first recorded: ``one_cluster_per_batch`` (no stage
    mixed clusters in a batch) and the policy of :data:`SAMPLER_POLICY`; None if no stage used one."""
    used = [s for s in summaries if s]
    if not used:
        return None
    policies = [{k: s.get(key) for k, key in SAMPLER_POLICY.items()} for s in used]
    if any(p != policies[0] for p in policies):
        raise ValueError(f"the stages recorded different batch samplers: {policies}")
    return {"one_cluster_per_batch": all(s.get("mixed_batches") == 0 for s in used), **policies[0]}


# what a multistage run gives one stage beyond the method's spec (clbench.workflow.stage_spec): the model it
# starts from and the order of its clusters, both settings of the method's multistage block (init, order)
STAGE_ONLY_KEYS = ("init_from", "cluster_order", "stage_labels")


def _recorded_spec(info: Mapping[str, Any], planned: Mapping[str, Any] | None) -> dict:
    """A run.json's method settings. A multistage run's are its last stage's (every stage trains the
    method's spec; stage 0 may be the untrained starting model, with no epochs) without
    what only a stage is given, with the blocks the stages are not given (the stages' own settings)
    from the plan, checked against the number of stages it recorded, and the batch sampler its later
    stages used (``batch_sampler``, from each stage's record)."""
    if "spec" in info:
        return dict(info["spec"])
    stages = info.get("stage_runs") or []
    if not stages or "spec" not in stages[-1]:
        raise ValueError("run.json holds neither a spec nor stage runs with one")
    spec = {k: v for k, v in stages[-1]["spec"].items() if k not in STAGE_ONLY_KEYS}
    planned_stages = {k: v for k, v in (planned or {}).items() if k not in spec}
    for block in planned_stages.values():
        if isinstance(block, Mapping) and "stages" in block and block["stages"] != len(stages):
            raise ValueError(f"the run recorded {len(stages)} stages, the configuration plans {block['stages']}")
    sampler = _sampler_policy(info.get("stage_batch_samplers") or [s.get("batch_sampler") for s in stages])
    return {**planned_stages, **spec, **({"batch_sampler": sampler} if sampler else {})}


def recorded_experiment(files: Iterable[str | Path], planned: ExperimentRecord) -> tuple[ExperimentRecord, str]:
    """The record of ``planned.experiment`` read from its runs' files: every run.json (method
    settings, seeds), evaluation.json (``spec``: what the evaluate job was given) and the dataset's
    meta.json (``spec``). A part no file recorded (results of an older clbench) is the plan's.
    Returns the record and a sentence saying where its values were read from."""
    methods: dict[str, dict] = {}
    seeds: set[int] = set()
    evaluation = dataset = None
    n_runs = 0
    for path in map(Path, files):
        data = json.loads(path.read_text(encoding="utf-8"))
        if path.name == "run.json":
            method, seed = _run_of(path)
            spec = _recorded_spec(data, planned.methods.get(method))
            if method in methods and methods[method] != spec:
                raise ValueError(f"{path}: the seeds of {method} recorded different settings")
            methods[method] = spec
            seeds.add(seed)
            n_runs += 1
        elif path.name == "evaluation.json" and "spec" in data and evaluation is None:
            evaluation = data["spec"]
        elif path.name == "meta.json" and "spec" in data:
            dataset = data["spec"]
    if not methods:
        raise ValueError(f"no run.json of experiment {planned.experiment} among the inputs")
    order = [m for m in planned.methods if m in methods] + [m for m in methods if m not in planned.methods]
    read = [f"run.json of {n_runs} run{'s' * (n_runs != 1)}"]
    read.append("evaluation.json" if evaluation is not None else "the configuration for the evaluation")
    read.append("the dataset's meta.json" if dataset is not None else "the configuration for the data")
    record = ExperimentRecord(
        experiment=planned.experiment, papers=planned.papers, methods={m: methods[m] for m in order},
        dataset=dataset if dataset is not None else planned.dataset,
        evaluation=evaluation if evaluation is not None else planned.evaluation,
        seeds=tuple(sorted(seeds)), config=planned.config)
    return record, ", ".join(read)


def write_protocol_card(files: Iterable[str | Path], planned: ExperimentRecord, out: str | Path,
                        papers: Mapping[str, Any]) -> list[dict]:
    """``protocol_<experiment>.csv``: the card of the runs' files (see :func:`recorded_experiment`)."""
    from clbench.io import write_text

    files = [Path(f) for f in files]
    record, provenance = recorded_experiment([f for f in files if f.name != "selection.json"], planned)
    selections = {sel["sweep"]: sel for sel in (json.loads(f.read_text(encoding="utf-8")) for f in files
                                               if f.name == "selection.json")}
    rows = protocol_card(record, papers, provenance, selections)
    write_text(out, card_csv(rows))
    return rows

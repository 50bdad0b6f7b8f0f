"""The registry of training objectives: what each one is, reads and accepts.

An :class:`Objective` declares its loss (a ``"module:function"`` reference, imported only when a
model is built, so this module stays free of torch and can be imported when the workflow is
planned), the method family that trains it, whether it uses labels, how many views it needs and
how it consumes them, and its parameters with types, defaults and bounds, plus relations between
parameters. :func:`check_method` refuses a method's configuration against that declaration,
naming the dotted key; :func:`resolved_params` fills in the defaults.

Adding an objective is one :func:`register_objective` call (see the README, "Extending clbench").
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from clbench.errors import ConfigError

__all__ = [
    "DOMAINS",
    "FAMILIES",
    "OBJECTIVES",
    "VIEW_LAYOUTS",
    "ConstantLoss",
    "Objective",
    "Param",
    "Relation",
    "STAGE_LOCAL_CAPABILITIES",
    "Statistic",
    "check_method",
    "method_capabilities",
    "register_by_domain",
    "register_objective",
    "resolve_ref",
    "resolved_params",
]

# the method classes of clbench.models.methods that build a model for an objective
FAMILIES = ("classifier", "contrastive", "clear_vae", "sub_embedding", "clip", "graph", "sentence")

# what a method trains on, and so which trainer (clbench.train.trainers) runs it: images; image and
# caption pairs; graphs; sentences
DOMAINS = ("image", "image_text", "graph", "text")

# how a contrastive objective receives the projections z [B, V, D] of a batch (labels [B]):
#   pair     loss(z[:, 0], z[:, 1])                          two views of each sample
#   grouped  loss(z, labels)                                 [B, V, D] with one label per sample
#   flat     loss(z.flatten(0, 1), labels.repeat_interleave(V))   every view a sample of its own
VIEW_LAYOUTS = ("pair", "grouped", "flat")

_KINDS = ("number", "integer", "choice", "boolean")


@dataclass(frozen=True)
class Param:
    """One parameter of an objective: its type, default, bounds and a one-line doc.

    ``kind`` is ``number`` (int or float), ``integer``, ``choice`` (one of ``choices``) or
    ``boolean``. Numbers are finite; ``minimum``/``maximum`` bound them, exclusively when
    ``exclusive_minimum``/``exclusive_maximum`` is set.
    """

    name: str
    kind: str
    default: Any
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"parameter {self.name}: kind must be one of {_KINDS}, got {self.kind!r}")
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError(f"parameter {self.name}: choices go with kind 'choice' (and only with it)")
        if self.problem(self.default) is not None:
            raise ValueError(f"parameter {self.name}: default {self.default!r} {self.problem(self.default)}")

    def bounds(self) -> str:
        """The valid values in words, e.g. ``number > 0``, ``integer >= 1``, ``one of cosine, l2``."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        parts = [self.kind]
        if self.minimum is not None:
            parts.append(f"{'>' if self.exclusive_minimum else '>='} {_fmt(self.minimum)}")
        if self.maximum is not None:
            parts.append(f"{'<' if self.exclusive_maximum else '<='} {_fmt(self.maximum)}")
        return " ".join(parts[:2]) + (f" and {parts[2]}" if len(parts) > 2 else "")

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is refused (``"must be > 0, got 0"``), or None if it is valid."""
        got = f"got {value!r}"
        if self.kind == "choice":
            return None if isinstance(value, str) and value in self.choices else f"must be {self.bounds()}, {got}"
        if self.kind == "boolean":
            return None if isinstance(value, bool) else f"must be true or false, {got}"
        if self.kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
            return f"must be an integer, {got}"
        if self.kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"must be a number, {got}"
        if not math.isfinite(value):
            return f"must be finite, {got}"
        if self.minimum is not None:
            if value < self.minimum or (self.exclusive_minimum and value == self.minimum):
                return f"must be {'>' if self.exclusive_minimum else '>='} {_fmt(self.minimum)}, got {_fmt(value)}"
        if self.maximum is not None:
            if value > self.maximum or (self.exclusive_maximum and value == self.maximum):
                return f"must be {'<' if self.exclusive_maximum else '<='} {_fmt(self.maximum)}, got {_fmt(value)}"
        return None


@dataclass(frozen=True)
class Relation:
    """A constraint between parameters (or between a parameter and the method's other settings).

    ``check(params, spec)`` gets the resolved parameters and the whole method spec and returns why
    they are refused, or None; the error is reported at parameter ``key``. ``rule`` says the
    constraint in words (for docs and error listings).
    """

    key: str
    rule: str
    check: Callable[[dict, dict], str | None]


@dataclass(frozen=True)
class Statistic:
    """A per-sample statistic an objective logs besides its loss (e.g. VarCon's adaptive temperature).

    ``fn`` (a ``"module:function"`` reference) is called like the loss, with the loss's parameters,
    and returns a detached ``[N]`` vector; the training loop logs its distribution per epoch
    under ``name``.
    """

    name: str
    fn: str
    doc: str


@dataclass(frozen=True)
class ConstantLoss:
    """The loss an objective takes when every sample is embedded alike (all similarities equal): what a
    collapsed encoder scores, which a trained one must stay clearly below (:mod:`clbench.health`).

    It is ``times x ln(count(B, V))``: each anchor's softmax spread evenly over ``count`` candidates
    (``B`` the batch size, ``V`` the views per sample), summed over ``times`` (a parameter's name, e.g.
    the sub-embeddings' ``k``; None: once). ``formula`` says it in words.
    """

    formula: str
    count: Callable[[int, int], int]
    times: str | None = None

    def at(self, batch_size: int, views: int, params: dict) -> tuple[float, str]:
        """The loss at this batch and how it comes about, e.g. ``(5.541, "ln(2B - 1) = ln(255)")``."""
        n, k = max(int(self.count(batch_size, views)), 1), params[self.times] if self.times else 1
        return k * math.log(n), f"{self.formula} = {f'{k:g} ln' if self.times else 'ln'}({n})"


# each anchor's softmax runs over its 2B - 1 other rows (two views), or over the B candidates of its row
TWO_VIEW_CONSTANT = ConstantLoss("ln(2B - 1)", lambda b, v: 2 * b - 1)
ROW_CONSTANT = ConstantLoss("ln(B)", lambda b, v: b)


@dataclass(frozen=True)
class Objective:
    """A training objective: its loss, the family that trains it, its data needs and parameters.

    - ``loss``: ``"module:function"``, the pure loss function (resolved with :func:`resolve_ref`
      only when a model is built); None for a family's composite loss (``clear_vae``), whose terms
      the family's class assembles from ``params``.
    - ``family``: one of :data:`FAMILIES`.
    - ``views``: the number of views per sample it needs (the method's ``views`` setting), or None
      for any number; ``view_layout``: how a contrastive objective receives them (:data:`VIEW_LAYOUTS`).
    - ``section``: the method's settings block its parameters are read from (``loss`` or ``vae``).
    - ``statistic``: an optional per-sample :class:`Statistic` logged per epoch.
    - ``capabilities``: what its trained model offers evaluations besides ``features``
      (``factors``: CLEAR's (mu_c, mu_s); ``slices``: the sub-embeddings; ``classifier``: a trained
      classifier head, the plain CNN's).
    - ``domain``: what it trains on (:data:`DOMAINS`), which picks the trainer.
    - ``constant_loss``: its loss when every sample is embedded alike (:class:`ConstantLoss`), which
      the collapse check of :mod:`clbench.health` compares the final loss with; None where no such
      reference exists (cross-entropy, VarCon, the VAE).
    """

    name: str
    family: str
    loss: str | None
    doc: str
    uses_labels: bool = False
    views: int | None = None
    view_layout: str | None = None
    section: str = "loss"
    params: tuple[Param, ...] = ()
    relations: tuple[Relation, ...] = ()
    statistic: Statistic | None = None
    capabilities: tuple[str, ...] = ()
    domain: str = "image"
    constant_loss: ConstantLoss | None = None
    _by_name: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"objective {self.name}: family must be one of {FAMILIES}, got {self.family!r}")
        if self.domain not in DOMAINS:
            raise ValueError(f"objective {self.name}: domain must be one of {DOMAINS}, got {self.domain!r}")
        if self.view_layout is not None and self.view_layout not in VIEW_LAYOUTS:
            raise ValueError(f"objective {self.name}: view_layout must be one of {VIEW_LAYOUTS}")
        if self.family == "contrastive" and (self.loss is None or self.view_layout is None):
            raise ValueError(f"objective {self.name}: a contrastive objective declares its loss and view_layout")
        if self.view_layout == "pair" and self.views != 2:
            raise ValueError(f"objective {self.name}: view_layout 'pair' needs views=2")
        if self.section not in ("loss", "vae"):
            raise ValueError(f"objective {self.name}: section must be 'loss' or 'vae'")
        object.__setattr__(self, "_by_name", {p.name: p for p in self.params})
        if len(self._by_name) != len(self.params):
            raise ValueError(f"objective {self.name}: duplicate parameter names")
        for r in self.relations:
            if r.key not in self._by_name:
                raise ValueError(f"objective {self.name}: relation on unknown parameter {r.key!r}")

    def param(self, name: str) -> Param:
        return self._by_name[name]

    @property
    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def loss_fn(self) -> Callable:
        """The loss function (imports its module)."""
        if self.loss is None:
            raise ValueError(f"objective {self.name} has a composite loss, built by its family {self.family!r}")
        return resolve_ref(self.loss)


OBJECTIVES: dict[str, Objective] = {}


def register_objective(obj: Objective) -> Objective:
    """Add ``obj`` to :data:`OBJECTIVES` (refusing a second objective of the same name); returns it."""
    if not isinstance(obj, Objective):
        raise TypeError(f"register_objective takes an Objective, got {type(obj).__name__}")
    if obj.name in OBJECTIVES and OBJECTIVES[obj.name] is not obj:
        raise ValueError(f"objective {obj.name!r} is already registered")
    OBJECTIVES[obj.name] = obj
    return obj


def register_by_domain(table: dict[str, str], domain: str, ref: str, role: str) -> None:
    """Add ``domain -> ref`` (``"module:function"``) to a per-domain registry (trainers, evaluators), refusing an
    unknown domain or a second function for one domain; ``role`` names the registry in the messages."""
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    if table.get(domain, ref) != ref:
        raise ValueError(f"domain {domain!r} already has the {role} {table[domain]}")
    table[domain] = ref


def resolve_ref(ref: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"a reference is 'module:attribute', got {ref!r}")
    return getattr(importlib.import_module(module), attr)


def _objective_of(spec: dict, where: str) -> Objective:
    name = spec.get("objective") if isinstance(spec, dict) else None
    if name is None:
        raise ConfigError(f"{where}.objective", f"missing; known: {', '.join(sorted(OBJECTIVES))}")
    if name not in OBJECTIVES:
        raise ConfigError(f"{where}.objective", f"unknown objective {name!r}; known: {', '.join(sorted(OBJECTIVES))}")
    return OBJECTIVES[name]


def resolved_params(spec: dict) -> dict[str, Any]:
    """The objective's parameters for method ``spec``: its ``loss:`` (or ``vae:``) block over the defaults."""
    obj = _objective_of(spec, "method")
    return {**obj.defaults, **(spec.get(obj.section) or {})}


# what one stage's model offers and the concatenation of a multistage method's stages does not: a trained
# classifier head belongs to one stage
STAGE_LOCAL_CAPABILITIES = frozenset({"classifier"})


def method_capabilities(spec: dict) -> frozenset[str]:
    """What the trained model of method ``spec`` offers evaluations besides ``features``: its
    objective's capabilities, plus ``stages`` for a multistage (``mcl:``) method's combined model."""
    obj = _objective_of(spec, "method")
    if spec.get("mcl") is None:
        return frozenset(obj.capabilities)
    return frozenset(obj.capabilities) - STAGE_LOCAL_CAPABILITIES | {"stages"}


def check_method(spec: dict, where: str) -> None:
    """Refuse a method's objective settings, raising :class:`ConfigError` at the dotted key.

    ``where`` is the method's own key (``"methods.varcon"``,
    ``"experiments.x.method_overrides.varcon"``). Refused: a missing or unknown objective, an
    unknown parameter, a wrong type, a value out of bounds, a violated relation, a settings block
    the objective does not read, and a ``views`` count the objective cannot use.
    """
    obj = _objective_of(spec, where)
    for section in ("loss", "vae"):
        block = spec.get(section)
        if block is None:
            continue
        if not isinstance(block, dict):
            raise ConfigError(f"{where}.{section}", f"must be a mapping, got {block!r}")
        if section != obj.section and block:
            raise ConfigError(
                f"{where}.{section}",
                f"objective {obj.name} reads no {section} settings"
                + (f" (its parameters go under {obj.section}:)" if obj.params else ""),
            )
    given = spec.get(obj.section) or {}
    known = ", ".join(sorted(obj._by_name)) or "none"
    for key, value in given.items():
        at = f"{where}.{obj.section}.{key}"
        if key not in obj._by_name:
            raise ConfigError(at, f"unknown parameter of objective {obj.name}; known: {known}")
        problem = obj.param(key).problem(value)
        if problem is not None:
            raise ConfigError(at, problem)
    params = {**obj.defaults, **given}
    for rel in obj.relations:
        problem = rel.check(params, spec)
        if problem is not None:
            raise ConfigError(f"{where}.{obj.section}.{rel.key}", problem)
    views = spec.get("views", 1)
    if obj.views is not None and views != obj.views:
        raise ConfigError(f"{where}.views", f"objective {obj.name} needs views: {obj.views}, got {views!r}")


def _fmt(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _positive(name: str, doc: str, default: float) -> Param:
    return Param(name, "number", default, doc, minimum=0, exclusive_minimum=True)


_SIMILARITY = Param("similarity", "choice", "cosine", "similarity of two embeddings", choices=("cosine", "dot", "l2"))


def _epsilon_below_temperature(p: dict, spec: dict) -> str | None:
    # t2 = (t - epsilon) + 2 epsilon p(y|z) must stay > 0 for every confidence p in [0, 1]
    if p["epsilon"] < p["temperature"]:
        return None
    return (
        f"must be < temperature ({_fmt(p['temperature'])}), got {_fmt(p['epsilon'])}: the adaptive "
        "temperature t2 = (temperature - epsilon) + 2 epsilon p(y|z) would reach 0 or below"
    )


def _k_divides_projection(p: dict, spec: dict) -> str | None:
    d = spec.get("projection_dim", 128)
    if isinstance(d, int) and d % p["k"] == 0:
        return None
    return f"must divide projection_dim ({d}) into equal slices, got {p['k']}"


def _k_for_regularizer(p: dict, spec: dict) -> str | None:
    if p["regularizer"] == "none" or p["k"] >= 2:
        return None
    return f"must be >= 2 for regularizer {p['regularizer']} (it couples different slices), got {p['k']}"


def _adnce_params(temperature: float, mu: float) -> tuple[Param, ...]:
    """ADNCE's parameters in every domain (images, graphs, sentences), with that domain's defaults."""
    return (_positive("temperature", "softmax temperature t", temperature),
            Param("mu", "number", mu, "centre of the Gaussian weighting of the similarities"),
            _positive("sigma", "width of the Gaussian weighting", 1.0))


register_objective(Objective(
    name="cross_entropy",
    family="classifier",
    loss="torch.nn.functional:cross_entropy",
    doc="encoder + linear classifier trained with cross-entropy on the labels (the plain CNN baseline)",
    uses_labels=True,
    capabilities=("classifier",),
))

register_objective(Objective(
    name="info_nce",
    family="contrastive",
    loss="clbench.losses.contrastive:info_nce",
    doc="SimCLR's NT-Xent on two views of each sample",
    views=2,
    view_layout="pair",
    params=(_positive("temperature", "softmax temperature t", 0.5), _SIMILARITY),
    constant_loss=TWO_VIEW_CONSTANT,
))

register_objective(Objective(
    name="adnce",
    family="contrastive",
    loss="clbench.losses.contrastive:adnce",
    doc="ADNCE (CL-DRO): InfoNCE with detached Gaussian weights on the negatives",
    views=2,
    view_layout="pair",
    params=(*_adnce_params(temperature=0.5, mu=0.7), _SIMILARITY),
    constant_loss=TWO_VIEW_CONSTANT,
))

register_objective(Objective(
    name="supcon",
    family="contrastive",
    loss="clbench.losses.contrastive:supcon",
    doc="supervised contrastive loss: every sample of the same class is a positive",
    uses_labels=True,
    view_layout="grouped",
    params=(_positive("temperature", "softmax temperature t", 0.1), _SIMILARITY),
    constant_loss=ConstantLoss("ln(BV - 1)", lambda b, v: b * v - 1),
))

register_objective(Objective(
    name="varcon",
    family="contrastive",
    loss="clbench.losses.varcon:varcon",
    doc="VarCon: KL to a confidence-tempered target plus log-posterior over per-batch class centroids",
    uses_labels=True,
    view_layout="flat",
    params=(
        _positive("temperature", "temperature t of the class posterior", 0.1),
        Param("epsilon", "number", 0.02, "adaptation range of the target temperature t2", minimum=0),
    ),
    relations=(Relation("epsilon", "epsilon < temperature", _epsilon_below_temperature),),
    statistic=Statistic("varcon_t2", "clbench.losses.varcon:varcon_temperature",
                        "per-sample adaptive temperature t2 = (t - epsilon) + 2 epsilon p(y|z)"),
))

register_objective(Objective(
    name="clear_vae",
    family="clear_vae",
    loss=None,
    doc="CLEAR-VAE: reconstruction + annealed KL + SNN on content means + a style term (PS-SNN or an MI penalty)",
    uses_labels=True,
    section="vae",
    capabilities=("factors",),
    params=(
        Param("z_content", "integer", 8, "content latent size", minimum=1),
        Param("z_style", "integer", 8, "style latent size", minimum=1),
        Param("width", "integer", 32, "channel width of encoder and decoder", minimum=1),
        Param("architecture", "choice", "conv3",
              "encoder/decoder: conv3 (three 3x3 stride-2 convs, 28 px) or conv5 (five 4x4 stride-2 convs, 64 px)",
              choices=("conv3", "conv5")),
        Param("beta", "number", 0.125, "KL weight reached by the logistic annealer", minimum=0),
        Param("alpha", "number", 100.0, "weight of the SNN / PS-SNN terms", minimum=0),
        _positive("temperature", "temperature of the SNN / PS-SNN terms", 0.1),
        Param("similarity", "choice", "cosine", "similarity of the SNN / PS-SNN terms", choices=("cosine", "l2")),
        Param("content", "choice", "snn", "content term on the content means", choices=("snn", "none")),
        Param("style", "choice", "ps_snn", "style term: PS-SNN on the style means, the SNN on them negated "
              "(neg_snn: the official clear-neg ablation), or an MI penalty between z_c and z_s",
              choices=("ps_snn", "neg_snn", "tc", "club_sample", "l1out", "none")),
        Param("penalty_weight", "number", 1.0, "weight of the MI penalty (style tc, club_sample, l1out)", minimum=0),
        Param("l1out_form", "choice", "official",
              "the L1Out bound (style l1out): as the official L1OutUB computes it (its broadcast diagonal mask "
              "makes it the all-pairs CLUB mean) or Poole et al.'s leave-one-out log-sum-exp as written",
              choices=("official", "leave_one_out")),
        Param("estimator_steps", "integer", 5, "updates of the MI estimator per training step", minimum=1),
        _positive("estimator_lr", "learning rate of the MI estimator's Adam", 1e-3),
        Param("estimator_latents", "choice", "step",
              "what the MI estimator trains on: the training step's detached latents (step), or latents "
              "drawn afresh from the updated VAE for each estimator step (resampled)",
              choices=("step", "resampled")),
        Param("anneal_loc", "number", 0.0, "optimiser step at which the KL weight reaches beta / 2"),
        _positive("anneal_scale", "steps over which the KL weight rises (logistic scale)", 1.0),
    ),
))

register_objective(Objective(
    name="sub_embedding",
    family="sub_embedding",
    loss="clbench.losses.subembed:sub_info_max",
    doc="InfoMax on K sub-embeddings (slices) of view pairs, plus a regulariser between slices",
    views=2,
    capabilities=("slices",),
    params=(
        Param("k", "integer", 2, "number of slices of the projection", minimum=1),
        _positive("temperature", "softmax temperature t", 0.5),
        Param("regularizer", "choice", "none", "regulariser between slices",
              choices=("none", "info_min", "ortho", "p_ortho", "hess")),
        Param("weight", "number", 1.0, "weight lambda of the regulariser", minimum=0),
    ),
    relations=(
        Relation("k", "k divides projection_dim", _k_divides_projection),
        Relation("k", "k >= 2 with a regulariser", _k_for_regularizer),
    ),
    constant_loss=ConstantLoss("k ln(2B - 1)", lambda b, v: 2 * b - 1, times="k"),
))

# --------------------------------------------------------------------------------------------------
# graphs (GraphCL-style, ADNCE's TU experiments): trained by clbench.train.graph on graph datasets;
# one direction, original graph vs the batch's augmented views, the positive not in the denominator

register_objective(Objective(
    name="graph_info_nce",
    family="graph",
    loss="clbench.losses.graph_contrastive:graph_info_nce",
    doc="GraphCL: each graph against the batch's augmented views, -log(pos / mean(neg))",
    domain="graph",
    capabilities=("graphs",),
    params=(_positive("temperature", "softmax temperature t", 0.2),),
    constant_loss=ConstantLoss("ln 1 (positive = mean negative)", lambda b, v: 1),
))

register_objective(Objective(
    name="graph_adnce",
    family="graph",
    loss="clbench.losses.graph_contrastive:graph_adnce",
    doc="ADNCE on graphs: GraphCL's loss with detached Gaussian weights on the negatives",
    domain="graph",
    capabilities=("graphs",),
    params=_adnce_params(temperature=0.2, mu=0.7),
    constant_loss=ConstantLoss("ln 1 (positive = mean negative)", lambda b, v: 1),
))

# sentence embeddings (unsupervised, SimCSE-style): two dropout passes of a transformer encoder;
# trained by clbench.train.sentence, scored on STS by clbench.evaluate.sts

register_objective(Objective(
    name="simcse",
    family="sentence",
    loss="clbench.losses.sentence:simcse",
    doc="unsupervised SimCSE: InfoNCE over the B x B cosine similarities of two dropout passes",
    capabilities=("sentences",),
    domain="text",
    params=(_positive("temperature", "softmax temperature t", 0.05),),
    constant_loss=ROW_CONSTANT,
))

register_objective(Objective(
    name="adnce_sentence",
    family="sentence",
    loss="clbench.losses.sentence:adnce_sentence",
    doc="ADNCE on sentences: SimCSE's InfoNCE with detached Gaussian weights over each whole row, positive included",
    capabilities=("sentences",),
    domain="text",
    params=_adnce_params(temperature=0.07, mu=0.4),
    constant_loss=ROW_CONSTANT,
))

# image-caption objectives (domain image_text, trained by clbench.train.clip_loop)

register_objective(Objective(
    name="clip",
    family="clip",
    loss="clbench.losses.clip:clip_loss",
    doc="CLIP's symmetric image-text contrastive loss, learned temperature (an open_clip model, clip: block)",
    domain="image_text",
    capabilities=("text",),
    params=(
        Param("max_logit_scale", "number", 100.0, "upper clamp of exp(logit_scale), the inverse temperature",
              minimum=1),
    ),
    constant_loss=ROW_CONSTANT,
))

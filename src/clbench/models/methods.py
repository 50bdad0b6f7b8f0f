"""Method families: the models each objective trains, built from the objective registry.

A method model (a :class:`Method`) has

- ``loss_terms(views, labels) -> dict[str, Tensor]``: every loss term of one step, ``"loss"`` being
  the total that is back-propagated (views: float ``[B, V, C, H, W]``); a term with more than one
  element is a per-sample statistic whose distribution the loop logs;
- ``features(x) -> Tensor``: the frozen representation used by every evaluation;
- ``capabilities``: what else it offers evaluations (``factors``, ``slices``, ``stages``);
- optionally parameters of its own (an MI estimator) with their own optimiser settings, trained by
  the loop after each step (:meth:`Method.auxiliary_parameters`).

:func:`build_method` finds the family of a spec's objective in :data:`clbench.objectives.OBJECTIVES`
and the family's builder in :data:`METHOD_FAMILIES`; there is one training loop and no per-method
copy of it.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from clbench.models.collective import gather, gather_labels
from clbench.models.encoders import build_encoder
from clbench.models.heads import classifier_head, method_projection_head
from clbench.objectives import OBJECTIVES, STAGE_LOCAL_CAPABILITIES, check_method, resolve_ref, resolved_params

__all__ = ["METHOD_FAMILIES", "Method", "build_method", "register_family"]

# family name -> builder(spec, in_channels, num_classes, image_size) -> Method, or its "module:builder" reference
METHOD_FAMILIES: dict[str, Callable[..., "Method"] | str] = {}


def register_family(name: str):
    """Register a method family's builder (a :class:`Method` subclass, or a function) under ``name``."""

    def register(builder):
        if name in METHOD_FAMILIES and METHOD_FAMILIES[name] is not builder:
            raise ValueError(f"method family {name!r} is already registered")
        METHOD_FAMILIES[name] = builder
        return builder

    return register


def build_method(spec: dict, in_channels: int, num_classes: int, image_size: int = 28) -> "Method":
    """The untrained model of method ``spec`` (its objective's family), for images of this shape.

    ``spec["objective"]`` names an objective of the registry; a model that is not trained by an
    objective of its own (MCL's stage concatenation, ``mcl_concat``) is named by its family.
    """
    objective = spec["objective"]
    if objective in OBJECTIVES:
        check_method(spec, "method")
        family = OBJECTIVES[objective].family
    elif objective in METHOD_FAMILIES:
        family = objective
    else:
        raise ValueError(f"unknown objective {objective!r}; known: {', '.join(sorted(OBJECTIVES))}")
    builder = METHOD_FAMILIES[family]
    if isinstance(builder, str):  # a family registered by reference
        builder = resolve_ref(builder)
    return builder(spec, in_channels, num_classes, image_size)


class Method(nn.Module):
    """The interface the training loop and the evaluations use (see the module docstring)."""

    capabilities: frozenset[str] = frozenset()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss_terms(self, views: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def auxiliary_parameters(self) -> list[nn.Parameter]:
        """Parameters the loop trains with their own optimiser (none by default)."""
        return []

    def auxiliary_optimizer_settings(self) -> dict:
        """``{"lr": ..., "steps": ...}``: Adam's learning rate for :meth:`auxiliary_parameters` and
        how many of its steps follow each training step."""
        raise NotImplementedError(f"{type(self).__name__} has no auxiliary parameters")

    def auxiliary_loss(self) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no auxiliary parameters")


@register_family("classifier")
class Classifier(Method):
    """Encoder + classifier trained with cross-entropy (the plain CNN baseline).

    ``classifier: {kind: linear}`` (default) is one linear layer on the encoder's features;
    ``{kind: mlp, hidden_dim: 256}`` is Linear - BN - ReLU - Linear, the official CLEAR baseline's
    head (on a ``small_cnn`` with ``pool: flatten``). ``features`` is what the last linear layer
    reads: the encoder's output, or the MLP's hidden activations, so a linear probe on them can
    recover the trained classifier. ``logits`` is the trained classifier itself (capability ``classifier``).
    """

    capabilities = frozenset({"classifier"})

    def __init__(self, spec: dict, in_channels: int, num_classes: int, image_size: int = 28):
        super().__init__()
        head = {"kind": "linear", "hidden_dim": 256, **spec.get("classifier", {})}
        self.encoder = build_encoder(spec.get("encoder", {}), in_channels, image_size)
        self.classifier = classifier_head(self.encoder.out_dim, num_classes, head["kind"], head["hidden_dim"])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        return self.classifier[:-1](h) if isinstance(self.classifier, nn.Sequential) else h

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(x))

    def loss_terms(self, views: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        b, v = views.shape[:2]
        logits = self.classifier(self.encoder(views.flatten(0, 1)))
        targets = labels.repeat_interleave(v)
        ce = F.cross_entropy(logits, targets)
        acc = (logits.argmax(1) == targets).float().mean()
        return {"loss": ce, "cross_entropy": ce, "train_acc": acc.detach()}


def _pair(z: torch.Tensor, labels: torch.Tensor) -> tuple:
    return z[:, 0], z[:, 1]


def _grouped(z: torch.Tensor, labels: torch.Tensor) -> tuple:
    return z, labels


def _flat(z: torch.Tensor, labels: torch.Tensor) -> tuple:
    return z.flatten(0, 1), labels.repeat_interleave(z.shape[1])


# the positional arguments a contrastive loss receives, per clbench.objectives.VIEW_LAYOUTS
VIEW_ARGUMENTS = {"pair": _pair, "grouped": _grouped, "flat": _flat}


@register_family("contrastive")
class Contrastive(Method):
    """Encoder + projector (:func:`~clbench.models.heads.method_projection_head`), trained with one
    contrastive objective of the registry.

    The objective's ``view_layout`` says how it receives the projections ``z [B, V, D]`` (and the
    labels); its optional per-sample ``statistic`` is logged as one more loss term.
    """

    def __init__(self, spec: dict, in_channels: int, num_classes: int, image_size: int = 28):
        super().__init__()
        objective = OBJECTIVES[spec["objective"]]
        if objective.views is not None and spec.get("views", 1) != objective.views:
            raise ValueError(f"objective {objective.name!r} needs views: {objective.views}")
        self.objective = objective.name
        self.loss_fn = objective.loss_fn()
        self.loss_kwargs = resolved_params(spec)
        self.arguments = VIEW_ARGUMENTS[objective.view_layout]
        self.statistic = None
        if objective.statistic is not None:
            self.statistic = (objective.statistic.name, resolve_ref(objective.statistic.fn))
        self.encoder = build_encoder(spec.get("encoder", {}), in_channels)
        self.projector = method_projection_head(spec, self.encoder.out_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def loss_terms(self, views: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        b, v = views.shape[:2]
        # under torchrun the objective sees the global batch (see clbench.models.collective)
        z = gather(self.projector(self.encoder(views.flatten(0, 1))).view(b, v, -1))
        args = self.arguments(z, gather_labels(labels))
        loss = self.loss_fn(*args, **self.loss_kwargs)
        terms = {"loss": loss, self.objective: loss}
        if self.statistic is not None:
            name, fn = self.statistic
            terms[name] = fn(*args, **self.loss_kwargs)
        return terms


@register_family("clear_vae")
class ClearVAEMethod(Method):
    """CLEAR-VAE and its ablations, selected by ``vae.content`` and ``vae.style``.

    loss = sum_pixels (x - x_hat)^2 + a(t) (KL_c + KL_s) + alpha * content(mu_c, y) + style term, with
    a(t) = beta / (1 + exp(-(t - loc) / scale)) over optimiser steps t (the official code's logistic annealer).
    content: ``snn`` | ``none``. style: ``ps_snn`` (alpha * ps_snn(mu_s, y)), ``neg_snn`` (-alpha *
    snn(mu_s, y): the official code's clear-neg ablation, ``ps=False``), ``tc`` | ``club_sample`` |
    ``l1out`` (``penalty_weight`` * an MI penalty between z_c and z_s whose estimator is trained
    ``estimator_steps`` times per step on detached latents, with Adam at ``estimator_lr``: the step's own
    latents with ``estimator_latents: step``, or, as the official trainers do, latents drawn afresh
    for each estimator step from the updated VAE with ``resampled``), or ``none``.
    beta-VAE = none/none, SNN-only = snn/none, CLEAR-neg = snn/neg_snn, CLEAR-PS = snn/ps_snn. ``features`` is mu_c; ``factors``
    gives (mu_c, mu_s), ``latent_params`` the means and log-variances of q(z|x) (capability
    ``factors`` covers both). The settings and their defaults are the ``clear_vae`` objective's parameters.
    """

    capabilities = frozenset({"factors"})

    def __init__(self, spec: dict, in_channels: int, num_classes: int, image_size: int = 28):
        super().__init__()
        from clbench.models.clear_vae import ClearVAE

        v = resolved_params(spec)
        self.cfg = v
        self.vae = ClearVAE(in_channels, image_size, v["z_content"], v["z_style"], v["width"], v["architecture"])
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.estimator = None
        if v["style"] in ("tc", "club_sample", "l1out"):
            from clbench.models.mi_estimators import build_mi_estimator

            self.estimator = build_mi_estimator(v["style"], v["z_content"], v["z_style"], l1out_form=v["l1out_form"])
        self._latents: tuple[torch.Tensor, torch.Tensor] | None = None
        self._images: torch.Tensor | None = None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x)[0]

    def factors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu_c, _, mu_s, _ = self.vae.encode(x)
        return mu_c, mu_s

    def latent_params(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(mu_c, logvar_c, mu_s, logvar_s)`` of q(z|x)."""
        return self.vae.encode(x)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The decoded means of q(z|x): the VAE's reconstruction of ``x`` (the run-health check reads it)."""
        mu_c, _, mu_s, _ = self.vae.encode(x)
        return self.vae.decode(mu_c, mu_s)

    def anneal(self) -> float:
        v = self.cfg
        return v["beta"] / (1.0 + math.exp(-(float(self.step) - v["anneal_loc"]) / v["anneal_scale"]))

    def loss_terms(self, views: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        import clbench.losses as losses
        from clbench.models.clear_vae import gaussian_kl

        v = self.cfg
        x = views[:, 0]
        x_hat, (mu_c, lv_c, z_c), (mu_s, lv_s, z_s) = self.vae(x)
        recon = (x_hat.float() - x.float()).pow(2).flatten(1).sum(1).mean()
        kl_c, kl_s = gaussian_kl(mu_c.float(), lv_c.float()), gaussian_kl(mu_s.float(), lv_s.float())
        a = self.anneal()
        terms = {"reconstruction": recon, "kl_content": kl_c, "kl_style": kl_s}
        loss = recon + a * (kl_c + kl_s)
        sim = dict(temperature=v["temperature"], similarity=v["similarity"])
        if v["content"] == "snn" or v["style"] in ("ps_snn", "neg_snn"):
            all_labels = gather_labels(labels)
        if v["content"] == "snn":
            terms["snn_content"] = losses.snn(gather(mu_c), all_labels, **sim)
            loss = loss + v["alpha"] * terms["snn_content"]
        if v["style"] == "ps_snn":
            terms["ps_snn_style"] = losses.ps_snn(gather(mu_s), all_labels, **sim)
            loss = loss + v["alpha"] * terms["ps_snn_style"]
        elif v["style"] == "neg_snn":  # the official clear-neg ablation: same-label style means pushed apart
            terms["snn_style"] = losses.snn(gather(mu_s), all_labels, **sim)
            loss = loss - v["alpha"] * terms["snn_style"]
        elif self.estimator is not None:
            penalty = {"tc": losses.tc_penalty, "club_sample": losses.club_sample,
                       "l1out": partial(losses.l1out, form=v["l1out_form"])}[v["style"]]
            terms[f"{v['style']}_penalty"] = penalty(self.estimator, z_c, z_s)
            loss = loss + v["penalty_weight"] * terms[f"{v['style']}_penalty"]
            self._latents = (z_c.detach(), z_s.detach())
            self._images = x.detach() if v["estimator_latents"] == "resampled" else None
        if self.training and torch.is_grad_enabled():
            self.step += 1
        terms["kl_weight"] = torch.tensor(a)
        return {"loss": loss, **terms}

    def auxiliary_parameters(self) -> list[nn.Parameter]:
        return list(self.estimator.parameters()) if self.estimator is not None else []

    def auxiliary_optimizer_settings(self) -> dict:
        return {"lr": self.cfg["estimator_lr"], "steps": self.cfg["estimator_steps"]}

    def auxiliary_loss(self) -> torch.Tensor:
        if self._images is None:
            z_c, z_s = self._latents
        else:  # the official trainers: fresh latents of the same batch from the VAE as just updated
            from clbench.models.clear_vae import sample

            with torch.no_grad():
                mu_c, lv_c, mu_s, lv_s = self.vae.encode(self._images)
                z_c, z_s = sample(mu_c.float(), lv_c.float()), sample(mu_s.float(), lv_s.float())
        return self.estimator.learning_loss(z_c, z_s)


@register_family("sub_embedding")
class SubEmbedding(Method):
    """The poster's sub-embedding contrastive learner: encoder + projector, embedding split into K slices.

    loss = sub_info_max(z1, z2, k) + lambda * R, with R one of ``none``, ``info_min``, ``ortho``,
    ``p_ortho`` (ortho with a fixed random permutation) or ``hess``; (z1, z2) are the projections of a
    view pair that varies one factor. ``features`` is the encoder output r; slices of the projection
    are r0, r1 (``slices``).
    """

    capabilities = frozenset({"slices"})

    def __init__(self, spec: dict, in_channels: int, num_classes: int, image_size: int = 28):
        super().__init__()
        self.cfg = resolved_params(spec)
        self.info_max = OBJECTIVES[spec["objective"]].loss_fn()
        self.encoder = build_encoder(spec.get("encoder", {}), in_channels)
        self.projector = method_projection_head(spec, self.encoder.out_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def slices(self, x: torch.Tensor) -> list[torch.Tensor]:
        from clbench.losses import split_slices

        return list(split_slices(self.projector(self.encoder(x)), self.cfg["k"]).unbind(1))

    def loss_terms(self, views: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        import clbench.losses as losses

        c = self.cfg
        b = views.shape[0]
        z = gather(self.projector(self.encoder(views[:, :2].flatten(0, 1))).view(b, 2, -1))
        z1, z2 = z[:, 0], z[:, 1]
        info_max = self.info_max(z1, z2, k=c["k"], temperature=c["temperature"])
        terms = {"sub_info_max": info_max}
        reg = c["regularizer"]
        if reg == "info_min":
            terms["r_info_min"] = losses.r_info_min(torch.cat([z1, z2]), k=c["k"], temperature=c["temperature"])
        elif reg in ("ortho", "p_ortho"):
            terms["r_ortho"] = losses.r_ortho(torch.cat([z1, z2]), k=c["k"], permute=reg == "p_ortho")
        elif reg == "hess":
            terms["r_hess"] = losses.r_hess(z1, z2, k=c["k"], temperature=c["temperature"])
        elif reg != "none":
            raise ValueError(f"unknown regularizer {reg!r}")
        loss = info_max + c["weight"] * sum(v for k, v in terms.items() if k != "sub_info_max")
        return {"loss": loss, **terms}


class StageConcat(Method):
    """The MCL representation: the stages' features concatenated, then L2-normalised (as the
    official evaluation, ``MMVP.ipynb`` of MajorDavidZhang/MCL: ``torch.cat`` of the stages'
    ``encode_image`` outputs, then divided by its norm)."""

    capabilities = frozenset({"stages"})

    def __init__(self, stages: list[nn.Module]):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        # what every stage offers, the concatenation offers too (e.g. CLIP stages' text features)
        shared = frozenset.intersection(*(frozenset(m.capabilities) for m in stages))
        self.capabilities = frozenset({"stages"}) | shared - STAGE_LOCAL_CAPABILITIES

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(torch.cat([m.features(x) for m in self.stages], 1), dim=1)

    def stage_features(self, x: torch.Tensor, stage: int) -> torch.Tensor:
        return self.stages[stage].features(x)


@register_family("mcl_concat")
def _stage_concat(spec: dict, in_channels: int, num_classes: int, image_size: int = 28) -> StageConcat:
    """MCL's combined model (``{"objective": "mcl_concat", "stage_specs": [...]}``): one model per stage."""
    return StageConcat([build_method(s, in_channels, num_classes, image_size) for s in spec["stage_specs"]])


@register_family("graph")
def _graph_method(spec: dict, in_channels: int, num_classes: int, image_size: int = 28) -> Method:
    """GIN encoder + projector of the graph objectives (clbench.models.graph); in_channels = node features."""
    from clbench.models.graph import GraphContrastive

    return GraphContrastive(spec, in_channels, num_classes, image_size)


@register_family("sentence")
def _sentence_encoder(spec: dict, in_channels: int, num_classes: int, image_size: int = 28) -> nn.Module:
    """A sentence family's model (clbench.models.sentence): the pretrained transformer its spec names;
    the image shape does not apply."""
    from clbench.models.sentence import SentenceEncoder

    return SentenceEncoder.pretrained(spec)


# families whose builder lives in a module of its own, by reference ("module:builder"): imported when a
# model of theirs is first built, so this module imports none of them
METHOD_FAMILIES["clip"] = "clbench.models.clip:ClipMethod"

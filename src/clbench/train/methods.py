"""Method families as modules with one interface the training loop drives.

A method module has
- ``loss_terms(views, labels) -> dict[str, Tensor]``: every loss term of one step, ``"loss"`` being
  the total that is back-propagated (views: float ``[B, V, C, H, W]``);
- ``features(x) -> Tensor``: the frozen representation used by every evaluation.

Which family, objective, encoder and head a method uses is configuration (see the config schema);
there is one loop and no per-method copy of it.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from clbench.models import build_encoder, classifier_head, projection_head
from clbench.train import distributed

CONTRASTIVE_OBJECTIVES = {
    # objective -> (loss function name in clbench.losses, uses labels, needs two views)
    "info_nce": ("info_nce", False, True),
    "adnce": ("adnce", False, True),
    "supcon": ("supcon", True, False),
    "varcon": ("varcon", True, False),
}


class Classifier(nn.Module):
    """Encoder + classifier trained with cross-entropy (the plain CNN baseline).

    ``classifier: {kind: linear}`` (default) is one linear layer on the encoder's features;
    ``{kind: mlp, hidden_dim: 256}`` is Linear - BN - ReLU - Linear, the official CLEAR baseline's
    head (on a ``small_cnn`` with ``pool: flatten``). ``features`` is what the last linear layer
    reads: the encoder's output, or the MLP's hidden activations, so a linear probe on them can
    recover the trained classifier.
    """

    def __init__(self, spec: dict, in_channels: int, num_classes: int, image_size: int | None = None):
        super().__init__()
        head = {"kind": "linear", "hidden_dim": 256, **spec.get("classifier", {})}
        self.encoder = build_encoder(spec.get("encoder", {}), in_channels, image_size)
        self.classifier = classifier_head(self.encoder.out_dim, num_classes, head["kind"], head["hidden_dim"])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        return self.classifier[:-1](h) if isinstance(self.classifier, nn.Sequential) else h

    def loss_terms(self, views: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        b, v = views.shape[:2]
        logits = self.classifier(self.encoder(views.flatten(0, 1)))
        targets = labels.repeat_interleave(v)
        ce = F.cross_entropy(logits, targets)
        acc = (logits.argmax(1) == targets).float().mean()
        return {"loss": ce, "cross_entropy": ce, "train_acc": acc.detach()}


class Contrastive(nn.Module):
    """Encoder + SimCLR projector, trained with one contrastive objective of :mod:`clbench.losses`."""

    def __init__(self, spec: dict, in_channels: int, num_classes: int):
        super().__init__()
        import clbench.losses as losses

        fn_name, self.uses_labels, self.needs_pair = CONTRASTIVE_OBJECTIVES[spec["objective"]]
        if self.needs_pair and spec.get("views", 1) != 2:
            raise ValueError(f"objective {spec['objective']!r} needs views: 2")
        self.objective = spec["objective"]
        self.loss_fn = getattr(losses, fn_name)
        self.loss_kwargs = dict(spec.get("loss", {}))
        self.encoder = build_encoder(spec.get("encoder", {}), in_channels)
        self.projector = projection_head(self.encoder.out_dim, spec.get("projection_dim", 128))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def loss_terms(self, views: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        b, v = views.shape[:2]
        # under torchrun the objective sees the global batch (see clbench.train.distributed)
        z = distributed.gather(self.projector(self.encoder(views.flatten(0, 1))).view(b, v, -1))
        labels = distributed.gather_labels(labels)
        if self.needs_pair:
            loss = self.loss_fn(z[:, 0], z[:, 1], **self.loss_kwargs)
        elif self.objective == "supcon":
            loss = self.loss_fn(z, labels, **self.loss_kwargs)
        else:
            loss = self.loss_fn(z.flatten(0, 1), labels.repeat_interleave(v), **self.loss_kwargs)
        terms = {"loss": loss, self.objective: loss}
        if self.objective == "varcon":
            # a per-sample vector: the loop logs its distribution per epoch
            from clbench.losses import varcon_temperature

            terms["varcon_t2"] = varcon_temperature(z.flatten(0, 1), labels.repeat_interleave(v), **self.loss_kwargs)
        return terms


class ClearVAEMethod(nn.Module):
    """CLEAR-VAE and its ablations, selected by ``vae.content`` and ``vae.style``.

    loss = sum_pixels (x - x_hat)^2 + a(t) (KL_c + KL_s) + alpha * content(mu_c, y) + style term, with
    a(t) = beta / (1 + exp(-(t - loc) / scale)) over optimiser steps t (the official code's logistic annealer).
    content: ``snn`` | ``none``. style: ``ps_snn`` (alpha * ps_snn(mu_s, y)), ``tc`` | ``club_sample`` |
    ``l1out`` (``penalty_weight`` * an MI penalty between z_c and z_s whose estimator is trained
    ``estimator_steps`` times per step on detached latents), or ``none``. beta-VAE = none/none,
    SNN-only = snn/none, CLEAR-PS = snn/ps_snn. ``features`` is mu_c; ``factors`` gives (mu_c, mu_s);
    ``latent_params`` the means and log-variances of q(z|x).
    """

    def __init__(self, spec: dict, in_channels: int, num_classes: int, image_size: int):
        super().__init__()
        from clbench.models.clear_vae import ClearVAE

        v = {**CLEAR_DEFAULTS, **spec.get("vae", {})}
        self.cfg = v
        self.vae = ClearVAE(in_channels, image_size, v["z_content"], v["z_style"], v["width"])
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.estimator = None
        if v["style"] in ("tc", "club_sample", "l1out"):
            from clbench.models.mi_estimators import build_mi_estimator

            self.estimator = build_mi_estimator(v["style"], v["z_content"], v["z_style"])
        self._latents: tuple[torch.Tensor, torch.Tensor] | None = None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x)[0]

    def factors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu_c, _, mu_s, _ = self.vae.encode(x)
        return mu_c, mu_s

    def latent_params(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(mu_c, logvar_c, mu_s, logvar_s)`` of q(z|x)."""
        return self.vae.encode(x)

    def anneal(self) -> float:
        v = self.cfg
        return v["beta"] / (1.0 + math.exp(-(float(self.step) - v["anneal_loc"]) / v["anneal_scale"]))

    def loss_terms(self, views: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        import clbench.losses as losses

        v = self.cfg
        x = views[:, 0]
        x_hat, (mu_c, lv_c, z_c), (mu_s, lv_s, z_s) = self.vae(x)
        from clbench.models.clear_vae import gaussian_kl

        recon = (x_hat.float() - x.float()).pow(2).flatten(1).sum(1).mean()
        kl_c, kl_s = gaussian_kl(mu_c.float(), lv_c.float()), gaussian_kl(mu_s.float(), lv_s.float())
        a = self.anneal()
        terms = {"reconstruction": recon, "kl_content": kl_c, "kl_style": kl_s}
        loss = recon + a * (kl_c + kl_s)
        sim = dict(temperature=v["temperature"], similarity=v["similarity"])
        if v["content"] == "snn" or v["style"] == "ps_snn":
            all_labels = distributed.gather_labels(labels)
        if v["content"] == "snn":
            terms["snn_content"] = losses.snn(distributed.gather(mu_c), all_labels, **sim)
            loss = loss + v["alpha"] * terms["snn_content"]
        if v["style"] == "ps_snn":
            terms["ps_snn_style"] = losses.ps_snn(distributed.gather(mu_s), all_labels, **sim)
            loss = loss + v["alpha"] * terms["ps_snn_style"]
        elif self.estimator is not None:
            penalty = {"tc": losses.tc_penalty, "club_sample": losses.club_sample, "l1out": losses.l1out}[v["style"]]
            terms[f"{v['style']}_penalty"] = penalty(self.estimator, z_c, z_s)
            loss = loss + v["penalty_weight"] * terms[f"{v['style']}_penalty"]
            self._latents = (z_c.detach(), z_s.detach())
        if self.training and torch.is_grad_enabled():
            self.step += 1
        terms["kl_weight"] = torch.tensor(a)
        return {"loss": loss, **terms}

    # The loop trains these parameters with their own optimiser, ``auxiliary_steps`` times per step.
    def auxiliary_parameters(self) -> list[nn.Parameter]:
        return list(self.estimator.parameters()) if self.estimator is not None else []

    @property
    def auxiliary_steps(self) -> int:
        return self.cfg["estimator_steps"]

    def auxiliary_loss(self) -> torch.Tensor:
        z_c, z_s = self._latents
        return self.estimator.learning_loss(z_c, z_s)


CLEAR_DEFAULTS = {"z_content": 8, "z_style": 8, "width": 32, "beta": 0.125, "alpha": 100.0, "temperature": 0.1,
                  "similarity": "cosine", "content": "snn", "style": "ps_snn", "penalty_weight": 1.0,
                  "estimator_steps": 5, "estimator_lr": 1e-3, "anneal_loc": 0.0, "anneal_scale": 1.0}


class SubEmbedding(nn.Module):
    """The poster's sub-embedding contrastive learner: encoder + projector, embedding split into K slices.

    loss = sub_info_max(z1, z2, k) + lambda * R, with R one of ``none``, ``info_min``, ``ortho``,
    ``p_ortho`` (ortho with a fixed random permutation) or ``hess``; (z1, z2) are the projections of a
    view pair that varies one factor. ``features`` is the encoder output r; slices of the projection
    are r0, r1 (``slices``).
    """

    def __init__(self, spec: dict, in_channels: int, num_classes: int):
        super().__init__()
        self.cfg = {"k": 2, "temperature": 0.5, "regularizer": "none", "weight": 1.0, **spec.get("loss", {})}
        self.encoder = build_encoder(spec.get("encoder", {}), in_channels)
        self.projector = projection_head(self.encoder.out_dim, spec.get("projection_dim", 128))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def slices(self, x: torch.Tensor) -> list[torch.Tensor]:
        from clbench.losses import split_slices

        return list(split_slices(self.projector(self.encoder(x)), self.cfg["k"]).unbind(1))

    def loss_terms(self, views: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        import clbench.losses as losses

        c = self.cfg
        b = views.shape[0]
        z = distributed.gather(self.projector(self.encoder(views[:, :2].flatten(0, 1))).view(b, 2, -1))
        z1, z2 = z[:, 0], z[:, 1]
        info_max = losses.sub_info_max(z1, z2, k=c["k"], temperature=c["temperature"])
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


def build_method(spec: dict, in_channels: int, num_classes: int, image_size: int = 28) -> nn.Module:
    objective = spec["objective"]
    if objective == "cross_entropy":
        return Classifier(spec, in_channels, num_classes, image_size)
    if objective in CONTRASTIVE_OBJECTIVES:
        return Contrastive(spec, in_channels, num_classes)
    if objective == "clear_vae":
        return ClearVAEMethod(spec, in_channels, num_classes, image_size)
    if objective == "sub_embedding":
        return SubEmbedding(spec, in_channels, num_classes)
    if objective == "mcl_concat":
        from clbench.train.mcl import StageConcat

        return StageConcat([build_method(s, in_channels, num_classes, image_size) for s in spec["stage_specs"]])
    raise ValueError(f"unknown objective {objective!r}")


def save_model(path: str | Path, model: nn.Module, spec: dict, shape: dict) -> None:
    from clbench.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"spec": spec, "shape": shape, "state_dict": model.state_dict()}, tmp)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild a trained method from its ``model.pt`` (spec + shape + weights), in eval mode."""
    blob = torch.load(path, map_location=device, weights_only=True)
    shape = blob["shape"]
    model = build_method(blob["spec"], shape["in_channels"], shape["num_classes"], shape.get("image_size", 28))
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()

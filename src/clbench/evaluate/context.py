"""What an evaluation sees of one trained run: the frozen model, its splits and the evaluation settings."""

from __future__ import annotations

from typing import Any, Callable

import torch

from clbench.evaluate.embed import embed
from clbench.evaluate.linear_probe import PROBE_OPTIONS, FittedProbe, fit_probe, fit_probe_on_images

__all__ = ["EvaluationRun", "factor_names"]

PROBE_PROTOCOLS = ("features", "augmented")


def _training_settings(cfg: dict) -> dict:
    """The keyword arguments a probe's settings give fit_probe / fit_probe_on_images (unset options
    keep the functions' defaults)."""
    return {"epochs": cfg["epochs"], "lr": cfg["lr"], "weight_decay": cfg["weight_decay"],
            "batch_size": cfg["batch_size"], **{k: cfg[k] for k in PROBE_OPTIONS if k in cfg}}


def factor_names(split: dict) -> list[str]:
    """The dataset's factors (``factor_{name}`` arrays of a split), sorted by name."""
    return sorted(k.removeprefix("factor_") for k in split if k.startswith("factor_"))


class EvaluationRun:
    """One trained run under evaluation.

    ``model`` (eval mode; ``capabilities`` says what it offers besides ``features``), the ``train`` and
    ``test`` splits (dicts of arrays: ``x``, ``y``, ``factor_*``), ``settings`` (the evaluation config
    with defaults: ``probe``, ``mlp_probe``, ``knn``, ``corruptions``, ``y_factor`` ...), ``seed`` and ``device``.
    Features and the linear probe of ``y`` are computed once and shared by the evaluations.
    """

    def __init__(self, model: torch.nn.Module, train: dict, test: dict, settings: dict, *, seed: int = 0,
                 device: torch.device | str = "cpu"):
        self.model, self.train, self.test, self.settings = model, train, test, settings
        self.seed, self.device = seed, torch.device(device)
        self._features: dict[str, torch.Tensor] = {}
        self._linear: tuple[dict, FittedProbe] | None = None

    @property
    def capabilities(self) -> frozenset[str]:
        return self.model.capabilities

    @property
    def factors(self) -> list[str]:
        return factor_names(self.train)

    def split(self, name: str) -> dict:
        return {"train": self.train, "test": self.test}[name]

    def embed(self, x, fn: Callable | None = None) -> Any:
        """``fn(model, x_float)`` (default ``model.features``) of images ``x``, batch-wise (see :func:`embed`)."""
        return embed(self.model, x, self.device, fn=fn)

    def features(self, split: str) -> torch.Tensor:
        """The frozen features of split ``train`` or ``test`` (computed once)."""
        if split not in self._features:
            self._features[split] = self.embed(self.split(split)["x"])
        return self._features[split]

    def cached_features(self, split: str) -> torch.Tensor | None:
        """The features of ``split`` if an evaluation has computed them, else None (nothing is embedded)."""
        return self._features.get(split)

    def probe(self, train_features, train_labels, test_features, test_labels, *, settings: dict | None = None,
              **kw) -> Any:
        """Fit a probe on cached features and score it: the configured one (``settings["probe"]``), or
        the one ``settings`` describes; ``kind=`` overrides its kind."""
        cfg = settings or self.settings["probe"]
        return fit_probe(train_features, torch.as_tensor(train_labels), test_features, torch.as_tensor(test_labels),
                         kind=kw.pop("kind", cfg["kind"]), **_training_settings(cfg), seed=self.seed,
                         device=self.device, **kw)

    def mlp_probe_settings(self) -> dict:
        """The MLP probe's settings: the probe's, with ``mlp_probe``'s set keys on top, kind ``mlp``."""
        own = {k: v for k, v in self.settings.get("mlp_probe", {}).items() if v is not None}
        return {**self.settings["probe"], **own, "kind": "mlp"}

    def linear_probe(self) -> tuple[dict, FittedProbe]:
        """The configured probe of ``y``, fitted once: (its metrics, the fitted predictor).

        ``probe.protocol``: ``features`` trains it on the cached training features; ``augmented``
        on freshly augmented training images through the frozen encoder every epoch (recipe
        ``probe.augment``, see :func:`~clbench.evaluate.linear_probe.fit_probe_on_images`). Either
        way it is scored on the plain test features.
        """
        if self._linear is None:
            cfg = self.settings["probe"]
            protocol = cfg.get("protocol", "features")
            if protocol == "features":
                self._linear = self.probe(self.features("train"), self.train["y"], self.features("test"),
                                          self.test["y"], return_predictor=True)
            elif protocol == "augmented":
                self._linear = fit_probe_on_images(
                    self.model, self.train["x"], self.train["y"], self.features("test"), self.test["y"],
                    augment=cfg["augment"], crop_size=cfg.get("crop_size"),
                    train_feats=self.features("train"), kind=cfg["kind"], **_training_settings(cfg),
                    num_workers=cfg.get("num_workers", 0), seed=self.seed, device=self.device, return_predictor=True)
            else:
                raise ValueError(f"evaluation.probe.protocol: unknown protocol {protocol!r}; "
                                 f"expected one of {list(PROBE_PROTOCOLS)}")
        return self._linear

    @property
    def fitted_linear_probe(self) -> FittedProbe | None:
        """The linear probe if an evaluation fitted it, else None."""
        return None if self._linear is None else self._linear[1]

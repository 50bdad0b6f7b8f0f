"""The built-in evaluations, each registered by name (see :mod:`clbench.evaluate.registry`).

Metric names:

- ``linear_probe``: ``linear_top1``, ``linear_auroc``, ``linear_aupr``: the configured (logistic)
  probe of ``y`` on the frozen representation; on an OOD split the test split is the
  unseen-combination one. ``probe.protocol`` says how it trains: on cached features (``features``)
  or on augmented images through the frozen encoder (``augmented``, recipe ``probe.augment``).
  The corruption cells score this probe. Every other probe trains on cached features.
- ``mlp_probe``: ``mlp_*``, the same with CLEAR's MLP probe (Linear - BN - ReLU - Linear, 256
  hidden units), trained with the probe's settings overridden by ``mlp_probe``'s (CLEAR: Adam 3e-4).
- ``own_head`` (models with ``classifier``, the supervised CNN): ``head_top1``, ``head_auroc``,
  ``head_aupr``: the trained model's own classifier head scored on the test split, no probe refit
  (CLEAR's OOD comparison: the CNN baseline's own classifier against the MLP probe on z_c).
- ``knn``: ``knn_top1``, weighted k-NN (k=200, t=0.1 by default) of ``y``.
- ``factor_probes``: ``probe_{factor}_top1``, a probe of each dataset factor (e.g. ``style``).
- ``gmig`` (models with ``factors``, CLEAR-VAE): gMIG w.r.t. ``y`` of latents sampled from q(z|x),
  one draw per test image seeded with the run's seed (:func:`sampled_latents`), as the official
  evaluation, whose VAE always samples; ``gmig_mean``: the same on the means (mu_c, mu_s);
  ``mig``: MIG of (mu_c, mu_s) over ``y`` and every factor; ``probe_style_latent_{y|factor}_top1``,
  ``probe_content_latent_{factor}_top1``.
- ``slice_probes`` (models with ``slices``, sub-embeddings): ``probe_{r|r0|r1}_{factor}``, probes on
  the representation r and the projection slices r0, r1 for ``y`` (named by the dataset's
  ``y_factor``) and every factor; ``probe_gap_{factor}`` = |C(r0) - C(r1)| (the poster's R3).
- ``stage_probes`` (models with ``stages``, MCL): table ``stage_probes``, per stage and attribute
  the probe top-1 of that stage's features.
- ``corruptions``: table ``corruptions``, per corruption and severity the linear probe's accuracy on
  corrupted test images, and ``mean_corruption_top1``. At ``granularity: cell`` the cells are jobs of
  their own (:func:`clbench.evaluate.runner.evaluate_corruption_cell`); this evaluation then only
  fits the probe those jobs use.
- ``graph_svc`` (models with ``graphs``, the GIN family): ``svc_top1`` and ``svc_top1_epoch{e}`` (each with
  ``_std`` over folds), an RBF SVC in a stratified 10-fold CV over every graph's embedding
  (:mod:`clbench.evaluate.graph_svc`).

Importing this module imports no torch: each evaluation imports what it needs when it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clbench.evaluate.registry import EVALUATIONS, Evaluation, check_evaluations, register_evaluation

if TYPE_CHECKING:
    from clbench.evaluate.context import EvaluationRun

__all__ = ["EVALUATIONS", "Evaluation", "check_evaluations", "register_evaluation", "sampled_latents"]

_PROBE_METRICS = ("top1", "auroc", "aupr")


@register_evaluation("linear_probe")
def linear_probe(run: EvaluationRun) -> dict:
    """Logistic probe of y on the frozen features."""
    res, _ = run.linear_probe()
    return {"metrics": {f"linear_{k}": v for k, v in res.items() if k in _PROBE_METRICS}}


@register_evaluation("mlp_probe")
def mlp_probe(run: EvaluationRun) -> dict:
    """MLP probe of y on the frozen features (CLEAR's OOD classifier)."""
    res = run.probe(run.features("train"), run.train["y"], run.features("test"), run.test["y"],
                    settings=run.mlp_probe_settings())
    return {"metrics": {f"mlp_{k}": v for k, v in res.items() if k in _PROBE_METRICS}}


@register_evaluation("own_head", requires=("classifier",))
def own_head(run: EvaluationRun) -> dict:
    """The trained model's own classifier head of y, scored on the test split (no probe is fitted)."""
    import torch

    from clbench.evaluate.linear_probe import score

    logits = run.embed(run.test["x"], fn=lambda m, xb: m.logits(xb))
    res = score(torch.softmax(logits.double(), dim=1).numpy(), run.test["y"])
    return {"metrics": {f"head_{k}": v for k, v in res.items() if k in _PROBE_METRICS}}


@register_evaluation("knn")
def knn(run: EvaluationRun) -> dict:
    """Weighted k-NN top-1 of y on the frozen features."""
    import torch

    from clbench.evaluate.knn import weighted_knn

    res = weighted_knn(run.features("train"), torch.as_tensor(run.train["y"]), run.features("test"),
                       torch.as_tensor(run.test["y"]), **run.settings["knn"])
    return {"metrics": {"knn_top1": float(res["top1"])}}


@register_evaluation("factor_probes")
def factor_probes(run: EvaluationRun) -> dict:
    """A probe of each dataset factor on the frozen features."""
    metrics = {}
    for f in run.factors:
        key = f"factor_{f}"
        res = run.probe(run.features("train"), run.train[key], run.features("test"), run.test[key])
        metrics[f"probe_{f}_top1"] = res["top1"]
    return {"metrics": metrics}


def sampled_latents(mu, logvar, seed: int, stream: int):
    """One draw ``z = mu + eps * exp(logvar / 2)`` per row, ``eps`` from a CPU generator seeded with
    ``(seed, stream)``: the same latents whatever the device and batch size of the embedding."""
    import torch

    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(stream))
    eps = torch.randn(mu.shape, generator=g, dtype=torch.float64)
    return (mu.double() + eps * (0.5 * logvar.double()).exp()).float()


@register_evaluation("gmig", requires=("factors",))
def gmig(run: EvaluationRun) -> dict:
    """gMIG and MIG of the content/style latents, and what each latent still carries of y and the factors."""
    import numpy as np
    import torch

    from clbench.evaluate.disentanglement import gmig as gmig_score
    from clbench.evaluate.disentanglement import mig

    def latents(x):
        return run.embed(x, fn=lambda m, xb: m.factors(xb))

    test, train = run.test, run.train
    mu_c, lv_c, mu_s, lv_s = run.embed(test["x"], fn=lambda m, xb: m.latent_params(xb))
    zc, zs = mu_c, mu_s
    samples = sampled_latents(mu_c, lv_c, run.seed, 0), sampled_latents(mu_s, lv_s, run.seed, 1)
    out = {"gmig": float(gmig_score(samples[0].numpy(), samples[1].numpy(), test["y"], random_state=run.seed)),
           "gmig_mean": float(gmig_score(zc.numpy(), zs.numpy(), test["y"], random_state=run.seed))}
    # Standard MIG of the whole latent (z_c, z_s) over every known factor (y and the dataset's factors).
    factors = np.stack([test["y"], *[test[f"factor_{f}"] for f in run.factors]], axis=1)
    out["mig"] = float(mig(torch.cat([zc, zs], 1).numpy(), factors))
    # How much of y (and of each factor) the style latent still carries: CLEAR wants y gone from z_s.
    zc_tr, zs_tr = latents(train["x"])
    out["probe_style_latent_y_top1"] = run.probe(zs_tr, train["y"], zs, test["y"])["top1"]
    for f in run.factors:
        key = f"factor_{f}"
        out[f"probe_style_latent_{f}_top1"] = run.probe(zs_tr, train[key], zs, test[key])["top1"]
        out[f"probe_content_latent_{f}_top1"] = run.probe(zc_tr, train[key], zc, test[key])["top1"]
    return {"metrics": out}


@register_evaluation("slice_probes", requires=("slices",))
def slice_probes(run: EvaluationRun) -> dict:
    """Probes of y and every factor on the representation r and on each sub-embedding slice."""
    def slices(x):
        return run.embed(x, fn=lambda m, xb: m.slices(xb))

    str_, ste = slices(run.train["x"]), slices(run.test["x"])
    reps = {"r": (run.features("train"), run.features("test")),
            **{f"r{k}": (a, b) for k, (a, b) in enumerate(zip(str_, ste))}}
    y_factor = run.settings["y_factor"]
    targets = {y_factor: "y", **{f: f"factor_{f}" for f in run.factors if f != y_factor}}
    out = {}
    for rep, (a, b) in reps.items():
        for name, key in targets.items():
            out[f"probe_{rep}_{name}"] = run.probe(a, run.train[key], b, run.test[key])["top1"]
    if "r0" in reps and "r1" in reps:
        for name in targets:  # the poster's R3: how differently the two slices encode a factor
            out[f"probe_gap_{name}"] = abs(out[f"probe_r0_{name}"] - out[f"probe_r1_{name}"])
    return {"metrics": out}


@register_evaluation("stage_probes", requires=("stages",))
def stage_probes(run: EvaluationRun) -> dict:
    """Per MCL stage, probes of y and every factor on that stage's features."""
    rows = []
    targets = {"y": "y", **{f: f"factor_{f}" for f in run.factors}}
    for stage in range(len(run.model.stages)):
        feats = [run.embed(x, fn=lambda m, xb: m.stage_features(xb, stage)) for x in (run.train["x"], run.test["x"])]
        for name, key in targets.items():
            if name == "y" and run.settings["y_factor"] in targets:
                continue
            top1 = run.probe(feats[0], run.train[key], feats[1], run.test[key])["top1"]
            rows.append({"stage": stage, "attribute": name, "top1": top1})
    return {"tables": {"stage_probes": rows}}


@register_evaluation("corruptions")
def corruptions(run: EvaluationRun) -> dict:
    """The linear probe's accuracy on corrupted test images, per corruption and severity."""
    _, predict = run.linear_probe()
    cfg = run.settings["corruptions"]
    if cfg["granularity"] != "grid":
        return {}  # the cells are jobs of their own; they use the fitted probe the runner saves
    import numpy as np

    from clbench.data.corruptions import CORRUPTIONS, corrupt
    from clbench.evaluate.cells import corruption_row, with_corruption_rows

    names = CORRUPTIONS if cfg["names"] == "all" else cfg["names"]
    rng = np.random.default_rng(run.seed)
    idx = np.sort(rng.permutation(len(run.test["y"]))[: cfg["n_test"]])
    x, y = run.test["x"][idx], run.test["y"][idx]
    rows = []
    for name in names:
        for severity in cfg["severities"]:
            xc = corrupt(x, name, severity, run.seed)
            rows.append(corruption_row(name, severity, predict(run.embed(xc)), y))
    return with_corruption_rows({"metrics": {}, "tables": {}}, rows)


@register_evaluation("graph_svc", requires=("graphs",))
def graph_svc(run: EvaluationRun) -> dict:
    """RBF SVC (C by inner 5-fold search) in a stratified 10-fold CV over all graphs' embeddings, per scored epoch."""
    from clbench.evaluate.graph_svc import evaluate_graph_svc

    return evaluate_graph_svc(run)


@register_evaluation("sts", requires=("sentences",))
def sts(run) -> dict:
    """Cosine Spearman of a sentence encoder on STS12-16 ("all"), STS-B test and SICK-R test, and their average."""
    from clbench.evaluate.sts import sts_metrics

    return sts_metrics(run)


# evaluations in modules of their own register themselves on import
from clbench.evaluate import mmvp as _mmvp  # noqa: E402,F401

"""Graph-level evaluation of ADNCE's / GraphCL's TU experiments: an RBF SVM on frozen graph embeddings.

Official code: ``graph/evaluate_embedding.py`` (``svc_classify`` with ``search=True``): the
encoder's embeddings of every graph (eval mode, the un-augmented graphs), a shuffled, stratified
10-fold cross-validation; in each fold an RBF ``SVC`` whose ``C`` is chosen from
{1e-3, 1e-2, ..., 1e3} by a 5-fold grid search on the training folds, scored on the held-out fold.
The metric is the mean test accuracy over the 10 folds (and its std over folds). The official
code scores epochs 10 and 20 (``log_interval``) and logs both; the folds here are drawn from the
run's seed (the official code leaves them unseeded).

Metrics: ``svc_top1`` / ``svc_top1_std`` at the last epoch, ``svc_top1_epoch{e}`` / ``svc_top1_epoch{e}_std``
at every scored epoch; table ``graph_svc``: per epoch and fold the test accuracy, the chosen C and its inner
cross-validation accuracy. Validation (what a sweep selects on, :mod:`clbench.sweeps`): ``val_svc_top1``, the
inner cross-validation accuracy of the chosen C (the grid search's best score, on the training folds alone)
averaged over the outer folds at the last epoch; it never reads an outer test fold.
"""

from __future__ import annotations

import numpy as np

__all__ = ["C_GRID", "embed_graphs", "evaluate_graph_svc", "svc_cross_validation"]

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


def svc_cross_validation(embeddings: np.ndarray, labels: np.ndarray, *, seed: int = 0, folds: int = 10,
                         inner_folds: int = 5, c_grid=C_GRID) -> list[dict]:
    """Per outer fold: ``{"fold", "accuracy", "C", "inner_accuracy"}`` of the grid-searched RBF SVC (see the module
    docstring); ``inner_accuracy`` is the chosen C's mean accuracy over the inner folds of the training folds."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC

    x, y = np.asarray(embeddings, dtype=np.float64), np.asarray(labels)
    smallest = np.bincount(np.unique(y, return_inverse=True)[1]).min()
    if smallest < folds:
        raise ValueError(f"the smallest class has {smallest} graphs, fewer than the {folds} cross-validation folds")
    rows = []
    outer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (train, test) in enumerate(outer.split(x, y)):
        search = GridSearchCV(SVC(kernel="rbf"), {"C": list(c_grid)}, cv=inner_folds, scoring="accuracy")
        search.fit(x[train], y[train])
        rows.append({"fold": fold, "accuracy": float((search.predict(x[test]) == y[test]).mean()),
                     "C": float(search.best_params_["C"]), "inner_accuracy": float(search.best_score_)})
    return rows


def embed_graphs(encoder, graphs, device="cpu", batch_size: int = 128):
    """The eval-mode embeddings ``[G, D]`` of graphs ``[(x, edge_index), ...]``, each with its self-loops added,
    as the official evaluation embeds the un-augmented graphs (``TUDataset_aug.get``)."""
    import torch

    from clbench.data.graph_augment import add_self_loops
    from clbench.data.graphs import graph_batch

    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        out = [encoder(*graph_batch([(x, add_self_loops(e, len(x))) for x, e in graphs[i:i + batch_size]], device))
               .cpu() for i in range(0, len(graphs), batch_size)]
    encoder.train(was_training)
    return torch.cat(out)


def evaluate_graph_svc(run) -> dict:
    """Every scored epoch's encoder of a graph model (``run.model.encoders()``) on all graphs of ``run.train``."""
    from clbench.data.graphs import graph, num_graphs

    graphs = [graph(run.train, i) for i in range(num_graphs(run.train))]
    metrics, rows = {}, []
    encoders = run.model.encoders()
    for epoch, encoder in sorted(encoders.items()):
        emb = embed_graphs(encoder, graphs, run.device).numpy()
        folds = svc_cross_validation(emb, run.train["y"], seed=run.seed)
        acc = np.array([r["accuracy"] for r in folds])
        metrics[f"svc_top1_epoch{epoch}"], metrics[f"svc_top1_epoch{epoch}_std"] = float(acc.mean()), float(acc.std())
        rows += [{"epoch": epoch, **r} for r in folds]
    last = max(encoders)
    metrics["svc_top1"] = metrics[f"svc_top1_epoch{last}"]
    metrics["svc_top1_std"] = metrics[f"svc_top1_epoch{last}_std"]
    inner = [r["inner_accuracy"] for r in rows if r["epoch"] == last]
    validation = {"split": "validation", "val_svc_top1": float(np.mean(inner)),
                  "probe": "RBF SVC, the chosen C's inner cross-validation on the training folds"}
    return {"metrics": metrics, "tables": {"graph_svc": rows}, "validation": validation}

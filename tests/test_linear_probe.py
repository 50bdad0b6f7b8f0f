import numpy as np
import pytest
import torch

from clbench.evaluate.linear_probe import fit_probe


def _blobs(n, d=8, c=3, seed=0, sep=3.0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=g)
    centres = torch.randn(c, d, generator=torch.Generator().manual_seed(99)) * sep
    return centres[y] + torch.randn(n, d, generator=g), y


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_probe_separates_blobs(kind):
    xtr, ytr = _blobs(300)
    xte, yte = _blobs(200, seed=1)
    r = fit_probe(xtr, ytr, xte, yte, kind=kind, epochs=100, lr=0.01)
    assert r["top1"] > 0.9 and r["auroc"] > 0.95 and r["aupr"] > 0.9


def test_probe_on_noise_is_near_chance():
    xtr, ytr = torch.randn(300, 8), torch.randint(0, 3, (300,))
    xte, yte = torch.randn(300, 8), torch.randint(0, 3, (300,))
    r = fit_probe(xtr, ytr, xte, yte, epochs=50)
    assert 0.2 < r["top1"] < 0.5 and 0.4 < r["auroc"] < 0.6


def test_probe_minibatch_and_metrics_match_sklearn():
    from sklearn.metrics import accuracy_score

    xtr, ytr = _blobs(300, sep=1.0)
    xte, yte = _blobs(200, seed=2, sep=1.0)
    r = fit_probe(xtr, ytr, xte, yte, epochs=20, batch_size=64, seed=5)
    assert r == fit_probe(xtr, ytr, xte, yte, epochs=20, batch_size=64, seed=5)
    assert 0 <= r["top1"] <= 1 and r["n_test"] == 200


def test_unknown_probe_kind():
    with pytest.raises(ValueError, match="unknown probe kind"):
        fit_probe(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]), torch.randn(2, 2), torch.tensor([0, 1]), kind="svm")

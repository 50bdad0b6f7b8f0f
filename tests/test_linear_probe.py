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
    """Features and labels of pure noise: a probe fitted on the training split is at chance on an
    independent test split, within 4 binomial standard deviations (top-1 1/3 +- 0.077 for 600 test
    samples; over 20 seeds it spans 0.29-0.36). In 128 dimensions a probe fitted on the test split
    itself memorises its labels (top-1 above 0.57 on every one of those seeds), so a probe that sees
    the test set fails this test."""
    g = torch.Generator().manual_seed(0)
    n, d = 600, 128
    xtr, ytr = torch.randn(n, d, generator=g), torch.randint(0, 3, (n,), generator=g)
    xte, yte = torch.randn(n, d, generator=g), torch.randint(0, 3, (n,), generator=g)
    r = fit_probe(xtr, ytr, xte, yte, epochs=50)
    band = 4 * (1 / 3 * 2 / 3 / n) ** 0.5
    assert abs(r["top1"] - 1 / 3) < band and abs(r["auroc"] - 0.5) < 0.08
    leaked = fit_probe(xte, yte, xte, yte, epochs=50)  # what a leak looks like: far outside the band
    assert leaked["top1"] - 1 / 3 > 2 * band and leaked["auroc"] > 0.7


def test_probe_minibatch_and_metrics_match_sklearn():
    from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

    xtr, ytr = _blobs(300, sep=1.0)
    xte, yte = _blobs(200, seed=2, sep=1.0)
    r, predict = fit_probe(xtr, ytr, xte, yte, epochs=20, batch_size=64, seed=5, return_predictor=True)
    assert r == fit_probe(xtr, ytr, xte, yte, epochs=20, batch_size=64, seed=5)
    assert 0 <= r["top1"] <= 1 and r["n_test"] == 200
    probs, y = predict(xte), yte.numpy()
    onehot = np.eye(3)[y]
    assert r["top1"] == pytest.approx(accuracy_score(y, probs.argmax(1)), abs=1e-12)
    assert r["auroc"] == pytest.approx(roc_auc_score(onehot, probs, average="macro"), abs=1e-12)
    assert r["aupr"] == pytest.approx(average_precision_score(onehot, probs, average="macro"), abs=1e-12)
    assert r != fit_probe(xtr, ytr, xte, yte, epochs=20, batch_size=64, seed=6)  # the seed orders the minibatches


def test_linear_probe_converges_to_sklearns_logistic_regression():
    """Our probe minimises mean cross-entropy + wd/2 |(W, b)|^2 on standardised features (Adam's
    weight_decay is that L2 term); scikit-learn's LogisticRegression minimises C * sum cross-entropy
    + 1/2 |W|^2, the same objective for C = 1 / (wd * n) once the bias is a penalised weight on a
    constant feature. Full-batch Adam reaches sklearn's optimum: every test probability within
    0.005, every coefficient within 0.01, the same predictions."""
    from sklearn.linear_model import LogisticRegression

    xtr, ytr = _blobs(300, sep=1.0)
    xte, yte = _blobs(200, seed=2, sep=1.0)
    wd = 1e-2
    r, predict = fit_probe(xtr, ytr, xte, yte, epochs=300, lr=0.05, weight_decay=wd, return_predictor=True)
    mean, std = xtr.mean(0), xtr.std(0)

    def with_one(x):
        z = ((x - mean) / std).double().numpy()
        return np.hstack([z, np.ones((len(z), 1))])

    ref = LogisticRegression(C=1 / (wd * len(ytr)), fit_intercept=False, max_iter=10_000, tol=1e-12)
    ref.fit(with_one(xtr), ytr.numpy())
    ours = np.hstack([predict.head.weight.detach().double().numpy(), predict.head.bias.detach().double().numpy()[:, None]])
    assert np.abs(ours - ref.coef_).max() < 0.01
    probs, ref_probs = predict(xte), ref.predict_proba(with_one(xte))
    assert np.abs(probs - ref_probs).max() < 0.005
    assert np.array_equal(probs.argmax(1), ref_probs.argmax(1))
    assert r["top1"] == pytest.approx(ref.score(with_one(xte), yte.numpy()), abs=1e-12)


def test_mlp_probe_has_256_hidden_units_and_takes_its_optimiser():
    xtr, ytr = _blobs(200)
    _, predict = fit_probe(xtr, ytr, xtr, ytr, kind="mlp", epochs=2, return_predictor=True)
    first, last = predict.head[0], predict.head[-1]
    assert first.out_features == 256 and last.in_features == 256 and isinstance(predict.head[1], torch.nn.BatchNorm1d)
    a = fit_probe(xtr, ytr, xtr, ytr, kind="mlp", epochs=3, lr=3e-4)
    b = fit_probe(xtr, ytr, xtr, ytr, kind="mlp", epochs=3, lr=3e-4, optimizer="sgd")
    assert a != b
    with pytest.raises(ValueError, match="optimizer"):
        fit_probe(xtr, ytr, xtr, ytr, epochs=1, optimizer="lbfgs")


def test_unknown_probe_kind():
    with pytest.raises(ValueError, match="unknown probe kind"):
        fit_probe(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]), torch.randn(2, 2), torch.tensor([0, 1]), kind="svm")

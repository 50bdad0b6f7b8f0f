"""Evaluation metrics against plain reference implementations written here, plus sanity properties.

The references are deliberately naive loops, independent of clbench's code paths:
* the Ross (2014) kNN estimator of I(continuous; discrete) that sklearn's mutual_info_classif uses,
* histogram discretisation + discrete MI by counting, for MIG,
* a per-query brute-force weighted kNN vote.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import digamma

from clbench.evaluate.disentanglement import (
    gaussian_blobs,
    gmig,
    gmig_details,
    histogram_discretize,
    knn_mutual_information,
    label_entropy,
    mig,
    mig_details,
)
from clbench.evaluate.ood import ood_k_curve, ood_k_table, relative_accuracy, relative_to_baseline
from clbench.evaluate.robustness import corruption_errors, mce, mean_corruption_accuracy, robustness_summary


# ------------------------------------------------------------------------------------------------
# reference implementations (loops)
# ------------------------------------------------------------------------------------------------


def ref_entropy(labels) -> float:
    counts: dict = {}
    for v in labels:
        counts[v] = counts.get(v, 0) + 1
    n = len(labels)
    return -sum((c / n) * math.log(c / n) for c in counts.values())


def ref_mi_continuous_discrete(c, d, k=3) -> float:
    """Ross 2014: I = psi(N) + <psi(k)> - <psi(N_y)> - <psi(m)>, clipped at 0.

    For every point: the distance r_i to its k-th nearest neighbour among points of the same
    label, then m_i = #points (any label, itself included) strictly closer than r_i.
    Points whose label occurs once are dropped.
    """
    n = len(c)
    label_count: dict = {}
    for v in d:
        label_count[v] = label_count.get(v, 0) + 1
    keep = [i for i in range(n) if label_count[d[i]] > 1]
    radius, ks, nys = {}, [], []
    for i in keep:
        same = sorted(abs(c[i] - c[j]) for j in range(n) if j != i and d[j] == d[i])
        k_i = min(k, len(same))
        radius[i] = same[k_i - 1]
        ks.append(k_i)
        nys.append(label_count[d[i]])
    ms = []
    for i in keep:
        m = 0
        for j in keep:
            if abs(c[i] - c[j]) < radius[i]:
                m += 1
        ms.append(m)
    big_n = len(keep)
    mi = digamma(big_n) + np.mean(digamma(ks)) - np.mean(digamma(nys)) - np.mean(digamma(ms))
    return max(0.0, float(mi))


def ref_gmig(zc, zs, y) -> float:
    y = list(y)
    mi_c = [ref_mi_continuous_discrete(list(zc[:, j]), y) for j in range(zc.shape[1])]
    mi_s = [ref_mi_continuous_discrete(list(zs[:, j]), y) for j in range(zs.shape[1])]
    return (sum(mi_c) / len(mi_c) - sum(mi_s) / len(mi_s)) / ref_entropy(y)


def ref_bin(values, n_bins):
    lo, hi = min(values), max(values)
    width = (hi - lo) / n_bins
    out = []
    for v in values:
        b = int((v - lo) / width) if width > 0 else 0
        out.append(min(b, n_bins - 1))
    return out


def ref_discrete_mi(a, b) -> float:
    n = len(a)
    pa, pb, pab = {}, {}, {}
    for x, y in zip(a, b):
        pa[x] = pa.get(x, 0) + 1
        pb[y] = pb.get(y, 0) + 1
        pab[(x, y)] = pab.get((x, y), 0) + 1
    total = 0.0
    for (x, y), c in pab.items():
        total += (c / n) * math.log((c / n) / ((pa[x] / n) * (pb[y] / n)))
    return total


def ref_mig(codes, factors, n_bins=20) -> float:
    binned = [ref_bin(list(codes[:, j]), n_bins) for j in range(codes.shape[1])]
    scores = []
    for k in range(factors.shape[1]):
        f = list(factors[:, k])
        mis = sorted((ref_discrete_mi(b, f) for b in binned), reverse=True)
        scores.append((mis[0] - mis[1]) / ref_entropy(f))
    return sum(scores) / len(scores)


def ref_weighted_knn(train, train_y, test, k, t, num_classes):
    preds = []
    for q in test:
        qn = q / np.linalg.norm(q)
        sims = []
        for f, lab in zip(train, train_y):
            sims.append((float(np.dot(qn, f / np.linalg.norm(f))), int(lab)))
        sims.sort(key=lambda p: -p[0])
        scores = [0.0] * num_classes
        for s, lab in sims[:k]:
            scores[lab] += math.exp(s / t)
        preds.append(int(np.argmax(scores)))
    return preds


# ------------------------------------------------------------------------------------------------
# gMIG
# ------------------------------------------------------------------------------------------------


def _latents(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    zc = np.column_stack([y + 0.6 * rng.normal(size=n), rng.normal(size=n), 0.5 * y + rng.normal(size=n)])
    zs = np.column_stack([rng.normal(size=n), rng.normal(size=n) + 0.2 * y])
    return zc, zs, y


def test_label_entropy_matches_reference():
    y = np.array([0, 0, 1, 2, 2, 2, 5])
    assert label_entropy(y) == pytest.approx(ref_entropy(list(y)), abs=1e-12)
    assert label_entropy(np.array(["a", "b"])) == pytest.approx(math.log(2))


def test_knn_mi_matches_ross_reference():
    zc, _, y = _latents()
    ours = knn_mutual_information(zc, y, random_state=0)
    ref = [ref_mi_continuous_discrete(list(zc[:, j]), list(y)) for j in range(zc.shape[1])]
    np.testing.assert_allclose(ours, ref, atol=1e-8)


def test_gmig_matches_reference():
    zc, zs, y = _latents()
    assert gmig(zc, zs, y, random_state=0) == pytest.approx(ref_gmig(zc, zs, y), abs=1e-8)


def test_gmig_details_and_arbitrary_labels():
    zc, zs, y = _latents()
    d = gmig_details(zc, zs, y + 7)  # labels need not start at 0
    assert d["gmig"] == pytest.approx(gmig(zc, zs, y))
    assert d["entropy"] == pytest.approx(ref_entropy(list(y)))
    assert len(d["mi_content"]) == 3 and len(d["mi_style"]) == 2
    assert d["gmig"] == pytest.approx((d["mi_content_mean"] - d["mi_style_mean"]) / d["entropy"])


def test_gmig_sanity_signs():
    rng = np.random.default_rng(1)
    n = 400
    y = rng.integers(0, 5, n)
    content = np.column_stack([y + 0.2 * rng.normal(size=n) for _ in range(3)])
    style = rng.normal(size=(n, 3))
    g = gmig(content, style, y)
    assert g > 0.5
    # swapping the roles flips the sign (same jitter: the random_state and shapes are the same)
    assert gmig(style, content, y) == pytest.approx(-g, abs=1e-9)
    assert abs(gmig(style, rng.normal(size=(n, 3)), y)) < 0.05


def test_gmig_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    zc, zs, y = _latents(n=120)
    assert gmig(torch.tensor(zc), torch.tensor(zs), torch.tensor(y)) == pytest.approx(gmig(zc, zs, y))


def test_gmig_rejects_bad_input():
    zc, zs, y = _latents(n=50)
    with pytest.raises(ValueError):
        gmig(zc, zs[:-1], y)
    with pytest.raises(ValueError):
        gmig(zc, zs, np.zeros(50, dtype=int))


def test_gaussian_blobs_mi_decreases_with_spread():
    mis = []
    for sd in (1.0, 2.5, 4.0):
        x, y = gaussian_blobs(n_samples=600, cluster_std=sd, rng=0)
        assert x.shape == (600, 3) and set(np.unique(y)) == {0, 1, 2}
        mis.append(knn_mutual_information(x, y, reduce="mean"))
    assert mis[0] > mis[1] > mis[2]


# ------------------------------------------------------------------------------------------------
# MIG
# ------------------------------------------------------------------------------------------------


def test_histogram_discretize_is_equal_width_partition():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 2))
    ours = histogram_discretize(x, n_bins=7)
    assert ours.min() >= 1 and ours.max() <= 7
    for j in range(2):
        ref = ref_bin(list(x[:, j]), 7)
        # same partition: bin ids differ by the constant offset 1 (np.digitize counts from 1)
        np.testing.assert_array_equal(ours[:, j] - 1, ref)


def test_mig_matches_reference():
    rng = np.random.default_rng(3)
    n = 500
    factors = np.column_stack([rng.integers(0, 5, n), rng.integers(0, 3, n), rng.integers(0, 4, n)])
    codes = np.column_stack([
        factors[:, 0] + 0.3 * rng.normal(size=n),
        factors[:, 1] + factors[:, 0] * 0.5 + 0.5 * rng.normal(size=n),
        rng.normal(size=n),
        factors[:, 2] + 1.0 * rng.normal(size=n),
    ])
    assert mig(codes, factors, n_bins=20) == pytest.approx(ref_mig(codes, factors, 20), abs=1e-10)
    assert mig(codes, factors, n_bins=5) == pytest.approx(ref_mig(codes, factors, 5), abs=1e-10)


def test_mig_sanity():
    rng = np.random.default_rng(4)
    n = 2000
    factors = np.column_stack([rng.integers(0, 5, n), rng.integers(0, 4, n)])
    perfect = np.column_stack([factors[:, 1], rng.normal(size=n), factors[:, 0]]).astype(float)
    assert mig(perfect, factors) > 0.95
    assert mig(rng.normal(size=(n, 4)), factors) < 0.05
    # one code carrying both factors equally well as another -> gap 0
    dup = np.column_stack([factors[:, 0], factors[:, 0], factors[:, 1], factors[:, 1]]).astype(float)
    assert mig(dup, factors) == pytest.approx(0.0, abs=1e-12)


def test_mig_details_and_1d_factor():
    rng = np.random.default_rng(5)
    f = rng.integers(0, 3, 400)
    codes = np.column_stack([f + 0.1 * rng.normal(size=400), rng.normal(size=400)])
    d = mig_details(codes, f)
    assert d["top_code"] == [0]
    assert np.array(d["mutual_info"]).shape == (2, 1)
    assert d["mig"] == pytest.approx(mig(codes, f[:, None]))
    # a constant factor is left out of the mean instead of dividing by zero
    d2 = mig_details(codes, np.column_stack([f, np.zeros(400, dtype=int)]))
    assert math.isnan(d2["per_factor"][1]) and d2["mig"] == pytest.approx(d["mig"])
    with pytest.raises(ValueError):
        mig(codes[:, :1], f)


# ------------------------------------------------------------------------------------------------
# weighted kNN
# ------------------------------------------------------------------------------------------------


def test_weighted_knn_matches_brute_force():
    torch = pytest.importorskip("torch")
    from clbench.evaluate.knn import weighted_knn

    rng = np.random.default_rng(6)
    c, d = 4, 6
    centers = rng.normal(size=(c, d))
    train_y = rng.integers(0, c, 80)
    test_y = rng.integers(0, c, 25)
    train = centers[train_y] + 0.9 * rng.normal(size=(80, d))
    test = centers[test_y] + 0.9 * rng.normal(size=(25, d))
    for k, t in [(7, 0.1), (20, 0.5), (1, 0.07)]:
        ref = ref_weighted_knn(train, train_y, test, k, t, c)
        ours = weighted_knn(train, train_y, test, test_y, k=k, temperature=t, batch_size=4,
                            return_predictions=True)
        assert ours["predictions"] == ref
        assert ours["top1"] == pytest.approx(np.mean(np.array(ref) == test_y))
        assert ours["k"] == k
    # torch input, one big chunk, k larger than the bank -> clipped
    a = weighted_knn(torch.tensor(train), torch.tensor(train_y), torch.tensor(test), torch.tensor(test_y),
                     k=500, temperature=0.1)
    ref = ref_weighted_knn(train, train_y, test, 80, 0.1, c)
    assert a["k"] == 80
    assert a["top1"] == pytest.approx(np.mean(np.array(ref) == test_y))
    assert "top5" not in a  # fewer than 5 classes


def test_weighted_knn_cuda_matches_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from clbench.evaluate.knn import weighted_knn

    rng = np.random.default_rng(8)
    train, test = rng.normal(size=(500, 16)), rng.normal(size=(120, 16))
    ty, sy = rng.integers(0, 10, 500), rng.integers(0, 10, 120)
    cpu = weighted_knn(train, ty, test, sy, k=50, return_predictions=True)
    gpu = weighted_knn(torch.tensor(train).cuda(), torch.tensor(ty).cuda(), torch.tensor(test).cuda(),
                       torch.tensor(sy).cuda(), k=50, batch_size=32, return_predictions=True)
    assert gpu["predictions"] == cpu["predictions"]


def test_weighted_knn_top5_and_perfect_separation():
    pytest.importorskip("torch")
    from clbench.evaluate.knn import weighted_knn

    rng = np.random.default_rng(7)
    c = 6
    centers = np.eye(c) * 10
    y = np.repeat(np.arange(c), 10)
    x = centers[y] + 0.01 * rng.normal(size=(60, c))
    r = weighted_knn(x, y, x, y, k=5)
    assert r["top1"] == 1.0 and r["top5"] == 1.0 and r["n_test"] == 60


# ------------------------------------------------------------------------------------------------
# OOD
# ------------------------------------------------------------------------------------------------


def test_relative_accuracy_and_baseline_matching():
    assert relative_accuracy(0.6, 0.4) == pytest.approx(1.5)
    assert math.isnan(relative_accuracy(0.6, 0.0))
    df = pd.DataFrame(
        [
            ("e", "cnn", 0, "ood_top1", 0.40),
            ("e", "clear", 0, "ood_top1", 0.60),
            ("e", "cnn", 1, "ood_top1", 0.50),
            ("e", "clear", 1, "ood_top1", 0.55),
            ("e", "other", 2, "ood_top1", 0.70),  # no baseline for seed 2
        ],
        columns=["experiment", "method", "seed", "metric", "value"],
    )
    out = relative_to_baseline(df, "cnn")
    rel = out.set_index(["method", "seed"])["relative"]
    assert rel[("clear", 0)] == pytest.approx(1.5)
    assert rel[("clear", 1)] == pytest.approx(1.1)
    assert rel[("cnn", 0)] == pytest.approx(1.0)
    assert math.isnan(rel[("other", 2)])
    assert "cnn" not in set(relative_to_baseline(df, "cnn", keep_baseline=False)["method"])
    with pytest.raises(ValueError):
        relative_to_baseline(pd.concat([df, df]), "cnn")


def test_ood_k_curve():
    rows = []
    for k in (1, 2, 3):
        for seed in (0, 1):
            rows.append(("ood_k", "cnn", seed, "ood_top1", k, 0.5))
            rows.append(("ood_k", "clear", seed, "ood_top1", k, 0.5 + 0.1 * k + 0.02 * seed))
    df = pd.DataFrame(rows, columns=["experiment", "method", "seed", "metric", "k", "value"])
    curve = ood_k_curve(df)
    got = curve[(curve.method == "clear") & (curve.k == 2)].iloc[0]
    assert got["mean"] == pytest.approx(0.71) and got["n"] == 2 and got["std"] == pytest.approx(0.02 / math.sqrt(2))
    rel = ood_k_curve(df, baseline="cnn")
    assert rel[(rel.method == "clear") & (rel.k == 3)]["mean"].iloc[0] == pytest.approx(0.81 / 0.5)
    table = ood_k_table(df, baseline="cnn")
    assert list(table.index) == [1, 2, 3] and table.loc[1, "cnn"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------
# corruption robustness
# ------------------------------------------------------------------------------------------------


def _corr(accs):
    return pd.DataFrame(
        [(c, s, a) for (c, s), a in accs.items()], columns=["corruption", "severity", "accuracy"]
    )


BASE = {("A", 1): 0.8, ("A", 2): 0.6, ("B", 1): 0.9, ("B", 2): 0.5}
METH = {("A", 1): 0.9, ("A", 2): 0.7, ("B", 1): 0.95, ("B", 2): 0.75}


def test_mce_hand_computed():
    # errors: baseline A 0.2+0.4=0.6, B 0.1+0.5=0.6; method A 0.1+0.3=0.4, B 0.05+0.25=0.3
    # CE_A = 2/3, CE_B = 1/2, mCE = 7/12
    # clean error: method 0.05, baseline 0.1 -> relCE_A = (0.4-0.1)/(0.6-0.2) = 0.75,
    # relCE_B = (0.3-0.1)/(0.6-0.2) = 0.5, relative mCE = 0.625
    r = mce(_corr(METH), _corr(BASE), clean_accuracy=0.95, baseline_clean_accuracy=0.9)
    assert r["ce"]["A"] == pytest.approx(2 / 3)
    assert r["ce"]["B"] == pytest.approx(0.5)
    assert r["mce"] == pytest.approx(7 / 12)
    assert r["relative_ce"]["A"] == pytest.approx(0.75)
    assert r["relative_mce"] == pytest.approx(0.625)
    assert r["mean_accuracy"] == pytest.approx(0.825)
    assert r["baseline_mean_accuracy"] == pytest.approx(0.7)
    assert r["n_cells"] == 4
    assert mean_corruption_accuracy(_corr(METH)) == pytest.approx(0.825)
    # percentages give the same ratios
    pct = mce(_corr({k: 100 * v for k, v in METH.items()}), _corr({k: 100 * v for k, v in BASE.items()}))
    assert pct["mce"] == pytest.approx(7 / 12) and pct["relative_mce"] is None
    # the baseline against itself is 1 everywhere
    assert mce(_corr(BASE), _corr(BASE))["mce"] == pytest.approx(1.0)
    table = corruption_errors(_corr(METH), _corr(BASE))
    assert table.loc["A", "err_method"] == pytest.approx(0.4)


def test_robustness_summary_long_table():
    rows = []
    for seed in (0, 1):
        for (c, s), a in BASE.items():
            rows.append(("cifar", seed, "cnn", c, s, a))
        for (c, s), a in METH.items():
            rows.append(("cifar", seed, "varcon", c, s, a))
    df = pd.DataFrame(rows, columns=["experiment", "seed", "method", "corruption", "severity", "accuracy"])
    clean = pd.DataFrame(
        [("cifar", s, m, a) for s in (0, 1) for m, a in (("cnn", 0.9), ("varcon", 0.95))],
        columns=["experiment", "seed", "method", "accuracy"],
    )
    out = robustness_summary(df, "cnn", clean=clean)
    v = out[out.method == "varcon"]
    assert len(v) == 2
    assert v["mce"].tolist() == pytest.approx([7 / 12] * 2)
    assert v["relative_mce"].tolist() == pytest.approx([0.625] * 2)
    assert out[out.method == "cnn"]["mce"].tolist() == pytest.approx([1.0, 1.0])

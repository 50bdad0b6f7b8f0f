"""Tests of clbench.losses against pytorch-metric-learning and slow loop references.

The loop references below are written plainly from the formulas of issue 3 (one anchor at a time,
scalars only) and are deliberately independent of the vectorised code under test.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import clbench.losses as L
from clbench.models.mi_estimators import (
    CLUBSample,
    GaussianConditional,
    L1OutUB,
    TCDiscriminator,
    build_mi_estimator,
)

CUDA = torch.cuda.is_available()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Every tensor here is tiny: one intra-op thread avoids oversubscription stalls on a busy
    2-core machine (seconds per test otherwise). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _rand(*shape, seed=0, dtype=torch.float64, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_(requires_grad)


def _labels(n, c, seed=0):
    g = torch.Generator().manual_seed(seed + 1000)
    return torch.randint(0, c, (n,), generator=g)


def _f(t):
    """A scalar tensor as a Python float (detached first)."""
    return float(t.detach())


def _grad(value, *inputs):
    return torch.autograd.grad(value, inputs, allow_unused=True)


# --------------------------------------------------------------------------------------------
# plain loop references
# --------------------------------------------------------------------------------------------


def ref_sim(a, b, similarity="cosine"):
    if similarity == "cosine":
        return (a * b).sum() / (a.norm().clamp(min=1e-12) * b.norm().clamp(min=1e-12))
    if similarity == "dot":
        return (a * b).sum()
    return -((a - b) ** 2).sum()


def ref_lse(values):
    return torch.logsumexp(torch.stack(values), 0)


def ref_info_nce(z1, z2, t, similarity="cosine"):
    z = torch.cat([z1, z2])
    m, n = z.shape[0], z1.shape[0]
    losses = []
    for i in range(m):
        p = (i + n) % m
        den = ref_lse([ref_sim(z[i], z[j], similarity) / t for j in range(m) if j != i])
        losses.append(den - ref_sim(z[i], z[p], similarity) / t)
    return torch.stack(losses).mean()


def ref_supcon(z, y, t, similarity="cosine"):
    b = z.shape[0]
    losses = []
    for i in range(b):
        positives = [p for p in range(b) if p != i and y[p] == y[i]]
        if not positives:
            continue
        den = ref_lse([ref_sim(z[i], z[j], similarity) / t for j in range(b) if j != i])
        terms = [-(ref_sim(z[i], z[p], similarity) / t - den) for p in positives]
        losses.append(torch.stack(terms).mean())
    return torch.stack(losses).mean()


def ref_snn(z, y, t, switched=False, similarity="cosine"):
    b = z.shape[0]
    losses = []
    for i in range(b):
        if switched:
            positives = [j for j in range(b) if y[j] != y[i]]
        else:
            positives = [j for j in range(b) if j != i and y[j] == y[i]]
        if not positives:
            continue
        lse_pos = ref_lse([ref_sim(z[i], z[j], similarity) / t for j in positives])
        lse_all = ref_lse([ref_sim(z[i], z[j], similarity) / t for j in range(b) if j != i])
        losses.append(lse_all - lse_pos)
    return torch.stack(losses).mean()


def ref_adnce(z1, z2, t, mu, sigma):
    z = torch.cat([z1, z2])
    m, n = z.shape[0], z1.shape[0]
    losses = []
    for i in range(m):
        p = (i + n) % m
        negs = [j for j in range(m) if j not in (i, p)]
        s_neg = [ref_sim(z[i], z[j]) for j in negs]
        dens = [
            1.0 / (sigma * math.sqrt(2 * math.pi)) * torch.exp(-((s.detach() - mu) ** 2) / (2 * sigma**2))
            for s in s_neg
        ]
        mean_w = torch.stack(dens).mean()
        pos = torch.exp(ref_sim(z[i], z[p]) / t)
        ng = sum((w / mean_w) * torch.exp(s / t) for w, s in zip(dens, s_neg))
        losses.append(-torch.log(pos / (pos + ng)))
    return torch.stack(losses).mean()


def ref_varcon(z, y, t, eps):
    b = z.shape[0]
    zn = [z[i] / z[i].norm().clamp(min=1e-12) for i in range(b)]
    classes = sorted(set(int(v) for v in y))
    cents = []
    for r in classes:
        members = [zn[i] for i in range(b) if int(y[i]) == r]
        mean = torch.stack(members).mean(0).detach()
        cents.append(mean / mean.norm().clamp(min=1e-12))
    kl_total, nll_total = 0.0, 0.0
    for i in range(b):
        logits = [torch.dot(zn[i], w) / t for w in cents]
        lse = ref_lse(logits)
        log_p = [lg - lse for lg in logits]
        r_true = classes.index(int(y[i]))
        t2 = torch.clamp((t - eps) + 2 * eps * torch.exp(log_p[r_true]), min=1e-6)
        q_logits = [(1.0 / t2) if r == r_true else torch.zeros((), dtype=z.dtype) for r in range(len(classes))]
        q_lse = ref_lse(q_logits)
        for r in range(len(classes)):
            log_q = q_logits[r] - q_lse
            kl_total = kl_total + torch.exp(log_q) * (log_q - log_p[r])
        nll_total = nll_total - log_p[r_true]
    return kl_total / b + nll_total / b


def ref_slices(z, k):
    d = z.shape[1] // k
    return [z[:, a * d:(a + 1) * d] for a in range(k)]


def ref_sub_info_max(z1, z2, k, t, similarity="cosine"):
    return sum(ref_info_nce(a, b, t, similarity) for a, b in zip(ref_slices(z1, k), ref_slices(z2, k)))


def ref_r_info_min_sum(z, k, t, similarity="cosine"):
    """The poster's R_InfoMin, term for term:
    sum_{k != k'} sum_i log( exp(z_{i,k}.z_{i,k'}/t) / sum_{a != i} exp(z_{i,k}.z_{a,k}/t) )."""
    s = ref_slices(z, k)
    b = z.shape[0]
    total = torch.zeros((), dtype=z.dtype)
    for kk in range(k):
        for k2 in range(k):
            if kk == k2:
                continue
            for i in range(b):
                num = torch.exp(ref_sim(s[kk][i], s[k2][i], similarity) / t)
                den = sum(torch.exp(ref_sim(s[kk][i], s[kk][a], similarity) / t) for a in range(b) if a != i)
                total = total + torch.log(num / den)
    return total


def ref_r_ortho(z, k, perm=None):
    s = ref_slices(z, k)
    b = z.shape[0]
    values = []
    for a in range(k):
        for c in range(a + 1, k):
            for i in range(b):
                for j in range(b):
                    if i != j:
                        other = s[c][j] if perm is None else s[c][j][perm]
                        values.append(ref_sim(s[a][i], other).abs())
    return torch.stack(values).mean()


def ref_r_hess(z1, z2, k, t):
    n = z1.shape[0]
    loss = ref_sub_info_max(z1, z2, k, t) * (2 * n)
    g1, g2 = torch.autograd.grad(loss, (z1, z2), create_graph=True)
    g = torch.cat([g1, g2])
    gs = ref_slices(g, k)
    norms = []
    for a in range(k):
        for c in range(a + 1, k):
            m = sum(torch.outer(gs[a][i], gs[c][i]) for i in range(2 * n))
            norms.append(torch.sqrt((m**2).sum()))
    return torch.stack(norms).mean() / (2 * n)


def ref_gauss_logq(mu, logvar, y):
    """log q(y | x) for one pair, up to the -D/2 log 2pi constant."""
    return (-((y - mu) ** 2) / (2 * torch.exp(logvar)) - logvar / 2).sum()


def ref_club_sample(est, x, y, perm):
    mu, logvar = est.get_mu_logvar(x)
    terms = []
    for i in range(x.shape[0]):
        terms.append(ref_gauss_logq(mu[i], logvar[i], y[i]) - ref_gauss_logq(mu[i], logvar[i], y[perm[i]]))
    return torch.stack(terms).mean()


def ref_l1out(est, x, y):
    mu, logvar = est.get_mu_logvar(x)
    b = x.shape[0]
    terms = []
    for i in range(b):
        pos = ref_gauss_logq(mu[i], logvar[i], y[i])
        neg = ref_lse([ref_gauss_logq(mu[j], logvar[j], y[i]) for j in range(b) if j != i]) - math.log(b - 1)
        terms.append(pos - neg)
    return torch.stack(terms).mean()


def assert_close(a, b, atol, rtol=0.0):
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


# --------------------------------------------------------------------------------------------
# independent implementations: pytorch-metric-learning
# --------------------------------------------------------------------------------------------

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("temperature", [0.07, 0.1, 0.5])
def test_supcon_matches_pml(seed, temperature):
    z = _rand(64, 32, seed=seed, dtype=torch.float32)
    y = _labels(64, 5, seed)
    ours = L.supcon(z, y, temperature=temperature)
    (g_ours,) = _grad(ours, z)
    theirs = pml_losses.SupConLoss(temperature=temperature)(z, y)
    (g_theirs,) = _grad(theirs, z)
    assert_close(ours, theirs, atol=1e-5)
    assert_close(g_ours, g_theirs, atol=1e-4)


def test_supcon_multiview_matches_pml():
    z = _rand(24, 2, 16, seed=3, dtype=torch.float32)
    y = _labels(24, 4, 3)
    ours = L.supcon(z, y, temperature=0.1)
    (g_ours,) = _grad(ours, z)
    theirs = pml_losses.SupConLoss(temperature=0.1)(z.reshape(48, 16), y.repeat_interleave(2))
    (g_theirs,) = _grad(theirs, z)
    assert_close(ours, theirs, atol=1e-5)
    assert_close(g_ours, g_theirs, atol=1e-4)


def test_supcon_with_singletons_matches_pml():
    # classes 7 and 9 have one member each: those anchors have no positive and are dropped
    z = _rand(10, 8, seed=4, dtype=torch.float32)
    y = torch.tensor([0, 0, 1, 1, 1, 2, 2, 7, 9, 0])
    ours = L.supcon(z, y)
    theirs = pml_losses.SupConLoss(temperature=0.1)(z, y)
    assert_close(ours, theirs, atol=1e-5)
    assert_close(_grad(ours, z)[0], _grad(theirs, z)[0], atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_info_nce_matches_pml_ntxent(seed, temperature):
    n = 32
    z1 = _rand(n, 16, seed=seed, dtype=torch.float32)
    z2 = _rand(n, 16, seed=seed + 50, dtype=torch.float32)
    ours = L.info_nce(z1, z2, temperature=temperature)
    g1, g2 = _grad(ours, z1, z2)
    labels = torch.arange(n).repeat(2)  # the two views of sample i share label i
    theirs = pml_losses.NTXentLoss(temperature=temperature)(torch.cat([z1, z2]), labels)
    h1, h2 = _grad(theirs, z1, z2)
    assert_close(ours, theirs, atol=1e-5)
    assert_close(g1, h1, atol=1e-4)
    assert_close(g2, h2, atol=1e-4)


# --------------------------------------------------------------------------------------------
# loop references (float64, tight)
# --------------------------------------------------------------------------------------------

TIGHT = 1e-10


@pytest.mark.parametrize("similarity", ["cosine", "dot", "l2"])
def test_info_nce_and_supcon_match_loop_reference(similarity):
    z1, z2 = _rand(6, 5, seed=10), _rand(6, 5, seed=11)
    ours = L.info_nce(z1, z2, temperature=0.3, similarity=similarity)
    ref = ref_info_nce(z1, z2, 0.3, similarity)
    assert_close(ours, ref, atol=TIGHT)
    for a, b in zip(_grad(ours, z1, z2), _grad(ref, z1, z2)):
        assert_close(a, b, atol=1e-8)
    y = torch.tensor([0, 1, 0, 2, 1, 3])
    ours = L.supcon(z1, y, temperature=0.3, similarity=similarity)
    ref = ref_supcon(z1, y, 0.3, similarity)
    assert_close(ours, ref, atol=TIGHT)
    assert_close(_grad(ours, z1)[0], _grad(ref, z1)[0], atol=1e-8)


@pytest.mark.parametrize("similarity", ["cosine", "dot", "l2"])
@pytest.mark.parametrize("switched", [False, True])
def test_snn_and_ps_snn_match_loop_reference(similarity, switched):
    z = _rand(9, 4, seed=12)
    y = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 4])  # classes 2 and 4: no same-label positive
    fn = L.ps_snn if switched else L.snn
    ours = fn(z, y, temperature=0.2, similarity=similarity)
    ref = ref_snn(z, y, 0.2, switched, similarity)
    assert_close(ours, ref, atol=TIGHT)
    assert_close(_grad(ours, z)[0], _grad(ref, z)[0], atol=1e-8)


@pytest.mark.parametrize("mu,sigma", [(0.7, 1.0), (0.0, 0.3), (-0.5, 2.0)])
def test_adnce_matches_loop_reference(mu, sigma):
    z1, z2 = _rand(5, 6, seed=13), _rand(5, 6, seed=14)
    ours = L.adnce(z1, z2, temperature=0.4, mu=mu, sigma=sigma)
    ref = ref_adnce(z1, z2, 0.4, mu, sigma)
    assert_close(ours, ref, atol=TIGHT)
    for a, b in zip(_grad(ours, z1, z2), _grad(ref, z1, z2)):
        assert_close(a, b, atol=1e-8)


def test_adnce_with_flat_weights_is_info_nce():
    z1, z2 = _rand(7, 6, seed=15), _rand(7, 6, seed=16)
    # a very wide Gaussian weighs every negative ~1
    assert_close(L.adnce(z1, z2, 0.5, mu=0.0, sigma=1e6), L.info_nce(z1, z2, 0.5), atol=1e-9)


@pytest.mark.parametrize("eps", [0.02, 0.0, 0.09])
def test_varcon_matches_loop_reference(eps):
    z = _rand(11, 5, seed=17)
    y = torch.tensor([3, 3, 5, 5, 5, 9, 9, 3, 0, 5, 9])  # arbitrary (non-contiguous) ids
    ours = L.varcon(z, y, temperature=0.1, epsilon=eps)
    ref = ref_varcon(z, y, 0.1, eps)
    assert_close(ours, ref, atol=TIGHT)
    assert_close(_grad(ours, z)[0], _grad(ref, z)[0], atol=1e-8)


def test_varcon_multiview_is_flattened():
    z = _rand(6, 2, 5, seed=18)
    y = torch.tensor([0, 1, 0, 1, 2, 2])
    assert_close(L.varcon(z, y), L.varcon(z.reshape(12, 5), y.repeat_interleave(2)), atol=TIGHT)


def test_varcon_matches_official_formula():
    """The official VarConLoss computes q with exp(1/t2) weights and F.kl_div; same value."""
    z = F.normalize(_rand(20, 8, seed=19), dim=1)
    y = _labels(20, 4, 19)
    uniq, inv = torch.unique(y, return_inverse=True)
    one_hot = F.one_hot(inv, len(uniq)).double()
    cent = F.normalize(one_hot.T @ z / one_hot.sum(0)[:, None], dim=1).detach()
    logits = z @ cent.T / 0.1
    p = logits.softmax(1)
    conf = p.gather(1, inv[:, None])[:, 0]
    t2 = ((0.1 - 0.02) + 0.04 * conf).clamp(min=1e-6)
    q_exp = 1.0 + (torch.exp(1.0 / t2)[:, None] - 1.0) * one_hot
    q = q_exp / q_exp.sum(1, keepdim=True)
    logp = logits.log_softmax(1)
    official = F.kl_div(logp, q, reduction="batchmean") - logp.gather(1, inv[:, None]).mean()
    assert_close(L.varcon(z, y, 0.1, 0.02), official, atol=1e-9)


@pytest.mark.parametrize("similarity", ["cosine", "dot", "l2"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_sub_info_max_matches_loop_reference(k, similarity):
    z1, z2 = _rand(5, 6, seed=20), _rand(5, 6, seed=21)
    ours = L.sub_info_max(z1, z2, k=k, temperature=0.5, similarity=similarity)
    ref = ref_sub_info_max(z1, z2, k, 0.5, similarity)
    assert_close(ours, ref, atol=TIGHT)
    for a, b in zip(_grad(ours, z1, z2), _grad(ref, z1, z2)):
        assert_close(a, b, atol=1e-8)
    if k == 1:
        assert_close(ours, L.info_nce(z1, z2, 0.5, similarity=similarity), atol=TIGHT)


@pytest.mark.parametrize("similarity", ["cosine", "dot", "l2"])
@pytest.mark.parametrize("k", [2, 3])
def test_r_info_min_matches_loop_reference(k, similarity):
    """r_info_min is the poster's sum divided by the batch size (a mean over samples)."""
    z = _rand(5, 6, seed=22)
    ours = L.r_info_min(z, k=k, temperature=0.5, similarity=similarity)
    ref = ref_r_info_min_sum(z, k, 0.5, similarity) / 5
    assert_close(ours, ref, atol=TIGHT)
    assert_close(_grad(ours, z)[0], _grad(ref, z)[0], atol=1e-8)


def test_r_info_min_denominator_is_the_same_slice_of_the_other_samples():
    """Only the same slice of the *other* samples enters the denominator: changing a sample's other
    slices moves only the numerators that involve it, and a sample's own slice k never counts."""
    z = _rand(4, 4, seed=30)
    t = 0.5
    zs = z.reshape(4, 2, 2)
    direct = 0.0
    for i in range(4):
        for kk, k2 in ((0, 1), (1, 0)):
            num = ref_sim(zs[i, kk], zs[i, k2]) / t
            den = torch.logsumexp(torch.stack([ref_sim(zs[i, kk], zs[a, kk]) / t for a in range(4) if a != i]), 0)
            direct += (num - den).item()
    assert _f(L.r_info_min(z, k=2, temperature=t)) == pytest.approx(direct / 4, abs=1e-12)
    # two slices equal within every sample and orthogonal across samples: the numerator is at its
    # maximum 1/t, every same-slice similarity to another sample is 0, so R = 2 (1/t - log(B-1))
    eye = torch.eye(4, dtype=torch.float64)
    same = torch.cat([eye, eye], 1)
    assert _f(L.r_info_min(same, k=2, temperature=t)) == pytest.approx(2 * (1 / t - math.log(3)), abs=1e-12)
    assert _f(L.r_info_min(z[:1], k=2)) == 0.0  # no other sample


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("permute", [False, True])
def test_r_ortho_matches_loop_reference(k, permute):
    z = _rand(5, 12, seed=23)
    ours = L.r_ortho(z, k=k, permute=permute, seed=7)
    perm = torch.randperm(12 // k, generator=torch.Generator().manual_seed(7)) if permute else None
    ref = ref_r_ortho(z, k, perm)
    assert_close(ours, ref, atol=TIGHT)
    assert_close(_grad(ours, z)[0], _grad(ref, z)[0], atol=1e-8)
    if permute:  # fixed: the same P on every call; and an explicit P gives the same value
        assert_close(L.r_ortho(z, k=k, permute=True, seed=7), ours, atol=0.0)
        assert_close(L.r_ortho(z, k=k, permute=perm), ours, atol=TIGHT)


@pytest.mark.parametrize("k", [2, 3])
def test_r_hess_matches_loop_reference(k):
    z1, z2 = _rand(4, 6, seed=24), _rand(4, 6, seed=25)
    ours = L.r_hess(z1, z2, k=k, temperature=0.5)
    ref = ref_r_hess(z1, z2, k, 0.5)
    assert_close(ours, ref, atol=1e-9)
    for a, b in zip(_grad(ours, z1, z2), _grad(ref, z1, z2)):
        assert_close(a, b, atol=1e-7)


def test_r_hess_without_grad_gives_value_only():
    z1, z2 = _rand(4, 6, seed=24), _rand(4, 6, seed=25)
    with torch.no_grad():
        value = L.r_hess(z1, z2)
    assert not value.requires_grad
    assert_close(value, L.r_hess(z1, z2).detach(), atol=TIGHT)


def test_club_sample_and_l1out_match_loop_reference():
    torch.manual_seed(0)
    est = GaussianConditional(3, 4, hidden_size=8).double()
    x, y = _rand(7, 3, seed=26), _rand(7, 4, seed=27)
    perm = torch.tensor([3, 0, 6, 1, 2, 4, 5])
    ours = L.club_sample(est, x, y, perm=perm)
    ref = ref_club_sample(est, x, y, perm)
    assert_close(ours, ref, atol=TIGHT)
    for a, b in zip(_grad(ours, x, y), _grad(ref, x, y)):
        assert_close(a, b, atol=1e-8)
    ours = L.l1out(est, x, y)
    ref = ref_l1out(est, x, y)
    assert_close(ours, ref, atol=TIGHT)
    for a, b in zip(_grad(ours, x, y), _grad(ref, x, y)):
        assert_close(a, b, atol=1e-8)


def test_club_sample_seeded_permutation_is_reproducible():
    est = CLUBSample(3, 4, hidden_size=8).double()
    x, y = _rand(9, 3, seed=28), _rand(9, 4, seed=29)
    a = L.club_sample(est, x, y, generator=torch.Generator().manual_seed(5))
    b = L.club_sample(est, x, y, generator=torch.Generator().manual_seed(5))
    assert_close(a, b, atol=0.0)
    torch.manual_seed(3)
    via_module = est(x, y)  # forward is the bound, drawing its permutation from the global RNG
    torch.manual_seed(3)
    assert_close(via_module, L.club_sample(est, x, y), atol=0.0)
    # the identity permutation compares each pair with itself: the bound is 0
    assert _f(L.club_sample(est, x, y, perm=torch.arange(9)).detach()) == 0.0


def test_tc_penalty_is_the_density_ratio_of_the_official_code():
    torch.manual_seed(0)
    disc = TCDiscriminator(6).double()
    z_c, z_s = _rand(10, 3, seed=30), _rand(10, 3, seed=31)
    d = torch.sigmoid(disc(torch.cat([z_c, z_s], 1)))  # official: sigmoid output D(z)
    official = F.relu(torch.log(d / (1 - d))).mean()
    assert_close(L.tc_penalty(disc, z_c, z_s), official, atol=1e-9)
    assert_close(L.tc_penalty(disc, z_c, z_s, nonnegative=False), torch.log(d / (1 - d)).mean(), atol=1e-9)
    assert_close(disc.penalty(z_c, z_s), official, atol=1e-9)
    # learning loss: BCE joint -> 1, rolled style -> 0, over 2B rows
    marg = torch.cat([z_c, torch.roll(z_s, -1, 0)], 1)
    dm = torch.sigmoid(disc(marg))
    bce = -(torch.log(d).sum() + torch.log(1 - dm).sum()) / 20
    assert_close(disc.learning_loss(z_c, z_s), bce, atol=1e-9)


def test_mi_estimators_learn_on_detached_inputs():
    """A few estimator steps on dependent latents give a clearly positive CLUB-S / L1Out bound,
    and the penalty's gradient reaches the latents."""
    torch.manual_seed(0)
    n, d = 64, 4
    x = torch.randn(n, d)
    y = x + 0.1 * torch.randn(n, d)
    for est in (CLUBSample(d, d, 32), L1OutUB(d, d, 32)):
        opt = torch.optim.Adam(est.parameters(), lr=3e-2)
        first = _f(est.learning_loss(x, y))
        for _ in range(60):
            opt.zero_grad()
            est.learning_loss(x.detach(), y.detach()).backward()
            opt.step()
        assert _f(est.learning_loss(x, y)) < first
        xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()
        bound = est(xr, yr)
        assert _f(bound) > 1.0
        gx, gy = _grad(bound, xr, yr)
        assert torch.isfinite(gx).all() and gx.abs().sum() > 0 and torch.isfinite(gy).all()
    disc = TCDiscriminator(4, 32)
    z = torch.cat([x[:, :2], x[:, :2] + 0.05 * torch.randn(n, 2)], 1)  # strongly dependent halves
    opt = torch.optim.Adam(disc.parameters(), lr=3e-2)
    for _ in range(60):
        opt.zero_grad()
        disc.learning_loss(z[:, :2], z[:, 2:], strategy="random").backward()
        opt.step()
    assert _f(L.tc_penalty(disc, z[:, :2], z[:, 2:], nonnegative=False)) > 0.5


def test_build_mi_estimator():
    assert isinstance(build_mi_estimator("tc", 3, 5), TCDiscriminator)
    assert isinstance(build_mi_estimator("CLUB-S", 3, 5), CLUBSample)
    assert isinstance(build_mi_estimator("l1out", 3, 5), L1OutUB)
    with pytest.raises(ValueError):
        build_mi_estimator("mine", 3, 5)


# --------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------


def test_ps_snn_decreases_when_style_is_shuffled_across_labels():
    """Label-informative style embeddings pay a high PS-SNN; shuffling them across labels (so z_s
    no longer predicts y) lowers it. The CLEAR objective therefore pushes z_s towards the latter."""
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        y = torch.arange(64) % 4
        centres = torch.randn(4, 8, generator=g) * 3
        z_s = centres[y] + 0.3 * torch.randn(64, 8, generator=g)
        shuffled = z_s[torch.randperm(64, generator=g)]
        for similarity in ("cosine", "l2"):
            informative = L.ps_snn(z_s, y, temperature=0.1, similarity=similarity)
            uninformative = L.ps_snn(shuffled, y, temperature=0.1, similarity=similarity)
            assert uninformative < informative
        # and SNN, the content term, does the opposite
        assert L.snn(z_s, y) < L.snn(shuffled, y)


def test_supcon_and_info_nce_invariances():
    z1, z2 = _rand(8, 5, seed=32), _rand(8, 5, seed=33)
    assert_close(L.info_nce(z1, z2), L.info_nce(z2, z1), atol=TIGHT)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    assert_close(L.info_nce(z1[perm], z2[perm]), L.info_nce(z1, z2), atol=TIGHT)
    y = _labels(8, 3, 33)
    assert_close(L.supcon(z1[perm], y[perm]), L.supcon(z1, y), atol=TIGHT)
    # cosine: invariant to the scale of each row
    scale = torch.rand(8, 1, dtype=torch.float64) + 0.5
    assert_close(L.supcon(z1 * scale, y), L.supcon(z1, y), atol=1e-9)
    assert_close(L.snn(z1 * scale, y), L.snn(z1, y), atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(min_value=2, max_value=9),
    d=st.integers(min_value=1, max_value=6),
    c=st.integers(min_value=1, max_value=4),
    t=st.sampled_from([0.05, 0.1, 1.0]),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_label_losses_match_references_on_random_batches(b, d, c, t, seed):
    z = _rand(b, d, seed=seed)
    y = _labels(b, c, seed)
    has_pos = any((y == y[i]).sum() > 1 for i in range(b))
    has_other = len(set(y.tolist())) > 1
    for fn, ref, ok in (
        (L.supcon, lambda: ref_supcon(z, y, t), has_pos),
        (L.snn, lambda: ref_snn(z, y, t), has_pos),
        (L.ps_snn, lambda: ref_snn(z, y, t, switched=True), has_other),
    ):
        value = fn(z, y, temperature=t)
        if ok:
            assert_close(value, ref(), atol=1e-9)
        else:
            assert _f(value) == 0.0
    assert_close(L.varcon(z, y, temperature=t), ref_varcon(z, y, t, 0.02), atol=1e-9)


class _Recorder(torch.utils._python_dispatch.TorchDispatchMode):
    """Records every aten op and the sizes of the tensors it produces."""

    def __init__(self):
        super().__init__()
        self.ops = 0
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.shapes.append(tuple(t.shape))
        return out


def _record(fn, z, y):
    z = z.detach().requires_grad_()
    with _Recorder() as rec:
        fn(z, y).backward()
    return rec


def test_varcon_is_linear_in_batch_size():
    """VarCon never builds a B x B tensor, forward or backward, and its work is O(B*C): the same
    number of operations at every B and matmul FLOPs proportional to B at fixed C."""
    from torch.utils.flop_counter import FlopCounterMode

    c, d = 10, 16
    ops, flops = {}, {}
    for b in (200, 400, 800):
        z = torch.randn(b, d)
        y = torch.arange(b) % c
        rec = _record(L.varcon, z, y)
        biggest = max(math.prod(s) for s in rec.shapes)
        assert biggest <= b * d, f"varcon built a tensor of {biggest} elements at B={b}"
        assert all(sum(1 for n in s if n >= b) <= 1 for s in rec.shapes)
        ops[b] = rec.ops
        counter = FlopCounterMode(display=False)
        zz = z.clone().requires_grad_()
        with counter:
            L.varcon(zz, y).backward()
        flops[b] = counter.get_total_flops()
    assert ops[200] == ops[400] == ops[800]
    assert flops[400] == 2 * flops[200] and flops[800] == 4 * flops[200]
    # the recorder does see the B x B matrix of supcon (the check above is not vacuous)
    rec = _record(L.supcon, torch.randn(200, d), torch.arange(200) % c)
    assert max(math.prod(s) for s in rec.shapes) >= 200 * 200


# --------------------------------------------------------------------------------------------
# edge cases: finite value and finite gradient, or a clear ValueError -- never NaN
# --------------------------------------------------------------------------------------------


def _pair(fn, **kw):
    def call(z, y):
        n = z.shape[0]
        h = max(n // 2, 1)
        return fn(z[:h], z[n - h:], **kw)

    return call


def _est_call(kind):
    torch.manual_seed(0)

    def call(z, y):
        d = z.shape[1] // 2
        est = build_mi_estimator(kind, d, d, 8).to(z.dtype)
        if kind == "tc":
            return L.tc_penalty(est, z[:, :d], z[:, d:])
        if kind == "club_sample":
            return L.club_sample(est, z[:, :d], z[:, d:])
        return L.l1out(est, z[:, :d], z[:, d:])

    return call


LOSSES = {
    "info_nce": _pair(L.info_nce),
    "adnce": _pair(L.adnce),
    "sub_info_max": _pair(L.sub_info_max),
    "r_hess": _pair(L.r_hess),
    "supcon": lambda z, y: L.supcon(z, y),
    "snn": lambda z, y: L.snn(z, y),
    "ps_snn": lambda z, y: L.ps_snn(z, y),
    "snn_l2": lambda z, y: L.snn(z, y, similarity="l2"),
    "ps_snn_l2": lambda z, y: L.ps_snn(z, y, similarity="l2"),
    "varcon": lambda z, y: L.varcon(z, y),
    "r_info_min": lambda z, y: L.r_info_min(z),
    "r_ortho": lambda z, y: L.r_ortho(z),
    "r_ortho_p": lambda z, y: L.r_ortho(z, permute=True),
    "tc_penalty": _est_call("tc"),
    "club_sample": _est_call("club_sample"),
    "l1out": _est_call("l1out"),
}

TEMPERATURE_LOSSES = {
    "info_nce": lambda z, y: L.info_nce(z[:4], z[4:], temperature=0.01),
    "adnce": lambda z, y: L.adnce(z[:4], z[4:], temperature=0.01, sigma=0.05),
    "supcon": lambda z, y: L.supcon(z, y, temperature=0.01),
    "snn": lambda z, y: L.snn(z, y, temperature=0.01),
    "ps_snn": lambda z, y: L.ps_snn(z, y, temperature=0.01),
    "snn_dot": lambda z, y: L.snn(z * 30, y, temperature=0.01, similarity="dot"),
    "varcon": lambda z, y: L.varcon(z, y, temperature=0.01, epsilon=0.02),
    "sub_info_max": lambda z, y: L.sub_info_max(z[:4], z[4:], temperature=0.01),
    "r_info_min": lambda z, y: L.r_info_min(z, temperature=0.01),
    "r_hess": lambda z, y: L.r_hess(z[:4], z[4:], temperature=0.01),
}


def _edge_inputs():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 6, generator=g)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    zero = z.clone()
    zero[2] = 0.0
    return {
        "batch_of_one": (z[:1], y[:1]),
        "single_class": (z, torch.zeros(8, dtype=torch.long)),
        "anchor_without_positive": (z, torch.tensor([0, 0, 1, 1, 2, 2, 3, 4])),
        "all_distinct_labels": (z, torch.arange(8)),
        "identical_embeddings": (z[:1].repeat(8, 1), y),
        "zero_vector": (zero, y),
        "all_zero": (torch.zeros(8, 6), y),
    }


def _check_finite_or_value_error(fn, z, y):
    z = z.clone().float().requires_grad_()
    try:
        value = fn(z, y)
    except ValueError as err:
        assert str(err)
        return
    assert value.dim() == 0 and value.dtype == torch.float32
    assert torch.isfinite(value), f"non-finite value {value}"
    (grad,) = torch.autograd.grad(value, z, allow_unused=True)
    assert grad is None or torch.isfinite(grad).all(), "non-finite gradient"


@pytest.mark.parametrize("case", list(_edge_inputs()))
@pytest.mark.parametrize("name", list(LOSSES))
def test_edge_cases_are_finite_or_raise(name, case):
    z, y = _edge_inputs()[case]
    _check_finite_or_value_error(LOSSES[name], z, y)


@pytest.mark.parametrize("name", list(TEMPERATURE_LOSSES))
def test_small_temperature_in_float32_is_finite(name):
    for case in ("single_class", "anchor_without_positive", "identical_embeddings", "zero_vector"):
        z, y = _edge_inputs()[case]
        _check_finite_or_value_error(TEMPERATURE_LOSSES[name], z, y)
    # and well-separated data: the loss is large but finite, not inf
    z = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    _check_finite_or_value_error(TEMPERATURE_LOSSES[name], z, torch.tensor([0, 1, 0, 1, 0, 1, 0, 1]))


def test_degenerate_batches_give_exact_zero():
    z = _rand(1, 4, seed=40)
    y = torch.tensor([3])
    for value in (L.supcon(z, y), L.snn(z, y), L.ps_snn(z, y), L.varcon(z, y), L.r_ortho(_rand(1, 4))):
        assert _f(value) == 0.0
    assert _f(L.info_nce(z, _rand(1, 4, seed=41))) == pytest.approx(0.0, abs=1e-12)
    z = _rand(5, 4, seed=42)
    assert _f(L.ps_snn(z, torch.zeros(5, dtype=torch.long))) == 0.0
    assert _f(L.varcon(z, torch.zeros(5, dtype=torch.long))) == pytest.approx(0.0, abs=1e-12)
    assert _f(L.supcon(z, torch.arange(5))) == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        L.l1out(GaussianConditional(2, 2), _rand(1, 2), _rand(1, 2))


@pytest.mark.parametrize(
    "call",
    [
        lambda: L.info_nce(torch.randn(4, 3), torch.randn(5, 3)),
        lambda: L.info_nce(torch.randn(4, 3), torch.randn(4, 3), temperature=0),
        lambda: L.info_nce(torch.randn(4, 3), torch.randn(4, 3), temperature=-0.1),
        lambda: L.info_nce(torch.randn(4, 3), torch.randn(4, 3), similarity="euclid"),
        lambda: L.info_nce(torch.zeros(0, 3), torch.zeros(0, 3)),
        lambda: L.supcon(torch.randn(4, 3), torch.tensor([0, 1, 0])),
        lambda: L.supcon(torch.randn(4), torch.tensor([0, 1, 0, 1])),
        lambda: L.supcon(torch.randint(0, 3, (4, 3)), torch.tensor([0, 1, 0, 1])),
        lambda: L.snn(torch.randn(4, 2, 3), torch.tensor([0, 1, 0, 1])),
        lambda: L.adnce(torch.randn(4, 3), torch.randn(4, 3), sigma=0),
        lambda: L.varcon(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]), epsilon=-1),
        lambda: L.varcon(torch.randn(4, 3), torch.tensor([0.5, 1, 0, 1])),
        lambda: L.sub_info_max(torch.randn(4, 5), torch.randn(4, 5), k=2),
        lambda: L.r_ortho(torch.randn(4, 6), k=1),
        lambda: L.r_ortho(torch.randn(4, 6), k=2, permute=torch.tensor([0, 0, 1])),
        lambda: L.r_info_min(torch.randn(4, 6), k=0),
        lambda: L.club_sample(CLUBSample(2, 2), torch.randn(4, 2), torch.randn(3, 2)),
        lambda: L.tc_penalty(lambda z: z, torch.randn(4, 2), torch.randn(4, 2)),
    ],
)
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_gradcheck_float64():
    z1, z2 = _rand(4, 3, seed=50), _rand(4, 3, seed=51)
    y = torch.tensor([0, 1, 0, 1])
    for fn in (
        lambda a, b: L.info_nce(a, b, 0.3),
        lambda a, b: L.supcon(a, y, 0.3) + L.snn(b, y, 0.3) + L.ps_snn(a, y, 0.3),
        lambda a, b: L.r_info_min(torch.cat([a, b], 1)) + L.r_ortho(torch.cat([a, b], 1)),
        lambda a, b: L.sub_info_max(torch.cat([a, b], 1), torch.cat([b, a], 1), k=2),
    ):  # (adnce and varcon are left out: their detached weights / centroids make the analytic
        # gradient differ from the numerical one by design; their loop references check it)
        assert torch.autograd.gradcheck(fn, (z1, z2))


# --------------------------------------------------------------------------------------------
# dtype and device
# --------------------------------------------------------------------------------------------

DTYPE_CALLS = {
    "info_nce": lambda z, y: L.info_nce(z[:8], z[8:]),
    "adnce": lambda z, y: L.adnce(z[:8], z[8:]),
    "supcon": lambda z, y: L.supcon(z, y),
    "snn": lambda z, y: L.snn(z, y),
    "ps_snn": lambda z, y: L.ps_snn(z, y),
    "varcon": lambda z, y: L.varcon(z, y),
    "sub_info_max": lambda z, y: L.sub_info_max(z[:8], z[8:]),
    "r_info_min": lambda z, y: L.r_info_min(z),
    "r_ortho": lambda z, y: L.r_ortho(z),
    "r_hess": lambda z, y: L.r_hess(z[:8], z[8:]),
}


def _devices():
    return ["cpu", "cuda"] if CUDA else ["cpu"]


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", list(DTYPE_CALLS))
def test_dtype_and_device_preserved(name, dtype, device):
    base = torch.randn(16, 8, generator=torch.Generator().manual_seed(2))
    y = (torch.arange(16) % 3).to(device)
    z = base.to(device=device, dtype=dtype).requires_grad_()
    value = DTYPE_CALLS[name](z, y)
    assert value.dtype == dtype and value.device.type == device and value.dim() == 0
    (grad,) = torch.autograd.grad(value, z)
    assert grad.dtype == dtype and torch.isfinite(grad.float()).all()
    # half precision is computed in float32: the value is the float32 one, rounded once
    ref = DTYPE_CALLS[name](z.detach().float().requires_grad_(), y)
    tol = {torch.bfloat16: 2e-2, torch.float16: 2e-3}.get(dtype, 1e-5)
    assert abs(_f(value) - _f(ref)) <= tol * max(1.0, abs(_f(ref)))


def test_mi_penalties_keep_dtype():
    est = CLUBSample(3, 3, 8)
    disc = TCDiscriminator(6, 8)
    x, y = torch.randn(6, 3), torch.randn(6, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for value in (L.club_sample(est, x, y), L.l1out(est, x, y), L.tc_penalty(disc, x, y)):
            assert value.dtype == torch.float32 and torch.isfinite(value)
    x64, y64 = x.double(), y.double()
    assert L.l1out(est.double(), x64, y64).dtype == torch.float64


def _official_l1out_broadcast(est, x, y):
    """The official L1OutUB forward, its [B, B, 1] diagonal mask broadcasting to B x B x B included."""
    b = y.shape[0]
    mu, logvar = est.get_mu_logvar(x)
    positive = (-((mu - y) ** 2) / 2.0 / logvar.exp() - logvar / 2.0).sum(-1)
    all_probs = (-((y.unsqueeze(0) - mu.unsqueeze(1)) ** 2) / 2.0 / logvar.unsqueeze(1).exp()
                 - logvar.unsqueeze(1) / 2.0).sum(-1)
    mask = torch.ones(b, dtype=x.dtype).diag().unsqueeze(-1) * -20.0
    negative = torch.logsumexp(all_probs + mask, dim=0) - math.log(b - 1)
    return (positive - negative).mean()


def test_l1out_official_form_equals_the_official_broadcast():
    torch.manual_seed(1)
    est = L1OutUB(3, 4, hidden_size=8, l1out_form="official").double()
    x, y = _rand(9, 3, seed=30), 3.0 * _rand(9, 4, seed=31)
    ours = L.l1out(est, x, y, form="official")
    ref = _official_l1out_broadcast(est, x, y)
    assert_close(ours, ref, atol=1e-7)  # the official mask leaves e^-20 terms in
    for a, b in zip(_grad(ours, x, y), _grad(ref, x, y)):
        assert_close(a, b, atol=1e-6)
    assert_close(est(x, y), ours, atol=TIGHT)  # the estimator's forward follows its form
    # and the form differs from the leave-one-out bound as written
    assert abs(float(L.l1out(est, x, y)) - float(ours)) > 1e-3
    with pytest.raises(ValueError, match="l1out form"):
        L.l1out(est, x, y, form="loo")

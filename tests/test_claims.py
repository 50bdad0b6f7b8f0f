"""The claims engine on synthetic long-format results: every rule decides, and each can fail."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from clbench.papers import all_claims
from clbench.report.claims import (
    ALPHA,
    RULES,
    VERDICTS,
    Claim,
    evaluate_claim,
    evaluate_claims,
    load_claims,
    to_long,
)


DEFAULT_CLAIMS = all_claims()  # every registered paper's claims


def frame(rows, experiment="exp"):
    """rows: (method, metric, {seed: value}) -> long DataFrame."""
    out = []
    for method, metric, per_seed in rows:
        for seed, v in per_seed.items():
            out.append({"experiment": experiment, "method": method, "seed": seed, "metric": metric, "value": v})
    return pd.DataFrame(out)


def claim(check, **kw):
    return Claim.from_dict({"id": kw.pop("id", "t.c"), "paper": "t", "text": "test claim", "check": check, **kw})


def one(c, df, **kw):
    res = evaluate_claim(c, df, **kw)
    assert len(res) == 1
    return res[0]


GREATER = {"kind": "greater", "metric": "acc", "a": "a", "b": "b"}


# ---- comparisons: paired one-sided t-test over seeds ---------------------------------------------


def test_greater_holds_fails_inconclusive_and_not_run():
    df = frame([("a", "acc", {0: 0.80, 1: 0.82, 2: 0.81}), ("b", "acc", {0: 0.70, 1: 0.74, 2: 0.72})])
    r = one(claim(GREATER), df)
    assert r.verdict == "holds" and r.experiment == "exp" and r.rule == RULES["paired"]
    assert r.direction == "as claimed" and r.p_value < ALPHA and r.seed_agreement == 1.0
    assert r.numbers[0]["mean"] == pytest.approx(0.81) and r.numbers[0]["n"] == 3
    assert r.numbers[0]["std"] == pytest.approx(0.01)
    assert "a=0.81" in r.summary and ">" in r.summary and "over 3 seeds" in r.summary
    flipped = one(claim({**GREATER, "a": "b", "b": "a"}), df)
    assert flipped.verdict == "fails" and flipped.direction == "against the claim" and flipped.p_value > 1 - ALPHA
    # a mean in the claimed direction that the seeds do not support
    noisy = frame([("a", "acc", {0: 0.90, 1: 0.60, 2: 0.85}), ("b", "acc", {0: 0.70, 1: 0.70, 2: 0.70})])
    r = one(claim(GREATER), noisy)
    assert r.verdict == "inconclusive" and r.direction == "as claimed" and r.seed_agreement == pytest.approx(2 / 3)
    nr = one(claim({**GREATER, "b": "zzz"}), df)
    assert nr.verdict == "not run" and "zzz" in nr.reason
    # a claim about another metric: no experiment has data -> one "not run" row
    nr2 = one(claim({**GREATER, "metric": "other"}), df)
    assert nr2.verdict == "not run" and nr2.experiment is None


def test_the_p_value_is_the_one_sided_paired_t_test():
    a = {0: 0.81, 1: 0.78, 2: 0.84, 3: 0.80}
    b = {0: 0.79, 1: 0.77, 2: 0.80, 3: 0.81}
    r = one(claim(GREATER), frame([("a", "acc", a), ("b", "acc", b)]))
    want = stats.ttest_rel(list(a.values()), list(b.values()), alternative="greater").pvalue
    assert r.p_value == pytest.approx(want, rel=1e-9)
    assert r.verdict == ("holds" if want < ALPHA else "inconclusive")
    less = one(claim({"kind": "less", "metric": "acc", "a": "b", "b": "a"}), frame([("a", "acc", a), ("b", "acc", b)]))
    assert less.p_value == pytest.approx(want, rel=1e-9)


def test_one_seed_gives_the_direction_only_never_holds():
    df = frame([("a", "acc", {0: 0.9}), ("b", "acc", {0: 0.1})])
    r = one(claim(GREATER), df)
    assert r.verdict == "direction only (n=1)" and r.direction == "as claimed" and r.rule == RULES["n=1"]
    assert math.isnan(r.p_value) and "one seed, as claimed" in r.summary
    r = one(claim({**GREATER, "a": "b", "b": "a"}), df)
    assert r.verdict == "direction only (n=1)" and r.direction == "against the claim"
    eq = frame([("a", "acc", {0: 0.7}), ("b", "acc", {0: 0.7})])
    assert one(claim(GREATER), eq).direction == "no difference"


def test_no_slack_in_the_claims_favour():
    # a tiny difference against the claim is against it, at every number of seeds
    one_seed = frame([("a", "acc", {0: 0.700}), ("b", "acc", {0: 0.703})])
    assert one(claim(GREATER), one_seed).direction == "against the claim"
    seeds = frame([("a", "acc", {0: 0.700, 1: 0.701, 2: 0.699}), ("b", "acc", {0: 0.703, 1: 0.705, 2: 0.702})])
    assert one(claim(GREATER), seeds).verdict == "fails"
    with pytest.raises(ValueError, match="no tolerance"):
        claim({**GREATER, "tolerance": 0.005})
    with pytest.raises(ValueError, match="unknown check kind"):
        claim({"kind": "at_least", "metric": "acc", "a": "a", "b": "b"})
    with pytest.raises(ValueError, match="unknown check kind"):
        claim({"kind": "near", "metric": "acc", "method": "a", "target": 0.0})


def test_less_with_seeds():
    ep = frame([("varcon", "epochs", {0: 5, 1: 7, 2: 6}), ("supcon", "epochs", {0: 9, 1: 8, 2: 10})])
    c = claim({"kind": "less", "metric": "epochs", "a": "varcon", "b": "supcon"})
    r = one(c, ep)
    assert r.verdict == "holds" and r.seed_agreement == 1.0 and "<" in r.summary
    swapped = claim({"kind": "less", "metric": "epochs", "a": "supcon", "b": "varcon"})
    assert one(swapped, ep).verdict == "fails"


def test_a_difference_that_is_not_finite_is_inconclusive():
    ep = frame([("varcon", "epochs", {0: 5, 1: 7}), ("supcon", "epochs", {0: math.inf, 1: 8})])
    r = one(claim({"kind": "less", "metric": "epochs", "a": "varcon", "b": "supcon"}), ep)
    assert r.verdict == "inconclusive" and "not finite" in r.summary


def test_identical_differences_use_the_exact_sign_test():
    # sd = 0 has no t statistic: p = 0.5^n one-sided, so 3 identical seeds cannot reach 0.05
    three = frame([("a", "m", {0: 0.8, 1: 0.8, 2: 0.8}), ("b", "m", {0: 0.6, 1: 0.6, 2: 0.6})])
    r = one(claim({**GREATER, "metric": "m"}), three)
    assert r.verdict == "inconclusive" and r.p_value == pytest.approx(0.125)
    assert RULES["identical"] in r.rule and "sign test" in r.summary
    assert one(claim({**GREATER, "metric": "m", "a": "b", "b": "a"}), three).verdict == "inconclusive"
    five = frame([("a", "m", {s: 0.8 for s in range(5)}), ("b", "m", {s: 0.6 for s in range(5)})])
    r = one(claim({**GREATER, "metric": "m"}), five)
    assert r.verdict == "holds" and r.p_value == pytest.approx(0.5**5)
    assert one(claim({**GREATER, "metric": "m", "a": "b", "b": "a"}), five).verdict == "fails"
    tie = frame([("a", "m", {0: 0.8, 1: 0.8}), ("b", "m", {0: 0.8, 1: 0.8})])
    r = one(claim({**GREATER, "metric": "m"}), tie)
    assert r.verdict == "inconclusive" and r.p_value == 1.0
    # equal differences up to rounding (0.81 - 0.61 vs 0.8 - 0.6) are identical too
    rounded = frame([("a", "m", {0: 0.8, 1: 0.81, 2: 0.82}), ("b", "m", {0: 0.6, 1: 0.61, 2: 0.62})])
    assert one(claim({**GREATER, "metric": "m"}), rounded).p_value == pytest.approx(0.125)
    # quantised values, differences not identical: the t-test as before
    varied = frame([("a", "m", {0: 0.8, 1: 0.9, 2: 1.0}), ("b", "m", {0: 0.6, 1: 0.6, 2: 0.6})])
    assert "sign test" not in one(claim({**GREATER, "metric": "m"}), varied).rule
    # a band: every seed the same value inside it
    inside = frame([("a", "m", {0: 0.5, 1: 0.5, 2: 0.5})])
    r = one(claim({"kind": "within", "metric": "m", "method": "a", "lo": 0.3}), inside)
    assert r.verdict == "inconclusive" and r.p_value == pytest.approx(0.125)


def test_alpha_is_005_and_the_test_one_sided():
    assert ALPHA == 0.05 and "alpha = 0.05" in RULES["paired"]

    def diffs(d):
        return frame([("a", "m", {s: 10 + x for s, x in enumerate(d)}), ("b", "m", {s: 10.0 for s in range(len(d))})])

    # one-sided p = 0.037 (two-sided 0.074): holds only with a one-sided test at 0.05
    r = one(claim({**GREATER, "metric": "m"}), diffs([1, 2, 3]))
    assert r.verdict == "holds" and r.p_value == pytest.approx(stats.ttest_1samp([1, 2, 3], 0, alternative="greater").pvalue)
    # one-sided p = 0.059: inconclusive at 0.05 (it would hold at 0.1)
    r = one(claim({**GREATER, "metric": "m"}), diffs([1, 2, 4]))
    assert r.verdict == "inconclusive" and 0.05 < r.p_value < 0.1
    # a clear difference the other way: fails, never holds (the claimed direction is what is tested)
    r = one(claim({**GREATER, "metric": "m"}), diffs([-1, -2, -3]))
    assert r.verdict == "fails" and r.p_value > 0.9
    r = one(claim({**GREATER, "kind": "less", "metric": "m"}), diffs([1, 2, 3]))
    assert r.verdict == "fails"


def test_greater_than_each_of_a_list():
    base = {"kind": "greater", "metric": "m", "a": "p", "b": ["x", "y"]}
    df = frame([("p", "m", {0: 0.90, 1: 0.91, 2: 0.92}), ("x", "m", {0: 0.50, 1: 0.52, 2: 0.51}),
                ("y", "m", {0: 0.70, 1: 0.69, 2: 0.71})])
    r = one(claim(base), df)
    assert r.verdict == "holds" and r.rule == RULES["pairs"] and len(r.numbers) == 3
    beaten = df.copy()
    beaten.loc[beaten.method == "y", "value"] += 0.5
    assert one(claim(base), beaten).verdict == "fails"
    assert one(claim(base), df[df.seed == 0]).verdict == "direction only (n=1)"
    assert one(claim(base), df[df.method != "y"]).verdict == "not run"


def test_ordering():
    df = frame([("clear", "gmig", {0: 0.35, 1: 0.33, 2: 0.34}), ("clear_neg", "gmig", {0: 0.26, 1: 0.25, 2: 0.27}),
                ("beta_vae", "gmig", {0: 0.01, 1: 0.0, 2: 0.03})])
    c = claim({"kind": "ordering", "metric": "gmig", "order": ["clear", "clear_neg", "beta_vae"]})
    assert one(c, df).verdict == "holds"
    bad = df.copy()
    bad.loc[bad.method == "beta_vae", "value"] = 0.3
    assert one(c, bad).verdict == "fails"
    mixed = df.copy()
    mixed.loc[(mixed.method == "beta_vae") & (mixed.seed == 0), "value"] = 0.4
    assert one(c, mixed).verdict == "inconclusive"
    assert one(c, df[df.method != "beta_vae"]).verdict == "not run"
    assert one(c, df[df.seed == 1]).verdict == "direction only (n=1)"


# ---- bands: one-sided one-sample t-tests against each edge --------------------------------------


def test_within_holds_fails_inconclusive_and_one_seed():
    band = {"kind": "within", "metric": "gmig", "method": "clear", "lo": 0.3, "hi": 0.4}
    inside = frame([("clear", "gmig", {0: 0.34, 1: 0.36, 2: 0.35})])
    r = one(claim(band), inside)
    assert r.verdict == "holds" and r.rule == RULES["band"] and r.direction == "inside the band"
    # just above the band: the band written in the claim is the band tested, not widened
    above = frame([("clear", "gmig", {0: 0.405, 1: 0.41, 2: 0.415})])
    assert one(claim(band), above).verdict == "fails"
    straddles = frame([("clear", "gmig", {0: 0.38, 1: 0.42, 2: 0.39})])
    assert one(claim(band), straddles).verdict == "inconclusive"
    r = one(claim(band), frame([("clear", "gmig", {0: 0.41})]))
    assert r.verdict == "direction only (n=1)" and r.direction == "outside the band"
    assert one(claim(band), frame([("clear", "gmig", {0: 0.35})])).direction == "inside the band"
    lower_only = claim({"kind": "within", "metric": "gmig", "method": "clear", "lo": 0.35})
    assert one(lower_only, frame([("clear", "gmig", {0: 0.30, 1: 0.31, 2: 0.29})])).verdict == "fails"
    assert one(claim({**band, "method": "gone"}), inside).verdict == "not run"
    with pytest.raises(ValueError, match="lo and/or hi"):
        claim({"kind": "within", "metric": "gmig"})
    with pytest.raises(ValueError, match="lo <= hi"):
        claim({**band, "lo": 0.5})


def test_metric_vs_metric_sides():
    df = frame([("subembed", "probe_r0_dc", {0: 0.97, 1: 0.96}), ("subembed", "probe_r1_dc", {0: 0.12, 1: 0.10})])
    c = claim({"kind": "greater", "method": "subembed", "a": {"metric": "probe_r0_dc"}, "b": {"metric": "probe_r1_dc"}})
    r = one(c, df)
    assert r.verdict == "holds" and "metric=probe_r0_dc" in r.summary


# ---- a later stage recovers the attribute the claim names ----------------------------------------


def stage_rows(accs: dict, seeds=(0, 1, 2)) -> pd.DataFrame:
    rows = []
    for stage, by_attr in accs.items():
        for attr, a in by_attr.items():
            for seed in seeds:
                rows.append({"experiment": "trifeature", "method": "mcl", "seed": seed, "metric": "stage_probe_top1",
                             "stage": stage, "attribute": attr, "value": a + 0.01 * seed * (1 + stage)})
    return pd.DataFrame(rows)


def test_recovers_the_named_attribute():
    check = {"kind": "recovers", "metric": "stage_probe_top1", "method": "mcl", "attribute": "shape",
             "by": "stage", "first": 0, "later": "last"}
    df = stage_rows({0: {"colour": 0.95, "shape": 0.30, "texture": 0.60},
                     1: {"colour": 0.90, "shape": 0.55, "texture": 0.62}})
    r = one(claim(check), df)
    assert r.verdict == "holds" and "attribute=shape" in r.summary and r.numbers[0]["label"] == "stage=1"
    assert r.numbers[0]["mean"] == pytest.approx(0.55 + 0.02 * 1)
    # the attribute with the lowest first-stage score (texture here) rises, the named one falls: fails
    other = stage_rows({0: {"colour": 0.95, "shape": 0.40, "texture": 0.20},
                        1: {"colour": 0.90, "shape": 0.30, "texture": 0.60}})
    assert one(claim(check), other).verdict == "fails"
    assert one(claim(check), df[df.seed == 0]).verdict == "direction only (n=1)"
    assert one(claim(check), df[df.stage == 0]).verdict == "not run"
    assert one(claim(check), df.drop(columns="stage")).verdict == "not run"
    with pytest.raises(ValueError, match="needs"):
        claim({"kind": "recovers", "metric": "stage_probe_top1", "by": "stage"})


# ---- scale, experiments, seeds, names --------------------------------------------------------------


def test_paper_scale_magnitudes_are_not_comparable_at_another_scale():
    c = claim({"kind": "within", "metric": "gmig", "method": "clear", "lo": 0.3, "hi": 0.4}, scale="paper")
    df = frame([("clear", "gmig", {0: 0.34, 1: 0.36, 2: 0.35})])
    r = one(c, df, scale="tiny")
    assert r.verdict == "not comparable at this scale" and r.rule == RULES["scale"] and r.numbers[0]["n"] == 3
    assert one(c, df, scale="paper").verdict == "holds"
    assert one(c, df).verdict == "holds"  # no scale given: compared
    assert one(claim(GREATER, scale="paper"), frame([("a", "acc", {0: 1.0}), ("b", "acc", {0: 0.5})]), scale="tiny").verdict == \
        "not comparable at this scale"
    assert one(c, df[df.method == "none"], scale="tiny").verdict == "not run"


def test_experiments_seeds_and_names():
    df = pd.concat([
        frame([("adnce", "linear_top1", {0: 0.9, 1: 0.91, 2: 0.1}), ("infonce", "linear_top1", {0: 0.8, 1: 0.8, 2: 0.8})],
              "cifar10"),
        frame([("adnce", "linear_top1", {0: 0.5}), ("infonce", "linear_top1", {0: 0.6})], "cifar100"),
        frame([("cnn", "acc", {0: 0.5})], "unrelated"),
    ])
    c = claim({"kind": "greater", "metric": "linear_top1", "a": "adnce", "b": "infonce"})
    res = {r.experiment: r.verdict for r in evaluate_claim(c, df)}
    assert res == {"cifar10": "inconclusive", "cifar100": "direction only (n=1)"}  # seed 2 goes the other way
    res = {r.experiment: r.verdict for r in evaluate_claim(c, df, seeds=[0, 1])}
    assert res == {"cifar10": "holds", "cifar100": "direction only (n=1)"}
    pinned = claim({"kind": "greater", "metric": "linear_top1", "a": "adnce", "b": "infonce"}, experiment="c10")
    r = evaluate_claim(pinned, df, seeds=[0, 1], names={"c10": "cifar10"})
    assert [(x.experiment, x.verdict) for x in r] == [("cifar10", "holds")]
    listed = claim({"kind": "greater", "metric": "linear_top1", "a": "adnce", "b": "infonce"},
                   experiment=["cifar10", "stl10"])
    assert [(x.experiment, x.verdict) for x in evaluate_claim(listed, df, seeds=[0, 1])] == [("cifar10", "holds")]
    none_ran = claim({"kind": "greater", "metric": "linear_top1", "a": "adnce", "b": "infonce"},
                     experiment=["stl10", "imagenet"])
    assert [x.verdict for x in evaluate_claim(none_ran, df)] == ["not run"]
    renamed = df.replace({"adnce": "adnce_v2", "linear_top1": "probe_top1"})
    r = evaluate_claim(c, renamed, seeds=[0, 1], names={"adnce": "adnce_v2", "linear_top1": "probe_top1"})
    assert {x.experiment: x.verdict for x in r}["cifar10"] == "holds"


def test_a_nan_or_missing_seed_is_never_dropped():
    # NaN on one side: undecided, naming the side and the seed (not a pairing over the other seeds)
    df = frame([("a", "m", {0: float("nan"), 1: 0.9, 2: 0.91}), ("b", "m", {0: 0.5, 1: 0.5, 2: 0.52})])
    r = one(claim({**GREATER, "metric": "m"}), df)
    assert r.verdict == "undecided" and r.summary == "undecided: a seed 0 has no value (NaN)"
    assert r.rule == RULES["missing"]
    # a seed one side has and the other lacks
    df = frame([("a", "m", {0: 0.9, 1: 0.9, 2: 0.91}), ("b", "m", {0: 0.5, 1: 0.5})])
    r = one(claim({**GREATER, "metric": "m"}), df)
    assert r.verdict == "undecided" and r.summary == "undecided: b seed 2 has no value (missing)"
    # a side all NaN, and NaN on a band's only side
    df = frame([("a", "m", {0: float("nan")}), ("b", "m", {0: 0.5})])
    assert one(claim({**GREATER, "metric": "m"}), df).verdict == "undecided"
    band = frame([("a", "m", {0: 0.5, 1: float("nan"), 2: 0.4})])
    r = one(claim({"kind": "within", "metric": "m", "method": "a", "lo": 0.3}), band)
    assert r.verdict == "undecided" and "seed 1" in r.summary
    # one NaN among the rows a seed averages makes that seed's value NaN
    rows = pd.concat([frame([("a", "m", {0: 0.9, 1: 0.9, 2: 0.8}), ("b", "m", {0: 0.5, 1: 0.5, 2: 0.5})]),
                      frame([("a", "m", {2: float("nan")})])], ignore_index=True)
    assert one(claim({**GREATER, "metric": "m"}), rows).summary == "undecided: a seed 2 has no value (NaN)"


def health_frame(rows):
    """rows: (experiment, method, seed, stage, status, reasons)."""
    return pd.DataFrame(rows, columns=["experiment", "method", "seed", "stage", "status", "reasons"]).assign(
        paper="t")


def test_a_claim_over_an_unhealthy_run_is_undecided():
    df = frame([("varcon", "acc", {0: 0.80, 1: 0.82, 2: 0.81}), ("supcon", "acc", {0: 0.39, 1: 0.40, 2: 0.38})])
    c = claim({"kind": "greater", "metric": "acc", "a": "varcon", "b": "supcon"})
    assert one(c, df).verdict == "holds"
    reason = "the supcon loss ends at 5.53, within 1% of ln(BV - 1) = ln(255) = 5.541 (collapse)"
    unhealthy = health_frame([("exp", m, s, "", "ok", "") for m in ("varcon", "supcon") for s in (0, 2)]
                             + [("exp", "supcon", 1, "", "failed", reason), ("exp", "varcon", 1, "", "warn", "x")])
    r = one(c, df, health=unhealthy)
    assert r.verdict == "undecided" and r.summary == f"undecided: supcon seed 1 did not train ({reason})"
    assert r.rule == RULES["health"] and len(r.numbers) == 2
    # warn is not failed; another experiment's failed run is not this claim's
    healthy = unhealthy.assign(status=unhealthy["status"].replace("failed", "warn"))
    assert one(c, df, health=healthy).verdict == "holds"
    assert one(c, df, health=unhealthy.assign(experiment="other")).verdict == "holds"
    # through evaluate_claims, with a failed MCL stage: the whole run's row gives the reason
    staged = health_frame([("exp", "varcon", 0, "", "failed", "stage 1: diverged"),
                           ("exp", "varcon", 0, 1, "failed", "diverged")])
    table = evaluate_claims(df, [c], health=staged)
    assert table["verdict"].tolist() == ["undecided"]
    assert table["summary"].tolist() == ["undecided: varcon seed 0 did not train (stage 1: diverged)"]
    # an undecided claim stays undecided at another scale
    paper_scale = claim({"kind": "greater", "metric": "acc", "a": "varcon", "b": "supcon"}, scale="paper")
    assert one(paper_scale, df, health=unhealthy, scale="tiny").verdict == "undecided"
    assert "undecided" in VERDICTS


# ---- the papers' claims -----------------------------------------------------------------------------


def test_default_claims_and_table():
    claims = load_claims(DEFAULT_CLAIMS)
    assert len(claims) == len(DEFAULT_CLAIMS) >= 12
    assert {c.paper for c in claims} == {"clear", "subembed", "mcl", "adnce", "varcon"}
    df = pd.concat([
        frame([("adnce", "linear_top1", {0: 0.70, 1: 0.72, 2: 0.71}),
               ("infonce", "linear_top1", {0: 0.69, 1: 0.70, 2: 0.69})], "cifar10"),
        frame([("varcon", "linear_top1", {0: 0.8}), ("supcon", "linear_top1", {0: 0.85})], "cifar100"),
    ])
    table = evaluate_claims(df, DEFAULT_CLAIMS, scale="paper")
    assert set(table["verdict"]) <= set(VERDICTS)
    assert set(table["id"]) == {c["id"] for c in DEFAULT_CLAIMS}
    got = table.set_index(["id", "experiment"])
    assert got.loc[("adnce.beats_infonce_linear", "cifar10"), "verdict"] == "holds"
    assert got.loc[("varcon.beats_supcon_linear", "cifar100"), "verdict"] == "direction only (n=1)"
    assert got.loc[("varcon.beats_supcon_linear", "cifar100"), "direction"] == "against the claim"
    assert (table[table.id == "mcl.later_stage_recovers"]["verdict"] == "not run").all()
    assert "holds" not in set(evaluate_claims(df[df.seed == 0], DEFAULT_CLAIMS)["verdict"])


def test_no_paper_claim_carries_slack_and_bands_are_the_texts():
    for c in load_claims(DEFAULT_CLAIMS):
        assert "tolerance" not in c.check, c.id
    bands = {  # claim -> (what its text states, the band tested)
        "clear.gmig_paper_range": ("0.3-0.4", (0.3, 0.4)),
        "clear.no_snn_near_zero": ("within 0 ± 0.05", (-0.05, 0.05)),
        "clear.styled_relative_range": ("1.5-3.0", (1.5, 3.0)),
        "clear.pacs_relative_range": ("1.1-1.5x", (1.1, 1.5)),
        "subembed.r0_background_chance": ("within 10% ± 2 pp", (0.08, 0.12)),
        "subembed.r1_digit_chance": ("within 10% ± 2 pp", (0.08, 0.12)),
        "mcl.mmvp_reaches_32_6": ("within 32.6% ± 3 pp", (0.296, 0.356)),
    }
    by_id = {c.id: c for c in load_claims(DEFAULT_CLAIMS)}
    for cid, (words, (lo, hi)) in bands.items():
        c = by_id[cid]
        assert words in c.text, cid
        assert (c.check["lo"], c.check["hi"]) == (lo, hi), cid
    assert {cid for cid, c in by_id.items() if c.check["kind"] == "within"} == set(bands)
    magnitudes = {cid for cid, c in by_id.items() if c.scale == "paper"}
    assert magnitudes == {"clear.gmig_paper_range", "clear.no_snn_near_zero", "clear.styled_relative_range",
                          "clear.pacs_relative_range", "mcl.mmvp_reaches_32_6"}


def test_the_recovered_attribute_is_fixed_by_the_claim():
    (mcl,) = [c for c in load_claims(DEFAULT_CLAIMS) if c.id == "mcl.later_stage_recovers"]
    assert mcl.check["attribute"] == "shape" and "over" not in mcl.check and "shape" in mcl.text
    # the first stage's lowest attribute (texture) rising does not make it hold
    df = stage_rows({0: {"colour": 1.0, "shape": 0.30, "texture": 0.12},
                     1: {"colour": 1.0, "shape": 0.25, "texture": 0.40}}).assign(experiment="trifeature_ssl")
    assert one(mcl, df).verdict == "fails"


def test_the_posters_findings_per_regulariser_are_checked_side_by_side():
    ids = {c["id"] for c in DEFAULT_CLAIMS if c["paper"] == "subembed"}
    assert {"subembed.info_min_optimisation", "subembed.p_ortho_best_absolute", "subembed.p_ortho_weak_r1",
            "subembed.hess_r1_improves", "subembed.hess_r2_worsens", "subembed.hess_r3_worsens"} <= ids
    methods = ["subembed_plain", "subembed_info_min", "subembed_ortho", "subembed", "subembed_hess"]
    rng = np.random.default_rng(0)
    rows = []
    for m, (r_dc, gap, r0_bc) in zip(methods, [(0.9, 0.2, 0.3), (0.6, 0.1, 0.3), (0.85, 0.3, 0.2),
                                               (0.95, 0.25, 0.2), (0.8, 0.6, 0.5)]):
        for seed in range(3):
            for metric, v in (("probe_r_digit", r_dc), ("probe_gap_digit", gap), ("probe_r0_background", r0_bc)):
                rows.append({"experiment": "subembed_digits_on_photos", "method": m, "seed": seed, "metric": metric,
                             "value": v + rng.normal(0, 0.005)})
    subembed = [c for c in DEFAULT_CLAIMS if c["paper"] == "subembed"]
    names = {"probe_r_dc": "probe_r_digit", "probe_gap_dc": "probe_gap_digit", "probe_r0_bc": "probe_r0_background"}
    table = evaluate_claims(pd.DataFrame(rows), subembed, names=names).set_index("id")["verdict"]
    for cid in ("subembed.info_min_optimisation", "subembed.p_ortho_best_absolute", "subembed.p_ortho_weak_r1",
                "subembed.hess_r1_improves", "subembed.hess_r2_worsens", "subembed.hess_r3_worsens"):
        assert table[cid] == "holds", cid


def test_load_claims_from_yaml_and_validation(tmp_path):
    p = tmp_path / "claims.yaml"
    p.write_text(
        "claims:\n"
        "  - id: x.one\n    paper: x\n    text: a beats b\n"
        "    check: {kind: greater, metric: m, a: a, b: b}\n"
    )
    (c,) = load_claims(p)
    assert c.check["kind"] == "greater"
    with pytest.raises(ValueError, match="unknown check kind"):
        claim({"kind": "bigger"})
    with pytest.raises(ValueError, match="needs"):
        claim({"kind": "greater", "metric": "m", "a": "a"})
    with pytest.raises(ValueError, match="duplicate"):
        load_claims([DEFAULT_CLAIMS[0], DEFAULT_CLAIMS[0]])


def test_to_long():
    wide = pd.DataFrame({"experiment": ["e", "e", "e", "e"], "method": ["a", "b", "a", "b"], "seed": [0, 0, 1, 1],
                         "top1": [0.5, 0.6, 0.51, 0.62], "auroc": [0.7, float("nan"), 0.7, 0.8]})
    long = to_long(wide)
    assert set(long.columns) == {"experiment", "method", "seed", "metric", "value"}
    assert len(long) == 7
    r = one(claim({"kind": "greater", "metric": "top1", "a": "b", "b": "a"}), long)
    assert r.verdict == "holds"


def test_report_modules_do_not_import_torch():
    code = (
        "import sys\n"
        "import clbench.report.claims, clbench.report.html, clbench.report.figures, clbench.report.paper_tables\n"
        "import clbench.report.protocol\n"
        "import clbench.evaluate.ood, clbench.evaluate.robustness, clbench.evaluate.disentanglement\n"
        "import clbench.papers, clbench.papers.targets\n"
        "clbench.papers.load_paper_results()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_result_numbers_are_plain():
    df = frame([("a", "m", {0: 1.0, 1: 3.0}), ("b", "m", {0: 0.0, 1: 0.0})])
    r = one(claim({**GREATER, "metric": "m"}), df).to_dict()
    assert r["numbers"][0]["per_seed"] == {"0": 1.0, "1": 3.0}
    assert math.isclose(r["numbers"][0]["std"], math.sqrt(2))


def by_id(cid):
    (c,) = [c for c in load_claims(DEFAULT_CLAIMS) if c.id == cid]
    return c


def test_clear_ood_compares_the_mlp_probe_on_z_c_with_the_cnns_own_classifier():
    c = by_id("clear.ood_beats_cnn")
    assert "MLP probe on z_c" in c.text and "own classifier" in c.text
    # the linear probes say the opposite; the paper's comparison (MLP probe vs the CNN's head) decides
    rows = [("clear", "mlp_top1", {0: 0.60, 1: 0.62, 2: 0.61}), ("cnn", "head_top1", {0: 0.40, 1: 0.45, 2: 0.41}),
            ("clear", "ood_top1", {0: 0.30, 1: 0.31, 2: 0.32}), ("cnn", "ood_top1", {0: 0.50, 1: 0.52, 2: 0.55})]
    df = pd.concat([frame(rows, "clear_ood_k3"), frame(rows, "clear_celeba")])  # CelebA's test split is not OOD
    r = one(c, df)
    assert r.verdict == "holds" and r.experiment == "clear_ood_k3"
    no_head = frame([("clear", "mlp_top1", {0: 0.6, 1: 0.6})], "clear_ood_k3")
    assert one(c, no_head).verdict == "not run"
    for cid in ("clear.styled_relative_range", "clear.pacs_relative_range"):
        assert by_id(cid).check["metric"] == "mlp_top1_relative_head" and "own classifier" in by_id(cid).text


def test_mcl_concatenation_against_simclr_on_the_suppressed_feature():
    c = by_id("mcl.concat_beats_simclr_on_suppressed")
    assert c.check["metric"] == "probe_shape_top1" and (c.check["a"], c.check["b"]) == ("mcl", "infonce")
    df = frame([("mcl", "probe_shape_top1", {0: 0.50, 1: 0.55, 2: 0.52}),
                ("infonce", "probe_shape_top1", {0: 0.20, 1: 0.22, 2: 0.19}),
                ("infonce", "probe_colour_top1", {0: 1.0, 1: 1.0, 2: 1.0})], experiment="trifeature_ssl")
    assert one(c, df).verdict == "holds"
    swapped = df.assign(method=df["method"].map({"mcl": "infonce", "infonce": "mcl"}))
    assert one(c, swapped).verdict == "fails"


def test_a_comparison_without_a_t_test_does_not_show_the_t_test_rule():
    c = by_id("varcon.faster_convergence")
    assert "clbench's" in c.text and "evaluation.convergence_target" in c.text
    df = frame([("varcon", "epochs_to_target", {0: 3.0, 1: math.inf, 2: 4.0}),
                ("supcon", "epochs_to_target", {0: 5.0, 1: math.inf, 2: 6.0})])
    r = one(c, df)
    assert r.verdict == "inconclusive" and r.rule == RULES["untested"] and "not finite" in r.summary
    finite = frame([("varcon", "epochs_to_target", {0: 3.0, 1: 3.0, 2: 4.0}),
                    ("supcon", "epochs_to_target", {0: 5.0, 1: 6.0, 2: 6.0})])
    assert one(c, finite).rule == RULES["paired"]


def test_claim_texts_name_what_they_test():
    gmig = by_id("clear.gmig_ordering")
    assert "about 0" in gmig.text and "CLEAR without SNN" in gmig.text and "not beta-VAE" in gmig.text
    assert by_id("clear.no_snn_near_zero").scale == "paper"
    for cid in ("subembed.r0_predicts_digit", "subembed.r0_background_chance", "subembed.r1_predicts_background",
                "subembed.r1_digit_chance"):
        assert by_id(cid).text.startswith("clbench criterion (not a poster claim): "), cid

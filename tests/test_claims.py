"""The claims engine on synthetic long-format results."""

from __future__ import annotations

import math
import subprocess
import sys

import pandas as pd
import pytest

from clbench.papers import all_claims
from clbench.report.claims import (
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


def test_greater_holds_fails_and_not_run():
    df = frame([("a", "acc", {0: 0.8, 1: 0.82}), ("b", "acc", {0: 0.7, 1: 0.74})])
    r = one(claim({"kind": "greater", "metric": "acc", "a": "a", "b": "b"}), df)
    assert r.verdict == "holds" and r.experiment == "exp"
    assert r.numbers[0]["mean"] == pytest.approx(0.81) and r.numbers[0]["n"] == 2
    assert r.numbers[0]["std"] == pytest.approx(0.0141421, rel=1e-4)
    assert r.seed_agreement == 1.0
    assert "a=0.81" in r.summary and ">" in r.summary
    assert one(claim({"kind": "greater", "metric": "acc", "a": "b", "b": "a"}), df).verdict == "fails"
    nr = one(claim({"kind": "greater", "metric": "acc", "a": "a", "b": "zzz"}), df)
    assert nr.verdict == "not run" and "zzz" in nr.reason
    # a claim about another metric: no experiment has data -> one "not run" row
    nr2 = one(claim({"kind": "greater", "metric": "other", "a": "a", "b": "b"}), df)
    assert nr2.verdict == "not run" and nr2.experiment is None


def test_tolerance_semantics():
    df = frame([("a", "acc", {0: 0.700}), ("b", "acc", {0: 0.703})])
    assert one(claim({"kind": "at_least", "metric": "acc", "a": "a", "b": "b"}), df).verdict == "fails"
    assert one(claim({"kind": "at_least", "metric": "acc", "a": "a", "b": "b", "tolerance": 0.005}), df).verdict == "holds"
    eq = frame([("a", "acc", {0: 0.7}), ("b", "acc", {0: 0.7})])
    assert one(claim({"kind": "greater", "metric": "acc", "a": "a", "b": "b"}), eq).verdict == "fails"
    assert one(claim({"kind": "at_least", "metric": "acc", "a": "a", "b": "b"}), eq).verdict == "holds"
    ep = frame([("varcon", "epochs", {0: 5, 1: 7}), ("supcon", "epochs", {0: 9, 1: 8})])
    r = one(claim({"kind": "less", "metric": "epochs", "a": "varcon", "b": "supcon"}), ep)
    assert r.verdict == "holds" and r.seed_agreement == 1.0


def test_seed_agreement_partial():
    df = frame([("a", "m", {0: 0.9, 1: 0.5, 2: 0.9}), ("b", "m", {0: 0.6, 1: 0.6, 2: 0.6})])
    r = one(claim({"kind": "greater", "metric": "m", "a": "a", "b": "b"}), df)
    assert r.verdict == "holds" and r.seed_agreement == pytest.approx(2 / 3)


def test_ordering():
    df = frame([("clear", "gmig", {0: 0.35, 1: 0.33}), ("clear_snn", "gmig", {0: 0.26, 1: 0.25}),
                ("beta_vae", "gmig", {0: 0.01, 1: 0.0})])
    c = claim({"kind": "ordering", "metric": "gmig", "order": ["clear", "clear_snn", "beta_vae"]})
    assert one(c, df).verdict == "holds"
    bad = df.copy()
    bad.loc[bad.method == "beta_vae", "value"] = 0.3
    assert one(c, bad).verdict == "fails"
    assert one(c, df[df.method != "beta_vae"]).verdict == "not run"


def test_within_and_near():
    df = frame([("clear", "gmig", {0: 0.32, 1: 0.36}), ("no_snn", "gmig", {0: 0.02, 1: -0.01})])
    assert one(claim({"kind": "within", "metric": "gmig", "method": "clear", "lo": 0.3, "hi": 0.4}), df).verdict == "holds"
    assert one(claim({"kind": "within", "metric": "gmig", "method": "clear", "lo": 0.35}), df).verdict == "fails"
    assert one(claim({"kind": "within", "metric": "gmig", "method": "clear", "lo": 0.35, "tolerance": 0.02}), df).verdict == "holds"
    assert one(claim({"kind": "near", "metric": "gmig", "method": "no_snn", "target": 0.0, "tolerance": 0.05}), df).verdict == "holds"
    assert one(claim({"kind": "near", "metric": "gmig", "method": "clear", "target": 0.0, "tolerance": 0.05}), df).verdict == "fails"
    assert one(claim({"kind": "near", "metric": "gmig", "method": "gone", "target": 0.0, "tolerance": 0.05}), df).verdict == "not run"


def test_metric_vs_metric_sides():
    df = frame([("subembed", "probe_r0_dc", {0: 0.97}), ("subembed", "probe_r1_dc", {0: 0.12})])
    c = claim({"kind": "greater", "method": "subembed", "a": {"metric": "probe_r0_dc"}, "b": {"metric": "probe_r1_dc"}})
    r = one(c, df)
    assert r.verdict == "holds" and "metric=probe_r0_dc" in r.summary


def test_recovers_mcl():
    rows = []
    # stage 1 suppresses "shape" (lowest); stage 2 raises it
    for stage, accs in {1: {"color": 0.95, "shape": 0.30, "texture": 0.60},
                        2: {"color": 0.90, "shape": 0.55, "texture": 0.62}}.items():
        for attr, a in accs.items():
            for seed in (0, 1):
                rows.append({"experiment": "trifeature", "method": "mcl", "seed": seed,
                             "metric": "stage_probe_top1", "stage": stage, "attribute": attr,
                             "value": a + 0.01 * seed})
    df = pd.DataFrame(rows)
    c = claim({"kind": "recovers", "metric": "stage_probe_top1", "method": "mcl", "over": "attribute",
               "by": "stage", "first": 1, "later": "last"})
    r = one(c, df)
    assert r.verdict == "holds"
    assert "attribute=shape" in r.numbers[0]["label"] and r.numbers[0]["mean"] == pytest.approx(0.555)
    worse = df.copy()
    worse.loc[(worse.stage == 2) & (worse.attribute == "shape"), "value"] = 0.2
    assert one(c, worse).verdict == "fails"
    assert one(c, df[df.stage == 1]).verdict == "not run"
    assert one(c, df.drop(columns="stage")).verdict == "not run"


def test_experiments_seeds_and_names():
    df = pd.concat([
        frame([("adnce", "linear_top1", {0: 0.9, 1: 0.9, 2: 0.1}), ("infonce", "linear_top1", {0: 0.8, 1: 0.8, 2: 0.8})], "cifar10"),
        frame([("adnce", "linear_top1", {0: 0.5}), ("infonce", "linear_top1", {0: 0.6})], "cifar100"),
        frame([("cnn", "acc", {0: 0.5})], "unrelated"),
    ])
    c = claim({"kind": "at_least", "metric": "linear_top1", "a": "adnce", "b": "infonce"})
    res = {r.experiment: r.verdict for r in evaluate_claim(c, df)}
    assert res == {"cifar10": "fails", "cifar100": "fails"}  # seed 2 drags cifar10's mean down
    res = {r.experiment: r.verdict for r in evaluate_claim(c, df, seeds=[0, 1])}
    assert res == {"cifar10": "holds", "cifar100": "fails"}
    pinned = claim({"kind": "at_least", "metric": "linear_top1", "a": "adnce", "b": "infonce"}, experiment="c10")
    r = evaluate_claim(pinned, df, seeds=[0, 1], names={"c10": "cifar10"})
    assert [(x.experiment, x.verdict) for x in r] == [("cifar10", "holds")]
    renamed = df.replace({"adnce": "adnce_v2", "linear_top1": "probe_top1"})
    r = evaluate_claim(c, renamed, seeds=[0, 1], names={"adnce": "adnce_v2", "linear_top1": "probe_top1"})
    assert {x.experiment: x.verdict for x in r}["cifar10"] == "holds"


def test_nan_values_are_not_run():
    df = frame([("a", "m", {0: float("nan")}), ("b", "m", {0: 0.5})])
    assert one(claim({"kind": "greater", "metric": "m", "a": "a", "b": "b"}), df).verdict == "not run"


def test_default_claims_and_table():
    claims = load_claims(DEFAULT_CLAIMS)
    assert len(claims) == len(DEFAULT_CLAIMS) >= 12
    assert {c.paper for c in claims} == {"clear", "subembed", "mcl", "adnce", "varcon"}
    df = pd.concat([
        frame([("adnce", "linear_top1", {0: 0.7, 1: 0.72}), ("infonce", "linear_top1", {0: 0.69, 1: 0.7})], "cifar10"),
        frame([("varcon", "linear_top1", {0: 0.8}), ("supcon", "linear_top1", {0: 0.85})], "cifar100"),
    ])
    table = evaluate_claims(df, DEFAULT_CLAIMS)
    assert set(table["verdict"]) <= {"holds", "fails", "not run"}
    assert set(table["id"]) == {c["id"] for c in DEFAULT_CLAIMS}
    got = table.set_index(["id", "experiment"])["verdict"]
    assert got[("adnce.ge_infonce_linear", "cifar10")] == "holds"
    assert got[("varcon.ge_supcon_linear", "cifar100")] == "fails"
    assert (table[table.id == "mcl.later_stage_recovers"]["verdict"] == "not run").all()


def test_load_claims_from_yaml_and_validation(tmp_path):
    p = tmp_path / "claims.yaml"
    p.write_text(
        "claims:\n"
        "  - id: x.one\n    paper: x\n    text: a beats b\n"
        "    check: {kind: greater, metric: m, a: a, b: b, tolerance: 0.01}\n"
    )
    (c,) = load_claims(p)
    assert c.check["tolerance"] == 0.01
    with pytest.raises(ValueError, match="unknown check kind"):
        claim({"kind": "bigger"})
    with pytest.raises(ValueError, match="needs"):
        claim({"kind": "greater", "metric": "m", "a": "a"})
    with pytest.raises(ValueError, match="duplicate"):
        load_claims([DEFAULT_CLAIMS[0], DEFAULT_CLAIMS[0]])


def test_to_long():
    wide = pd.DataFrame({"experiment": ["e", "e"], "method": ["a", "b"], "seed": [0, 0],
                         "top1": [0.5, 0.6], "auroc": [0.7, float("nan")]})
    long = to_long(wide)
    assert set(long.columns) == {"experiment", "method", "seed", "metric", "value"}
    assert len(long) == 3
    r = one(claim({"kind": "greater", "metric": "top1", "a": "b", "b": "a"}), long)
    assert r.verdict == "holds"


def test_report_modules_do_not_import_torch():
    code = (
        "import sys\n"
        "import clbench.report.claims, clbench.report.html, clbench.report.figures, clbench.report.paper_tables\n"
        "import clbench.evaluate.ood, clbench.evaluate.robustness, clbench.evaluate.disentanglement\n"
        "import clbench.papers, clbench.papers.targets\n"
        "clbench.papers.load_paper_results()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_result_numbers_are_plain():
    df = frame([("a", "m", {0: 1.0, 1: 3.0}), ("b", "m", {0: 0.0, 1: 0.0})])
    r = one(claim({"kind": "greater", "metric": "m", "a": "a", "b": "b"}), df).to_dict()
    assert r["numbers"][0]["per_seed"] == {"0": 1.0, "1": 3.0}
    assert math.isclose(r["numbers"][0]["std"], math.sqrt(2))

"""The papers' reported numbers (each paper module's ``reported``): schema, loader, and the numbers themselves."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from clbench.papers import load_paper_results, load_paper_results_raw
from clbench.report.reported import PAPER_RESULT_FIELDS, paper_results_frame, validate_paper_results

ARXIV = {"clear": "2507.18794", "mcl": "2402.11816", "adnce": "2310.11048", "varcon": "2506.07413"}


@pytest.fixture(scope="module")
def raw():
    return load_paper_results_raw()


@pytest.fixture(scope="module")
def df():
    return load_paper_results()


def test_schema_is_valid(raw):
    assert validate_paper_results(raw) == []


def test_every_entry_has_required_fields(raw):
    for entry in raw["results"]:
        for f in PAPER_RESULT_FIELDS:
            assert entry.get(f) not in (None, ""), (entry.get("id"), f)
        assert entry["scale"] == "paper"
        assert entry.get("value") is not None or entry.get("range") is not None, entry["id"]
        assert "arxiv" in raw["papers"][entry["paper"]]


def test_loader_returns_frame_with_arxiv_ids(df):
    assert isinstance(df, pd.DataFrame) and len(df) >= 20
    assert df["id"].is_unique
    for paper, arxiv in ARXIV.items():
        assert set(df.loc[df.paper == paper, "arxiv"]) == {arxiv}
    assert df.loc[df.paper == "subembed", "arxiv"].isna().all()  # the poster has no arXiv id
    ranged = df[df["value"].isna()]
    assert (ranged["low"] <= ranged["high"]).all() and ranged["low"].notna().all()
    single = df[df["value"].notna()]
    assert np.allclose(single["low"], single["value"]) and np.allclose(single["high"], single["value"])


def _value(df, paper, metric, method_key, dataset=None):
    sel = df[(df.paper == paper) & (df.metric == metric) & (df.method_key == method_key)]
    if dataset is not None:
        sel = sel[sel.dataset == dataset]
    assert len(sel) == 1, (paper, metric, method_key, dataset, sel)
    return sel.iloc[0]


def test_reported_numbers_present(df):
    v = lambda *a: _value(df, *a)["value"]  # noqa: E731
    assert v("adnce", "linear_top1", "adnce", "CIFAR-10") == 91.88
    assert v("adnce", "linear_top1", "infonce", "CIFAR-10") == 91.19
    assert v("adnce", "linear_top1", "adnce", "CIFAR-100") == 70.75
    assert v("adnce", "linear_top1", "infonce", "CIFAR-100") == 69.92
    assert v("adnce", "sts", "adnce_bert") == 74.6
    assert v("varcon", "linear_top1", "varcon", "ImageNet-1K") == 79.36
    assert v("varcon", "linear_top1", "varcon", "CIFAR-100") == 78.29
    assert v("varcon", "linear_top1", "varcon", "ImageNet-100") == 86.34
    assert v("mcl", "mmvp_stage0", "mcl_clip") == 20.0  # the vanilla CLIP is MCL-CLIP's stage 0
    assert v("mcl", "mmvp", "mcl_clip") == 32.6  # the stages' concatenation
    tc = _value(df, "clear", "mlp_top1", "clear_tc")  # the MLP probe on z_c, on the OOD test hospital
    assert tc["value"] == 0.747 and tc["std"] == 0.019
    assert v("clear", "gmig", "clear_neg") == 0.26
    cos = df[df.id == "clear.gmig.cosine"].iloc[0]
    l2 = df[df.id == "clear.gmig.l2"].iloc[0]
    assert (cos.low, cos.high, l2.low, l2.high) == (0.31, 0.46, 0.28, 0.39)
    pacs = df[df.id == "clear.pacs.ood_relative"].iloc[0]
    assert (pacs.low, pacs.high) == (1.1, 1.5)


def test_poster_numbers_consistent(df):
    p = df[df.paper == "subembed"].set_index("metric")["value"]
    assert p["probe_r_dc"] == 97.3 and p["probe_r_bc"] == 64.5
    assert p["probe_gap_dc"] == pytest.approx(abs(p["probe_r0_dc"] - p["probe_r1_dc"]))
    assert p["probe_gap_bc"] == pytest.approx(abs(p["probe_r0_bc"] - p["probe_r1_bc"]))


def test_validator_catches_problems(raw):
    bad = copy.deepcopy(raw)
    del bad["results"][0]["source"]
    bad["results"][1]["value"] = None
    bad["results"][1].pop("range", None)
    bad["results"][2]["paper"] = "nope"
    bad["results"][3]["id"] = bad["results"][4]["id"]
    bad["results"][5]["range"] = [2.0, 1.0]
    errors = validate_paper_results(bad)
    joined = "\n".join(errors)
    for needle in ("missing 'source'", "needs 'value' or 'range'", "unknown paper", "duplicate id", "range must be"):
        assert needle in joined, needle


def test_loader_rejects_invalid_numbers():
    bad = {"papers": {"x": {"title": "t", "arxiv": None}}, "results": [{"id": "a", "paper": "x"}]}
    with pytest.raises(ValueError, match="invalid"):
        paper_results_frame(bad)

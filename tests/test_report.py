import json

import pandas as pd

from clbench.report import figures, html, tables


def _runs(tmp_path):
    root = tmp_path / "results" / "runs"
    paths, metrics = [], []
    for method, acc in [("cnn", 0.9), ("supcon", 0.95)]:
        for seed in (0, 1):
            d = root / "exp" / method / f"seed{seed}"
            d.mkdir(parents=True)
            (d / "linear_probe.json").write_text(json.dumps({"top1": acc + seed * 0.01, "auroc": 0.99, "aupr": 0.98}))
            pd.DataFrame({"epoch": [1, 2], "loss": [1.0, 0.5], "val_knn_top1": [0.5, 0.8]}).to_csv(d / "metrics.csv", index=False)
            (d / "run.json").write_text(json.dumps({"device": "cpu"}))
            paths.append(d / "linear_probe.json")
            metrics.append(d / "metrics.csv")
    return root, paths, metrics


def test_parse_run_path(tmp_path):
    assert tables.parse_run_path(tmp_path / "e" / "m" / "seed3" / "x.json", tmp_path) == \
        {"experiment": "e", "method": "m", "seed": 3}


def test_probe_table_aggregates_over_seeds(tmp_path):
    root, paths, _ = _runs(tmp_path)
    agg = tables.probe_table(paths, root, tmp_path / "t.csv", tmp_path / "t.md")
    row = agg.set_index("method").loc["supcon"]
    assert row["top1_mean"] == 0.955 and row["top1_n"] == 2
    assert abs(row["top1_std"] - 0.00707) < 1e-4
    md = (tmp_path / "t.md").read_text()
    assert "95.5 ± 0.7" in md and "| experiment | method |" in md
    assert r"\begin{tabular}" in (tmp_path / "t.tex").read_text()


def test_curves_and_html(tmp_path):
    root, paths, metrics = _runs(tmp_path)
    results = tmp_path / "results"
    tables.probe_table(paths, root, results / "tables" / "linear_probe.csv", results / "tables" / "linear_probe.md")
    figures.training_curves(metrics, root, results / "figures" / "training_curves.png")
    assert (results / "figures" / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    bench = results / "benchmarks" / "pretrain" / "exp" / "cnn"
    bench.mkdir(parents=True)
    (bench / "seed0.tsv").write_text("s\th:m:s\tmax_rss\n12.5\t0:00:12\t100\n")
    html.build_report(results, {"scale": "tiny"}, results / "report" / "index.html")
    page = (results / "report" / "index.html").read_text()
    assert "tiny scale" in page and "95.5 ± 0.7" in page and "data:image/png;base64" in page
    assert "pretrain" in page and "12.5" in page

"""The papers' figures (the figure functions of clbench.papers.clear, .mcl and .varcon, and the analyses
they plot, clbench.evaluate.latent_maps and .mi_simulation): each writes a valid image, and the numbers
it draws are the ones computed here by hand."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clbench.evaluate import latent_maps
from clbench.evaluate.mi_simulation import mi_simulation_curves
from clbench.papers import clear, mcl, varcon


def _assert_image(path, min_w=200, min_h=120):
    assert path.exists() and path.stat().st_size > 0
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        w, h = im.size
        assert im.format == "PNG"
    assert min_w <= w <= 4000 and min_h <= h <= 4000, (w, h)


# ---------------------------------------------------------------------------- CSV inputs

CORRUPTIONS = ["gaussian_noise", "fog", "contrast"]


def _corruptions_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for method in ("cnn", "varcon"):
        for seed in (0, 1, 2):
            for c in CORRUPTIONS:
                for s in (1, 2, 3, 4, 5):
                    rows.append({"experiment": "varcon_c", "paper": "varcon", "method": method, "seed": seed,
                                 "corruption": c, "severity": s, "top1": float(rng.uniform(0.1, 0.9))})
    df = pd.DataFrame(rows)
    path = tmp_path / "corruptions.csv"
    df.to_csv(path, index=False)
    return path, df


def test_corruption_heatmap_matrix_is_mean_over_seeds(tmp_path):
    path, df = _corruptions_csv(tmp_path)
    mats = varcon.corruption_matrices(path)
    assert set(mats) == {("varcon_c", "cnn"), ("varcon_c", "varcon")}
    m = mats[("varcon_c", "varcon")]
    assert list(m.index) == CORRUPTIONS and list(m.columns) == [1, 2, 3, 4, 5]
    sel = df[(df["method"] == "varcon") & (df["corruption"] == "fog") & (df["severity"] == 3)]
    assert m.loc["fog", 3] == pytest.approx(sel["top1"].mean())
    out = tmp_path / "fig" / "heat.png"
    varcon.corruption_heatmap(path, out)
    _assert_image(out)
    with pytest.raises(ValueError, match="nope"):
        varcon.corruption_matrices(path, experiment="nope")
    # several experiments: one row of panels each, or one chosen
    two = pd.concat([df, df.assign(experiment="other", top1=df["top1"] / 2)])
    assert varcon.corruption_matrices(two, "other")[("other", "cnn")].loc["fog", 3] == pytest.approx(
        df[(df["method"] == "cnn") & (df["corruption"] == "fog") & (df["severity"] == 3)]["top1"].mean() / 2)
    varcon.corruption_heatmap(two, tmp_path / "fig" / "heat2.png")
    _assert_image(tmp_path / "fig" / "heat2.png")


def _stage_csv(tmp_path):
    rows = []
    for exp in ("mcl_trifeature", "mcl_cifar"):
        for seed in (0, 1):
            for stage in (0, 1, 2):
                for attr, base in (("shape", 0.9), ("color", 0.3)):
                    rows.append({"experiment": exp, "paper": "mcl", "method": "mcl", "seed": seed, "stage": stage,
                                 "attribute": attr, "top1": base + 0.1 * stage * (attr == "color") + 0.02 * seed})
    path = tmp_path / "stage_probes.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_stage_probe_summary_and_plot(tmp_path):
    path = _stage_csv(tmp_path)
    s = mcl.stage_probe_summary(path)
    row = s[(s["experiment"] == "mcl_cifar") & (s["stage"] == 2) & (s["attribute"] == "color")].iloc[0]
    assert row["mean"] == pytest.approx(0.3 + 0.2 + 0.01)
    assert row["std"] == pytest.approx(np.std([0.5, 0.52], ddof=1))
    assert row["n"] == 2
    out = tmp_path / "stages.png"
    mcl.stage_probe_plot(path, out)
    _assert_image(out)


def _metrics_csv(tmp_path):
    rows = []
    for k in (1, 3, 5):
        exp = f"clear_ood_k{k}"
        for seed in (0, 1):
            for method, rel in (("cnn", 1.0), ("clear", 1.0 + 0.1 * k + 0.05 * seed), ("beta_vae", 0.8)):
                rows.append({"experiment": exp, "paper": "clear", "k": k, "method": method, "seed": seed,
                             "metric": "linear_top1_relative", "value": rel})
                rows.append({"experiment": exp, "paper": "clear", "k": k, "method": method, "seed": seed,
                             "metric": "linear_top1", "value": 0.5 * rel})
    for exp in ("clear_pacs", "clear_styled"):
        for seed in (0, 1, 2):
            for method, rel in (("cnn", 1.0), ("clear", 1.2 + 0.1 * seed)):
                rows.append({"experiment": exp, "paper": "clear", "k": np.nan, "method": method, "seed": seed,
                             "metric": "linear_top1_relative", "value": rel})
    path = tmp_path / "metrics.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_ood_k_curve(tmp_path):
    path = _metrics_csv(tmp_path)
    s = clear.ood_k_summary(path)
    assert set(s["method"]) == {"clear", "beta_vae"}  # the baseline is the dashed line, not a curve
    assert list(s[s["method"] == "clear"]["k"]) == [1, 3, 5]
    clear3 = s[(s["method"] == "clear") & (s["k"] == 3)].iloc[0]
    assert clear3["mean"] == pytest.approx(1.3 + 0.025)
    # k parsed from the experiment name when the column is absent
    no_k = pd.read_csv(path).drop(columns="k")
    pd.testing.assert_frame_equal(clear.ood_k_summary(no_k), s)
    out = tmp_path / "oodk.png"
    clear.ood_k_curve(path, out)
    _assert_image(out)


def test_relative_bars(tmp_path):
    path = _metrics_csv(tmp_path)
    s = clear.relative_summary(path, "linear_top1_relative", ["clear_styled", "clear_pacs"])
    assert list(s["experiment"]) == ["clear_styled", "clear_pacs"]
    assert s["mean"].tolist() == pytest.approx([1.3, 1.3])
    assert s["std"].tolist() == pytest.approx([0.1, 0.1])
    out = tmp_path / "bars.png"
    clear.relative_bars(path, out, "linear_top1_relative", ["clear_styled", "clear_pacs"])
    _assert_image(out)
    pdf = tmp_path / "bars.pdf"
    clear.relative_bars(path, pdf, "linear_top1_relative", ["clear_styled", "clear_pacs"])
    assert pdf.read_bytes()[:4] == b"%PDF"


def test_convergence_plot(tmp_path):
    runs = {}
    for label, rate in (("VarCon", 0.3), ("SupCon", 0.1)):
        runs[label] = []
        for seed in (0, 1):
            p = tmp_path / label / f"seed{seed}" / "metrics.csv"
            p.parent.mkdir(parents=True)
            epochs = np.arange(1, 11)
            pd.DataFrame({"epoch": epochs, "loss": 1.0 / epochs,
                          "val_knn_top1": 1 - np.exp(-rate * epochs) + 0.01 * seed}).to_csv(p, index=False)
            runs[label].append(p)
    s = varcon.convergence_summary(runs)
    v = s[(s["label"] == "VarCon") & (s["epoch"] == 4)].iloc[0]
    assert v["mean"] == pytest.approx(1 - np.exp(-1.2) + 0.005)
    assert v["n"] == 2
    out = tmp_path / "conv.png"
    varcon.convergence_plot(runs, out)
    _assert_image(out)


def test_empty_inputs_still_write_a_figure(tmp_path):
    empty = pd.DataFrame(columns=["experiment", "paper", "k", "method", "seed", "metric", "value"])
    clear.ood_k_curve(empty, tmp_path / "a.png")
    clear.relative_bars(empty, tmp_path / "b.png", "linear_top1_relative", ["x"])
    _assert_image(tmp_path / "a.png", min_h=50)
    _assert_image(tmp_path / "b.png", min_h=50)


def test_csv_figures_do_not_import_torch(tmp_path):
    path, _ = _corruptions_csv(tmp_path)
    code = ("import sys; import clbench.papers; from clbench.papers import varcon; "
            f"varcon.corruption_heatmap({str(path)!r}, {str(tmp_path / 'h.png')!r}); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------- CLEAR model


@pytest.fixture(scope="module")
def clear_run(tmp_path_factory):
    from helpers import quadrant_dataset

    from clbench.train import loop

    root = tmp_path_factory.mktemp("clear")
    data = root / "data"
    quadrant_dataset(data, n_test=200)
    spec = {"objective": "clear_vae", "vae": {"z_content": 4, "z_style": 4, "width": 8}, "epochs": 1,
            "batch_size": 32, "val_every": 0}
    loop.train(spec, data, root / "run", root / "ckpt", seed=0, device="cpu")
    return root / "run" / "model.pt", data


def test_swap_images_combine_content_and_style(clear_run):
    import torch

    from clbench.data import dataset_dir

    model_path, data = clear_run
    model, _, _ = latent_maps.load_two_latent_model(model_path, data)
    x = dataset_dir.load(data, "test")["x"]
    grid = latent_maps.swap_images(model, x[:3], x[3:5])
    assert grid.shape == (2, 3, *x.shape[1:])
    with torch.no_grad():
        mu_c, _ = model.factors(torch.as_tensor(x[1:2]).float() / 255)
        _, mu_s = model.factors(torch.as_tensor(x[4:5]).float() / 255)
        ref = model.vae.decode(mu_c, mu_s).numpy()[0]
    np.testing.assert_allclose(grid[1, 1], ref, atol=1e-5)


def test_clear_swap_grid_and_interpolation(clear_run, tmp_path):
    model_path, data = clear_run
    model, arrays, meta = latent_maps.load_two_latent_model(model_path, data)
    clear.swap_grid_plot(latent_maps.swap_grid(model, arrays, meta, n=6), tmp_path / "swap.png")
    _assert_image(tmp_path / "swap.png")
    clear.interpolation_plot(latent_maps.interpolation(model, arrays, steps=6), tmp_path / "interp.png")
    _assert_image(tmp_path / "interp.png", min_h=100)


def test_tsne_latents(clear_run, tmp_path):
    model_path, data = clear_run
    model, arrays, meta = latent_maps.load_two_latent_model(model_path, data)
    clear.tsne_plot(latent_maps.tsne(model, arrays, meta, n=150), tmp_path / "tsne.png")
    _assert_image(tmp_path / "tsne.png", min_w=500, min_h=500)


def test_non_clear_model_is_rejected(tmp_path):
    from helpers import quadrant_dataset

    from clbench.train import loop

    quadrant_dataset(tmp_path / "data", n_train=64, n_val=16, n_test=16)
    spec = {"objective": "supcon", "epochs": 1, "batch_size": 32, "val_every": 0}
    try:
        loop.train(spec, tmp_path / "data", tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    except (ValueError, KeyError) as e:  # the objective's spec keys may differ; the check is what matters
        pytest.skip(f"could not build a non-CLEAR model: {e}")
    with pytest.raises(ValueError, match="not a CLEAR-VAE"):
        latent_maps.load_two_latent_model(tmp_path / "run" / "model.pt", tmp_path / "data")


# ---------------------------------------------------------------------------- MI simulation


def test_mi_simulation_curves_track_mi(tmp_path):
    df = mi_simulation_curves(steps=200, seed=0, batch_size=128, mi_every=4)
    assert len(df) == 200 and df["knn_mi"].notna().sum() == 50
    assert sorted(df["spread"].unique()) == [0.25, 0.5]
    est = df.dropna(subset=["knn_mi"])
    # SNN falls as I(x; y) rises, PS-SNN rises with it
    assert np.corrcoef(est["knn_mi"], est["snn"])[0, 1] < -0.5
    assert np.corrcoef(est["knn_mi"], est["ps_snn"])[0, 1] > 0.5
    # the tight phase (spread 0.25) carries more information than the wider one
    assert est[est["spread"] == 0.25]["knn_mi"].mean() > est[est["spread"] == 0.5]["knn_mi"].mean()
    # the workflow's two steps: the analysis writes the curves, the figure plots them
    import json

    from clbench.cli import main

    table, out = tmp_path / "analyses" / "clear_mi_simulation.csv", tmp_path / "figures" / "clear_mi_simulation.png"
    main(["analyse", "clear_mi_simulation.csv", "--results", str(tmp_path), "--out", str(table),
          "--params", json.dumps({"steps": 200, "seed": 0, "batch_size": 128, "mi_every": 4})])
    pd.testing.assert_frame_equal(pd.read_csv(table), df)
    main(["report", "figure", "clear_mi_simulation", str(table), "--results", str(tmp_path), "--out", str(out)])
    _assert_image(out)


def test_clear_ood_figures_plot_the_mlp_probe_over_the_cnns_own_classifier(monkeypatch, tmp_path):
    """The paper's comparison, not the linear probes' ratio: both figures read mlp_top1_relative_head."""
    from clbench.report.paper import ResultFiles

    seen = {}
    monkeypatch.setattr(clear, "relative_bars", lambda csv, out, metric, exps, **kw: seen.update(bars=(metric, exps, kw)))
    monkeypatch.setattr(clear, "ood_k_curve", lambda csv, out, metric, experiments, **kw: seen.update(k=(metric, experiments)))
    exps = {"clear_ood_k1": {"ood": True, "k": 1}, "clear_camelyon17": {"ood": True}, "clear_styled": {}}
    files = ResultFiles(tmp_path, (tmp_path / "metrics.csv",), exps)
    clear.draw_ood(files, tmp_path / "a.png")
    clear.draw_ood_k(files, tmp_path / "b.png")
    assert seen["bars"][:2] == ("mlp_top1_relative_head", ["clear_ood_k1", "clear_camelyon17"])
    assert "own classifier" in seen["bars"][2]["label"]
    assert seen["k"] == ("mlp_top1_relative_head", ["clear_ood_k1"])


def test_single_point_ood_figures_are_replaced_by_their_table(tmp_path):
    rows = [{"experiment": f"clear_ood_k{k}", "paper": "clear", "method": m, "seed": s, "metric": "mlp_top1_relative_head",
             "value": v + 0.01 * s} for k in (3, 4) for m, v in (("cnn", 1.0), ("clear", 1.4)) for s in (0, 1)]
    (tmp_path / "tables").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "tables" / "metrics.csv", index=False)
    one = {"experiments": {"clear_ood_k3": {"ood": True, "k": 3}}}
    two = {"experiments": {"clear_ood_k3": {"ood": True, "k": 3}, "clear_ood_k4": {"ood": True, "k": 4}}}
    table = clear.ood_note(tmp_path, one)
    assert "<table>" in table and "1.405 ± 0.007" in table and "clear_ood_k3" in table
    assert "k = 3" in clear.ood_k_note(tmp_path, one) and "<table>" not in clear.ood_k_note(tmp_path, one)
    assert clear.ood_note(tmp_path, two) == "" and clear.ood_k_note(tmp_path, two) == ""  # several points: drawn
    assert clear.ood_note(tmp_path / "nowhere", one) == ""

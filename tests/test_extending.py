"""The README's "Extending clbench" examples, executed: each adds its piece and uses it."""

import copy
import re
import sys
import types

import pytest
import yaml

from conftest import REPO


def readme_blocks(heading: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block in the README section under ``heading``."""
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n{heading}\n")
    end = re.search(r"\n##+ ", text[start + 1:])
    section = text[start:start + 1 + end.start()] if end else text[start:]
    return re.findall(r"```(\w+)\n(.*?)```", section, re.S)


def install_readme_module(monkeypatch, code: str, name: str) -> types.ModuleType:
    """Run a README code block as module ``name`` (as if it were its file) and make it importable."""
    module = types.ModuleType(name)
    exec(compile(code, name.replace(".", "/") + ".py", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, name, module)
    return module


# --------------------------------------------------------------------------------------------------
# Adding a dataset


@pytest.fixture
def checkerboard_generator(monkeypatch):
    """The README's generator module and registry entry, removed again afterwards."""
    from clbench.data import build

    (_, module_code), (_, registration), (_, config) = readme_blocks("### Adding a dataset")
    install_readme_module(monkeypatch, module_code, "clbench.data.checkerboard")
    assert "checkerboard" not in build.GENERATORS
    exec(compile(registration, "clbench/data/build.py", "exec"), dict(vars(build)))  # as if written in build.py
    yield yaml.safe_load(config)
    build.GENERATORS.pop("checkerboard")


def test_readme_adding_a_dataset(checkerboard_generator, tmp_path):
    from clbench import workflow as wf
    from clbench.data import dataset_dir
    from clbench.data.build import GENERATORS, build_dataset
    from clbench.errors import ConfigError
    from snakemake.utils import update_config

    assert GENERATORS["checkerboard"].module == "clbench.data.checkerboard"
    schema = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(cfg, checkerboard_generator)  # the README's config entries, as a --configfile overlay
    wf.validate(cfg, schema)
    assert wf.check_config(cfg, schema) == []
    assert ("checkers_ssl", "infonce", 0) in list(wf.experiment_runs(cfg))

    # the refusal the README quotes, and the registered relation
    bad = copy.deepcopy(cfg)
    bad["datasets"]["checkers"]["options"]["sides"] = [3, 4]
    with pytest.raises(ConfigError) as error:
        wf.check_config(bad, schema)
    quoted = re.search(r"gives\n`(datasets\.checkers\.[^`]*)`", (REPO / "README.md").read_text()).group(1)
    assert str(error.value) == quoted
    bad["datasets"]["checkers"].update(image_size=12, options={"sides": [2, 8]})
    with pytest.raises(ConfigError, match=r"^datasets\.checkers\.options\.sides: every side must divide image_size \(12\)"):
        wf.check_config(bad, schema)

    # the build job's call: a tiny dataset directory of 2x2 and 4x4 boards
    meta = build_dataset(cfg["datasets"]["checkers"], tmp_path / "checkers", tmp_path / "resources")
    dataset_dir.verify(tmp_path / "checkers")
    assert meta["sizes"] == {"train": 400, "val": 100, "test": 100} and meta["image_shape"] == [1, 16, 16]
    assert meta["classes"] == ["2x2", "4x4"] and meta["factors"] == {"phase": ["dark", "light"]}
    train = dataset_dir.load(tmp_path / "checkers", "train")
    assert set(train["y"].tolist()) == {0, 1} and set(train["factor_phase"].tolist()) == {0, 1}
    x, y, phase = train["x"][:, 0], train["y"], train["factor_phase"]
    first = (y == 0) & (phase == 0)  # 2x2, dark top-left square: the top-left quarter is dark, the next one light
    assert (x[first, :8, :8] == 0).all() and (x[first, :8, 8:] == 255).all()
    second = (y == 1) & (phase == 1)  # 4x4, light top-left: squares of 4 pixels
    assert (x[second, :4, :4] == 255).all() and (x[second, :4, 4:8] == 0).all()
    again = build_dataset(cfg["datasets"]["checkers"], tmp_path / "again", tmp_path / "resources")
    assert again["hash"] == meta["hash"]  # seeded: the same spec gives the same arrays


# --------------------------------------------------------------------------------------------------
# Adding a paper


@pytest.fixture
def toy_paper(monkeypatch):
    """The README's paper module, registered as if it were src/clbench/papers/toy.py, and its config."""
    from clbench.papers import PAPERS, unregister_paper

    (_, module_code), (_, config) = readme_blocks("### Adding a paper")
    assert "toy" not in PAPERS
    try:
        install_readme_module(monkeypatch, module_code, "clbench.papers.toy")
        yield yaml.safe_load(config)
    finally:
        unregister_paper("toy")


def _toy_results(results, experiments):
    """evaluation.json of the README's experiment: two seeds of cnn and supcon."""
    import json

    paths = []
    # per-seed steps differ by method: identical paired differences would go to the sign test (inconclusive)
    for method, top1, step in (("cnn", 0.90, 0.005), ("supcon", 0.95, 0.01)):
        for seed in (0, 1):
            run = results / "runs" / "toy_digits" / method / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "evaluation.json").write_text(json.dumps({"metrics": {"linear_top1": top1 + step * seed,
                                                                         "knn_top1": top1 - 0.05}}))
            paths.append(str(run / "evaluation.json"))
    return paths


def test_readme_adding_a_paper(toy_paper, tmp_path):
    import json

    from clbench import workflow as wf
    from clbench.cli import main
    from clbench.papers import PAPERS
    from clbench.papers.targets import ReportTargets
    from snakemake.utils import update_config

    assert list(PAPERS)[-1] == "toy"  # registered after the built-in papers: its section comes last
    schema = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
    if "toy" not in schema["$defs"]["paper"].get("enum", ["toy"]):
        schema["$defs"]["paper"]["enum"].append("toy")  # the README's note on the schema
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(cfg, toy_paper)
    wf.validate(cfg, schema)
    wf.check_config(cfg, schema)

    # what the workflow plans for it: its table files, its figure and what the figure reads
    targets = ReportTargets(cfg)
    assert "toy" in targets.table_papers and "toy_accuracy" in targets.figures
    assert targets.figure_inputs(types.SimpleNamespace(figure="toy_accuracy")) == ["results/tables/metrics.csv"]

    # the jobs' commands on result files of the experiment: tables, the figure, the report
    results = tmp_path / "results"
    experiments = {"toy_digits": cfg["experiments"]["toy_digits"]}
    main(["report", "collect", "--runs-root", str(results / "runs"), "--experiments", json.dumps(experiments),
          "--out-dir", str(results / "tables"), *_toy_results(results, experiments)])
    table = (results / "tables" / "paper_toy.md").read_text()
    assert "| supcon | 95.5 ± 0.7 | 97.5 | 90.0 ± 0.0 |" in table and "Table 1" in table
    main(["report", "figure", "toy_accuracy", str(results / "tables" / "metrics.csv"), "--results", str(results),
          "--out", str(results / "figures" / "toy_accuracy.png")])
    assert (results / "figures" / "toy_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    main(["report", "html", "--results", str(results), "--config-json", json.dumps({**cfg, "experiments": experiments}),
          "--out", str(results / "report" / "index.html")])
    page = (results / "report" / "index.html").read_text()
    section = page[page.index("<h2 id='toy'>"):page.index("<h2 id='training'>") if "id='training'" in page else None]
    assert "Toy: supervised contrastive features vs the plain CNN" in section and "A. Author." in section
    assert "<th class='num'>linear_<wbr>top1 (paper)</th>" in section and "95.5 ± 0.7" in section
    assert "toy.supcon_beats_cnn" in section and "<span class='v v-holds'>holds</span>" in section
    assert "Linear top-1 per method, mean over seeds." in section and "data:image/png;base64" in section


# --------------------------------------------------------------------------------------------------
# Adding a method (objective)


@pytest.fixture
def dcl_objective(monkeypatch):
    """The README's loss module and objective registration, removed again afterwards; yields its config."""
    from clbench import objectives

    (_, loss_code), (_, registration), (_, config) = readme_blocks("### Adding a method (objective)")
    install_readme_module(monkeypatch, loss_code, "clbench.losses.dcl")
    assert "dcl" not in objectives.OBJECTIVES
    try:
        exec(compile(registration, "clbench/objectives.py", "exec"), dict(vars(objectives)))  # as if written there
        yield yaml.safe_load(config)
    finally:
        objectives.OBJECTIVES.pop("dcl", None)


def test_readme_adding_a_method(dcl_objective, tmp_path):
    import pandas as pd
    import torch
    import torch.nn.functional as F

    from clbench import workflow as wf
    from clbench.errors import ConfigError
    from clbench.losses import info_nce
    from clbench.losses.dcl import dcl
    from clbench.models.checkpoint import load_model
    from clbench.objectives import OBJECTIVES
    from clbench.train import loop
    from helpers import quadrant_dataset
    from snakemake.utils import update_config

    # the loss: InfoNCE's terms without the positive in the denominator, so never above InfoNCE
    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 5), torch.randn(6, 5)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    rows = []
    for i in range(12):
        other = (i + 6) % 12
        negatives = torch.stack([z[i] @ z[j] / 0.5 for j in range(12) if j not in (i, other)])
        rows.append(torch.logsumexp(negatives, 0) - z[i] @ z[other] / 0.5)
    torch.testing.assert_close(dcl(z1, z2, temperature=0.5), torch.stack(rows).mean())
    assert dcl(z1, z2, temperature=0.5) < info_nce(z1, z2, temperature=0.5)

    # the config plans once the schema lists the objective; the refusals the README quotes
    assert OBJECTIVES["dcl"].loss_fn() is dcl
    schema = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
    schema["$defs"]["method"]["properties"]["objective"]["enum"].append("dcl")  # the README's note on the schema
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(cfg, dcl_objective)
    wf.validate(cfg, schema)
    assert wf.check_config(cfg, schema) == []
    readme = (REPO / "README.md").read_text()
    for loss, quoted in (({"temperature": 0}, r"`loss: \{temperature: 0\}` gives `([^`]*)`"),
                         ({"temprature": 0.2}, r"a\nmisspelt key gives `([^`]*)`")):
        bad = copy.deepcopy(cfg)
        bad["methods"]["dcl"]["loss"] = loss
        with pytest.raises(ConfigError) as error:
            wf.check_config(bad, schema)
        assert str(error.value) == re.search(quoted, readme).group(1)

    # it trains through the one loop and comes back from its checkpoint
    quadrant_dataset(tmp_path / "data", n_train=64, n_val=16, n_test=16)
    spec = {**cfg["methods"]["dcl"], "epochs": 1, "batch_size": 32, "projection_dim": 8,
            "encoder": {"name": "small_cnn", "width": 4, "feature_dim": 8}}
    loop.train(spec, tmp_path / "data", tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics["dcl"].iloc[0] == metrics["loss"].iloc[0] and bool(metrics["loss"].notna().all())
    model = load_model(tmp_path / "run" / "model.pt")
    assert model.features(torch.zeros(2, 1, 16, 16)).shape == (2, 8)


# --------------------------------------------------------------------------------------------------
# Adding an evaluation


@pytest.fixture
def uniformity_evaluation():
    """The README's evaluation, registered as if written in clbench/evaluate/suite.py; yields its config."""
    from clbench.evaluate import EVALUATIONS, suite

    (_, code), (_, config) = readme_blocks("### Adding an evaluation")
    assert "uniformity" not in EVALUATIONS
    try:
        exec(compile(code, "clbench/evaluate/suite.py", "exec"), dict(vars(suite)))
        yield yaml.safe_load(config)
    finally:
        EVALUATIONS.pop("uniformity", None)


def test_readme_adding_an_evaluation(uniformity_evaluation, tmp_path):
    import numpy as np
    import torch

    from clbench import workflow as wf
    from clbench.data import dataset_dir
    from clbench.evaluate import EVALUATIONS, check_evaluations
    from clbench.evaluate.embed import embed
    from clbench.evaluate.runner import evaluate_run
    from clbench.models.checkpoint import load_model, save_model
    from clbench.models.methods import build_method
    from helpers import quadrant_dataset
    from snakemake.utils import update_config

    assert EVALUATIONS["uniformity"].requires == frozenset() and "Uniformity" in EVALUATIONS["uniformity"].doc
    schema = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
    schema["$defs"]["experiment"]["properties"]["evaluations"]["items"]["enum"].append("uniformity")
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(cfg, uniformity_evaluation)
    wf.validate(cfg, schema)
    assert wf.check_config(cfg, schema) == []
    exp = cfg["experiments"]["digits_uniformity"]
    check_evaluations(exp["evaluations"], {m: cfg["methods"][m] for m in exp["methods"]},
                      "experiments.digits_uniformity.evaluations")

    # the evaluate job's call on a tiny run: the metric is the uniformity of the test features
    data = tmp_path / "data"
    quadrant_dataset(data, n_train=32, n_val=8, n_test=24)
    spec = {"objective": "cross_entropy", "encoder": {"name": "small_cnn", "width": 4, "feature_dim": 8}}
    torch.manual_seed(0)
    save_model(tmp_path / "model.pt", build_method(spec, 1, 4, 16), spec, {"in_channels": 1, "num_classes": 4,
                                                                            "image_size": 16})
    result = evaluate_run(tmp_path / "model.pt", data, {"evaluations": exp["evaluations"], "probe": {"epochs": 5}})
    f = embed(load_model(tmp_path / "model.pt"), dataset_dir.load(data, "test")["x"]).double().numpy()
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    i, j = np.triu_indices(len(f), k=1)
    expected = np.log(np.mean(np.exp(-2 * ((f[i] - f[j]) ** 2).sum(1))))
    assert result["metrics"]["uniformity"] == pytest.approx(expected, rel=1e-4)
    assert result["metrics"]["uniformity"] < 0 and "linear_top1" in result["metrics"]

"""The graph family (ADNCE's GraphCL-style TU experiments): data, augmentations, loss, model, training,
SVC evaluation, configuration checks and the paper's graph protocol."""

import json
import math

import numpy as np
import pytest
import torch

from clbench.data import dataset_dir, graph_augment
from clbench.data.build import build_dataset
from clbench.data.graphs import collate, graph, num_graphs, pack
from clbench.losses.graph_contrastive import graph_adnce, graph_cross_view_loss, graph_info_nce

# --------------------------------------------------------------------------------------------------
# TU datasets: a fixture in the TU text format, read through the real loader


def write_tu_fixture(folder, name="TOY", node_labels=True):
    """Three graphs: a triangle (label 1), a path of 3 (label -1), an edge (label 1); TU numbering from 1."""
    folder.mkdir(parents=True, exist_ok=True)
    edges = [(1, 2), (2, 1), (2, 3), (3, 2), (1, 3), (3, 1),  # triangle: nodes 1-3
             (4, 5), (5, 4), (5, 6), (6, 5),                   # path: nodes 4-6
             (7, 8), (8, 7)]                                   # edge: nodes 7-8
    (folder / f"{name}_A.txt").write_text("".join(f"{a}, {b}\n" for a, b in edges))
    (folder / f"{name}_graph_indicator.txt").write_text("".join(f"{g}\n" for g in [1, 1, 1, 2, 2, 2, 3, 3]))
    (folder / f"{name}_graph_labels.txt").write_text("1\n-1\n1\n")
    if node_labels:
        (folder / f"{name}_node_labels.txt").write_text("".join(f"{v}\n" for v in [0, 1, 2, 0, 0, 1, 2, 2]))
    return folder


@pytest.mark.parametrize("layout", ["flat", "named", "raw"])
def test_tu_loader_reads_the_text_format(tmp_path, layout):
    root = tmp_path / "tu"
    folder = {"flat": root, "named": root / "TOY", "raw": root / "TOY" / "raw"}[layout]
    write_tu_fixture(folder)
    meta = build_dataset({"generator": "tu", "name": "TOY", "root": str(root)}, tmp_path / "out", tmp_path / "res")
    assert meta["domain"] == "graph" and meta["sizes"] == {"train": 3, "val": 0, "test": 0}
    assert meta["classes"] == ["-1", "1"] and meta["node_features"] == "labels" and meta["num_node_features"] == 3
    split = dataset_dir.load(tmp_path / "out", "train")
    assert split["y"].tolist() == [1, 0, 1]
    assert split["node_ptr"].tolist() == [0, 3, 6, 8] and split["edge_ptr"].tolist() == [0, 6, 10, 12]
    x, e = graph(split, 1)
    assert x.argmax(1).tolist() == [0, 0, 1]  # one-hot node labels
    assert sorted(map(tuple, e.T.tolist())) == [(0, 1), (1, 0), (1, 2), (2, 1)]  # the path, in its own numbering
    x, e = graph(split, 2)
    assert x.argmax(1).tolist() == [2, 2] and sorted(map(tuple, e.T.tolist())) == [(0, 1), (1, 0)]


def test_tu_loader_without_node_labels_uses_the_constant(tmp_path):
    write_tu_fixture(tmp_path / "tu" / "TOY", node_labels=False)
    meta = build_dataset({"generator": "tu", "name": "TOY", "root": str(tmp_path / "tu")}, tmp_path / "out", tmp_path)
    split = dataset_dir.load(tmp_path / "out", "train")
    assert meta["node_features"] == "constant" and split["x"].shape == (8, 1) and (split["x"] == 1).all()
    write_tu_fixture(tmp_path / "tu2" / "TOY")
    forced = {"generator": "tu", "name": "TOY", "root": str(tmp_path / "tu2"), "options": {"node_features": "constant"}}
    assert build_dataset(forced, tmp_path / "out2", tmp_path)["num_node_features"] == 1


def test_a_tu_dataset_too_small_for_the_svc_folds_fails_its_build(tmp_path):
    """The plan cannot see a downloaded dataset's class sizes: the build job refuses them, before any training
    job, and leaves no meta.json (nothing trusts the directory)."""
    from clbench.errors import DatasetError

    write_tu_fixture(tmp_path / "tu" / "TOY")
    spec = {"generator": "tu", "name": "TOY", "root": str(tmp_path / "tu")}
    needs = {"min_class_size": 10, "by": "graph_svc's 10 stratified folds (experiment toy)",
             "key": "experiments.toy.evaluations"}
    with pytest.raises(DatasetError, match=r"class '-1' has 1, class '1' has 2 graphs, fewer than the 10 .*"
                                           r"experiments\.toy\.evaluations"):
        build_dataset({**spec, "needs": needs}, tmp_path / "out", tmp_path)
    assert not (tmp_path / "out" / "meta.json").exists()
    assert build_dataset({**spec, "needs": {**needs, "min_class_size": 1}}, tmp_path / "ok", tmp_path)["sizes"]["train"] == 3


def test_the_plan_passes_graph_svc_needs_to_the_build_and_refuses_a_built_dataset_without_them(tmp_path):
    from test_workflow_config import SCHEMA, load

    from clbench import workflow as wf
    from clbench.errors import ConfigError

    cfg = wf.validate(load("configs/paper.yaml"), SCHEMA)
    cfg["results_dir"] = str(tmp_path)
    spec = wf.build_spec(cfg, "tu_mutag")
    assert spec["needs"]["min_class_size"] == 10 and spec["needs"]["key"] == "experiments.tu_mutag.evaluations"
    assert {k: v for k, v in spec.items() if k != "needs"} == cfg["datasets"]["tu_mutag"]
    image = cfg["experiments"][next(e for e, x in cfg["experiments"].items() if "graph_svc" not in x["evaluations"])]
    assert "needs" not in wf.build_spec(cfg, image["dataset"])  # its params, and outputs, stay as they were
    wf.check_built_datasets(cfg)  # nothing built yet: nothing to read
    write_tu_fixture(tmp_path / "tu" / "TOY")
    build_dataset({"generator": "tu", "name": "TOY", "root": str(tmp_path / "tu")}, tmp_path / "data" / "tu_mutag",
                  tmp_path)  # built before graph_svc asked for 10 graphs a class
    with pytest.raises(ConfigError, match=r"experiments\.tu_mutag\.evaluations: dataset tu_mutag .*fewer than the 10"):
        wf.check_built_datasets(cfg)


def test_tu_loader_refuses_a_missing_copy_without_download(tmp_path):
    from clbench.errors import DatasetError

    with pytest.raises(DatasetError, match="download: true"):
        build_dataset({"generator": "tu", "name": "MUTAG"}, tmp_path / "out", tmp_path / "res")


def test_tu_download_goes_through_torch_geometric_into_resources(tmp_path, monkeypatch):
    import torch_geometric.datasets

    calls = []

    def fake_tudataset(root, name):  # what TUDataset's download leaves: <root>/<name>/raw/<name>_*.txt
        calls.append((root, name))
        write_tu_fixture(tmp_path / "res" / "tu" / name / "raw", name)

    monkeypatch.setattr(torch_geometric.datasets, "TUDataset", fake_tudataset)
    meta = build_dataset({"generator": "tu", "name": "TOY", "download": True}, tmp_path / "out", tmp_path / "res")
    assert calls == [(str(tmp_path / "res" / "tu"), "TOY")] and meta["sizes"]["train"] == 3


def test_graph_dataset_preview(tmp_path):
    from clbench.data.show import show

    build_dataset({"generator": "graph_classes", "options": {"n_graphs": 12}}, tmp_path / "d", tmp_path)
    out = show(tmp_path / "d", tmp_path / "samples.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------------
# generated graph classes


def _degrees(e, n):
    return np.bincount(e[0], minlength=n)


def test_graph_classes_are_deterministic_balanced_and_undirected(tmp_path):
    spec = {"generator": "graph_classes", "options": {"n_graphs": 60, "noise": 0.2}}
    meta = build_dataset(spec, tmp_path / "a", tmp_path)
    again = build_dataset(spec, tmp_path / "b", tmp_path)
    assert meta["hash"] == again["hash"] and meta["classes"] == ["tree", "cycle", "grid"]
    split = dataset_dir.load(tmp_path / "a", "train")
    assert np.bincount(split["y"]).tolist() == [20, 20, 20] and num_graphs(split) == 60
    for i in range(num_graphs(split)):
        x, e = graph(split, i)
        assert 12 <= len(x) <= 30 and (x == 1).all()
        assert (e[0] != e[1]).all()  # no self-loops
        pairs = set(map(tuple, e.T.tolist()))
        assert all((b, a) in pairs for a, b in pairs) and len(pairs) == e.shape[1]  # both directions, no repeats


def test_graph_classes_without_noise_have_their_structure(tmp_path):
    build_dataset({"generator": "graph_classes", "options": {"n_graphs": 30, "noise": 0.0}}, tmp_path, tmp_path)
    split = dataset_dir.load(tmp_path, "train")
    for i in range(num_graphs(split)):
        x, e = graph(split, i)
        n, edges, deg = len(x), e.shape[1] // 2, _degrees(e, len(x))
        kind = ["tree", "cycle", "grid"][split["y"][i]]
        if kind == "cycle":
            assert (deg == 2).all() and edges == n
        elif kind == "tree":
            assert edges == n - 1 and deg.min() >= 1
        else:
            assert deg.max() <= 4 and edges > n - 1


def test_graph_classes_sbm_classes_differ_in_communities(tmp_path):
    build_dataset({"generator": "graph_classes", "options": {"classes": ["sbm1", "sbm4"], "n_graphs": 20}},
                  tmp_path, tmp_path)
    assert dataset_dir.load_meta(tmp_path)["classes"] == ["sbm1", "sbm4"]


def test_pack_and_collate_round_trip():
    graphs = [(np.ones((3, 2), np.float32), np.array([[0, 1], [1, 0]])), (np.zeros((2, 2), np.float32),
                                                                          np.array([[0, 1], [1, 0]]))]
    split = pack(graphs, [0, 1])
    assert [graph(split, i)[1].tolist() for i in range(2)] == [g[1].tolist() for g in graphs]
    x, e, batch = collate(graphs)
    assert x.shape == (5, 2) and batch.tolist() == [0, 0, 0, 1, 1] and e.tolist() == [[0, 1, 3, 4], [1, 0, 4, 3]]


# --------------------------------------------------------------------------------------------------
# augmentations


def _ring(n):
    idx = np.arange(n)
    pairs = np.stack([idx, (idx + 1) % n])
    return np.ones((n, 3), np.float32), np.concatenate([pairs, pairs[::-1]], axis=1)


def test_node_drop_isolates_ten_percent_of_the_nodes():
    x, e = _ring(40)
    rng = np.random.default_rng(0)
    _, dropped = graph_augment.node_drop(x, graph_augment.add_self_loops(e, 40), rng)
    assert len(np.unique(dropped)) == 40 - 4
    view_x, view_e = graph_augment.finish_view(x, dropped)
    assert len(view_x) == 36 and (view_e[0] != view_e[1]).all() and view_e.max() < 36


def test_subgraph_keeps_the_start_node_and_at_most_a_fifth_more():
    x, e = _ring(50)
    e = graph_augment.add_self_loops(e, 50)
    for seed in range(5):
        _, kept = graph_augment.subgraph(x, e, np.random.default_rng(seed))
        nodes = np.unique(kept)
        assert 1 <= len(nodes) <= int(50 * 0.2) + 1
        # seed growth: a ring node has 2 neighbours (and itself), so at most 3 nodes survive
        assert len(nodes) <= 3
        _, grown = graph_augment.subgraph(x, e, np.random.default_rng(seed), growth="frontier")
        assert len(np.unique(grown)) == int(50 * 0.2) + 1


def test_edge_perturb_removes_a_tenth_of_the_edges_and_adds_none():
    x, e = _ring(30)
    e = graph_augment.add_self_loops(e, 30)
    _, kept = graph_augment.edge_perturb(x, e, np.random.default_rng(1))
    assert kept.shape[1] == e.shape[1] - e.shape[1] // 10
    assert set(map(tuple, kept.T.tolist())) <= set(map(tuple, e.T.tolist()))


def test_attr_mask_replaces_a_tenth_of_the_rows():
    x, e = _ring(30)
    masked, same = graph_augment.attr_mask(x, e, np.random.default_rng(2))
    assert (np.abs(masked - x).sum(1) > 0).sum() == 3 and same is e and (x == 1).all()


@pytest.mark.parametrize("recipe,choices", [("random2", {"node_drop", "subgraph"}),
                                            ("random3", {"node_drop", "subgraph", "edge_perturb"}),
                                            ("random4", {"node_drop", "subgraph", "edge_perturb", "attr_mask"})])
def test_random_recipes_draw_from_their_augmentations(recipe, choices, monkeypatch):
    seen = []
    aug = graph_augment.GraphAugment(recipe)
    monkeypatch.setattr(graph_augment.GraphAugment, "augment",
                        lambda self, name, x, e, rng: (seen.append(name), (x, e))[1])
    x, e = _ring(10)
    rng = np.random.default_rng(0)
    for _ in range(200):
        original, view = aug.pair(x, e, rng)
        assert original[1].shape[1] == e.shape[1] + 10  # the original keeps a self-loop per node
        assert (view[1][0] != view[1][1]).all()  # the view loses them
    assert set(seen) == choices


def test_unknown_recipe_is_refused():
    with pytest.raises(ValueError, match="unknown graph augmentation"):
        graph_augment.GraphAugment("random5")


# --------------------------------------------------------------------------------------------------
# the loss


def loop_reference(z, z_aug, t, mu=None, sigma=1.0):
    """The official formula, one anchor at a time: -log(pos / mean_j(w_ij neg_ij)), w from the cosine."""
    z, z_aug = z.double(), z_aug.double()
    n, total = len(z), 0.0
    for i in range(n):
        cos = [float(torch.nn.functional.cosine_similarity(z[i], z_aug[j], dim=0)) for j in range(n)]
        negatives = [j for j in range(n) if j != i]
        if mu is None:
            w = [1.0] * len(negatives)
        else:
            g = [math.exp(-((cos[j] - mu) ** 2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi)) for j in negatives]
            w = [v / (sum(g) / len(g)) for v in g]
        mean_neg = sum(wj * math.exp(cos[j] / t) for wj, j in zip(w, negatives)) / len(negatives)
        total += -math.log(math.exp(cos[i] / t) / mean_neg)
    return total / n


@pytest.mark.parametrize("t,mu,sigma", [(0.05, 0.7, 1.0), (0.2, 0.2, 1.0), (0.55, 1.5, 0.5)])
def test_graph_adnce_matches_the_loop_reference(t, mu, sigma):
    g = torch.Generator().manual_seed(3)
    z, z_aug = torch.randn(9, 6, generator=g), torch.randn(9, 6, generator=g)
    assert float(graph_adnce(z, z_aug, t, mu, sigma)) == pytest.approx(loop_reference(z, z_aug, t, mu, sigma), rel=1e-5)
    assert float(graph_info_nce(z, z_aug, t)) == pytest.approx(loop_reference(z, z_aug, t), rel=1e-5)


def test_unit_weights_give_the_baseline():
    g = torch.Generator().manual_seed(4)
    z, z_aug = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    base = graph_info_nce(z, z_aug, 0.2)
    assert torch.allclose(graph_cross_view_loss(z, z_aug, 0.2, log_weights=torch.zeros(7, 7)), base)
    # a very wide Gaussian weighs every negative alike
    assert torch.allclose(graph_adnce(z, z_aug, 0.2, mu=0.7, sigma=1e4), base, atol=1e-6)


def test_graph_adnce_weights_are_detached():
    g = torch.Generator().manual_seed(5)
    z = torch.randn(6, 4, generator=g, requires_grad=True)
    z_aug = torch.randn(6, 4, generator=g)
    graph_adnce(z, z_aug, 0.1, mu=0.5, sigma=0.3).backward()
    expected = torch.autograd.grad(  # the same loss with the weights as constants
        graph_cross_view_loss(z, z_aug, 0.1, log_weights=_log_weights(z.detach(), z_aug, 0.5, 0.3)), z)[0]
    assert torch.allclose(z.grad, expected, atol=1e-6)


def _log_weights(z, z_aug, mu, sigma):
    s = torch.nn.functional.normalize(z, dim=1) @ torch.nn.functional.normalize(z_aug, dim=1).T
    g = torch.exp(-((s - mu) ** 2) / (2 * sigma**2))
    off = ~torch.eye(len(z), dtype=torch.bool)
    return torch.log(g / (g * off).sum(1, keepdim=True) * (len(z) - 1))


def test_graph_loss_refuses_a_single_graph_and_a_bad_temperature():
    with pytest.raises(ValueError, match="at least 2"):
        graph_info_nce(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match="temperature"):
        graph_adnce(torch.randn(4, 3), torch.randn(4, 3), temperature=0)


# --------------------------------------------------------------------------------------------------
# the model


def test_gin_layer_and_pool_equal_torch_geometric():
    from torch_geometric.nn import GINConv, global_add_pool

    from clbench.models.graph import GINLayer, sum_pool

    torch.manual_seed(0)
    layer = GINLayer(3, 8)
    reference = GINConv(layer.mlp)
    x = torch.randn(7, 3)
    e = torch.tensor([[0, 1, 1, 2, 3, 4, 5, 6, 6], [1, 0, 2, 1, 4, 3, 6, 5, 6]])
    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    assert torch.allclose(layer(x, e), reference(x, e), atol=1e-6)
    assert torch.allclose(sum_pool(x, batch, 3), global_add_pool(x, batch), atol=1e-6)


def test_graph_model_shapes_and_init():
    from clbench.models.graph import GraphContrastive

    model = GraphContrastive({"objective": "graph_adnce", "epochs": 20}, in_channels=5)
    assert model.encoder.out_dim == 96 and set(model.snapshots) == {"epoch10"}
    assert [m.out_features for m in model.projector if isinstance(m, torch.nn.Linear)] == [96, 96]
    assert all(float(m.bias.detach().abs().sum()) == 0 for m in model.modules() if isinstance(m, torch.nn.Linear))
    graphs = [(np.ones((4, 5), np.float32), np.array([[0, 1, 2], [1, 2, 3]])),
              (np.ones((2, 5), np.float32), np.array([[0], [1]]))]
    from clbench.evaluate.graph_svc import embed_graphs

    assert embed_graphs(model.encoder, graphs).shape == (2, 96)


# --------------------------------------------------------------------------------------------------
# training and the SVC evaluation, end to end


@pytest.fixture(scope="module")
def tiny_graphs(tmp_path_factory):
    root = tmp_path_factory.mktemp("graphs")
    build_dataset({"generator": "graph_classes", "options": {"n_graphs": 60, "noise": 0.3, "max_nodes": 16}},
                  root / "data", root)
    return root


def _spec(objective, **extra):
    return {"objective": objective, "loss": {"temperature": 0.15, **extra}, "epochs": 3, "batch_size": 32,
            "optimizer": {"name": "adam", "lr": 0.01}, "schedule": "constant",
            "graph": {"augment": "random4", "eval_epochs": [2, 3]}}


def test_train_and_evaluate_end_to_end(tiny_graphs):
    from clbench.evaluate.runner import evaluate_run
    from clbench.train.trainers import trainer_for

    spec = _spec("graph_adnce", mu=0.7, sigma=1.0)
    out = tiny_graphs / "adnce"
    info = trainer_for(spec)(spec, tiny_graphs / "data", out, tiny_graphs / "ck", seed=0, device="cpu")
    assert info["graphs"] == 60 and info["batches_per_epoch"] == 2 and not (tiny_graphs / "ck").exists()
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,loss,graph_adnce") and len(rows) == 4
    assert json.loads((out / "run.json").read_text())["graph"]["augment"] == "random4"
    result = evaluate_run(out / "model.pt", tiny_graphs / "data", {"evaluations": ["graph_svc"]}, seed=0)
    m = result["metrics"]
    assert set(m) >= {"svc_top1", "svc_top1_std", "svc_top1_epoch2", "svc_top1_epoch3", "svc_top1_epoch2_std"}
    assert m["svc_top1"] == m["svc_top1_epoch3"] and 0.0 <= m["svc_top1"] <= 1.0
    assert m["svc_top1_epoch2"] != m["svc_top1_epoch3"]  # the epoch-2 snapshot is another encoder
    table = result["tables"]["graph_svc"]
    assert len(table) == 20 and {r["C"] for r in table} <= {1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0}


def test_training_resumes_to_the_same_model(tiny_graphs, monkeypatch):
    from clbench.train import graph as graph_train

    spec = _spec("graph_info_nce")
    full = graph_train.train(spec, tiny_graphs / "data", tiny_graphs / "full", tiny_graphs / "ck_full", seed=1,
                             device="cpu")
    real_epoch = graph_train._epoch

    def killed_in_epoch_3(*args):
        if args[-2] == 2:
            raise KeyboardInterrupt
        return real_epoch(*args)

    monkeypatch.setattr(graph_train, "_epoch", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        graph_train.train(spec, tiny_graphs / "data", tiny_graphs / "again", tiny_graphs / "ck_again", seed=1,
                          device="cpu")
    assert (tiny_graphs / "ck_again" / "last.pt").exists()
    monkeypatch.setattr(graph_train, "_epoch", real_epoch)
    resumed = graph_train.train(spec, tiny_graphs / "data", tiny_graphs / "again", tiny_graphs / "ck_again", seed=1,
                                device="cpu")
    assert resumed["resumed_from_epoch"] == 2
    assert resumed["final"]["loss"] == pytest.approx(full["final"]["loss"], rel=1e-6)
    a = torch.load(tiny_graphs / "full" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tiny_graphs / "again" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


def test_svc_cross_validation_separates_separable_embeddings():
    from clbench.evaluate.graph_svc import svc_cross_validation

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    x = rng.normal(size=(60, 4)) + 4 * y[:, None]
    rows = svc_cross_validation(x, y, seed=0)
    assert len(rows) == 10 and np.mean([r["accuracy"] for r in rows]) == 1.0
    with pytest.raises(ValueError, match="fewer than the 10"):
        svc_cross_validation(x[:15], np.array([0] * 9 + [1] * 6), seed=0)


# --------------------------------------------------------------------------------------------------
# configuration


def test_default_config_plans_the_graph_experiment():
    from test_workflow_config import SCHEMA, load

    from clbench import workflow as wf

    cfg = wf.validate(load(), SCHEMA)
    wf.check_config(cfg, SCHEMA)
    assert cfg["experiments"]["graph_classes_ssl"]["methods"] == ["graphcl", "adnce_graph"]


@pytest.mark.parametrize("overlay,key", [
    ({"experiments": {"graph_classes_ssl": {"methods": ["graphcl", "infonce"]}}},
     "experiments.graph_classes_ssl.methods"),
    ({"experiments": {"trifeature_ssl": {"methods": ["infonce", "graphcl"]}}}, "experiments.trifeature_ssl.methods"),
    ({"experiments": {"graph_classes_ssl": {"evaluations": ["graph_svc", "linear_probe"]}}},
     "experiments.graph_classes_ssl.evaluations[1]"),
    ({"methods": {"graphcl": {"graph": {"eval_epochs": [10, 30]}}}}, "methods.graphcl.graph.eval_epochs[1]"),
    ({"methods": {"graphcl": {"augment": "simclr"}}}, "methods.graphcl.augment"),
    ({"methods": {"infonce": {"graph": {"augment": "random2"}}}}, "methods.infonce.graph"),
    ({"methods": {"graphcl": {"graph": {"augment": "random5"}}}}, "methods.graphcl.graph.augment"),
    ({"methods": {"adnce_graph": {"loss": {"sigma": 0}}}}, "methods.adnce_graph.loss.sigma"),
    ({"datasets": {"graph_classes": {"options": {"classes": ["tree", "hexagon"]}}}},
     "datasets.graph_classes.options.classes[1]"),
    ({"datasets": {"graph_classes": {"options": {"min_nodes": 40}}}}, "datasets.graph_classes.options.max_nodes"),
])
def test_graph_settings_are_refused_at_their_key(overlay, key):
    from test_workflow_config import load, refused

    assert refused(load(), overlay).key.startswith(key)


def test_paper_config_plans_the_eight_tu_datasets():
    from test_workflow_config import SCHEMA, load

    from clbench import workflow as wf
    from clbench.papers.adnce import GRAPH_DATASETS

    cfg = wf.validate(load("configs/paper.yaml"), SCHEMA)
    wf.check_config(cfg, SCHEMA)
    for name, (augment, mu, t) in GRAPH_DATASETS.items():
        key = "tu_" + name.lower().replace("-", "_")
        assert cfg["datasets"][key]["name"] == name
        exp = cfg["experiments"][key]
        assert exp["seeds"] == [0, 1, 2, 3, 4] and exp["evaluations"] == ["graph_svc"]
        adnce = wf.method_spec(cfg, key, "adnce_graph")
        graphcl = wf.method_spec(cfg, key, "graphcl")
        assert adnce["loss"] == {"temperature": t, "mu": mu, "sigma": 1.0} and adnce["graph"]["augment"] == augment
        assert graphcl["loss"] == {"temperature": t} and graphcl["graph"]["augment"] == augment
        assert adnce["epochs"] == 20 and adnce["batch_size"] == 128 and adnce["optimizer"]["lr"] == 0.01


def test_graph_protocol_sources_a_tu_experiment():
    from clbench.papers.adnce import graph_protocol
    from clbench.report.paper import ExperimentRecord

    record = ExperimentRecord(
        experiment="tu_mutag", papers=("adnce",), dataset={"generator": "tu", "name": "MUTAG"}, evaluation={},
        methods={"adnce_graph": {"objective": "graph_adnce"}, "graphcl": {"objective": "graph_info_nce"}})
    sources = graph_protocol(record)
    assert sources["adnce_graph"]["loss.mu"].value == 0.7 and sources["adnce_graph"]["loss.temperature"].value == 0.15
    assert "loss.mu" not in sources["graphcl"] and sources["graphcl"]["graph.augment"].value == "random2"
    assert "go_adnce.sh" in sources["run"]["seeds"].where and sources["data"]["name"].value == "MUTAG"


def test_random2_rates_are_marked_assumed_and_random3_rates_sourced():
    """The official random2 passes --noise_ratio (unset: None) to both augmentations and raises; random3 and
    random4 call them at their own defaults, the rates clbench uses."""
    from clbench.papers.adnce import graph_protocol
    from clbench.report.paper import ExperimentRecord

    def sources(name, augment):
        record = ExperimentRecord(
            experiment="tu", papers=("adnce",), dataset={"generator": "tu", "name": name}, evaluation={},
            methods={"graphcl": {"objective": "graph_info_nce", "graph": {"augment": augment}}})
        return graph_protocol(record)["graphcl"]

    for setting in ("graph.node_drop_rate", "graph.subgraph_keep"):
        marked = sources("MUTAG", "random2")[setting].where
        assert marked.startswith("assumed: the official random2 cannot run as shipped; GraphCL's rates")
        assert "graph/aug.py lines 254-259" in marked and "arguments.py line 28" in marked
        assert not sources("NCI1", "random3")[setting].where.startswith("assumed")
    # the method's own augmentation decides, not the dataset's README entry
    assert not sources("MUTAG", "random4")["graph.node_drop_rate"].where.startswith("assumed")
    assert sources("MUTAG", "random2")["graph.self_loops"].where.startswith("assumed")

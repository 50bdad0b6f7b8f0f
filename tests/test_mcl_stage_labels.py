"""MCL's stage labels: the paper's joint clusters of all earlier stages, or the official cluster.py's
previous-stage clusters, on uneven clusters."""

from __future__ import annotations

import numpy as np
import pytest

from clbench.data.samplers import ClusterBatchSampler, stage_cluster_ids

K = 10


def _uneven_stages(n: int = 60_000, stages: int = 3, seed: int = 0) -> list[np.ndarray]:
    """K-means-like ids of ``stages`` stages: K clusters each, with Dirichlet(2) shares (uneven)."""
    rng = np.random.default_rng(seed)
    return [rng.choice(K, n, p=rng.dirichlet(np.full(K, 2.0))) for _ in range(stages)]


def test_previous_stage_labels_give_pure_batches_of_ten_clusters_at_every_stage():
    stages = _uneven_stages()
    for s in range(1, len(stages) + 1):
        ids = stage_cluster_ids(stages[:s], "previous")
        assert len(np.unique(ids)) == K  # 10 labels at every stage, as the official cluster.py's
        sampler = ClusterBatchSampler(ids, 256, seed=s)
        batches = [np.asarray(b) for b in sampler]
        assert batches and all(len(b) == 256 for b in batches)
        # each batch is one cluster of the stage just before, and of no earlier stage in particular
        assert all(len(np.unique(stages[s - 1][b])) == 1 for b in batches)
        if s > 1:
            assert any(len(np.unique(stages[0][b])) > 1 for b in batches)
        # the uneven shares: every cluster big enough is used, so nearly every image trains each epoch
        assert sampler.summary()["samples_used"] > 0.95 * len(ids)


def test_joint_stage_labels_multiply_and_keep_every_batch_in_one_joint_cluster():
    stages = _uneven_stages()
    counts = [len(np.unique(stage_cluster_ids(stages[:s], "joint"))) for s in (1, 2, 3)]
    assert counts[0] == K and K < counts[1] <= K ** 2 and counts[1] < counts[2] <= K ** 3
    ids = stage_cluster_ids(stages, "joint")
    sampler = ClusterBatchSampler(ids, 256, seed=0)
    for b in sampler:
        assert len({(a, c, d) for a, c, d in zip(stages[0][b], stages[1][b], stages[2][b])}) == 1
    previous = ClusterBatchSampler(stage_cluster_ids(stages, "previous"), 256, seed=0)
    # joint clusters are small: more of them fall below one batch, fewer images train per epoch
    assert sampler.summary()["samples_used"] < previous.summary()["samples_used"]


def test_stage_labels_refuse_an_unknown_setting_and_no_stages():
    with pytest.raises(ValueError, match="labels must be one of"):
        stage_cluster_ids([np.zeros(4, int)], "current")
    with pytest.raises(ValueError, match="at least one stage"):
        stage_cluster_ids([], "previous")


def _mcl_config(labels: str | None, n_train: int) -> dict:
    mcl = {"stages": 3, "clusters": 10, **({"labels": labels} if labels else {})}
    return {"datasets": {"d": {"generator": "trifeature", "n_train": n_train}},
            "methods": {"m": {"objective": "info_nce", "batch_size": 100, "mcl": mcl}},
            "experiments": {"e": {"dataset": "d", "methods": ["m"]}},
            "results_dir": "results"}


def test_stage_spec_passes_previous_labels_to_later_stages_only():
    import json

    from clbench.workflow import stage_spec

    cfg = _mcl_config("previous", 100_000)
    assert "stage_labels" not in json.loads(stage_spec(cfg, "e", "m", 0, 0))
    assert json.loads(stage_spec(cfg, "e", "m", 0, 2))["stage_labels"] == "previous"
    assert "stage_labels" not in json.loads(stage_spec(_mcl_config(None, 100_000), "e", "m", 0, 2))


def test_batch_check_counts_k_clusters_under_previous_labels():
    from clbench.errors import ConfigError
    from clbench.config.settings import check_mcl_batches

    # 100 joint clusters of 100 need 10,000 images; 10 previous-stage clusters need 1,000
    check_mcl_batches(_mcl_config("previous", 5_000))
    with pytest.raises(ConfigError, match="clusters\\*\\*\\(stages-1\\) = 100"):
        check_mcl_batches(_mcl_config("joint", 5_000))


def test_config_refuses_unknown_stage_labels_at_their_key():
    import yaml

    from clbench import workflow as wf
    from clbench.errors import ConfigError
    from conftest import REPO

    schema = wf.load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["methods"]["mcl"]["mcl"]["labels"] = "current"
    with pytest.raises(ConfigError) as e:
        wf.check_config(wf.validate(cfg, schema), schema)
    assert str(e.value).startswith("methods.mcl.mcl.labels")


def test_kmeans_is_the_official_minibatch_kmeans_on_normalised_features(monkeypatch):
    import sklearn.cluster

    from clbench.train.mcl import kmeans

    seen = {}

    class Recording(sklearn.cluster.MiniBatchKMeans):
        def fit(self, x, *args, **kwargs):
            seen.update(self.get_params(), norms=np.linalg.norm(x, axis=1))
            return super().fit(x, *args, **kwargs)

    monkeypatch.setattr(sklearn.cluster, "MiniBatchKMeans", Recording)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(5, 1, (200, 8)), rng.normal(-5, 1, (200, 8))]) * rng.uniform(1, 9, (400, 1))
    ids = kmeans(x, 2, seed=3)
    assert (seen["n_clusters"], seen["batch_size"], seen["max_iter"], seen["tol"], seen["n_init"]) == \
        (2, 1_000_000, 100, 1e-5, 3)  # cluster.py lines 60-66, scikit-learn 1.3.2's n_init
    assert seen["random_state"] == 3 and np.allclose(seen["norms"], 1.0, atol=1e-5)
    assert len(set(ids[:200])) == 1 and len(set(ids[200:])) == 1 and ids[0] != ids[-1]

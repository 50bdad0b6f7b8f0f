"""One job may train and evaluate several seeds in turn (seeds_per_job: all): each seed's run is the
run a job of its own would have written."""

import json

import pandas as pd
import pytest

from clbench import cli
from helpers import quadrant_dataset

CNN = {"objective": "cross_entropy", "encoder": {"name": "small_cnn", "width": 8, "feature_dim": 32},
       "epochs": 2, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01}, "augment": "none", "views": 1}
TIMING = ["seconds", "images_per_s"]


def train(tmp_path, out, seeds):
    cli.main(["train", "--spec", json.dumps(CNN), "--dataset", str(tmp_path / "data"), "--out", str(out),
              "--checkpoint-dir", str(tmp_path / "ckpt" / out.name), "--seed", seeds, "--device", "cpu"])


def test_a_job_of_several_seeds_writes_what_one_job_per_seed_writes(tmp_path):
    quadrant_dataset(tmp_path / "data")
    train(tmp_path, tmp_path / "together" / "seed{seed}", "0,1")
    train(tmp_path, tmp_path / "alone" / "seed1", "1")
    together = pd.read_csv(tmp_path / "together" / "seed1" / "metrics.csv").drop(columns=TIMING)
    alone = pd.read_csv(tmp_path / "alone" / "seed1" / "metrics.csv").drop(columns=TIMING)
    pd.testing.assert_frame_equal(together, alone)
    seed0 = pd.read_csv(tmp_path / "together" / "seed0" / "metrics.csv").drop(columns=TIMING)
    assert not seed0.equals(together)  # each seed its own run

    spec = json.dumps({"evaluations": ["linear_probe"], "probe": {"epochs": 5}, "y_factor": "y"})
    cli.main(["evaluate", "run", "--model", str(tmp_path / "together" / "seed{seed}" / "model.pt"), "--dataset",
              str(tmp_path / "data"), "--spec", spec, "--seed", "0,1", "--device", "cpu",
              "--out", str(tmp_path / "together" / "seed{seed}" / "evaluation.json")])
    cli.main(["evaluate", "run", "--model", str(tmp_path / "alone" / "seed1" / "model.pt"), "--dataset",
              str(tmp_path / "data"), "--spec", spec, "--seed", "1", "--device", "cpu",
              "--out", str(tmp_path / "alone" / "seed1" / "evaluation.json")])
    read = lambda p: json.loads(p.read_text())["metrics"]
    assert read(tmp_path / "together" / "seed1" / "evaluation.json") == read(tmp_path / "alone" / "seed1" / "evaluation.json")
    assert (tmp_path / "together" / "seed0" / "evaluation.json").exists()


def test_several_seeds_need_per_seed_paths(tmp_path):
    quadrant_dataset(tmp_path / "data")
    with pytest.raises(SystemExit, match=r"contains \{seed\}"):
        train(tmp_path, tmp_path / "run", "0,1")
    with pytest.raises(SystemExit):
        cli.main(["train", "--spec", json.dumps(CNN), "--dataset", "x", "--out", "o", "--checkpoint-dir", "c",
                  "--seed", "1,1"])


# MCL's stage jobs with seeds_per_job: all (pretrain_stage_seeds, cluster_stage_seeds, combine_stages_seeds):
# each seed's stage reads its own clusters and draws its own batches, as its own job would
STAGE = {**CNN, "epochs": 1, "batch_size": 16}


def stage_train(tmp_path, out, seeds, clusters=()):
    checkpoints = tmp_path / "ckpt" / out.parent.parent.name / out.parent.name / out.name
    cli.main(["train", "--spec", json.dumps(STAGE), "--dataset", str(tmp_path / "data"), "--out", str(out),
              "--checkpoint-dir", str(checkpoints), "--seed", seeds, "--device", "cpu",
              *(["--clusters", *clusters] if clusters else [])])


def test_mcl_stage_jobs_of_several_seeds_write_what_one_job_per_seed_writes(tmp_path):
    import numpy as np
    import torch

    quadrant_dataset(tmp_path / "data", n_train=128)
    run = {"together": tmp_path / "together" / "seed{seed}", "alone": tmp_path / "alone" / "seed1"}
    # stage 0: a model per seed
    stage_train(tmp_path, run["together"] / "stage0", "0,1")
    stage_train(tmp_path, run["alone"] / "stage0", "1")
    # cluster_stage: each seed clusters its own model's features with its own K-means seed
    for name, seeds in (("together", "0,1"), ("alone", "1")):
        cli.main(["cluster", "--model", str(run[name] / "stage0" / "model.pt"), "--dataset", str(tmp_path / "data"),
                  "--k", "6", "--seed", seeds, "--device", "cpu", "--out", str(run[name] / "stage0" / "clusters.npy")])
    ids = {p: np.load(tmp_path / p / "stage0" / "clusters.npy") for p in ("together/seed0", "together/seed1", "alone/seed1")}
    np.testing.assert_array_equal(ids["together/seed1"], ids["alone/seed1"])
    assert not np.array_equal(ids["together/seed0"], ids["together/seed1"])  # each seed its own clusters

    # pretrain_stage: each seed's batches from its own clusters, shuffled by its own seed
    stage_train(tmp_path, run["together"] / "stage1", "0,1", [str(run["together"] / "stage0" / "clusters.npy")])
    stage_train(tmp_path, run["alone"] / "stage1", "1", [str(run["alone"] / "stage0" / "clusters.npy")])
    together, alone = tmp_path / "together" / "seed1" / "stage1", tmp_path / "alone" / "seed1" / "stage1"
    pd.testing.assert_frame_equal(pd.read_csv(together / "metrics.csv").drop(columns=TIMING),
                                  pd.read_csv(alone / "metrics.csv").drop(columns=TIMING))
    sampler = lambda d: json.loads((d / "run.json").read_text())["batch_sampler"]
    assert sampler(together) == sampler(alone)
    state = lambda d: torch.load(d / "model.pt", map_location="cpu", weights_only=True)["state_dict"]
    for key, value in state(alone).items():
        torch.testing.assert_close(state(together)[key], value)

    # combine_stages: each seed's stages
    stages = lambda name: [str(run[name] / f"stage{s}") for s in (0, 1)]
    cli.main(["mcl-combine", "--stages", *stages("together"), "--out", str(run["together"]), "--seed", "0,1"])
    cli.main(["mcl-combine", "--stages", *stages("alone"), "--out", str(run["alone"]), "--seed", "1"])
    read = lambda seed_dir: (pd.read_csv(seed_dir / "metrics.csv").drop(columns=TIMING), state(seed_dir))
    (together, together_state), (alone, alone_state) = read(tmp_path / "together" / "seed1"), read(run["alone"])
    pd.testing.assert_frame_equal(together, alone)
    for key, value in alone_state.items():
        torch.testing.assert_close(together_state[key], value)
    assert not read(tmp_path / "together" / "seed0")[0].equals(together)  # each seed its own stages

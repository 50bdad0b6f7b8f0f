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

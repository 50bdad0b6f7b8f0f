"""Watching a run: metrics.csv and progress.json after every epoch, the optional TensorBoard logger, the
extras a configuration needs, and `clbench status` over running, finished and failed runs."""

from __future__ import annotations

import json
import os
import re
import socket
import time

import pandas as pd
import pytest

from clbench import extras
from clbench.errors import ConfigError
from clbench.ops import status
from clbench.cli import main as cli
from clbench.train import loop, progress
from clbench.train.trainers import training_code
from conftest import REPO
from helpers import quadrant_dataset

CNN = {"objective": "cross_entropy", "encoder": {"name": "small_cnn", "width": 8, "feature_dim": 32},
       "epochs": 3, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01}, "augment": "none", "views": 1}


@pytest.fixture
def data(tmp_path):
    quadrant_dataset(tmp_path / "data")
    return tmp_path / "data"


def test_metrics_csv_grows_during_training(tmp_path, data, monkeypatch):
    out = tmp_path / "run"
    seen = {}
    original = loop.train_epoch

    def reading_epoch(run, epoch):
        # what a reader sees while the run trains epoch `epoch` (0-based)
        seen[epoch] = (pd.read_csv(out / "metrics.csv") if (out / "metrics.csv").exists() else None,
                       json.loads((out / "progress.json").read_text()))
        return original(run, epoch)

    monkeypatch.setattr(loop, "train_epoch", reading_epoch)
    info = loop.train(CNN, data, out, tmp_path / "ckpt", seed=0, device="cpu")
    assert seen[0][0] is None and seen[0][1]["epoch"] == 0 and seen[0][1]["epochs"] == 3
    after_one, progress_one = seen[1]
    assert list(after_one["epoch"]) == [1]
    assert {"loss", "images_per_s", "seconds"} <= set(after_one.columns)
    assert progress_one["state"] == "running" and progress_one["epoch"] == 1
    assert progress_one["last"]["loss"] == pytest.approx(after_one["loss"].iloc[0])
    assert list(seen[2][0]["epoch"]) == [1, 2]
    assert list(pd.read_csv(out / "metrics.csv")["epoch"]) == [1, 2, 3]
    assert not (out / "progress.json").exists()  # the run is done: run.json says so
    # run.json records which code made it
    assert info["provenance"]["code_hash"] == training_code(CNN)
    assert info["provenance"]["commit"]
    assert json.loads((out / "run.json").read_text())["provenance"] == info["provenance"]


def test_a_failed_run_records_its_error_and_last_epoch(tmp_path, data, monkeypatch):
    original = loop.train_epoch

    def fail_in_second(run, epoch):
        if epoch == 1:
            raise RuntimeError("CUDA out of memory")
        return original(run, epoch)

    monkeypatch.setattr(loop, "train_epoch", fail_in_second)
    with pytest.raises(RuntimeError):
        loop.train(CNN, data, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    record = json.loads((tmp_path / "run" / "progress.json").read_text())
    assert record["state"] == "failed" and record["epoch"] == 1
    assert "RuntimeError: CUDA out of memory" in record["error"]
    assert len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == 1
    # started again, it resumes after epoch 1: metrics.csv shows that epoch before the next one ends
    (tmp_path / "run" / "metrics.csv").unlink()  # as Snakemake removes a failed job's outputs
    seen = []
    monkeypatch.setattr(loop, "train_epoch", lambda run, epoch: seen.append(
        pd.read_csv(tmp_path / "run" / "metrics.csv")) or original(run, epoch))
    info = loop.train(CNN, data, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    assert info["resumed_from_epoch"] == 1 and list(seen[0]["epoch"]) == [1]


def test_tensorboard_logger_writes_each_epoch(tmp_path, data):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    loop.train(CNN, data, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu", logger="tensorboard")
    events = EventAccumulator(str(tmp_path / "run" / progress.TENSORBOARD_DIR))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [1, 2, 3]
    assert "val_knn_top1" in events.Tags()["scalars"]


def test_a_missing_extra_names_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(extras, "installed", lambda extra: extra != "tensorboard")
    with pytest.raises(extras.MissingExtra, match=r"pip install -e '\.\[tensorboard\]'"):
        progress.ProgressRecorder(tmp_path, 3, logger="tensorboard")


def test_a_configuration_needing_an_extra_is_refused_at_planning(monkeypatch):
    cfg = {"logger": "tensorboard",
           "methods": {"simcse_bert": {"objective": "simcse"}, "cnn": {"objective": "cross_entropy"}},
           "datasets": {"sentences": {"generator": "sentences"}, "camelyon17": {"generator": "camelyon17"},
                        "digits": {"generator": "styled_mnist"}},
           "experiments": {"sts": {"dataset": "sentences", "methods": ["simcse_bert"]},
                           "ood": {"dataset": "camelyon17", "methods": ["cnn"]},
                           "digits": {"dataset": "digits", "methods": ["cnn"]}}}
    assert extras.needed_extras(cfg) == {"tensorboard": "logger", "sentences": "experiments.sts.methods (simcse_bert)",
                                         "wilds": "datasets.camelyon17"}
    monkeypatch.setattr(extras, "installed", lambda extra: extra == "tensorboard")
    missing = extras.missing_for_config(cfg)
    assert len(missing) == 2 and any("'.[sentences]'" in m for m in missing) and any("'.[wilds]'" in m for m in missing)
    with pytest.raises(ConfigError, match=r"(?s)^experiments\.sts\.methods \(simcse_bert\) needs transformers.*\n"
                                          r"datasets\.camelyon17 needs wilds"):
        extras.check_installed(cfg)
    plain = {**cfg, "logger": "none", "experiments": {"digits": cfg["experiments"]["digits"]}}
    assert extras.needed_extras(plain) == {}


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _progress(results, run, **fields):
    record = {"state": "running", "epoch": 3, "epochs": 10, "unit": "epoch", "host": socket.gethostname(),
              "pid": os.getpid(), "started": time.time() - 300, "updated": time.time() - 5,
              "last": {"loss": 2.5, "images_per_s": 1500.0, "seconds": 100.0}} | fields
    _write(results / "runs" / run / "progress.json", json.dumps(record))


def test_status_shows_running_finished_and_failed_runs(tmp_path, capsys):
    results = tmp_path / "results"
    # finished: run.json
    _write(results / "runs" / "exp/varcon/seed0" / "run.json",
           json.dumps({"epochs": 10, "final": {"loss": 1.25}, "wall_seconds": 900}))
    _write(results / "logs/pretrain/exp/varcon/seeds.log", "seed 0\nepoch 10/10\nseed 1\n")
    # running: this process, epoch 3 of 10, 100 s an epoch
    _progress(results, "exp/varcon/seed1")
    # failed with a recorded error (after the last write to its log)
    _progress(results, "exp/varcon/seed2", state="failed", error="RuntimeError: CUDA out of memory",
              updated=time.time() + 5)
    # failed before its first epoch: only a log ending in a traceback
    _write(results / "logs/pretrain/exp/clear/seed0.log",
           "start\nTraceback (most recent call last):\n  File x\nValueError: no batch to train on\n")
    # killed: its process is gone
    _progress(results, "exp/clear/seed1", pid=2**22 + 12345)
    # MCL: a stage running, the whole run not yet combined
    _progress(results, "exp/mcl/seed0/stage1", epoch=1, epochs=4)
    _write(results / "runs/exp/mcl/seed0/stage0/run.json", json.dumps({"epochs": 4, "final": {"loss": 3.0}}))

    runs = {s.run: s for s in status.collect(results)}
    assert set(runs) == {"exp/varcon/seed0", "exp/varcon/seed1", "exp/varcon/seed2", "exp/clear/seed0",
                         "exp/clear/seed1", "exp/mcl/seed0/stage0", "exp/mcl/seed0/stage1"}
    assert runs["exp/varcon/seed0"].state == "done" and runs["exp/varcon/seed0"].loss == 1.25
    running = runs["exp/varcon/seed1"]
    assert (running.state, running.done, running.total, running.loss, running.per_second) == \
        ("running", 3, 10, 2.5, 1500.0)
    assert running.eta_seconds == pytest.approx(700.0)
    assert runs["exp/varcon/seed2"].state == "failed"
    assert runs["exp/varcon/seed2"].log == str(results / "logs/pretrain/exp/varcon/seeds.log")
    assert runs["exp/clear/seed0"].state == "failed" and "no batch to train on" in runs["exp/clear/seed0"].error
    assert runs["exp/clear/seed0"].log == str(results / "logs/pretrain/exp/clear/seed0.log")
    assert runs["exp/clear/seed1"].state == "failed" and "gone" in runs["exp/clear/seed1"].error
    assert runs["exp/mcl/seed0/stage1"].state == "running"

    assert cli(["status", "--results", str(results)]) == 0
    shown = capsys.readouterr().out
    assert "7 training runs" in shown and "2 done, 2 running, 3 failed" in shown
    assert "epoch 3 of 10, loss 2.5, 1500 per s, ETA 11m40s" in shown
    _progress(results, "exp/varcon/seed1", epoch=0, last={}, started=time.time() - 65)
    assert cli(["status", "--results", str(results)]) == 0
    assert re.search(r"epoch 0 of 10: in its first epoch for 1m0\ds", capsys.readouterr().out)
    assert "RuntimeError: CUDA out of memory" in shown and "seeds.log" in shown


def test_a_failed_run_started_again_is_not_failed(tmp_path):
    results = tmp_path / "results"
    _progress(results, "exp/m/seed0", state="failed", error="killed", updated=time.time() - 600)
    _write(results / "logs/pretrain/exp/m/seed0.log", "loading the data\n")  # the new job's log
    assert [s.state for s in status.collect(results)] == ["started"]


def test_a_run_on_another_host_that_stopped_writing_is_stalled(tmp_path):
    results = tmp_path / "results"
    _progress(results, "exp/m/seed0", host="node7", pid=1, updated=time.time() - 4 * 3600)
    _progress(results, "exp/m/seed1", host="node7", pid=1)
    runs = {s.run: s.state for s in status.collect(results)}
    assert runs == {"exp/m/seed0": "stalled", "exp/m/seed1": "running"}


def test_status_of_an_empty_results_directory(tmp_path, capsys):
    assert cli(["status", "--results", str(tmp_path)]) == 0
    assert "no training run" in capsys.readouterr().out


def test_the_workflow_passes_the_logger_to_train_outside_its_params(monkeypatch):
    from clbench.cli import parser

    args = ["train", "--spec", "{}", "--dataset", "d", "--out", "o", "--checkpoint-dir", "c"]
    monkeypatch.delenv("CLBENCH_LOGGER", raising=False)
    assert parser().parse_args(args).logger == "none"
    monkeypatch.setenv("CLBENCH_LOGGER", "tensorboard")  # common.smk sets it from the config's logger
    assert parser().parse_args(args).logger == "tensorboard"
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    assert 'os.environ.update(CLBENCH_LOGGER=config["logger"])' in common
    assert "logger" not in (REPO / "workflow" / "rules" / "train.smk").read_text()  # no param: no re-run


def test_the_graph_trainer_records_every_epoch(tmp_path, monkeypatch):
    from clbench.data.build import build_dataset
    from clbench.train import graph as graph_train

    build_dataset({"generator": "graph_classes", "options": {"n_graphs": 60, "noise": 0.3, "max_nodes": 16}},
                  tmp_path / "data", tmp_path)
    spec = {"objective": "graph_info_nce", "loss": {"temperature": 0.15}, "epochs": 3, "batch_size": 32,
            "optimizer": {"name": "adam", "lr": 0.01}, "schedule": "constant", "graph": {"augment": "random4"}}
    real_epoch = graph_train._epoch

    def fail_in_third(*args):
        if args[-2] == 2:
            raise MemoryError("out of memory")
        return real_epoch(*args)

    monkeypatch.setattr(graph_train, "_epoch", fail_in_third)
    with pytest.raises(MemoryError):
        graph_train.train(spec, tmp_path / "data", tmp_path / "run", tmp_path / "ck", seed=0, device="cpu")
    assert list(pd.read_csv(tmp_path / "run" / "metrics.csv")["epoch"]) == [1, 2]
    record = json.loads((tmp_path / "run" / "progress.json").read_text())
    assert (record["state"], record["epoch"], record["epochs"]) == ("failed", 2, 3)
    assert "graphs_per_s" in record["last"]
    monkeypatch.setattr(graph_train, "_epoch", real_epoch)
    info = graph_train.train(spec, tmp_path / "data", tmp_path / "run", tmp_path / "ck", seed=0, device="cpu")
    assert info["provenance"]["code_hash"] == training_code(spec)
    assert not (tmp_path / "run" / "progress.json").exists()

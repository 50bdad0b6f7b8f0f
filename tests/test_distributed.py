"""Data-parallel training on CPU with gloo and 2 processes (the torchrun path used on multi-GPU nodes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clbench.train import distributed
from clbench.train.data import ViewDataset, make_loader
from clbench.models.methods import build_method
from helpers import quadrant_dataset

ENC = {"name": "small_cnn", "width": 8, "feature_dim": 16}
SPECS = {
    "info_nce": {"objective": "info_nce", "views": 2, "loss": {"temperature": 0.5}},
    "adnce": {"objective": "adnce", "views": 2, "loss": {"temperature": 0.5, "mu": 0.7, "sigma": 1.0}},
    "supcon": {"objective": "supcon", "views": 2, "loss": {"temperature": 0.1}},
    "varcon": {"objective": "varcon", "views": 2, "loss": {"temperature": 0.1, "epsilon": 0.02}},
    "sub_embedding": {"objective": "sub_embedding", "views": 2, "loss": {"k": 2, "regularizer": "ortho"}},
    "clear_vae": {"objective": "clear_vae", "vae": {"z_content": 4, "z_style": 4, "width": 8}},
}


def batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 2, 1, 16, 16, generator=g), torch.randint(0, 3, (n,), generator=g)


def build(name):
    torch.manual_seed(0)
    model = build_method({**SPECS[name], "encoder": ENC, "projection_dim": 8}, 1, 3, 16).eval()
    if name == "clear_vae":  # each rank draws its own noise; compare the deterministic part of the step
        model.vae.reparameterise = lambda mu, logvar: mu + 0.0 * logvar
    return model


def _rank_grads(rank, world, name, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = build(name)  # eval mode: BatchNorm uses running statistics, so samples are independent
    ddp = distributed.wrap(distributed.LossTerms(model), distributed.Context(rank, world), torch.device("cpu"))
    views, labels = batch()
    share = slice(rank * len(labels) // world, (rank + 1) * len(labels) // world)
    terms = ddp(views[share], labels[share])
    terms["loss"].backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    torch.save({"loss": terms["loss"].detach(), "grads": grads}, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.parametrize("name", list(SPECS))
def test_two_process_step_equals_one_process_step_on_the_global_batch(tmp_path, name):
    """gather() + DDP averaging give the single-process gradient of the loss over the global batch."""
    mp.spawn(_rank_grads, args=(2, name, str(tmp_path / "pg"), str(tmp_path)), nprocs=2, join=True)
    model = build(name)
    views, labels = batch()
    ref = model.loss_terms(views, labels)
    ref["loss"].backward()
    ref_grads = {k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        if name != "clear_vae":  # CLEAR's reconstruction and KL are per-rank means (DDP averages them)
            torch.testing.assert_close(got["loss"], ref["loss"].detach(), rtol=1e-5, atol=1e-6)
        assert got["grads"].keys() == ref_grads.keys()
        for k, g in got["grads"].items():
            torch.testing.assert_close(g, ref_grads[k], rtol=1e-4, atol=1e-6, msg=f"{name}: gradient of {k}")


def test_sharded_batches_partition_the_single_process_batches():
    ds = ViewDataset(np.zeros((40, 1, 4, 4), np.uint8), np.arange(40) % 4)
    dev = torch.device("cpu")
    single = [idx.tolist() for _, _, idx in make_loader(ds, 8, seed=1, epoch=2, device=dev)]
    shares = [[idx.tolist() for _, _, idx in make_loader(ds, 8, seed=1, epoch=2, device=dev, rank=r, world=2)]
              for r in range(2)]
    assert [len(s) for s in shares] == [len(single)] * 2
    for b, s0, s1 in zip(single, *shares):
        assert s0 == b[0::2] and s1 == b[1::2]


def test_uneven_global_batch_is_refused():
    batches = distributed.ShardedBatches([[0, 1, 2]], rank=0, world=2)
    with pytest.raises(ValueError, match="divisible"):
        list(batches)


def test_auxiliary_estimators_are_refused_under_ddp():
    model = build_method({"objective": "clear_vae", "vae": {"style": "tc", "z_content": 4, "z_style": 4, "width": 8}},
                         1, 3, 16)
    with pytest.raises(ValueError, match="auxiliary"):
        distributed.prepare(model, distributed.Context(0, 2), torch.device("cpu"))


def torchrun_train(spec, data, out, ckpt, nproc=2):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "clbench.cli", "train", "--spec", json.dumps(spec), "--dataset", str(data), "--out", str(out),
           "--checkpoint-dir", str(ckpt), "--seed", "0", "--device", "cpu", "--threads", "1"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_torchrun_two_processes_train_write_once_and_repeat(tmp_path):
    quadrant_dataset(tmp_path / "data", n_train=128, n_val=64)
    spec = {"objective": "supcon", "views": 2, "augment": "digits", "loss": {"temperature": 0.1}, "encoder": ENC,
            "epochs": 3, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01}}
    runs = []
    for name in ("a", "b"):
        proc = torchrun_train(spec, tmp_path / "data", tmp_path / name, tmp_path / f"ckpt_{name}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "rank 1 of 2" in proc.stderr
        runs.append(pd.read_csv(tmp_path / name / "metrics.csv").drop(columns=["seconds", "images_per_s"]))
        info = json.loads((tmp_path / name / "run.json").read_text())
        assert info["processes"] == 2 and info["epochs"] == 3
        assert not (tmp_path / f"ckpt_{name}").exists()
    assert list(runs[0]["epoch"]) == [1, 2, 3]
    assert np.isfinite(runs[0]["loss"]).all() and runs[0]["val_knn_top1"].iloc[-1] > 0.5  # chance 0.25
    pd.testing.assert_frame_equal(runs[0], runs[1])  # 2-process CPU training is deterministic too

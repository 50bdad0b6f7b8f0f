"""Path-index datasets (ImageNet's storage) are decoded lazily and stream through training and evaluation."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clbench.data import dataset_dir
from clbench.data.build import build_dataset
from clbench.data.imagefolder import load_split
from clbench.train import loop


def quadrant_folder(root, n_per_class=24, seed=0):
    """A flat ImageFolder tree of non-square RGB images; class k = a bright square in quadrant k."""
    rng = np.random.default_rng(seed)
    for k in range(4):
        folder = root / f"class{k}"
        folder.mkdir(parents=True)
        for i in range(n_per_class):
            h, w = int(rng.integers(24, 32)), int(rng.integers(24, 40))
            img = rng.integers(0, 70, (h, w, 3)).astype(np.uint8)
            r, c = divmod(k, 2)
            cy, cx = h // 2, w // 2
            img[r * cy + 2 : r * cy + cy - 2, c * cx + 2 : c * cx + cx - 2] = 230
            Image.fromarray(img).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def path_dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stream")
    quadrant_folder(tmp / "tree")
    spec = {"generator": "imagefolder", "name": "quadrants", "root": str(tmp / "tree"), "image_size": 16,
            "val_fraction": 0.15, "test_fraction": 0.2}
    meta = build_dataset(spec, tmp / "data", tmp)
    assert meta["storage"] == "paths"
    return tmp / "data"


def test_lazy_images_index_like_the_decoded_array(path_dataset):
    lazy = dataset_dir.load(path_dataset, "train")["x"]
    assert isinstance(lazy, dataset_dir.LazyImages)
    full = load_split(path_dataset, "train")["x"]
    assert lazy.shape == full.shape and len(lazy) == len(full)
    assert np.array_equal(lazy[3], full[3])
    assert np.array_equal(lazy[2:7], full[2:7])
    idx = np.array([5, 0, 9])
    assert np.array_equal(lazy[idx], full[idx])
    assert np.array_equal(np.asarray(lazy), full)
    assert lazy.decode(0, size=None).shape[1:] != (16, 16)  # full resolution for crop-first recipes
    assert np.array_equal(pickle.loads(pickle.dumps(lazy))[1], full[1])


def test_missing_image_names_the_file(path_dataset, tmp_path):
    lazy = dataset_dir.load(path_dataset, "test")["x"]
    broken = dataset_dir.LazyImages(tmp_path, lazy.paths, lazy.channels, lazy.size)
    with pytest.raises(dataset_dir.DatasetError, match=str(tmp_path)):
        broken[0]


@pytest.mark.parametrize("workers", [0, 2])
def test_training_streams_a_path_index_dataset(path_dataset, tmp_path, workers):
    spec = {"objective": "supcon", "views": 2, "augment": "supcon", "loss": {"temperature": 0.1},
            "encoder": {"name": "small_cnn", "width": 8, "feature_dim": 16}, "epochs": 2, "batch_size": 16,
            "optimizer": {"name": "adam", "lr": 0.01}, "num_workers": workers}
    info = loop.train(spec, path_dataset, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2] and np.isfinite(metrics["loss"]).all()
    assert 0.0 <= metrics["val_knn_top1"].iloc[-1] <= 1.0
    assert info["final"]["images_per_s"] > 0


def test_evaluation_embeds_a_path_index_split(path_dataset, tmp_path):
    from clbench.evaluate.embed import embed
    from clbench.models.checkpoint import load_model

    spec = {"objective": "cross_entropy", "encoder": {"name": "small_cnn", "width": 8, "feature_dim": 16},
            "epochs": 1, "batch_size": 16}
    loop.train(spec, path_dataset, tmp_path / "run", tmp_path / "ckpt", seed=0, device="cpu")
    model = load_model(tmp_path / "run" / "model.pt")
    test = dataset_dir.load(path_dataset, "test")
    lazy_features = embed(model, test["x"], "cpu", batch_size=7)
    array_features = embed(model, load_split(path_dataset, "test")["x"], "cpu", batch_size=7)
    assert lazy_features.shape == (len(test["y"]), 16)
    assert np.allclose(lazy_features.numpy(), array_features.numpy())


def test_dataset_preview_of_a_path_index_dataset(path_dataset, tmp_path):
    from clbench.data.show import show

    out = show(path_dataset, tmp_path / "samples.png")
    assert Image.open(out).size[0] > 16

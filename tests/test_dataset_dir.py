import numpy as np
import pytest

from clbench.data import dataset_dir


def _splits(seed=0):
    rng = np.random.default_rng(seed)
    return {s: {"x": rng.integers(0, 255, (n, 1, 4, 4), dtype=np.uint8), "y": rng.integers(0, 3, n)}
            for s, n in [("train", 10), ("val", 2), ("test", 5)]}


def test_save_load_roundtrip(tmp_path):
    splits = _splits()
    meta = dataset_dir.save(tmp_path, splits, {"name": "t", "classes": ["a", "b", "c"]})
    assert meta["sizes"] == {"train": 10, "val": 2, "test": 5}
    assert meta["image_shape"] == [1, 4, 4]
    assert dataset_dir.load_meta(tmp_path)["hash"] == meta["hash"]
    back = dataset_dir.load(tmp_path, "train")
    np.testing.assert_array_equal(back["x"], splits["train"]["x"])


def test_hash_depends_on_content():
    assert dataset_dir.content_hash(_splits(0)) == dataset_dir.content_hash(_splits(0))
    assert dataset_dir.content_hash(_splits(0)) != dataset_dir.content_hash(_splits(1))


def test_missing_and_truncated_files_name_the_path(tmp_path):
    with pytest.raises(dataset_dir.DatasetError, match="meta.json"):
        dataset_dir.load_meta(tmp_path)
    with pytest.raises(dataset_dir.DatasetError, match="train.npz"):
        dataset_dir.load(tmp_path, "train")
    dataset_dir.save(tmp_path, _splits(), {"name": "t"})
    data = (tmp_path / "train.npz").read_bytes()
    (tmp_path / "train.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(dataset_dir.DatasetError, match="unreadable or truncated"):
        dataset_dir.load(tmp_path, "train")

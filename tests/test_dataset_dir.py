import json

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


def test_verify_accepts_a_good_directory_and_ignores_what_is_absent(tmp_path):
    dataset_dir.verify(tmp_path / "never_built")  # nothing there: the workflow builds it
    dataset_dir.save(tmp_path / "d", _splits(), {"name": "t"})
    dataset_dir.verify(tmp_path / "d")
    (tmp_path / "d" / "val.npz").unlink()  # a missing output: snakemake rebuilds the directory itself
    dataset_dir.verify(tmp_path / "d")
    (tmp_path / "half").mkdir()  # an interrupted build (no meta.json yet): rebuilt as well
    (tmp_path / "half" / "train.npz").write_bytes(b"partial")
    dataset_dir.verify(tmp_path / "half")


@pytest.mark.parametrize("cut", [1, 0.5, 0.99])
def test_verify_names_a_truncated_split_and_the_fix(tmp_path, cut):
    dataset_dir.save(tmp_path, _splits(), {"name": "t"})
    data = (tmp_path / "test.npz").read_bytes()
    (tmp_path / "test.npz").write_bytes(data[: int(len(data) * cut) - 1])
    with pytest.raises(dataset_dir.DatasetError) as e:
        dataset_dir.verify(tmp_path)
    assert str(tmp_path / "test.npz") in str(e.value) and "truncated" in str(e.value) and "Delete" in str(e.value)


def test_verify_names_an_unreadable_meta_json(tmp_path):
    dataset_dir.save(tmp_path, _splits(), {"name": "t"})
    for bad in ('{"name": "t", "sizes": {"tr', "\x00\xff garbage", "[1, 2]"):
        (tmp_path / "meta.json").write_bytes(bad.encode("latin-1"))
        with pytest.raises(dataset_dir.DatasetError, match="meta.json is unreadable") as e:
            dataset_dir.verify(tmp_path)
        assert str(tmp_path / "meta.json") in str(e.value) and str(tmp_path) in str(e.value)


def test_verify_wants_the_expected_arrays(tmp_path):
    dataset_dir.save(tmp_path, _splits(), {"name": "t"})
    np.savez(tmp_path / "train.npz", y=np.zeros(3))  # a readable zip without x
    with pytest.raises(dataset_dir.DatasetError, match=r"train.npz lacks the arrays \['x'\]"):
        dataset_dir.verify(tmp_path)
    # path-index datasets (ImageNet) hold image paths instead of x
    meta = dataset_dir.load_meta(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "storage": "paths", "sizes": {"train": 3}}))
    np.savez(tmp_path / "train.npz", y=np.zeros(3), path=np.array(["a", "b", "c"]))
    dataset_dir.verify(tmp_path)

import json
import os

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


def _flip_a_byte(file, at=0.3):  # inside the first array, x
    data = bytearray(file.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    file.write_bytes(bytes(data))  # same size, new modification time


def test_verify_finds_damaged_bytes_inside_an_array(tmp_path):
    """The pre-run check reads each array's recorded checksum, not only the zip directory."""
    dataset_dir.save(tmp_path, _splits(), {"name": "t"})
    dataset_dir.verify(tmp_path)
    size = (tmp_path / "train.npz").stat().st_size
    _flip_a_byte(tmp_path / "train.npz")
    assert (tmp_path / "train.npz").stat().st_size == size
    with pytest.raises(dataset_dir.DatasetError, match=r"train\.npz is damaged: its array x does not match") as info:
        dataset_dir.verify(tmp_path)
    assert f"Delete {tmp_path / 'train.npz'}" in str(info.value)


def test_verify_reads_a_file_only_when_it_changed(tmp_path, monkeypatch):
    """Fast at paper scale: a file is read at the first check after it was written, then only when it changed."""
    import os
    import zipfile

    reads = []
    real = zipfile.ZipFile.testzip
    monkeypatch.setattr(zipfile.ZipFile, "testzip", lambda self: reads.append(str(self.filename)) or real(self))
    dataset_dir.save(tmp_path, _splits(), {"name": "t"})
    for split in ("train", "val", "test"):  # written a while ago (a file verified as it is written is re-read)
        file = tmp_path / f"{split}.npz"
        os.utime(file, ns=(file.stat().st_atime_ns, file.stat().st_mtime_ns - 60 * 10**9))
    dataset_dir.verify(tmp_path)
    dataset_dir.verify(tmp_path)
    assert sorted(reads) == sorted(str(tmp_path / f"{s}.npz") for s in ("test", "train", "val"))
    reads.clear()
    st = (tmp_path / "val.npz").stat()
    os.utime(tmp_path / "val.npz", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: read again
    dataset_dir.verify(tmp_path)
    assert reads == [str(tmp_path / "val.npz")]


def test_verify_rereads_a_file_changed_as_it_was_verified(tmp_path):
    """A change within the file system's timestamp granularity of the check keeps the recorded size and time:
    such a recent entry is not trusted."""
    dataset_dir.save(tmp_path, _splits(), {"name": "t"})
    dataset_dir.verify(tmp_path)
    file = tmp_path / "train.npz"
    st = file.stat()
    _flip_a_byte(file)
    os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns))  # the same recorded size and modification time
    with pytest.raises(dataset_dir.DatasetError, match="damaged"):
        dataset_dir.verify(tmp_path)

import pytest

from clbench.io import atomic_path, read_json, write_json, write_text


def test_write_json_roundtrip(tmp_path):
    import numpy as np

    write_json(tmp_path / "a" / "b.json", {"x": np.float32(1.5), "y": np.arange(3)})
    assert read_json(tmp_path / "a" / "b.json") == {"x": 1.5, "y": [0, 1, 2]}


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_overwrite_is_atomic(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "old")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]

"""Real-dataset loaders on tiny fixtures written in each library's own on-disk format.

Nothing is downloaded: the download switch is exercised with the network part replaced by a
function that writes the same fixture (or fails half-way), to check atomicity.
"""

from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clbench.data import dataset_dir
from clbench.data.build import build_dataset, check_spec
from clbench.errors import ConfigError
from clbench.data.dataset_dir import DatasetError

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist" / "MNIST" / "raw"


# ----------------------------------------------------------------------------------------- helpers


def check_dir(out: Path, splits=("train", "val", "test")) -> dict:
    """Load a built dataset dir, check its meta/hash/format and that ids never repeat across splits."""
    meta = dataset_dir.load_meta(out)
    arrays = {s: dataset_dir.load(out, s) for s in meta["sizes"]}
    assert set(splits) <= set(arrays)
    assert meta["hash"] == dataset_dir.content_hash(arrays)
    seen: set[int] = set()
    for s, a in arrays.items():
        n = len(a["y"])
        assert meta["sizes"][s] == n
        assert a["y"].dtype == np.int64 and a["id"].dtype == np.int64 and len(a["id"]) == n
        assert len(set(a["id"].tolist())) == n
        assert not (seen & set(a["id"].tolist())), f"ids of {s} repeat in another split"
        seen |= set(a["id"].tolist())
        for k, v in a.items():
            if k.startswith("factor_"):
                assert v.dtype == np.int64 and len(v) == n
        if "x" in a:
            assert a["x"].dtype == np.uint8 and a["x"].ndim == 4 and len(a["x"]) == n
            assert list(a["x"].shape[1:]) == meta["image_shape"]
    return {"meta": meta, **arrays}


def smooth_images(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """uint8 [n, h, w, 3] images that compress well (PNG/JPEG fixtures stay tiny)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        for c in range(3):
            a, b, p = rng.uniform(0.02, 0.2, 3)
            out[i, :, :, c] = (127 + 120 * np.sin(a * xx + b * yy + p * 10)).astype(np.uint8)
    return out


def assert_clear_error(err: Exception, path, download: bool = True):
    msg = str(err)
    assert str(path) in msg, msg
    assert "Expected layout" in msg, msg
    if download:
        assert "download: true" in msg, msg


# ----------------------------------------------------------------------------------------- MNIST


def write_idx(path: Path, arr: np.ndarray, gz: bool = True) -> None:
    arr = np.asarray(arr, dtype=np.uint8)
    data = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape) + arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with (gzip.open if gz else open)(str(path) + (".gz" if gz else ""), "wb") as f:
        f.write(data)


def make_mnist(root: Path, n_train=50, n_test=20, gz=True, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    d = {
        "train": (rng.integers(0, 256, (n_train, 28, 28)), np.arange(n_train) % 10),
        "test": (rng.integers(0, 256, (n_test, 28, 28)), (np.arange(n_test) * 3) % 10),
    }
    raw = root / "MNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte", d["train"][0], gz)
    write_idx(raw / "train-labels-idx1-ubyte", d["train"][1], gz)
    write_idx(raw / "t10k-images-idx3-ubyte", d["test"][0], gz)
    write_idx(raw / "t10k-labels-idx1-ubyte", d["test"][1], gz)
    return d


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_fixture(tmp_path, gz):
    src = make_mnist(tmp_path / "root", gz=gz)
    spec = {"generator": "torchvision", "name": "mnist", "root": str(tmp_path / "root"), "n_val": 10, "seed": 0}
    meta = build_dataset(spec, tmp_path / "out", tmp_path / "res")
    d = check_dir(tmp_path / "out")
    assert meta["sizes"] == {"train": 40, "val": 10, "test": 20}
    assert meta["image_shape"] == [1, 28, 28] and meta["classes"][3] == "3"
    assert meta["id_offsets"] == {"train": 0, "test": 50}
    # every image is the source image its id names
    for s in ("train", "val"):
        assert np.array_equal(d[s]["x"][:, 0], src["train"][0][d[s]["id"]])
        assert np.array_equal(d[s]["y"], src["train"][1][d[s]["id"]])
    assert np.array_equal(d["test"]["x"][:, 0], src["test"][0][d["test"]["id"] - 50])
    assert not (tmp_path / "res").exists()  # nothing downloaded, nothing written there


def test_mnist_determinism_caps_and_options(tmp_path):
    make_mnist(tmp_path / "root")
    base = {"generator": "torchvision", "name": "mnist", "root": str(tmp_path / "root"), "val_fraction": 0.2}
    a = build_dataset({**base, "seed": 0}, tmp_path / "a", tmp_path)
    b = build_dataset({**base, "seed": 0}, tmp_path / "b", tmp_path)
    c = build_dataset({**base, "seed": 1}, tmp_path / "c", tmp_path)
    assert a["hash"] == b["hash"] and a["hash"] != c["hash"]
    assert a["sizes"] == {"train": 40, "val": 10, "test": 20}
    for s in ("train", "val", "test"):
        assert (tmp_path / "a" / f"{s}.npz").read_bytes() == (tmp_path / "b" / f"{s}.npz").read_bytes()
    m = build_dataset(
        {**base, "n_train": 7, "n_test": 5, "image_size": 32, "options": {"channels": 3}}, tmp_path / "d", tmp_path
    )
    assert m["sizes"] == {"train": 7, "val": 10, "test": 5} and m["image_shape"] == [3, 32, 32]
    check_dir(tmp_path / "d")
    with pytest.raises(ValueError, match="unknown key"):
        build_dataset({**base, "n_trian": 3}, tmp_path / "e", tmp_path)
    with pytest.raises(ValueError, match="name"):
        build_dataset({"generator": "torchvision", "name": "svhn"}, tmp_path / "e", tmp_path)


def test_mnist_missing_and_corrupt(tmp_path):
    make_mnist(tmp_path / "root")
    raw = tmp_path / "root" / "MNIST" / "raw"
    (raw / "train-labels-idx1-ubyte.gz").unlink()
    spec = {"generator": "torchvision", "name": "mnist", "root": str(tmp_path / "root")}
    with pytest.raises(DatasetError) as e:
        build_dataset(spec, tmp_path / "out", tmp_path / "res")
    assert_clear_error(e.value, raw / "train-labels-idx1-ubyte.gz")
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(50) % 10)
    data = gzip.decompress((raw / "t10k-images-idx3-ubyte.gz").read_bytes())
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(data[: len(data) // 2]))
    with pytest.raises(DatasetError) as e:
        build_dataset(spec, tmp_path / "out", tmp_path / "res")
    assert "truncated" in str(e.value) and "corrupt" in str(e.value)
    assert_clear_error(e.value, raw / "t10k-images-idx3-ubyte.gz")
    assert not (tmp_path / "out" / "meta.json").exists()


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="shared real MNIST sample data is absent")
def test_real_mnist_t10k(tmp_path):
    from clbench.data.torchvision_sources import read_idx

    # the shared copy has only the test files: the loader names the missing training file
    with pytest.raises(DatasetError) as e:
        build_dataset({"generator": "torchvision", "name": "mnist", "root": str(SHARED_MNIST.parents[1])}, tmp_path / "o", tmp_path)
    assert "train-images-idx3-ubyte" in str(e.value)
    # a complete layout: the real t10k files, plus training files made of the first 1,000 test digits
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(SHARED_MNIST / f, raw / f)
    x = read_idx(raw / "t10k-images-idx3-ubyte.gz")
    y = read_idx(raw / "t10k-labels-idx1-ubyte.gz")
    assert x.shape == (10000, 28, 28) and y.shape == (10000,)
    write_idx(raw / "train-images-idx3-ubyte", x[:1000])
    write_idx(raw / "train-labels-idx1-ubyte", y[:1000])
    spec = {"generator": "torchvision", "name": "mnist", "root": str(tmp_path / "root"), "n_val": 100, "n_test": 2000}
    meta = build_dataset(spec, tmp_path / "out", tmp_path / "res")
    d = check_dir(tmp_path / "out")
    assert meta["sizes"] == {"train": 900, "val": 100, "test": 2000}
    assert set(d["test"]["y"].tolist()) == set(range(10))
    assert 25 < d["test"]["x"].mean() < 40  # MNIST's mean intensity is about 33
    assert np.array_equal(d["test"]["y"], y[d["test"]["id"] - 1000])


# ----------------------------------------------------------------------------------------- CIFAR


def make_cifar10(root: Path, per_batch=4, n_test=6, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    xs, ys = [], []
    for i in range(1, 6):
        x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        y = list(rng.integers(0, 10, per_batch))
        xs.append(x)
        ys += y
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump({"batch_label": f"training batch {i} of 5", "data": x, "labels": y, "filenames": []}, f)
    xt = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    yt = list(rng.integers(0, 10, n_test))
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": xt, "labels": yt}, f)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": per_batch}, f)
    return {"x": np.concatenate(xs).reshape(-1, 3, 32, 32), "y": np.array(ys), "xt": xt.reshape(-1, 3, 32, 32), "yt": np.array(yt)}


def test_cifar10_pickles(tmp_path):
    src = make_cifar10(tmp_path / "root")
    spec = {"generator": "torchvision", "name": "cifar10", "root": str(tmp_path / "root"), "n_val": 4}
    meta = build_dataset(spec, tmp_path / "out", tmp_path)
    d = check_dir(tmp_path / "out")
    assert meta["sizes"] == {"train": 16, "val": 4, "test": 6} and meta["image_shape"] == [3, 32, 32]
    assert meta["classes"][0] == "airplane" and meta["source"] == "torchvision:cifar10"
    assert np.array_equal(d["train"]["x"], src["x"][d["train"]["id"]])
    assert np.array_equal(d["test"]["x"], src["xt"][d["test"]["id"] - 20])
    assert np.array_equal(d["test"]["y"], src["yt"])
    small = build_dataset({**spec, "image_size": 16, "channels": 1}, tmp_path / "small", tmp_path)
    assert small["image_shape"] == [1, 16, 16]


def test_cifar10_corrupt_pickle(tmp_path):
    make_cifar10(tmp_path / "root")
    bad = tmp_path / "root" / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(DatasetError) as e:
        build_dataset({"generator": "torchvision", "name": "cifar10", "root": str(tmp_path / "root")}, tmp_path / "o", tmp_path)
    assert_clear_error(e.value, bad)
    assert "corrupt" in str(e.value)


def test_cifar100_pickles(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "root" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", 12), ("test", 5)):
        fine = list(rng.integers(0, 100, n))
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": fine, "coarse_labels": [v // 5 for v in fine]}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"f{i}" for i in range(100)], "coarse_label_names": [f"c{i}" for i in range(20)]}, f)
    meta = build_dataset({"generator": "torchvision", "name": "cifar100", "root": str(tmp_path / "root"), "n_val": 2}, tmp_path / "o", tmp_path)
    d = check_dir(tmp_path / "o")
    assert len(meta["classes"]) == 100 and meta["factors"]["coarse"][19] == "c19"
    for s in ("train", "val", "test"):
        assert np.array_equal(d[s]["factor_coarse"], d[s]["y"] // 5)


# ----------------------------------------------------------------------------------------- downloads


def test_download_is_atomic(tmp_path, monkeypatch):
    from clbench.data import torchvision_sources as tv

    res = tmp_path / "resources"
    spec = {"generator": "torchvision", "name": "cifar10", "n_val": 2}
    with pytest.raises(DatasetError) as e:  # not there, download off: says where and how
        build_dataset(spec, tmp_path / "o", res)
    assert_clear_error(e.value, res / "cifar10" / "cifar-10-batches-py")
    assert str(res / "cifar10") in str(e.value)

    def failing(name):
        def fetch(tmp: Path):
            make_cifar10(tmp)
            (tmp / "cifar-10-batches-py" / "test_batch").write_bytes(b"half")
            raise ConnectionError("network went away")

        return fetch

    monkeypatch.setitem(tv.FETCHERS, "cifar10", failing)
    with pytest.raises(ConnectionError):
        build_dataset({**spec, "download": True}, tmp_path / "o", res)
    assert not (res / "cifar10").exists() and list(res.iterdir()) == []  # no half-written dataset
    assert not (tmp_path / "o" / "meta.json").exists()

    calls = []

    def working(name):
        def fetch(tmp: Path):
            calls.append(tmp)
            assert tmp.parent == res and tmp.name.startswith(".cifar10.")  # a hidden temporary sibling
            make_cifar10(tmp)

        return fetch

    monkeypatch.setitem(tv.FETCHERS, "cifar10", working)
    meta = build_dataset({**spec, "download": True}, tmp_path / "o", res)
    assert meta["sizes"]["test"] == 6 and meta["root"] == str((res / "cifar10").resolve())
    assert sorted(p.name for p in res.iterdir()) == ["cifar10"]
    build_dataset({**spec, "download": True}, tmp_path / "o2", res)  # already there: no second download
    build_dataset(spec, tmp_path / "o3", res)  # and usable without the switch
    assert len(calls) == 1


# ----------------------------------------------------------------------------------------- STL-10


def make_stl10(root: Path, n_train=10, n_test=6, n_unl=7, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unl)):
        x = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        x.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")  # STL-10 stores images column-major
        out[split] = x
        if split != "unlabeled":
            y = (np.arange(n) % 10 + 1).astype(np.uint8)
            y.tofile(folder / f"{split}_y.bin")
            out[split + "_y"] = y.astype(np.int64) - 1
    (folder / "class_names.txt").write_text("\n".join(["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]) + "\n")
    return out


def test_stl10_train_plus_unlabeled(tmp_path):
    src = make_stl10(tmp_path / "root")
    spec = {"generator": "torchvision", "name": "stl10", "root": str(tmp_path / "root"), "n_val": 2, "unlabeled": True}
    meta = build_dataset(spec, tmp_path / "o", tmp_path)
    d = check_dir(tmp_path / "o", splits=("train", "val", "test", "unlabeled"))
    assert meta["sizes"] == {"train": 8, "val": 2, "test": 6, "unlabeled": 7}
    assert meta["pretrain_splits"] == ["train", "unlabeled"] and meta["image_shape"] == [3, 96, 96]
    assert (d["unlabeled"]["y"] == -1).all()
    assert np.array_equal(d["train"]["x"], src["train"][d["train"]["id"]])  # orientation as torchvision
    assert np.array_equal(d["test"]["y"], src["test_y"])
    assert np.array_equal(d["unlabeled"]["x"], src["unlabeled"][d["unlabeled"]["id"] - 16])
    m = build_dataset({**spec, "image_size": 32, "n_unlabeled": 3, "unlabeled": False}, tmp_path / "o2", tmp_path)
    assert "unlabeled" not in m["sizes"] and m["image_shape"] == [3, 32, 32]
    m = build_dataset({**spec, "image_size": 32, "n_unlabeled": 3}, tmp_path / "o3", tmp_path)
    assert m["sizes"]["unlabeled"] == 3
    (tmp_path / "root" / "stl10_binary" / "unlabeled_X.bin").write_bytes(b"\0" * 1000)
    with pytest.raises(DatasetError) as e:
        build_dataset(spec, tmp_path / "o4", tmp_path)
    assert_clear_error(e.value, tmp_path / "root" / "stl10_binary" / "unlabeled_X.bin")


# ----------------------------------------------------------------------------------------- CelebA

CELEBA_ATTRS = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


def make_celeba(root: Path, n=24, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    base = root / "celeba"
    (base / "img_align_celeba").mkdir(parents=True)
    files = [f"{i + 1:06d}.jpg" for i in range(n)]
    attr = np.where(rng.random((n, 40)) < 0.5, 1, -1)
    hair_cols = [CELEBA_ATTRS.index(a) for a in ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")]
    attr[:, hair_cols] = -1
    for i in range(n):
        if i % 6 != 5:  # every sixth image has no hair colour; the others exactly one
            attr[i, hair_cols[i % 4]] = 1
    imgs = smooth_images(n, 27, 22, seed)  # 218x178 in the real data; same aspect, smaller
    for f, im in zip(files, imgs):
        Image.fromarray(im).save(base / "img_align_celeba" / f, quality=95)
    lines = [str(n), " ".join(CELEBA_ATTRS)] + [f + " " + " ".join(f"{v:2d}" for v in row) for f, row in zip(files, attr)]
    (base / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    part = [0] * (n // 2) + [1] * (n // 4) + [2] * (n - n // 2 - n // 4)
    (base / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(files, part)))
    return {"attr": (attr > 0).astype(int), "part": np.array(part)}


def test_celeba_content_and_style(tmp_path):
    src = make_celeba(tmp_path / "root")
    spec = {"generator": "torchvision", "name": "celeba", "root": str(tmp_path / "root"), "image_size": 16}
    meta = build_dataset(spec, tmp_path / "o", tmp_path)
    d = check_dir(tmp_path / "o")
    assert meta["classes"] == ["female_not_smiling", "female_smiling", "male_not_smiling", "male_smiling"]
    assert meta["factors"]["hair"] == ["black", "blond", "brown", "gray"]
    assert meta["style_factors"] == ["hair"] and meta["image_shape"] == [3, 16, 16]
    male, smile = CELEBA_ATTRS.index("Male"), CELEBA_ATTRS.index("Smiling")
    total = 0
    for k, s in enumerate(("train", "val", "test")):
        ids = d[s]["id"]
        total += len(ids)
        assert (src["part"][ids] == k).all()  # the official partition
        assert np.array_equal(d[s]["y"], 2 * src["attr"][ids, male] + src["attr"][ids, smile])
        assert np.array_equal(d[s]["factor_hair"], ids % 4) and (ids % 6 != 5).all()
    assert total == 20  # 4 of 24 images have no hair colour and are dropped
    m = build_dataset({**spec, "hair": "all", "n_train": 3}, tmp_path / "o2", tmp_path)
    assert m["factors"]["hair"][-1] == "other" and m["sizes"]["train"] == 3
    d2 = check_dir(tmp_path / "o2")
    assert sum(len(d2[s]["y"]) for s in ("val", "test")) == 12
    (tmp_path / "root" / "celeba" / "img_align_celeba" / "000014.jpg").unlink()
    with pytest.raises(DatasetError) as e:
        build_dataset(spec, tmp_path / "o3", tmp_path)
    assert_clear_error(e.value, tmp_path / "root" / "celeba" / "img_align_celeba" / "000014.jpg")


def test_celeba_ood_k_holds_out_hair_colours_per_class(tmp_path):
    """CLEAR's CelebA OOD-k (kceleba_train_test_split): CelebA's training partition only, k of the 4 hair colours
    seen per class; seen pairs give train and val, unseen pairs the test split. hair: official keeps, as the
    official code, images with some hair colour that are not blurry."""
    src = make_celeba(tmp_path / "root", n=96)
    spec = {"generator": "torchvision", "name": "celeba", "root": str(tmp_path / "root"), "image_size": 16,
            "recipe": "ood_k", "k": 2, "hair": "official"}
    meta = build_dataset(spec, tmp_path / "o", tmp_path)
    d = check_dir(tmp_path / "o")
    seen = meta["recipe"]["seen"]
    assert meta["recipe"]["kind"] == "ood_k" and all(len(v) == 2 for v in seen.values())
    blurry = CELEBA_ATTRS.index("Blurry")
    hair_names = meta["factors"]["hair"]
    for split in ("train", "val", "test"):
        ids, y, hair = d[split]["id"], d[split]["y"], d[split]["factor_hair"]
        assert (src["part"][ids] == 0).all() and (src["attr"][ids, blurry] == 0).all()
        pairs_seen = [hair_names[h] in seen[meta["classes"][c]] for c, h in zip(y, hair)]
        assert all(pairs_seen) if split != "test" else not any(pairs_seen), split
    kept = [i for i in range(48) if i % 6 != 5 and src["attr"][i, blurry] == 0]
    assert sum(len(d[s]["id"]) for s in ("train", "val", "test")) == len(kept)
    assert 0 < len(d["val"]["id"]) < len(d["train"]["id"])
    with pytest.raises(ConfigError, match="k: applies only with recipe"):
        check_spec({"generator": "torchvision", "name": "celeba", "k": 2}, "datasets.celeba")


# ----------------------------------------------------------------------------------------- PACS

from clbench.data.pacs import CLASSES as PACS_CLASSES  # noqa: E402
from clbench.data.pacs import DOMAINS as PACS_DOMAINS  # noqa: E402
from clbench.data.pacs import seen_domains  # noqa: E402


def make_pacs(root: Path, per=3) -> int:
    n = 0
    for di, d in enumerate(PACS_DOMAINS):
        for ci, c in enumerate(PACS_CLASSES):
            folder = root / d / c
            folder.mkdir(parents=True)
            for k, im in enumerate(smooth_images(per, 20, 20, seed=100 * di + 10 * ci)):
                ext = "png" if d == "sketch" else "jpg"
                Image.fromarray(im).save(folder / f"pic_{k:03d}.{ext}")
                n += 1
    (root / "photo" / "dog" / ".DS_Store").write_bytes(b"junk")
    return n


@pytest.fixture(scope="module")
def pacs_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pacs_src")
    make_pacs(root / "PACS")
    return root


@pytest.mark.parametrize("design", ["random", "cyclic"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_pacs_ood_k(tmp_path, pacs_root, k, design):
    spec = {"generator": "pacs", "root": str(pacs_root), "k": k, "image_size": 16, "val_fraction": 0.2,
            "options": {"ood_design": design}}
    meta = build_dataset(spec, tmp_path / "o", tmp_path / "res")
    d = check_dir(tmp_path / "o")
    assert meta["factors"]["domain"] == list(PACS_DOMAINS) and meta["classes"] == list(PACS_CLASSES)
    assert sum(meta["sizes"].values()) == 7 * 4 * 3 and not meta["complete_copy"]
    seen = meta["recipe"]["seen"]
    assert meta["recipe"]["design"] == design and meta["spec"]["ood_design"] == design and meta["spec"]["k"] == k
    assert seen == seen_domains(k, 0, design)
    assert all(len(v) == k for v in seen.values())
    unseen = set(PACS_DOMAINS) - {dm for v in seen.values() for dm in v}
    assert meta["recipe"]["domains_never_in_training"] == [dm for dm in PACS_DOMAINS if dm in unseen]
    if design == "cyclic":
        assert not unseen  # every domain seen somewhere
    pairs = {s: set(zip(d[s]["y"].tolist(), d[s]["factor_domain"].tolist())) for s in ("train", "val", "test")}
    assert not pairs["test"] & (pairs["train"] | pairs["val"])  # no test (class, domain) pair seen in training
    for ci, c in enumerate(PACS_CLASSES):
        allowed = {(ci, PACS_DOMAINS.index(dm)) for dm in seen[c]}
        assert {p for p in pairs["train"] | pairs["val"] if p[0] == ci} <= allowed
        assert len({p for p in pairs["test"] if p[0] == ci}) == 4 - k
    again = build_dataset(spec, tmp_path / "o2", tmp_path / "res")
    assert again["hash"] == meta["hash"]
    other = build_dataset({**spec, "seed": 5}, tmp_path / "o3", tmp_path / "res")
    assert other["hash"] != meta["hash"]


def test_pacs_ood_design_random_is_the_official_per_class_draw():
    """random: each class's k domains drawn independently (np.random.choice per class in the official
    code), so some draws leave a domain out of training; cyclic never does. Both nested in k."""
    for design in ("random", "cyclic"):
        for seed in range(20):
            for k in (1, 2):
                small, large = seen_domains(k, seed, design), seen_domains(k + 1, seed, design)
                assert all(set(small[c]) < set(large[c]) for c in PACS_CLASSES), (design, seed, k)
    draws = [seen_domains(1, seed, "random") for seed in range(400)]
    first = np.array([[PACS_DOMAINS.index(v[c][0]) for c in PACS_CLASSES] for v in draws])  # [seed, class]
    counts = np.stack([(first == d).sum(0) for d in range(4)])  # [domain, class]: about 100 each
    assert counts.min() > 60 and counts.max() < 140
    # classes drawn independently: at k = 1 about half the draws leave a domain unseen (0.49), cyclic none
    left_out = np.mean([len(set(row)) < 4 for row in first])
    assert 0.4 < left_out < 0.58
    assert all(len({dm for v in seen_domains(1, s, "cyclic").values() for dm in v}) == 4 for s in range(400))
    assert seen_domains(2, 3) == seen_domains(2, 3, "random") != seen_domains(2, 3, "cyclic")
    with pytest.raises(ValueError, match="ood_design"):
        seen_domains(1, 0, "diagonal")


def test_pacs_ood_design_is_checked_and_recorded(tmp_path, pacs_root):
    from clbench.data.build import check_spec
    from clbench.errors import ConfigError

    check_spec({"generator": "pacs", "recipe": "ood_k", "k": 1, "options": {"ood_design": "cyclic"}}, "datasets.p")
    with pytest.raises(ConfigError, match=r"datasets\.p\.options\.ood_design"):
        check_spec({"generator": "pacs", "options": {"ood_design": "diagonal"}}, "datasets.p")
    with pytest.raises(ConfigError, match=r"datasets\.p\.ood_design"):
        check_spec({"generator": "pacs", "recipe": "lodo", "ood_design": "random"}, "datasets.p")
    meta = build_dataset({"generator": "pacs", "root": str(pacs_root), "recipe": "lodo", "image_size": 8},
                         tmp_path / "o", tmp_path)
    assert meta["spec"] == {"generator": "pacs", "recipe": "lodo", "test_domain": "sketch", "image_size": 8,
                            "val_fraction": 0.1, "seed": 0}
    default = build_dataset({"generator": "pacs", "root": str(pacs_root), "k": 1, "image_size": 8},
                            tmp_path / "d", tmp_path)
    assert default["recipe"]["design"] == "random" and default["spec"]["ood_design"] == "random"
    with pytest.raises(ValueError, match="ood_design"):
        build_dataset({"generator": "pacs", "root": str(pacs_root), "recipe": "lodo", "ood_design": "random"},
                      tmp_path / "x", tmp_path)


def test_pacs_lodo_roots_and_errors(tmp_path, pacs_root):
    spec = {"generator": "pacs", "root": str(pacs_root / "PACS"), "recipe": "lodo", "test_domain": "cartoon", "image_size": 8}
    meta = build_dataset(spec, tmp_path / "o", tmp_path)
    d = check_dir(tmp_path / "o")
    assert (d["test"]["factor_domain"] == PACS_DOMAINS.index("cartoon")).all() and meta["sizes"]["test"] == 21
    assert not (d["train"]["factor_domain"] == PACS_DOMAINS.index("cartoon")).any()
    with pytest.raises(ValueError, match="k"):
        build_dataset({"generator": "pacs", "root": str(pacs_root), "k": 4}, tmp_path / "x", tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(pacs_root / "PACS", broken / "PACS")
    shutil.rmtree(broken / "PACS" / "sketch" / "horse")
    with pytest.raises(DatasetError) as e:
        build_dataset({"generator": "pacs", "root": str(broken)}, tmp_path / "x", tmp_path)
    assert_clear_error(e.value, broken / "PACS" / "sketch" / "horse")
    shutil.copytree(pacs_root / "PACS" / "sketch" / "dog", broken / "PACS" / "sketch" / "horse")
    bad = broken / "PACS" / "art_painting" / "giraffe" / "pic_001.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError) as e:
        build_dataset({"generator": "pacs", "root": str(broken), "recipe": "lodo"}, tmp_path / "x", tmp_path)
    assert str(bad) in str(e.value)


def test_pacs_download_atomic(tmp_path, monkeypatch, pacs_root):
    from clbench.data import pacs

    def fake(url, md5):
        def fetch(tmp: Path):
            assert "drive.google.com" in url
            shutil.copytree(pacs_root / "PACS", tmp / "PACS")

        return fetch

    def broken(url, md5):
        def fetch(tmp: Path):
            (tmp / "PACS" / "photo").mkdir(parents=True)
            raise OSError("disk full")

        return fetch

    res = tmp_path / "res"
    monkeypatch.setattr(pacs, "_fetch", broken)
    with pytest.raises(OSError):
        build_dataset({"generator": "pacs", "download": True}, tmp_path / "o", res)
    assert not (res / "pacs").exists() and list(res.iterdir()) == []
    monkeypatch.setattr(pacs, "_fetch", fake)
    meta = build_dataset({"generator": "pacs", "download": True, "image_size": 8}, tmp_path / "o", res)
    assert meta["root"] == str((res / "pacs" / "PACS").resolve())


# ----------------------------------------------------------------------------------------- Camelyon17-WILDS


def make_camelyon(root: Path) -> list[dict]:
    data = root / "camelyon17_v1.0"
    rows = []
    rng = np.random.default_rng(0)
    for center in range(5):
        for j in range(8):
            patient, node = 10 * center + j // 4, j % 2
            slide = 10 * center + j // 4
            split = 1 if (center not in (1, 2) and j >= 6) else 0  # metadata.csv: 0 train, 1 id_val
            rows.append(dict(patient=f"{patient:03d}", node=node, x_coord=int(100 * j + 3), y_coord=int(50 * center + 7),
                             tumor=int(rng.integers(0, 2)), slide=slide, center=center, split=split))
    imgs = smooth_images(len(rows), 96, 96, seed=3)
    for r, im in zip(rows, imgs):
        folder = data / "patches" / f"patient_{r['patient']}_node_{r['node']}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(folder / f"patch_patient_{r['patient']}_node_{r['node']}_x_{r['x_coord']}_y_{r['y_coord']}.png")
    header = ",patient,node,x_coord,y_coord,tumor,slide,center,split"
    lines = [header] + [f"{i},{r['patient']},{r['node']},{r['x_coord']},{r['y_coord']},{r['tumor']},{r['slide']},{r['center']},{r['split']}" for i, r in enumerate(rows)]
    (data / "metadata.csv").write_text("\n".join(lines) + "\n")
    (data / "RELEASE_v1.0.txt").write_text("")
    return rows


@pytest.fixture(scope="module")
def camelyon_root(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("wilds")
    return root, make_camelyon(root)


def test_camelyon_official_splits(tmp_path, camelyon_root):
    root, rows = camelyon_root
    spec = {"generator": "camelyon17", "root": str(root), "image_size": 32, "ood_val": True}
    meta = build_dataset(spec, tmp_path / "o", tmp_path)
    d = check_dir(tmp_path / "o", splits=("train", "val", "test", "ood_val"))
    assert meta["sizes"] == {"train": 18, "val": 6, "test": 8, "ood_val": 8}
    assert meta["classes"] == ["normal", "tumor"] and meta["style_factors"] == ["hospital"]
    assert set(d["train"]["factor_hospital"].tolist()) == {0, 3, 4}
    assert set(d["val"]["factor_hospital"].tolist()) == {0, 3, 4}
    assert set(d["test"]["factor_hospital"].tolist()) == {2}
    assert set(d["ood_val"]["factor_hospital"].tolist()) == {1}
    for s in d:
        if s == "meta":
            continue
        for i, y, h, sl in zip(d[s]["id"], d[s]["y"], d[s]["factor_hospital"], d[s]["factor_slide"]):
            assert (y, h, sl) == (rows[i]["tumor"], rows[i]["center"], rows[i]["slide"])
    assert all(rows[i]["split"] == 1 for i in d["val"]["id"])
    # patch pixels: the PNG of that row, resized
    r = rows[d["test"]["id"][0]]
    png = root / "camelyon17_v1.0" / "patches" / f"patient_{r['patient']}_node_{r['node']}" / f"patch_patient_{r['patient']}_node_{r['node']}_x_{r['x_coord']}_y_{r['y_coord']}.png"
    ref = np.asarray(Image.open(png).convert("RGB").resize((32, 32), Image.BILINEAR)).transpose(2, 0, 1)
    assert np.array_equal(d["test"]["x"][0], ref)
    capped = build_dataset({**spec, "n_train": 5, "ood_val": False, "image_size": 96}, tmp_path / "c", tmp_path)
    assert capped["sizes"] == {"train": 5, "val": 6, "test": 8} and capped["image_shape"] == [3, 96, 96]


def test_camelyon_paths_storage_and_errors(tmp_path, camelyon_root):
    from clbench.data.imagefolder import load_split

    root, rows = camelyon_root
    meta = build_dataset({"generator": "camelyon17", "root": str(root / "camelyon17_v1.0"), "storage": "paths", "image_size": 48}, tmp_path / "p", tmp_path)
    assert meta["storage"] == "paths" and meta["image_shape"] == [3, 48, 48]
    s = load_split(tmp_path / "p", "test")
    assert s["x"].shape == (8, 3, 48, 48) and s["path"][0].startswith("patches/patient_")
    assert (Path(meta["image_root"]) / s["path"][0]).is_file()
    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    r = rows[3]
    patch = broken / "camelyon17_v1.0" / "patches" / f"patient_{r['patient']}_node_{r['node']}" / f"patch_patient_{r['patient']}_node_{r['node']}_x_{r['x_coord']}_y_{r['y_coord']}.png"
    patch.unlink()
    with pytest.raises(DatasetError) as e:
        build_dataset({"generator": "camelyon17", "root": str(broken)}, tmp_path / "x", tmp_path)
    assert_clear_error(e.value, patch)
    (broken / "camelyon17_v1.0" / "RELEASE_v1.0.txt").unlink()
    with pytest.raises(DatasetError) as e:
        build_dataset({"generator": "camelyon17", "root": str(broken)}, tmp_path / "x", tmp_path)
    assert_clear_error(e.value, broken / "camelyon17_v1.0" / "RELEASE_v1.0.txt")
    with pytest.raises(DatasetError) as e:
        build_dataset({"generator": "camelyon17"}, tmp_path / "x", tmp_path / "res")
    assert_clear_error(e.value, tmp_path / "res" / "camelyon17" / "camelyon17_v1.0" / "metadata.csv")


# ----------------------------------------------------------------------------------------- ImageFolder


def make_imagefolder(root: Path, classes=("n01558993", "n01692333", "n99999999"), n_train=5, n_val=2):
    for split, n in (("train", n_train), ("val", n_val)):
        for ci, c in enumerate(classes):
            folder = root / split / c
            folder.mkdir(parents=True)
            for k in range(n):  # ImageNet images come in all sizes
                im = smooth_images(1, 30 + 4 * k, 24, seed=ci * 10 + k)[0]
                Image.fromarray(im).save(folder / f"{c}_{k}.JPEG", format="JPEG")


def test_imagenet100_list():
    from clbench.data.imagefolder import imagenet100_classes

    wnids = imagenet100_classes()
    assert len(wnids) == 100 == len(set(wnids))
    assert wnids[0] == "n02869837" and wnids[-1] == "n02090622"
    assert all(w.startswith("n") and len(w) == 9 for w in wnids)


def test_imagefolder_paths_and_arrays(tmp_path):
    from clbench.data.imagefolder import load_split

    root = tmp_path / "imagenet"
    make_imagefolder(root)
    spec = {"generator": "imagefolder", "name": "imagenet1k", "root": str(root), "n_val": 3}
    meta = build_dataset(spec, tmp_path / "p", tmp_path)
    assert meta["storage"] == "paths" and meta["sizes"] == {"train": 12, "val": 3, "test": 6}
    assert meta["classes"] == ["n01558993", "n01692333", "n99999999"] and meta["image_shape"] == [3, 224, 224]
    tr = np.load(tmp_path / "p" / "train.npz")
    assert all((root / p).is_file() for p in tr["path"]) and tr["path"][0].startswith("train/")
    assert all(p.split("/")[1] == meta["classes"][y] for p, y in zip(tr["path"], tr["y"]))
    te = load_split(tmp_path / "p", "test", decode=False)
    assert all(p.startswith("val/") for p in te["path"]) and "x" not in te
    ids = [set(np.load(tmp_path / "p" / f"{s}.npz")["id"].tolist()) for s in ("train", "val", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])

    arr = build_dataset({**spec, "storage": "array", "image_size": 16, "classes": ["n99999999", "n01558993"]}, tmp_path / "a", tmp_path)
    d = check_dir(tmp_path / "a")
    assert arr["classes"] == ["n01558993", "n99999999"] and arr["image_shape"] == [3, 16, 16]
    assert arr["sizes"] == {"train": 7, "val": 3, "test": 4}
    # decoded path storage == array storage for the same images
    p = build_dataset({**spec, "image_size": 16, "classes": ["n99999999", "n01558993"]}, tmp_path / "p2", tmp_path)
    assert np.array_equal(load_split(tmp_path / "p2", "test")["x"], d["test"]["x"])
    assert p["storage"] == "paths"
    listfile = tmp_path / "classes.txt"
    listfile.write_text("n01692333\n")
    one = build_dataset({**spec, "classes": str(listfile), "n_val": 1}, tmp_path / "l", tmp_path)
    assert one["classes"] == ["n01692333"] and one["sizes"] == {"train": 4, "val": 1, "test": 2}


def test_imagefolder_errors_and_flat_layout(tmp_path):
    root = tmp_path / "imagenet"
    make_imagefolder(root)
    with pytest.raises(DatasetError) as e:  # the default ImageNet-100 list is not all there
        build_dataset({"generator": "imagefolder", "root": str(root)}, tmp_path / "x", tmp_path)
    assert "n02869837" in str(e.value) and "Expected layout" in str(e.value)
    with pytest.raises(DatasetError, match="cannot be downloaded"):
        build_dataset({"generator": "imagefolder", "download": True}, tmp_path / "x", tmp_path)
    with pytest.raises(DatasetError, match="root"):
        build_dataset({"generator": "imagefolder"}, tmp_path / "x", tmp_path)
    flat = tmp_path / "flat"
    shutil.copytree(root / "train", flat)
    meta = build_dataset({"generator": "imagefolder", "name": "mine", "root": str(flat), "storage": "array", "image_size": 8, "test_fraction": 0.2, "val_fraction": 0.25}, tmp_path / "f", tmp_path)
    assert meta["sizes"] == {"train": 9, "val": 3, "test": 3} and meta["recipe"]["kind"] == "random"
    check_dir(tmp_path / "f")


def test_torchvision_sources_build_without_torch(tmp_path):
    """Building from an existing copy never imports torch (start-up cost; see DESIGN.md)."""
    import subprocess
    import sys

    make_mnist(tmp_path / "root")
    make_cifar10(tmp_path / "root")
    code = (
        "import sys; from clbench.data.build import build_dataset\n"
        f"for n in ('mnist', 'cifar10'):\n"
        f"    build_dataset({{'generator': 'torchvision', 'name': n, 'root': {str(tmp_path / 'root')!r}}}, {str(tmp_path)!r} + '/' + n, {str(tmp_path)!r})\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

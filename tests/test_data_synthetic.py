"""Synthetic dataset generators: embedded sources, Styled-MNIST, MNIST-on-STL, Trifeature, the
Gaussian-mixture simulation, the cluster batch sampler and ``show``."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from clbench.data import dataset_dir
from clbench.data import embedded as E
from clbench.data import gaussian_mixture as G
from clbench.data import mnist_on_stl as M
from clbench.data import styled_mnist as S
from clbench.data import trifeature as T
from clbench.data.build import build_dataset
from clbench.data.dataset_dir import DatasetError
from clbench.data.samplers import ClusterBatchSampler, combine_cluster_ids
from clbench.data.show import show

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(
    not (SHARED_MNIST / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").exists(),
    reason="sample MNIST files (../shared/data/mnist) not present",
)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[s].keys() == b[s].keys() and all(np.array_equal(a[s][k], b[s][k]) for k in a[s]) for s in a
    )


def _pairs(arrays: dict, key: str = "factor_style") -> set[tuple[int, int]]:
    return set(zip(arrays["y"].tolist(), arrays[key].tolist()))


# --------------------------------------------------------------------------------------------------
# embedded sources and helpers


def test_embedded_digits_pools_are_disjoint_stratified_and_seeded():
    src = E.embedded_digits(seed=0)
    pools = src.pools
    assert sum(len(p) for p in pools.values()) == len(src.labels) == 1797
    assert not set(pools["train"]) & set(pools["test"])
    assert not set(pools["train"]) & set(pools["val"])
    assert not set(pools["val"]) & set(pools["test"])
    for p in pools.values():
        assert set(src.labels[p]) == set(range(10))
    assert src.images.shape == (1797, 28, 28) and src.images.dtype == np.float32
    assert 0.0 <= src.images.min() and src.images.max() <= 1.0
    # the digit sits in the central 20x20 box, like MNIST
    assert src.images[:, :4].max() == 0 and src.images[:, :, 24:].max() == 0
    other = E.embedded_digits(seed=1)
    assert not np.array_equal(other.pools["test"], pools["test"])


def test_render_digits_jitter_is_seeded_and_centred():
    src = E.embedded_digits(seed=0)
    idx = src.pools["train"][:64]
    a = E.render_digits(src, idx, E.jitter_params(64, E.rng_for(0, "j")))
    b = E.render_digits(src, idx, E.jitter_params(64, E.rng_for(0, "j")))
    c = E.render_digits(src, idx, E.jitter_params(64, E.rng_for(1, "j")))
    plain = E.render_digits(src, idx)
    assert a.shape == (64, 28, 28) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c) and not np.array_equal(a, plain)
    com = E._centre_of_mass(plain)
    assert np.allclose(com, 13.5, atol=0.6)  # centre of mass at the canvas centre, like MNIST
    small = E.render_digits(src, idx, size=16)
    assert small.shape == (64, 16, 16)


def test_affine_resample_identity_is_exact_and_images_do_not_mix():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (50, 28, 28)).astype(np.float32) / 255.0
    out = E.affine_resample(imgs, 28)
    assert np.array_equal(E.to_uint8(out), E.to_uint8(imgs))
    # a shift moves content off one image: it must become zero, not the neighbour's pixels
    shifted = E.affine_resample(np.ones((3, 28, 28)), 28, shift=np.array([[30.0, 0.0]] * 3))
    assert shifted.max() == 0.0
    rot = E.affine_resample(imgs[:1], 28, angle=np.array([np.pi / 2]))
    assert np.allclose(rot[0], np.rot90(imgs[0], k=1), atol=1e-5) or np.allclose(rot[0], np.rot90(imgs[0], k=-1), atol=1e-5)


def test_draw_balanced_uses_every_source_evenly():
    pool = np.arange(10) * 3
    got = E.draw_balanced(pool, 25, np.random.default_rng(0))
    counts = np.bincount(got // 3, minlength=10)
    assert counts.min() >= 2 and counts.max() <= 3
    assert set(E.draw_balanced(pool, 10, np.random.default_rng(1))) == set(pool)


def test_natural_backgrounds_has_at_least_eight_photographs():
    photos = E.natural_backgrounds()
    assert len(photos) >= 8
    for img in photos.values():
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 100
    with pytest.raises(DatasetError):
        E.natural_backgrounds(["no_such_photo"], min_classes=1)


def test_spec_params_rejects_unknown_keys_and_merges_options():
    p = E.spec_params({"generator": "x", "n_train": 5, "root": None, "options": {"jitter": False}},
                      {"n_train": 1, "jitter": True, "root": "r"}, "x")
    assert p["n_train"] == 5 and p["jitter"] is False and p["root"] == "r"
    with pytest.raises(ValueError, match="unknown spec key"):
        E.spec_params({"generator": "x", "bogus": 1}, {"n_train": 1}, "x")
    with pytest.raises(ValueError, match="unknown spec key"):
        E.spec_params({"generator": "x", "options": {"bogus": 1}}, {"n_train": 1}, "x")


# --------------------------------------------------------------------------------------------------
# real MNIST files


def _fake_mnist_root(tmp_path: Path) -> Path:
    """A torchvision-layout root whose 'training' files are the shared t10k files (real IDX data)."""
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    src = SHARED_MNIST / "MNIST" / "raw"
    for kind in ("images-idx3", "labels-idx1"):
        shutil.copy(src / f"t10k-{kind}-ubyte.gz", raw / f"t10k-{kind}-ubyte.gz")
        shutil.copy(src / f"t10k-{kind}-ubyte.gz", raw / f"train-{kind}-ubyte.gz")
    return tmp_path / "mnist"


@needs_mnist
def test_load_mnist_reads_the_real_idx_files_like_torchvision(tmp_path):
    x, y = E.load_mnist(SHARED_MNIST, train=False)
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    from torchvision.datasets.mnist import read_image_file, read_label_file

    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(SHARED_MNIST / "MNIST" / "raw" / f"{name}.gz") as f:
            (tmp_path / name).write_bytes(f.read())
    assert np.array_equal(read_image_file(str(tmp_path / "t10k-images-idx3-ubyte")).numpy(), x)
    assert np.array_equal(read_label_file(str(tmp_path / "t10k-labels-idx1-ubyte")).numpy(), y)
    # unpacked files are read as well, from <root>/raw or the folder itself
    x2, _ = E.load_mnist(tmp_path, train=False)
    assert np.array_equal(x2, x)


@needs_mnist
def test_load_mnist_missing_training_files_say_where_and_how(tmp_path):
    with pytest.raises(DatasetError) as e:
        E.load_mnist(SHARED_MNIST, train=True)
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and str(SHARED_MNIST) in msg and "download: true" in msg


def test_load_mnist_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DatasetError, match="download: true"):
        E.load_mnist(tmp_path / "nowhere", train=False)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    header = (0x0803).to_bytes(4, "big") + b"".join(v.to_bytes(4, "big") for v in (10, 28, 28))
    (raw / "t10k-images-idx3-ubyte").write_bytes(header + bytes(28 * 28 * 3))  # truncated: 3 of 10 images
    (raw / "t10k-labels-idx1-ubyte").write_bytes((0x0801).to_bytes(4, "big") + (10).to_bytes(4, "big") + bytes(10))
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte"):
        E.load_mnist(tmp_path, train=False)


def _write_idx(path: Path, arr: np.ndarray) -> None:
    arr = np.asarray(arr, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (0x0800 + arr.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    path.write_bytes(header + arr.tobytes())


def test_load_mnist_downloads_into_root_only_when_asked(tmp_path, monkeypatch):
    """``download: true`` fetches through torchvision_sources.FETCHERS (replaced here: no network)
    straight into ``root``; the files are then read by the one IDX reader."""
    from clbench.data import torchvision_sources as tv

    rng = np.random.default_rng(0)
    imgs = {s: rng.integers(0, 256, (n, 28, 28)) for s, n in (("train", 12), ("t10k", 5))}
    calls = []

    def fake(name):
        def fetch(root: Path):
            calls.append((name, root))
            for s, x in imgs.items():
                _write_idx(root / "MNIST" / "raw" / f"{s}-images-idx3-ubyte", x)
                _write_idx(root / "MNIST" / "raw" / f"{s}-labels-idx1-ubyte", np.arange(len(x)) % 10)

        return fetch

    monkeypatch.setitem(tv.FETCHERS, "mnist", fake)
    root = tmp_path / "mnist"
    with pytest.raises(DatasetError, match="download: true"):
        E.load_mnist(root, train=True)
    assert calls == [] and not root.exists()
    x, y = E.load_mnist(root, train=True, download=True)
    assert calls == [("mnist", root)]
    assert x.shape == (12, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    assert np.array_equal(x, imgs["train"]) and y.tolist() == (np.arange(12) % 10).tolist()
    xt, _ = E.load_mnist(root, train=False, download=True)  # present now: no second download
    assert np.array_equal(xt, imgs["t10k"]) and len(calls) == 1
    # <root>/raw/ is accepted as well
    shutil.move(str(root / "MNIST" / "raw"), str(tmp_path / "alt" / "raw"))
    assert np.array_equal(E.load_mnist(tmp_path / "alt", train=False)[0], imgs["t10k"])


def test_load_stl10_downloads_into_root_only_when_asked(tmp_path, monkeypatch):
    from clbench.data import torchvision_sources as tv

    calls = []

    def fake(name):
        def fetch(root: Path):
            calls.append((name, root))
            _fake_stl10(root)

        return fetch

    monkeypatch.setitem(tv.FETCHERS, "stl10", fake)
    root = tmp_path / "stl"
    with pytest.raises(DatasetError, match="download: true"):
        M.load_stl10(root, "test")
    assert calls == []
    x, y, names = M.load_stl10(root, "test", download=True)
    assert calls == [("stl10", root)] and x.shape == (20, 3, 96, 96) and names[1] == "bird"
    x2, y2, _ = M.load_stl10(root / "stl10_binary", "test", download=True)  # the folder itself; no download
    assert len(calls) == 1 and np.array_equal(x2, x) and np.array_equal(y2, y)
    (root / "stl10_binary" / "class_names.txt").unlink()
    assert M.load_stl10(root, "test")[2] == [str(i) for i in range(10)]


@needs_mnist
def test_styled_mnist_from_real_mnist_files(tmp_path):
    root = _fake_mnist_root(tmp_path)
    spec = {"generator": "styled_mnist", "source": "mnist", "root": str(root), "recipe": "ood", "k": 2,
            "n_train": 300, "n_val": 50, "n_test": 200, "seed": 3}
    splits, meta = S.generate(spec)
    assert meta["source"] == "mnist" and meta["jitter"] is False
    ids = {s: set(a["source_id"].tolist()) for s, a in splits.items()}
    assert not ids["train"] & ids["test"] and not ids["val"] & ids["test"] and not ids["train"] & ids["val"]
    assert min(ids["test"]) >= 10000  # test images come from the t10k file (ids offset by the training file)
    # identity-styled, unjittered samples reproduce the MNIST digits exactly
    x, y = E.load_mnist(root, train=True)
    tr = splits["train"]
    ident = np.flatnonzero(tr["factor_style"] == 0)
    if len(ident):
        assert np.array_equal(tr["x"][ident, 0], x[tr["source_id"][ident]])


# --------------------------------------------------------------------------------------------------
# Styled-MNIST


SMALL = {"n_train": 600, "n_val": 100, "n_test": 300}


def test_styled_mnist_same_seed_identical_different_seed_differs():
    spec = {"generator": "styled_mnist", **SMALL, "seed": 7}
    a, ma = S.generate(spec)
    b, mb = S.generate(spec)
    c, _ = S.generate({**spec, "seed": 8})
    assert _same(a, b)
    assert not np.array_equal(a["train"]["x"], c["train"]["x"])
    assert dataset_dir.content_hash(a) == dataset_dir.content_hash(b) != dataset_dir.content_hash(c)
    # changing the size of one split leaves the others unchanged (independent streams)
    d, _ = S.generate({**spec, "n_test": 123})
    assert np.array_equal(a["train"]["x"], d["train"]["x"])


def test_styled_mnist_independent_recipe_arrays_and_style_frequencies():
    splits, meta = S.generate({"generator": "styled_mnist", "n_train": 4000, "n_val": 10, "n_test": 10, "seed": 0})
    tr = splits["train"]
    assert tr["x"].shape == (4000, 1, 28, 28) and tr["x"].dtype == np.uint8
    assert tr["y"].dtype == np.int64 and tr["factor_style"].dtype == np.int64
    freq = np.bincount(tr["factor_style"], minlength=6) / 4000
    assert np.allclose(freq, S.STYLE_PROBS, atol=0.025)
    assert meta["factors"] == {"style": list(S.STYLES)} and meta["classes"] == [str(i) for i in range(10)]
    assert set(tr["y"].tolist()) == set(range(10))
    for split in ("train", "val", "test"):
        assert not set(splits[split]["source_id"].tolist()) & (
            set().union(*(set(splits[o]["source_id"].tolist()) for o in splits if o != split)))


@pytest.mark.parametrize("design", S.OOD_DESIGNS)
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_styled_mnist_ood_k_never_leaks_a_test_pair(k, design):
    splits, meta = S.generate({"generator": "styled_mnist", "recipe": "ood", "k": k, **SMALL, "seed": k,
                               "options": {"ood_design": design}})
    seen = _pairs(splits["train"]) | _pairs(splits["val"])
    test = _pairs(splits["test"])
    assert not seen & test
    allowed = S.ood_allowed_styles(k, k, design)
    assert all(allowed[d, s] for d, s in seen) and all(not allowed[d, s] for d, s in test)
    assert allowed.sum(axis=1).tolist() == [k] * 10
    assert len(test) >= 0.9 * 10 * (6 - k)  # the test set really covers the held-out pairs
    assert meta["recipe"]["k"] == k and all(len(v) == k for v in meta["recipe"]["allowed"].values())
    assert meta["recipe"]["design"] == design
    never = [S.STYLES[s] for s in range(6) if not allowed[:, s].any()]
    assert meta["recipe"]["styles_never_in_training"] == never
    assert not {S.STYLES.index(n) for n in never} & {s for _, s in seen}
    if design == "cyclic":
        # every style is seen in training (with some digit) and held out (for another)
        assert allowed.any(axis=0).all() and (~allowed).any(axis=0).all() and never == []


def test_styled_mnist_default_ood_design_is_the_official_random_draw():
    """Each digit's k styles drawn at random, independently: at k=1 about one style in six is never
    in training ((5/6)^10 = 0.16 per style); at k=3 some style is missing for about 1 seed in 170."""
    assert S.DEFAULTS["ood_design"] == "random"
    _, meta = S.generate({"generator": "styled_mnist", "recipe": "ood", "k": 2, **SMALL, "seed": 3})
    assert meta["recipe"]["design"] == "random"
    missing_k1 = np.mean([(~S.ood_allowed_styles(1, s).any(axis=0)).mean() for s in range(600)])
    assert 0.13 < missing_k1 < 0.19
    missing_k3 = np.mean([(~S.ood_allowed_styles(3, s).any(axis=0)).any() for s in range(3000)])
    assert 0.002 < missing_k3 < 0.012
    # the cyclic design never leaves a style out; the random one is not the cyclic one
    assert all(S.ood_allowed_styles(1, s, "cyclic").any(axis=0).all() for s in range(50))
    assert any(not np.array_equal(S.ood_allowed_styles(3, s), S.ood_allowed_styles(3, s, "cyclic")) for s in range(5))
    # every digit's sets are uniform over the styles: each style allowed for about k/6 of the digits
    freq = np.mean([S.ood_allowed_styles(2, s) for s in range(600)], axis=0)
    assert np.allclose(freq, 2 / 6, atol=0.06)


def test_the_tiny_default_ood3_split_trains_on_every_style():
    """The embedded default's OOD-3 split (dataset seed 0) under the random draw: no style is left
    out of training; each style is held out for some digits."""
    allowed = S.ood_allowed_styles(3, 0, "random")
    assert allowed.any(axis=0).all() and (~allowed).any(axis=0).all()


@pytest.mark.parametrize("design", S.OOD_DESIGNS)
def test_ood_designs_are_nested_in_k_and_reject_bad_k(design):
    for seed in range(5):
        masks = [S.ood_allowed_styles(k, seed, design) for k in range(1, 6)]
        for small, big in zip(masks, masks[1:]):
            assert np.all(big[small])
    for bad in (0, 6):
        with pytest.raises(ValueError):
            S.ood_allowed_styles(bad, 0, design)
    with pytest.raises(ValueError, match="recipe"):
        S.generate({"generator": "styled_mnist", "recipe": "nope", **SMALL})
    with pytest.raises(ValueError, match="ood_design"):
        S.generate({"generator": "styled_mnist", "recipe": "ood", **SMALL, "options": {"ood_design": "latin"}})


def test_styles_do_what_they_say():
    rng = np.random.default_rng(0)
    x = rng.random((4, 28, 28)).astype(np.float32)
    st = S.style_stripe(x)
    assert np.allclose(st[:, :, :7], 1 - x[:, :, :7]) and np.allclose(st[:, :, 21:], 1 - x[:, :, 21:])
    assert np.array_equal(st[:, :, 7:21], x[:, :, 7:21])
    assert np.allclose(S.style_brightness(x), np.minimum(x + 0.5, 1.0))
    # scale_down: a box over rows 5-22 covers rows 9-18 afterwards (half the size, same centre)
    z = np.zeros((1, 28, 28), np.float32)
    z[0, 5:23, 5:23] = 1.0
    out = S.style_scale_down(z)[0]
    rows = np.flatnonzero(out.max(axis=1) > 0)
    assert rows.min() == 9 and rows.max() == 18 and np.array_equal(rows, np.flatnonzero(out.max(axis=0) > 0))
    assert out[10:18, 10:18].min() == 1.0 and out.sum() == pytest.approx(z.sum() / 4, rel=0.15)
    lines = S.zigzag_lines(200, np.random.default_rng(1))
    assert lines.shape == (200, 28, 28) and lines.max() == 1.0
    assert np.all(lines.reshape(200, -1).max(axis=1) == 1.0)
    assert 0.04 < lines.mean() < 0.3  # a thin line, not a fill


def test_zigzag_is_a_thin_nearly_horizontal_line():
    lines = S.zigzag_lines(300, np.random.default_rng(2))
    on = lines > 0
    height = np.array([np.ptp(np.flatnonzero(m.any(axis=1))) + 1 for m in on])
    width = np.array([np.ptp(np.flatnonzero(m.any(axis=0))) + 1 for m in on])
    inside = (np.flatnonzero(on.any(axis=2).any(axis=0)))  # rows touched by any line
    assert inside.min() == 0 and inside.max() == 27  # the base row is uniform over the image
    whole = np.array([not m.any(axis=1)[0] and not m.any(axis=1)[-1] for m in on])  # not cut by the border
    assert whole.mean() > 0.5
    assert np.all(width[whole] >= 24) and np.all(width <= 27)  # spans columns ~1..26
    assert np.all(height[whole] <= 5 + 4 + 4)  # tilt of at most 5 rows plus the teeth and the stroke
    assert np.median(height[whole]) <= 10
    # thin: in every column the stroke covers few pixels
    per_column = on.sum(axis=1)[:, 4:24]
    assert per_column.max() <= 6 and np.median(per_column) <= 4
    # the pixel on the start vertex is exactly 1; values fall to 0 within 1.5 px of the line
    assert np.all(lines.reshape(300, -1).max(axis=1) == 1.0)


def test_scale_down_halves_a_digits_height():
    src = E.embedded_digits(seed=0)
    n = 40
    x = E.render_digits(src, src.pools["train"][:n], E.jitter_params(n, E.rng_for(0, "scale"), enabled=False))
    small = S.style_scale_down(x)

    def height(img):
        rows = np.flatnonzero(img.max(axis=1) > 0.2)
        return rows.max() - rows.min() + 1

    ratio = np.array([height(b) / height(a) for a, b in zip(x, small)])
    assert np.all((ratio > 0.4) & (ratio < 0.62)) and abs(np.median(ratio) - 0.5) < 0.06
    # the centre of mass stays near the image centre
    com = np.array([np.average(np.arange(28), weights=img.sum(axis=1)) for img in small])
    assert np.all(np.abs(com - 13.5) < 2.5)


def test_vectorised_canny_equals_skimage_per_image():
    from skimage.feature import canny

    src = E.embedded_digits(seed=0)
    n = 150
    x = E.render_digits(src, src.pools["train"][:n], E.jitter_params(n, E.rng_for(0, "c")))
    x[:3] = np.random.default_rng(0).random((3, 28, 28))  # also images with content at the border
    got = S.style_canny(x, per_mosaic=64)
    g = 6
    mask = np.pad(np.ones((28, 28), bool), g)
    ref = np.stack([canny(np.pad(img, g), sigma=1.0, mask=mask)[g:-g, g:-g] for img in x])
    assert np.array_equal(got, ref.astype(np.float32))
    plain = np.stack([canny(img, sigma=1.0) for img in x[3:]])
    inner = (slice(None), slice(3, -3), slice(3, -3))
    assert np.array_equal(got[3:][inner], plain[inner].astype(np.float32))  # same as plain canny away from the border


def test_styled_mnist_build_writes_a_dataset_directory(tmp_path):
    spec = {"generator": "styled_mnist", "recipe": "ood", "k": 3, **SMALL, "seed": 0, "root": None,
            "download": False, "options": {"jitter": True}}
    meta = build_dataset(spec, tmp_path / "ds", tmp_path / "resources")
    assert (tmp_path / "ds" / "meta.json").exists()
    assert meta["sizes"] == {"train": 600, "val": 100, "test": 300} and meta["image_shape"] == [1, 28, 28]
    disk = dataset_dir.load_meta(tmp_path / "ds")
    assert disk["hash"] == meta["hash"] and disk["recipe"]["name"] == "ood"
    test = dataset_dir.load(tmp_path / "ds", "test")
    train = dataset_dir.load(tmp_path / "ds", "train")
    assert not _pairs(train) & _pairs(test)
    with pytest.raises(ValueError, match="unknown spec key"):
        build_dataset({"generator": "styled_mnist", "colour": "red"}, tmp_path / "bad")


# --------------------------------------------------------------------------------------------------
# MNIST-on-STL


@pytest.fixture(scope="module")
def on_stl():
    return M.generate({"generator": "mnist_on_stl", "n_train": 400, "n_val": 60, "n_test": 200, "seed": 0})


@pytest.fixture(scope="module")
def on_stl_all_factors():
    """Pairs that may vary any of the three factors (not the poster's pairs; an option)."""
    return M.generate({"generator": "mnist_on_stl", "n_train": 400, "n_val": 60, "n_test": 200, "seed": 0,
                       "options": {"vary": list(M.FACTORS)}})


def test_mnist_on_stl_default_pairs_keep_digit_and_background_and_move_the_digit(on_stl):
    """The poster's view pairs: same digit (class and image), same background (class and crop),
    different location."""
    splits, meta = on_stl
    assert meta["pairs"]["vary"] == ["location"] and M.DEFAULTS["vary"] == ["location"]
    for a in splits.values():
        assert np.array_equal(a["factor_digit"], a["x2_factor_digit"])
        assert np.array_equal(a["factor_background"], a["x2_factor_background"])
        assert np.all(a["factor_location"] != a["x2_factor_location"])
        assert np.all(a["pair_varied"] == M.FACTORS.index("location"))
        assert np.array_equal(a["source_id"], a["x2_source_id"])
        assert np.array_equal(a["background_id"], a["x2_background_id"])
        assert not np.any(np.all(a["x"] == a["x2"], axis=(1, 2, 3)))
    # every location pair occurs: the second location is uniform over the other cells
    tr = splits["train"]
    moves = set(zip(tr["factor_location"].tolist(), tr["x2_factor_location"].tolist()))
    assert moves == {(a, b) for a in range(4) for b in range(4) if a != b}


def test_mnist_on_stl_arrays_and_meta(on_stl):
    splits, meta = on_stl
    tr = splits["train"]
    assert tr["x"].shape == (400, 3, 32, 32) and tr["x"].dtype == np.uint8 and tr["x2"].shape == tr["x"].shape
    assert np.array_equal(tr["y"], tr["factor_digit"])
    assert len(meta["factors"]["background"]) >= 8 and len(meta["factors"]["location"]) == 4
    assert meta["factor_abbrev"] == {"DC": "digit", "DL": "location", "BC": "background"}
    for name, values in meta["factors"].items():
        assert set(tr[f"factor_{name}"].tolist()) == set(range(len(values)))


def test_mnist_on_stl_pairs_vary_exactly_one_factor(on_stl_all_factors):
    splits, _ = on_stl_all_factors
    for a in splits.values():
        f1 = np.stack([a[f"factor_{n}"] for n in M.FACTORS], 1)
        f2 = np.stack([a[f"x2_factor_{n}"] for n in M.FACTORS], 1)
        diff = f1 != f2
        assert np.all(diff.sum(1) == 1)
        assert np.array_equal(diff.argmax(1), a["pair_varied"])
        # shared nuisance: same digit image unless the digit varies, same crop unless the background varies
        keep_digit = a["pair_varied"] != 0
        keep_bg = a["pair_varied"] != 2
        assert np.array_equal(a["source_id"][keep_digit], a["x2_source_id"][keep_digit])
        assert np.array_equal(a["background_id"][keep_bg], a["x2_background_id"][keep_bg])
        assert not np.any(np.all(a["x"] == a["x2"], axis=(1, 2, 3)))  # the views really differ
    counts = np.bincount(splits["train"]["pair_varied"], minlength=3)
    assert counts.min() > 80


def test_mnist_on_stl_location_pairs_differ_only_in_the_two_cells(on_stl):
    splits, _ = on_stl
    a = splits["train"]
    i = np.flatnonzero(a["pair_varied"] == 1)[0]
    changed = np.any(a["x"][i] != a["x2"][i], axis=0)
    cells = np.zeros((32, 32), bool)
    for loc in (a["factor_location"][i], a["x2_factor_location"][i]):
        r, c = divmod(int(loc), 2)
        cells[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16] = True
    assert changed.any() and not changed[~cells].any()


def test_mnist_on_stl_splits_share_no_digit_image_or_background_tile(on_stl):
    splits, _ = on_stl
    for key in ("source_id", "background_id"):
        ids = {s: set(a[key].tolist()) | set(a["x2_" + key].tolist()) for s, a in splits.items()}
        assert not ids["train"] & ids["test"] and not ids["train"] & ids["val"] and not ids["val"] & ids["test"]


def test_mnist_on_stl_is_deterministic_and_configurable():
    spec = {"generator": "mnist_on_stl", "n_train": 50, "n_val": 5, "n_test": 20, "seed": 1, "image_size": 48,
            "grid": 3, "options": {"vary": ["background"], "share_nuisance": False}}
    a, meta = M.generate(spec)
    b, _ = M.generate(spec)
    c, _ = M.generate({**spec, "seed": 2})
    assert _same(a, b) and not np.array_equal(a["train"]["x"], c["train"]["x"])
    assert a["train"]["x"].shape == (50, 3, 48, 48) and len(meta["factors"]["location"]) == 9
    assert np.all(a["train"]["pair_varied"] == 2)
    nopairs, _ = M.generate({**spec, "pairs": False})
    assert "x2" not in nopairs["train"] and "pair_varied" not in nopairs["train"]


def test_composite_places_the_digit_in_its_cell():
    bg = np.zeros((4, 3, 32, 32), np.float32)
    digits = np.ones((4, 16, 16), np.float32)
    out = M.composite(bg, digits, np.arange(4), grid=2)
    for loc in range(4):
        r, c = divmod(loc, 2)
        assert out[loc, :, r * 16:(r + 1) * 16, c * 16:(c + 1) * 16].min() == 255
        assert out[loc].sum() == 255 * 3 * 256


def _fake_stl10(root: Path, n_train: int = 100, n_test: int = 20) -> None:
    base = root / "stl10_binary"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        imgs = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        imgs.transpose(0, 1, 3, 2).tofile(base / f"{split}_X.bin")  # STL-10 stores images column-major
        (np.arange(n) % 10 + 1).astype(np.uint8).tofile(base / f"{split}_y.bin")
    (base / "class_names.txt").write_text("\n".join(["airplane", "bird", "car", "cat", "deer", "dog", "horse",
                                                     "monkey", "ship", "truck"]) + "\n")


def test_mnist_on_stl_with_stl10_files(tmp_path):
    _fake_stl10(tmp_path / "stl")
    x, y, names = M.load_stl10(tmp_path / "stl", "train")
    assert x.shape == (100, 3, 96, 96) and y.tolist()[:3] == [0, 1, 2] and names[0] == "airplane"
    try:  # the same arrays as torchvision's own STL-10 reader (private; skipped if it moves)
        from torchvision.datasets import STL10

        ref = STL10.__new__(STL10)
        ref.root = str(tmp_path / "stl")
        tx, ty = ref._STL10__loadfile("train_X.bin", "train_y.bin")
    except (ImportError, AttributeError, TypeError):
        tx = None
    if tx is not None:
        assert np.array_equal(tx, x) and np.array_equal(ty, y)
    spec = {"generator": "mnist_on_stl", "background": "stl10", "background_root": str(tmp_path / "stl"),
            "n_train": 40, "n_val": 10, "n_test": 20, "seed": 0}
    splits, meta = M.generate(spec)
    assert meta["factors"]["background"][:2] == ["airplane", "bird"]
    assert splits["test"]["background_id"].min() >= 100  # STL's test images
    assert not set(splits["train"]["background_id"].tolist()) & set(splits["val"]["background_id"].tolist())
    (tmp_path / "stl" / "stl10_binary" / "test_y.bin").write_bytes(b"\x01\x02")  # truncated labels
    with pytest.raises(DatasetError, match="corrupt"):
        M.generate(spec)
    with pytest.raises(DatasetError, match="download: true"):
        M.generate({**spec, "background_root": str(tmp_path / "none")})


# --------------------------------------------------------------------------------------------------
# Trifeature


def test_trifeature_holds_out_triplets_for_test():
    splits, meta = T.generate({"generator": "trifeature", "n_train": 800, "n_val": 100, "n_test": 300, "seed": 0})
    train_t = set(splits["train"]["triplet"].tolist()) | set(splits["val"]["triplet"].tolist())
    test_t = set(splits["test"]["triplet"].tolist())
    assert not train_t & test_t
    assert test_t <= set(meta["recipe"]["test_triplets"]) and len(meta["recipe"]["test_triplets"]) == 200
    tr = splits["train"]
    assert tr["x"].shape == (800, 3, 32, 32) and tr["x"].dtype == np.uint8
    assert np.array_equal(tr["y"], tr["factor_shape"])
    assert np.array_equal(tr["triplet"], tr["factor_shape"] * 100 + tr["factor_colour"] * 10 + tr["factor_texture"])
    for f in ("shape", "colour", "texture"):
        assert set(tr[f"factor_{f}"].tolist()) == set(range(10))
    train_all, test_all = T.heldout_triplets(0.2, 0)
    assert len(train_all) == 800 and not set(train_all) & set(test_all)


def test_trifeature_is_deterministic_any_size_and_features_are_visible():
    spec = {"generator": "trifeature", "n_train": 30, "n_val": 0, "n_test": 10, "seed": 4, "image_size": 64}
    a, _ = T.generate(spec)
    b, _ = T.generate(spec)
    c, _ = T.generate({**spec, "seed": 5})
    assert _same(a, b) and not np.array_equal(a["train"]["x"], c["train"]["x"])
    assert a["train"]["x"].shape == (30, 3, 64, 64)
    # every shape, and every texture, renders differently (same pose and colour)
    n = 10
    pose = dict(angle=np.zeros(n), centre=np.full((n, 2), 32.0), radius=np.full(n, 20.0), size=64)
    shapes = T.render(np.arange(n), np.zeros(n, int), np.zeros(n, int), **pose)
    textures = T.render(np.ones(n, int), np.zeros(n, int), np.arange(n), **pose)
    for imgs in (shapes, textures):
        flat = imgs.reshape(n, -1).astype(int)
        assert all(np.abs(flat[i] - flat[j]).sum() > 0 for i in range(n) for j in range(i))
    grey = np.all(shapes == 128, axis=1)  # mid-grey background around the shape
    assert grey[:, 0, 0].all() and not grey[:, 32, 32].any()


# --------------------------------------------------------------------------------------------------
# Gaussian-mixture simulation


def test_gaussian_mixture_batches_spread_schedule_and_mi():
    sim = G.GaussianMixtureSim(d=3, period=100, spreads=(0.5, 2.0), seed=0)
    x, y = sim.batch(5, 256)
    x2, y2 = sim.batch(5, 256)
    assert x.shape == (256, 3) and x.dtype == np.float32 and np.array_equal(x, x2) and np.array_equal(y, y2)
    assert sim.spread(99) == 0.5 and sim.spread(100) == 2.0 and sim.spread(200) == 0.5
    d = np.linalg.norm(sim.means[:, None] - sim.means[None], axis=-1)
    assert np.allclose(d[~np.eye(3, dtype=bool)], 2.0)
    xb, yb = sim.batch(150, 4000)
    assert abs((xb - sim.means[yb]).std() - 2.0) < 0.1
    run = G.simulate(250, 32, d=2, spreads=(0.5, 1.0), seed=1)
    assert run["x"].shape == (250, 32, 2) and run["spread"][[0, 99, 100, 200]].tolist() == [0.5, 0.5, 1.0, 0.5]
    # the KNN estimate tracks the exact MI, and decreases with the spread
    sim2 = G.GaussianMixtureSim(d=2, spreads=(0.5, 1.0, 2.0), seed=0)
    for spread in sim2.spreads:
        xs, ys = sim2.sample(np.full(2000, sim2.spreads.index(spread) * 100), np.random.default_rng(3))
        assert abs(G.knn_mi(xs, ys) - sim2.true_mi(spread)) < 0.06
    assert sim2.true_mi(0.5) > sim2.true_mi(1.0) > sim2.true_mi(2.0) > 0


def test_knn_mi_matches_sklearn_in_one_dimension():
    sim = G.GaussianMixtureSim(d=1, seed=0)
    x, y = sim.sample(np.full(1500, 200), np.random.default_rng(0))
    ours = G.knn_mi(x, y, n_neighbors=3)
    theirs = G.knn_mi_per_feature(x, y, n_neighbors=3)
    assert theirs.shape == (1,) and abs(ours - theirs[0]) < 1e-3


def test_gaussian_mixture_build(tmp_path):
    spec = {"generator": "gaussian_mixture", "n_steps": 250, "batch_size": 16, "n_val": 100, "n_test": 200,
            "mi_samples": 500, "seed": 0, "options": {"d": 4}}
    meta = build_dataset(spec, tmp_path / "gm", tmp_path)
    tr = dataset_dir.load(tmp_path / "gm", "train")
    assert tr["features"].shape == (4000, 4) and tr["features"].dtype == np.float32
    assert tr["x"].shape == (4000, 1, 1, 4) and tr["x"].dtype == np.uint8
    assert np.abs(tr["x"] .reshape(-1, 4) * meta["x_scale"] + meta["x_offset"] - tr["features"]).max() <= meta["x_scale"] / 2 + 1e-6
    assert tr["step"].tolist()[:17] == [0] * 16 + [1] and np.array_equal(tr["factor_spread"], (tr["step"] // 100) % 4)
    mi = [row["true_mi"] for row in meta["mi"]]
    assert mi == sorted(mi, reverse=True) and len(meta["mi"]) == 4
    again, _ = G.generate(spec)
    assert np.array_equal(again["test"]["features"], dataset_dir.load(tmp_path / "gm", "test")["features"])
    with pytest.raises(ValueError, match="n_train"):
        G.generate({**spec, "n_train": 5})


# --------------------------------------------------------------------------------------------------
# cluster batch sampler


def test_combine_cluster_ids_is_mixed_radix():
    a = np.array([0, 0, 1, 1, 2, 2])
    b = np.array([0, 1, 0, 1, 0, 0])
    assert combine_cluster_ids(a, b, dense=False).tolist() == [0, 1, 2, 3, 4, 4]
    dense = combine_cluster_ids(a, b)
    assert dense.tolist() == [0, 1, 2, 3, 4, 4]
    assert np.array_equal(combine_cluster_ids(np.stack([a, b])), dense)
    c = np.array([3, 3, 0, 0, 3, 3])
    assert combine_cluster_ids(c).tolist() == [1, 1, 0, 0, 1, 1]
    tuples = list(zip(a, b, c))
    ids = combine_cluster_ids(a, b, c)
    assert all((ids[i] == ids[j]) == (tuples[i] == tuples[j]) for i in range(6) for j in range(6))


def test_cluster_batch_sampler_batches_come_from_one_cluster():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 4, 1000)
    s = ClusterBatchSampler(ids, 32, seed=0, drop_last=False)
    batches = list(s)
    assert len(batches) == len(s) == sum(-(-np.sum(ids == c) // 32) for c in range(4))
    assert all(len(b) == 32 and len(set(b)) == 32 for b in batches)
    assert all(len(set(ids[b])) == 1 for b in batches)
    assert set(np.concatenate(batches).tolist()) == set(range(1000))  # every sample every epoch
    again = list(ClusterBatchSampler(ids, 32, seed=0, drop_last=False))
    assert batches == again
    s.set_epoch(1)
    assert list(s) != batches and len(list(s)) == len(batches)
    s.set_epoch(0)
    assert list(s) == batches
    dl = ClusterBatchSampler(ids, 32, seed=0, drop_last=True)
    assert len(dl) == sum(np.sum(ids == c) // 32 for c in range(4)) == len(list(dl))


def test_cluster_batch_sampler_small_cluster_policies():
    ids = np.array([0] * 40 + [1] * 5 + [2] * 3)
    merge = ClusterBatchSampler(ids, 16, seed=0, small="merge", drop_last=False)
    batches = list(merge)
    assert len(batches) == len(merge) == 3 + 1
    mixed = [b for b in batches if set(ids[b]) != {0}]
    assert len(mixed) == 1 and set(ids[mixed[0]]) <= {1, 2} and set(mixed[0]) >= set(range(40, 48))
    replace = ClusterBatchSampler(ids, 16, seed=0, small="replace", drop_last=False)
    rb = list(replace)
    assert len(rb) == 5 and all(len(b) == 16 and len(set(ids[b])) == 1 for b in rb)
    keep = ClusterBatchSampler(ids, 16, seed=0, small="keep", drop_last=False)
    assert sorted(len(b) for b in keep) == [3, 5, 16, 16, 16]
    assert len(ClusterBatchSampler(ids, 16, small="keep", drop_last=True)) == 2
    with pytest.raises(ValueError):
        ClusterBatchSampler(ids, 16, small="bogus")


def test_mcl_sampler_on_uneven_clusters_gives_only_pure_full_batches():
    """The official sampler on clusters of 1000/700/300/120/50 with batches of 256: each cluster
    shuffled and cut into full batches, remainders dropped, the two clusters below one batch skipped:
    3 + 2 + 1 = 6 pure batches, no sample twice, nothing topped up."""
    sizes = [1000, 700, 300, 120, 50]
    ids = np.random.default_rng(0).permutation(np.repeat(np.arange(5), sizes))
    sampler = ClusterBatchSampler(ids, 256, seed=0)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = [np.asarray(b) for b in sampler]
        assert len(batches) == len(sampler) == 6
        assert all(len(b) == 256 and len(np.unique(ids[b])) == 1 for b in batches)
        flat = np.concatenate(batches)
        assert len(np.unique(flat)) == len(flat) == 6 * 256
        assert np.bincount(ids[flat], minlength=5).tolist() == [768, 512, 256, 0, 0]
    assert sampler.summary() == {"batch_size": 256, "small_clusters": "skip", "drop_last": True, "clusters": 5,
                                 "clusters_used": 3, "samples": 2170, "samples_used": 1536, "batches": 6,
                                 "mixed_batches": 0, "cluster_sizes": sizes}
    # every epoch reshuffles within the clusters: over epochs the remainders rotate through
    seen = set()
    for epoch in range(20):
        seen |= set(np.concatenate(sampler.batches(epoch)).tolist())
    assert len(seen) > 0.95 * (1000 + 700 + 300)
    # the old default (merge the small clusters, top up partial batches) mixed clusters: one batch in ten
    old = ClusterBatchSampler(ids, 256, seed=0, small="merge", drop_last=False)
    assert old.summary()["mixed_batches"] == 1 and len(old) == 10


def test_stage_clusters_combine_every_earlier_stage():
    """Stage s+1 draws each batch from one combined cluster of stages 0..s, not of stage s alone."""
    rng = np.random.default_rng(4)
    stage0, stage1 = rng.integers(0, 2, 4000), rng.integers(0, 2, 4000)
    sampler = ClusterBatchSampler([stage0, stage1], 100, seed=0)
    assert sampler.summary()["clusters"] == 4
    for b in sampler:
        assert len(set(zip(stage0[b], stage1[b]))) == 1


def test_cluster_batch_sampler_with_stages_and_a_torch_dataloader():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    stage1, stage2 = rng.integers(0, 3, 600), rng.integers(0, 2, 600)
    sampler = ClusterBatchSampler([stage1, stage2], 20, seed=3)
    ds = torch.utils.data.TensorDataset(torch.arange(600))
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler)
    sampler.set_epoch(2)
    seen = []
    for (idx,) in loader:
        idx = idx.numpy()
        assert len(set(zip(stage1[idx], stage2[idx]))) == 1
        seen.append(idx)
    assert len(seen) == len(sampler)
    assert [b.tolist() for b in seen] == [b.tolist() for b in sampler.batches(2)]


# --------------------------------------------------------------------------------------------------
# show


def test_show_writes_png_grids(tmp_path, on_stl):
    S.build({"generator": "styled_mnist", "n_train": 200, "n_val": 10, "n_test": 20, "seed": 0}, tmp_path / "sm", tmp_path)
    for by in ("y", "style"):
        out = show(tmp_path / "sm", tmp_path / f"sm_{by}.png", by=by, per_group=4)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 2000
    splits, meta = on_stl
    dataset_dir.save(tmp_path / "stl", splits, meta)
    out = show(tmp_path / "stl", tmp_path / "stl.png", split="test", by="background", per_group=3)
    assert out.stat().st_size > 2000
    G.build({"generator": "gaussian_mixture", "n_steps": 10, "batch_size": 20, "n_val": 10, "n_test": 10,
             "mi_samples": 100}, tmp_path / "gm", tmp_path)
    assert show(tmp_path / "gm", tmp_path / "gm.png").stat().st_size > 2000
    with pytest.raises(ValueError, match="style"):
        show(tmp_path / "sm", tmp_path / "bad.png", by="colour")
    assert not (tmp_path / "bad.png").exists()
    assert json.loads((tmp_path / "sm" / "meta.json").read_text())["generator"] == "styled_mnist"

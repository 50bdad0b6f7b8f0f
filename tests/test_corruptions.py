"""The CIFAR-10-C corruption suite: shapes, determinism, severity ordering, CIFAR-10-C loading."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from clbench.data import dataset_dir
from clbench.data.corruptions import (
    CORRUPTIONS,
    PARAMS,
    SEVERITIES,
    corrupt,
    corrupt_dataset,
    frost_texture,
    load_cifar10c,
    load_cifar_c,
)
from clbench.data.dataset_dir import DatasetError


def natural_like(n: int, size: int = 32, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth images with edges and texture (blurs and noise act on them like on photos)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, channels, size, size), dtype=np.uint8)
    for i in range(n):
        for c in range(channels):
            a, b, ph = rng.uniform(1, 4, 3)
            img = 0.5 + 0.08 * np.sin(2 * np.pi * (a * xx + b * yy) + ph)
            img += ndimage.gaussian_filter(rng.standard_normal((size, size)), size / 20) * 0.8
            r0, c0 = rng.integers(0, size // 2, 2)
            img[r0 : r0 + size // 3, c0 : c0 + size // 3] = rng.uniform(0.05, 0.95)
            out[i, c] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return out


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return natural_like(24)


@pytest.fixture(scope="module")
def corrupted(images) -> dict:
    return {(n, s): corrupt(images, n, s, seed=3) for n in CORRUPTIONS for s in SEVERITIES}


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def test_names_and_parameters():
    assert len(CORRUPTIONS) == 15 and len(set(CORRUPTIONS)) == 15
    assert set(PARAMS) == set(CORRUPTIONS)
    assert all(len(PARAMS[n]) == 5 for n in CORRUPTIONS)
    assert SEVERITIES == (1, 2, 3, 4, 5)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_shape_dtype_determinism_and_change(name, images, corrupted):
    for s in SEVERITIES:
        out = corrupted[(name, s)]
        assert out.shape == images.shape and out.dtype == np.uint8
        assert np.array_equal(out, corrupt(images, name, s, seed=3)), f"{name} s{s} is not deterministic"
        assert mad(out, images) > 0.2, f"{name} s{s} barely changes the images"
    # the input is never modified in place
    assert np.array_equal(images, natural_like(24))


def corr_loss(a: np.ndarray, b: np.ndarray) -> float:
    """1 - Pearson correlation with the clean image (mean over images): structure destroyed."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    a -= a.mean(1, keepdims=True)
    b -= b.mean(1, keepdims=True)
    return float(np.mean(1 - (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))))


# how "degradation" is measured: pixel distance, or loss of correlation where the corruption
# blends in a bright layer (frost, snow) or moves pixels along random directions (motion, glass)
METRIC = {n: mad for n in CORRUPTIONS} | {n: corr_loss for n in ("motion_blur", "snow", "frost", "glass_blur")}


@pytest.mark.parametrize("name", [n for n in CORRUPTIONS if n != "elastic_transform"])
def test_severity_5_degrades_more_than_1(name, images, corrupted):
    m = METRIC[name]
    assert m(corrupted[(name, 5)], images) > m(corrupted[(name, 1)], images)


def test_elastic_severities_all_distinct(images, corrupted):
    # Hendrycks' CIFAR parameters give severity 1 the largest affine jitter (0.08 * 32 px) and no
    # elastic field, later severities less affine and more elastic displacement, so neither pixel
    # distance nor correlation grows with severity; check that every level is its own transform.
    outs = [corrupted[("elastic_transform", s)] for s in SEVERITIES]
    for i in range(5):
        for j in range(i + 1, 5):
            assert mad(outs[i], outs[j]) > 1.0


MONOTONE = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "pixelate", "jpeg_compression",
)


@pytest.mark.parametrize("name", MONOTONE)
def test_monotone_in_severity(name, images, corrupted):
    d = [METRIC[name](corrupted[(name, s)], images) for s in SEVERITIES]
    assert all(a < b for a, b in zip(d, d[1:])), f"{name}: {d}"


RANDOM = ("gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow", "frost", "fog", "elastic_transform")


@pytest.mark.parametrize("name", RANDOM)
def test_seed_changes_random_corruptions(name, images, corrupted):
    assert not np.array_equal(corrupt(images, name, 3, seed=4), corrupted[(name, 3)])


@pytest.mark.parametrize("name", ("brightness", "contrast", "defocus_blur", "zoom_blur", "pixelate", "jpeg_compression"))
def test_deterministic_corruptions_ignore_seed(name, images, corrupted):
    assert np.array_equal(corrupt(images, name, 2, seed=99), corrupted[(name, 2)])


def test_noise_statistics_match_parameters():
    flat = np.full((4, 3, 32, 32), 128, dtype=np.uint8)
    for s, c in zip(SEVERITIES, PARAMS["gaussian_noise"]):
        out = corrupt(flat, "gaussian_noise", s, seed=0).astype(np.float64) / 255
        assert abs(out.std() - c) < 0.01
    for s, c in zip(SEVERITIES, PARAMS["impulse_noise"]):
        out = corrupt(flat, "impulse_noise", s, seed=0)
        assert abs(np.isin(out, (0, 255)).mean() - c) < 0.01
    for s, c in zip(SEVERITIES, PARAMS["contrast"]):
        out = corrupt(natural_like(2), "contrast", s, seed=0).astype(np.float64)
        ref = natural_like(2).astype(np.float64)
        ratio = out.std(axis=(2, 3)) / ref.std(axis=(2, 3))
        assert np.allclose(ratio, c, atol=0.02)


def test_grayscale_other_sizes_and_chunks(monkeypatch):
    gray = natural_like(3, size=28, channels=1)
    big = natural_like(2, size=64)
    rect = natural_like(2, size=40)[:, :, :, :30]
    for name in CORRUPTIONS:
        for x in (gray, big, rect):
            out = corrupt(x, name, 3, seed=1)
            assert out.shape == x.shape and out.dtype == np.uint8
            assert not np.array_equal(out, x), name
    # chunking keeps results deterministic and independent of the chunk size for deterministic corruptions
    import clbench.data.corruptions as C

    x = natural_like(10)
    full = corrupt(x, "contrast", 4)
    monkeypatch.setattr(C, "_PIXEL_BUDGET", 32 * 32 * 3)
    assert np.array_equal(corrupt(x, "contrast", 4), full)
    chunked = corrupt(x, "gaussian_noise", 2, seed=5)
    assert np.array_equal(chunked, corrupt(x, "gaussian_noise", 2, seed=5))


def test_bad_arguments(images):
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(images, "speckle", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(images, "fog", 6)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(images.astype(np.float32), "fog", 1)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(images[0], "fog", 1)
    assert corrupt(images[:0], "fog", 1).shape == (0, 3, 32, 32)


def test_frost_texture_is_deterministic_and_frosty():
    a, b = frost_texture(0, 1.0), frost_texture(0, 1.0)
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape == (192, 256, 3)
    assert not np.array_equal(a, frost_texture(1, 1.0))
    assert 60 < a.mean() < 170 and a[..., 2].mean() > a[..., 0].mean()  # bright, blue-white


def test_module_does_not_import_torch():
    code = "import sys, clbench.data.corruptions as c; c.corrupt(__import__('numpy').zeros((1,3,8,8),'uint8'),'fog',1); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------------------- CIFAR-10-C


def write_cifar10c(folder, names=("fog", "contrast"), per=4):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    labels = np.tile(np.arange(per) % 10, 5).astype(np.uint8)
    np.save(folder / "labels.npy", labels)
    for name in names:
        x = rng.integers(0, 256, (5 * per, 32, 32, 3), dtype=np.uint8)
        for s in range(5):
            x[s * per : (s + 1) * per, 0, 0, 0] = s + 1  # severity marker
        np.save(folder / f"{name}.npy", x)
    return labels


@pytest.mark.parametrize("nested", [False, True])
def test_load_cifar10c(tmp_path, nested):
    folder = tmp_path / "CIFAR-10-C" if nested else tmp_path
    write_cifar10c(folder)
    for s in SEVERITIES:
        x, y = load_cifar10c(tmp_path, "fog", s)
        assert x.shape == (4, 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64
        assert (x[:, 0, 0, 0] == s).all()
        assert np.array_equal(y, np.arange(4))


def test_load_cifar10c_errors(tmp_path):
    write_cifar10c(tmp_path)
    with pytest.raises(DatasetError) as e:
        load_cifar10c(tmp_path, "snow", 1)
    msg = str(e.value)
    assert str(tmp_path / "snow.npy") in msg and "labels.npy" in msg and "zenodo" in msg
    (tmp_path / "frost.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DatasetError, match="frost.npy"):
        load_cifar10c(tmp_path, "frost", 1)
    np.save(tmp_path / "pixelate.npy", np.zeros((7, 32, 32, 3), np.uint8))
    with pytest.raises(DatasetError, match="pixelate.npy"):
        load_cifar10c(tmp_path, "pixelate", 1)
    with pytest.raises(ValueError):
        load_cifar10c(tmp_path, "fog", 0)


def test_corrupt_dataset_generated_and_official(tmp_path):
    src = tmp_path / "src"
    x = natural_like(4)
    test = {"x": x, "y": np.array([0, 1, 2, 3]), "id": np.array([200, 201, 202, 203]), "factor_style": np.zeros(4, np.int64)}
    dataset_dir.save(
        src,
        {"train": {"x": x, "y": np.zeros(4, np.int64), "id": np.arange(4)}, "test": test},
        {"name": "cifar10", "generator": "torchvision", "source": "torchvision:cifar10", "id_offsets": {"train": 0, "test": 200}},
    )
    meta = corrupt_dataset(src, tmp_path / "gen", "fog", 2, seed=1)
    out = dataset_dir.load(tmp_path / "gen", "test")
    assert meta["corruption"]["origin"] == "clbench.data.corruptions" and meta["sizes"] == {"test": 4}
    assert np.array_equal(out["x"], corrupt(x, "fog", 2, seed=1))
    assert np.array_equal(out["y"], test["y"]) and np.array_equal(out["factor_style"], test["factor_style"])

    root = tmp_path / "c10c"
    write_cifar10c(root, names=("fog",))
    meta = corrupt_dataset(src, tmp_path / "off", "fog", 3, official_root=root)
    out = dataset_dir.load(tmp_path / "off", "test")
    assert meta["corruption"]["origin"] == "official CIFAR-10-C"
    assert (out["x"][:, 0, 0, 0] == 3).all()


def test_corrupt_dataset_official_cifar100c(tmp_path):
    """CIFAR-100-C has CIFAR-10-C's layout; a CIFAR-100 test split takes it, a CIFAR-10 one does not."""
    src = tmp_path / "src"
    x = natural_like(4)
    test = {"x": x, "y": np.array([0, 1, 2, 3]), "id": np.array([50, 51, 52, 53])}
    dataset_dir.save(src, {"train": {"x": x, "y": np.zeros(4, np.int64), "id": np.arange(4)}, "test": test},
                     {"name": "cifar100", "source": "torchvision:cifar100", "id_offsets": {"train": 0, "test": 50}})
    root = tmp_path / "c100c"
    write_cifar10c(root / "CIFAR-100-C", names=("snow",))
    x2, _ = load_cifar_c(root, "snow", 2, "CIFAR-100-C")
    assert (x2[:, 0, 0, 0] == 2).all()
    meta = corrupt_dataset(src, tmp_path / "off", "snow", 4, official_root=root)
    assert meta["corruption"]["origin"] == "official CIFAR-100-C"
    assert (dataset_dir.load(tmp_path / "off", "test")["x"][:, 0, 0, 0] == 4).all()
    with pytest.raises(DatasetError, match="CIFAR-100-C.*3555552"):
        load_cifar_c(root, "fog", 1, "CIFAR-100-C")


@pytest.mark.parametrize("shape", [(3, 1, 28, 28), (2, 3, 24, 24), (2, 3, 64, 64)])
def test_every_corruption_at_other_sizes(shape):
    """Parameters scaled from CIFAR's 32 px must work at MNIST's 28 px (grey) and other sizes."""
    x = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    for name in CORRUPTIONS:
        for severity in (1, 5):
            out = corrupt(x, name, severity, seed=0)
            assert out.shape == x.shape and out.dtype == np.uint8, (name, severity)


def test_workflow_lists_the_same_corruptions_as_the_package():
    """clbench.workflow repeats the 15 names (planning the workflow must not import SciPy); keep them in sync."""
    from clbench.data.corruptions import CORRUPTIONS
    from clbench.workflow import CORRUPTION_NAMES

    assert list(CORRUPTION_NAMES) == list(CORRUPTIONS)

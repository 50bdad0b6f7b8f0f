"""The batched augmentation recipes: the same recipes as torchvision's per-image transforms, drawn
per image from a stream seeded by (seed, epoch, step, rank)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torchvision import transforms as tv1
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from clbench.data import augment
from clbench.data.augment import DeviceAugment, RECIPES, pipeline, step_seed

N = 4000  # draws per statistic: a proportion's standard error is <= 0.008


def binomial_ok(hits: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(hits / n - p) <= sigmas * np.sqrt(p * (1 - p) / n)


def ramps(n: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images whose pixel value is 8 x their column (x ramp) or 8 x their row (y ramp)."""
    coord = (torch.arange(size) * 8).to(torch.uint8)
    x = coord.view(1, 1, 1, size).expand(n, 1, size, size).contiguous()
    return x, x.transpose(-1, -2).contiguous()


def crop_boxes(name: str, n: int, seed: int, size: int = 32):
    """Crop width, height and flip of ``n`` draws of a recipe, read from its output pixels.

    The ramps are linear, so the bilinear resize keeps them linear: interior output pixels j=8 and
    j=24 sit 16 * w / size source pixels apart. The same seed draws the same boxes for both ramps.
    """
    aug = DeviceAugment(name, size, 1)
    rx, ry = ramps(n, size)
    ox, oy = (aug(r, "cpu", seed)[:, 0] * 255 / 8 for r in (rx, ry))
    dx = ox[:, size // 2, 3 * size // 4] - ox[:, size // 2, size // 4]
    dy = oy[:, 3 * size // 4, size // 2] - oy[:, size // 4, size // 2]
    w, h = (torch.round(d.abs() * size / (size // 2)).numpy() for d in (dx, dy))
    return w, h, (dx < 0).numpy()


def torchvision_boxes(scale, n: int, size: int = 32):
    torch.manual_seed(0)
    img = torch.zeros(1, size, size)
    boxes = np.array([tv1.RandomResizedCrop.get_params(img, list(scale), [3 / 4, 4 / 3])[2:] for _ in range(n)])
    return boxes[:, 1], boxes[:, 0]  # w, h


@pytest.mark.parametrize("name", ["simclr", "supcon", "crop_flip"])
def test_crop_scale_and_ratio_follow_the_recipe_and_match_torchvision(name):
    r = RECIPES[name]
    w, h, _ = crop_boxes(name, N, seed=1)
    area, ratio = w * h / 32**2, w / h
    # integer box sides: scale and ratio may miss the bounds by the rounding of one side
    assert area.min() >= r.crop_scale[0] * 0.8 and area.max() <= 1.0
    assert ratio.min() >= r.crop_ratio[0] * 0.85 and ratio.max() <= r.crop_ratio[1] / 0.85
    assert np.quantile(area, 0.02) < r.crop_scale[0] + 0.05 and np.quantile(area, 0.98) > 0.9
    tw, th = torchvision_boxes(r.crop_scale, N)
    assert stats.ks_2samp(area, tw * th / 32**2).pvalue > 1e-3
    assert stats.ks_2samp(np.log(ratio), np.log(tw / th)).pvalue > 1e-3
    other = RECIPES["supcon" if name == "simclr" else "simclr"].crop_scale
    ow, oh = torchvision_boxes(other, N)
    assert stats.ks_2samp(area, ow * oh / 32**2).pvalue < 1e-6  # the comparison tells the recipes apart


@pytest.mark.parametrize("name", ["simclr", "supcon", "crop_flip"])
def test_flip_probability(name):
    _, _, flipped = crop_boxes(name, N, seed=2)
    assert binomial_ok(int(flipped.sum()), N, RECIPES[name].flip_p)


def test_crop_pixels_equal_torchvision_resized_crop_for_the_drawn_boxes():
    crop = DeviceAugment("simclr", 32, 3).ops[0]
    x = torch.rand(64, 3, 32, 32)
    with torch.random.fork_rng():
        torch.manual_seed(3)
        out = crop(x)
    box = crop._params["src"].long()  # corners (x, y), inclusive
    for i in range(len(x)):
        left, top = int(box[i, 0, 0]), int(box[i, 0, 1])
        w, h = int(box[i, 1, 0]) - left + 1, int(box[i, 3, 1]) - top + 1
        ref = TF.resized_crop(x[i], top, left, h, w, [32, 32], antialias=True)
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)


def colour_jitter_draws(n: int, seed: int):
    aug = DeviceAugment("simclr", 16, 3)
    jitter = next(op for op in aug.ops if type(op).__name__ == "ColorJitter")
    x = torch.rand(n, 3, 16, 16)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        out = jitter(x)
    return x, out, jitter._params


def test_jitter_strengths_order_and_probability_follow_the_recipe():
    r = RECIPES["simclr"]
    _, _, p = colour_jitter_draws(N, seed=4)
    b, c, s, hue = r.jitter
    for key, (lo, hi) in {"brightness_factor": (1 - b, 1 + b), "contrast_factor": (1 - c, 1 + c),
                          "saturation_factor": (1 - s, 1 + s), "hue_factor": (-hue, hue)}.items():
        v = p[key].numpy()
        assert v.min() >= lo and v.max() <= hi, key
        assert stats.kstest(v, stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3, key
    assert binomial_ok(int((p["batch_prob"] > 0.5).sum()), N, r.jitter_p)
    order = p["order"]
    assert (order.sort(dim=1).values == torch.arange(4)).all()  # a permutation per image
    for slot in range(4):
        counts = np.bincount(order[:, slot].numpy(), minlength=4)
        assert stats.chisquare(counts).pvalue > 1e-3
    assert len({tuple(o) for o in order.tolist()}) == 24  # every order occurs, not one per batch


def test_jitter_pixels_equal_torchvision_in_the_drawn_order():
    x, out, p = colour_jitter_draws(300, seed=5)
    fns = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    keys = ["brightness_factor", "contrast_factor", "saturation_factor", "hue_factor"]
    applied = p["batch_prob"] > 0.5
    assert 0 < int(applied.sum()) < len(x)
    for i in range(len(x)):
        ref = x[i]
        if applied[i]:
            for k in p["order"][i].tolist():
                ref = fns[k](ref, float(p[keys[k]][i]))
        torch.testing.assert_close(out[i], ref, atol=1e-3, rtol=0)


def test_hue_rotation_equals_torchvision():
    x = torch.rand(40, 3, 8, 8)
    x[:5] = x[:5, :1]  # grey pixels have no hue
    shift = torch.linspace(-0.5, 0.5, 40)
    ref = torch.stack([TF.adjust_hue(x[i], float(shift[i])) for i in range(40)])
    torch.testing.assert_close(augment.adjust_hue(x, shift), ref, atol=1e-5, rtol=0)


def test_grayscale_and_jitter_application_rates_in_pixels():
    """On a uniformly coloured image, grey output means the greyscale op ran; any other change, jitter."""
    r = RECIPES["simclr"]
    colour = torch.tensor([200, 90, 30], dtype=torch.uint8).view(1, 3, 1, 1)
    out = DeviceAugment("simclr", 16, 3)(colour.expand(N, 3, 16, 16), "cpu", step_seed(0, 0, 6))
    pixel = out[:, :, 8, 8]
    grey = (pixel.max(1).values - pixel.min(1).values) < 1e-6
    assert binomial_ok(int(grey.sum()), N, r.grayscale_p)
    changed = (pixel[~grey] - colour.view(1, 3).float() / 255).abs().amax(1) > 1e-3
    assert binomial_ok(int(changed.sum()), int((~grey).sum()), r.jitter_p)


def test_digits_affine_ranges_and_pixels_equal_torchvision():
    r = RECIPES["digits"]
    aug = DeviceAugment("digits", 28, 1)
    (affine,) = aug.ops
    x = torch.randint(0, 256, (N, 1, 28, 28), dtype=torch.uint8)
    out = aug(x, "cpu", step_seed(0, 0, 7))
    p = affine._params
    angle, scale, shift = p["angle"].numpy(), p["scale"][:, 0].numpy(), p["translations"].numpy()
    assert np.abs(angle).max() <= r.affine_degrees
    assert stats.kstest(angle, stats.uniform(-r.affine_degrees, 2 * r.affine_degrees).cdf).pvalue > 1e-3
    assert stats.kstest(scale, stats.uniform(r.affine_scale[0], np.diff(r.affine_scale)[0]).cdf).pvalue > 1e-3
    assert np.array_equal(p["scale"][:, 0], p["scale"][:, 1]) and (p["shear_x"] == 0).all()
    limit = r.affine_translate * 28  # torchvision: round(uniform(-limit, limit)) pixels
    assert np.array_equal(shift, np.round(shift)) and np.abs(shift).max() <= round(limit)
    counts = np.bincount((shift[:, 0] + 3).astype(int), minlength=7)
    expected = np.diff(np.clip(np.arange(-3.5, 4.5), -limit, limit)) / (2 * limit) * N
    assert stats.chisquare(counts, expected).pvalue > 1e-3
    for i in range(100):
        ref = TF.affine(x[i], angle=float(angle[i]), translate=[int(shift[i, 0]), int(shift[i, 1])],
                        scale=float(scale[i]), shear=[0.0, 0.0], interpolation=v2.InterpolationMode.NEAREST)
        assert torch.equal((out[i] * 255).round().to(torch.uint8), ref)


def test_crop_flip_is_the_supcon_linear_evaluation_transform():
    """SupCon's main_linear.py: RandomResizedCrop(size, scale=(0.2, 1.)) and RandomHorizontalFlip(), nothing else."""
    r = RECIPES["crop_flip"]
    assert (r.crop_scale, r.crop_ratio, r.flip_p) == ((0.2, 1.0), (3 / 4, 4 / 3), 0.5)
    assert r.jitter is None and r.grayscale_p == 0 and not (r.affine_degrees or r.affine_translate or r.affine_scale)
    assert [type(op).__name__ for op in DeviceAugment("crop_flip", 32, 3).ops] == ["ResizedCrop", "RandomHorizontalFlip"]
    colour = torch.tensor([200, 90, 30], dtype=torch.uint8).view(1, 3, 1, 1).expand(500, 3, 16, 16)
    out = DeviceAugment("crop_flip", 16, 3)(colour, "cpu", step_seed(0, 0, 10))
    torch.testing.assert_close(out, colour.float() / 255, atol=1e-6, rtol=0)  # no colour op ever applies


def test_one_channel_images_get_crop_and_flip_only():
    assert [type(op).__name__ for op in DeviceAugment("simclr", 32, 1).ops] == ["ResizedCrop", "RandomHorizontalFlip"]
    assert [type(op).__name__ for op in DeviceAugment("simclr", 32, 3).ops] == [
        "ResizedCrop", "RandomHorizontalFlip", "ColorJitter", "RandomGrayscale"]


def test_every_view_of_every_sample_draws_its_own_parameters():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (1, 1, 3, 32, 32), dtype=torch.uint8).expand(500, 2, 3, 32, 32)  # one image
    out = DeviceAugment("simclr", 32, 3)(x, "cpu", step_seed(0, 0, 8))
    assert len(torch.unique(out.reshape(1000, -1), dim=0)) > 990
    w0, h0, _ = crop_boxes("simclr", 2000, seed=9)
    assert abs(np.corrcoef(w0[0::2] * h0[0::2], w0[1::2] * h0[1::2])[0, 1]) < 0.1  # consecutive draws independent


def test_draws_are_a_function_of_seed_epoch_step_and_rank():
    aug = DeviceAugment("simclr", 32, 3)
    x = torch.randint(0, 256, (16, 2, 3, 32, 32), dtype=torch.uint8)
    ref = aug(x, "cpu", step_seed(1, 2, 3, 0))
    torch.manual_seed(123)  # the global stream does not matter ...
    assert torch.equal(aug(x, "cpu", step_seed(1, 2, 3, 0)), ref)
    for other in [(0, 2, 3, 0), (1, 0, 3, 0), (1, 2, 4, 0), (1, 2, 3, 1)]:
        assert not torch.equal(aug(x, "cpu", step_seed(*other)), ref), other
    torch.manual_seed(7)  # ... and is not advanced: the model's own draws stay where they were
    aug(x, "cpu", step_seed(1, 2, 3, 0))
    after = torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(torch.rand(3), after)
    seeds = {step_seed(s, e, t, r) for s in range(3) for e in range(3) for t in range(20) for r in range(2)}
    assert len(seeds) == 3 * 3 * 20 * 2 and all(0 <= v < 2**63 for v in seeds)


def test_output_is_float_in_unit_range_with_the_input_layout():
    x = torch.randint(0, 256, (8, 2, 3, 32, 32), dtype=torch.uint8)
    for name in RECIPES:
        out = DeviceAugment(name, 32, 3)(x, torch.device("cpu"), 0)
        assert out.shape == x.shape and out.dtype == torch.float32
        assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    torch.testing.assert_close(DeviceAugment("none", 32, 3)(x, "cpu", 0), x.float() / 255, atol=0, rtol=0)


def test_pipeline_crops_path_indexed_images_in_the_loader_and_the_rest_on_the_device():
    in_loader, on_device = pipeline("simclr", 32, 3)
    assert in_loader is None and type(on_device.ops[0]).__name__ == "ResizedCrop"
    in_loader, on_device = pipeline("simclr", 32, 3, path_indexed=True)
    assert isinstance(in_loader, v2.RandomResizedCrop) and in_loader.size == (32, 32)
    assert in_loader.scale == RECIPES["simclr"].crop_scale
    assert [type(op).__name__ for op in on_device.ops] == ["RandomHorizontalFlip", "ColorJitter", "RandomGrayscale"]
    assert in_loader(torch.zeros(3, 80, 60, dtype=torch.uint8)).shape == (3, 32, 32)
    in_loader, on_device = pipeline("digits", 28, 1, path_indexed=True)
    assert in_loader is None and len(on_device.ops) == 1
    with pytest.raises(ValueError, match="simclr"):
        pipeline("simclrr", 32, 3)


def test_preview_grid_writes_one_row_per_recipe_and_image(tmp_path):
    from matplotlib.image import imread

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 3, 24, 24), dtype=np.uint8)
    one = augment.preview_grid(images, tmp_path / "one.png", ["simclr"], views=6)
    three = augment.preview_grid(images, tmp_path / "three.png", ["digits", "simclr", "supcon"], views=6)
    a, b = imread(one), imread(three)
    assert a.ndim == 3 and b.shape[0] > 2 * a.shape[0] and abs(b.shape[1] - a.shape[1]) < 0.2 * a.shape[1]
    again = augment.preview_grid(images, tmp_path / "again.png", ["simclr"], views=6)
    assert np.array_equal(imread(again), a)  # seeded: the same views every time
    with pytest.raises(ValueError, match="N, C, H, W"):
        augment.preview_grid(images[0], tmp_path / "bad.png")


def test_workflow_names_the_same_recipes():
    """clbench.workflow plans the augmented-views preview without importing torch: same names."""
    from clbench.workflow import AUGMENT_RECIPES

    assert set(AUGMENT_RECIPES) == set(RECIPES) - {"none"}


def test_preview_dataset_draws_each_recipe_from_the_dataset(tmp_path):
    from clbench.data.augment import preview_dataset
    from clbench.data.build import build_dataset

    data = build_dataset({"generator": "trifeature", "image_size": 32, "n_train": 20, "n_val": 5, "n_test": 5},
                         tmp_path / "tri", tmp_path / "res")
    out = preview_dataset(tmp_path / "tri", tmp_path / "views.png", ["simclr", "digits"], images=2)
    import matplotlib.image

    img = matplotlib.image.imread(out)
    assert img.shape[0] > 100 and img.shape[1] > 300  # 2 recipes x 2 images rows, 9 columns
    with pytest.raises(ValueError, match="unknown augmentation 'blur'"):
        preview_dataset(tmp_path / "tri", tmp_path / "x.png", ["blur"])
    assert data["sizes"]["train"] == 20

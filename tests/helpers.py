"""Small learnable datasets in the dataset-directory format, for tests that must not depend on a generator."""

import numpy as np

from clbench.data import dataset_dir


def quadrant_dataset(path, n_train=256, n_val=64, n_test=64, size=16, seed=0, channels=1):
    """Class k = a bright square in quadrant k on noise: learnable in a couple of epochs."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in [("train", n_train), ("val", n_val), ("test", n_test)]:
        y = rng.integers(0, 4, n)
        x = rng.integers(0, 80, (n, channels, size, size)).astype(np.uint8)
        h = size // 2
        for k in range(4):
            r, c = divmod(k, 2)
            x[y == k, :, r * h + 2 : r * h + h - 2, c * h + 2 : c * h + h - 2] = 230
        noise = rng.integers(0, 60, x.shape).astype(np.uint8)
        splits[split] = {"x": x, "x2": np.maximum(x, noise), "y": y.astype(np.int64), "factor_style": rng.integers(0, 2, n)}
    return dataset_dir.save(path, splits, {"name": "quadrants", "classes": ["tl", "tr", "bl", "br"],
                                           "factors": {"style": ["a", "b"]}, "seed": seed})

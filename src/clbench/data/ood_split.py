"""Which styles (domains) of each class an OOD-k split shows in training.

CLEAR's OOD-k studies (Styled-MNIST, PACS, CelebA) train on k of the styles of each class and test on
the others. The official code draws each class's k styles at random (``generate_style_dict``:
``np.random.choice`` per class); ``cyclic`` is a balanced alternative in which every style is seen for
some class. Both are nested in k: the styles seen at k are among those seen at k + 1.
"""

from __future__ import annotations

import numpy as np

from clbench.data.imagefolder import rng_for

OOD_DESIGNS = ("random", "cyclic")


def seen_styles(n_classes: int, n_styles: int, k: int, seed: int, design: str = "random") -> list[list[int]]:
    """For each class, the sorted indices of the ``k`` styles seen in training.

    ``random``: one random order of the styles per class, its first k (the official draw); ``cyclic``: a
    seeded shuffle of styles and classes, class ranked r seeing styles r .. r + k - 1 (mod n_styles).
    """
    if not 1 <= k <= n_styles - 1:
        raise ValueError(f"OOD-k needs 1 <= k <= {n_styles - 1} (one style unseen per class), got k={k}")
    if design == "random":
        order = np.argsort(rng_for(seed, 8).random((n_classes, n_styles)), axis=1)
        return [sorted(int(s) for s in order[c, :k]) for c in range(n_classes)]
    if design != "cyclic":
        raise ValueError(f"unknown ood_design {design!r}; expected one of {list(OOD_DESIGNS)}")
    rng = rng_for(seed, 7)
    style_order = rng.permutation(n_styles)
    class_rank = rng.permutation(n_classes)
    return [sorted(int(style_order[(class_rank[c] + j) % n_styles]) for j in range(k)) for c in range(n_classes)]

"""Image-caption datasets for CLIP: training pairs and an MMVP-style pair benchmark as the test split.

Every split is a dataset directory split (:mod:`clbench.data.dataset_dir`) with, besides ``x``
(or ``path``) and ``y``:

- ``train`` / ``val``: the caption of each image, as ``caption`` (unicode), or, for a path index
  without it, the ``.txt`` file beside each image (img2dataset's ``files`` layout, read by
  :class:`CaptionFiles`);
- ``test``: the pair benchmark. Consecutive rows ``2i, 2i+1`` form pair ``i``; ``qid`` numbers the
  rows from 1 (image 1 of a pair has an odd qid), ``statement`` holds each row's statement (true of
  its own image), ``y`` the pattern index, ``pattern_names`` the patterns' names (also
  ``meta["patterns"]``) and ``prompt`` the text put before each statement ("a photo of " for MMVP).

Generators:

``trifeature_captions`` (tiny, offline): Trifeature images (:mod:`clbench.data.trifeature`) of the
first ``n_values`` shapes, colours and textures, captioned "a red square with stripes". The test
split is the Trifeature analogue of MMVP-VLM: per attribute (one pattern each) ``n_pairs`` pairs of
images with identical geometry that differ in that attribute only, each with its own caption as
the statement.

``cc12m_mmvp`` (paper scale): CC12M from an img2dataset ``files`` folder (``root``:
``00000/000000001.jpg`` + ``000000001.txt``; or ``url_list`` + an installed ``img2dataset`` to
download it into ``resources/cc12m``) as train / val, and MMVP-VLM (``MMVP/MMVP_VLM`` on the Hugging
Face hub: ``Questions.csv`` and ``MLLM_VLM Images/<pattern>/<qid>.jpg``; ``mmvp_root``, or
``download: true`` for a ``huggingface_hub`` snapshot into ``resources/mmvp_vlm``) as test. Both
stay on disk: the directory is a path index (``storage: paths``) whose ``images/`` links to the two
folders. Its images are read as the official code's ``preprocess_val`` reads them (``image_fit:
shortest_side``, open_clip's eval transform: a bicubic resize of the short side, then a centre crop),
for MMVP and for the clustering between stages; training views are :func:`clip_train_view` of the full
image (open_clip's training transform).
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from clbench.data import dataset_dir
from clbench.data.embedded import rng_for
from clbench.errors import DatasetError

log = logging.getLogger(__name__)

MMVP_PATTERNS = (
    "Orientation and Direction", "Presence of Specific Features", "State and Condition", "Quantity and Count",
    "Positional and Relational Context", "Color and Appearance", "Structural Characteristics", "Texts",
    "Viewpoint and Perspective",
)
MMVP_IMAGES = "MLLM_VLM Images"
MMVP_REPO = "MMVP/MMVP_VLM"
PROMPT = "a photo of "  # MMVP.ipynb: text = 'a photo of ' + statement

TEXTURE_PHRASES = {"solid": "no pattern", "stripes": "stripes", "grid": "a grid", "hexgrid": "a hexagonal grid",
                   "dots": "dots", "noise": "noise", "triangles": "triangles", "zigzags": "zigzags", "rain": "rain",
                   "pluses": "pluses"}
TRIFEATURE_PATTERNS = ("colour", "shape", "texture")


# ---- the tiny Trifeature analogue ------------------------------------------------------------------


def trifeature_caption(shape: int, colour: int, texture: int) -> str:
    from clbench.data.trifeature import COLOURS, SHAPES, TEXTURES

    return f"a {COLOURS[colour]} {SHAPES[shape]} with {TEXTURE_PHRASES[TEXTURES[texture]]}"


def _geometry(rng: np.random.Generator, n: int, size: int) -> dict:
    # the placement trifeature.generate draws: radius, a centre that keeps the rotated shape inside, angle
    radius = rng.uniform(0.24, 0.34, n) * size
    margin = 1.15 * radius[:, None]
    centre = margin + rng.random((n, 2)) * (size - 2 * margin)
    return {"radius": radius, "centre": centre, "angle": rng.uniform(0, 2 * np.pi, n),
            "noise_phase": rng.integers(0, 1 << 16, n)}


def _render(factors: np.ndarray, geometry: dict, size: int) -> np.ndarray:
    from clbench.data.trifeature import render

    return render(factors[:, 0], factors[:, 1], factors[:, 2], geometry["angle"], geometry["centre"],
                  geometry["radius"], size, None, geometry["noise_phase"])


def _captioned_split(factors: np.ndarray, geometry: dict, size: int) -> dict:
    shape, colour, texture = factors.T
    return {"x": _render(factors, geometry, size), "y": shape.copy(), "factor_shape": shape,
            "factor_colour": colour, "factor_texture": texture,
            "caption": np.array([trifeature_caption(*f) for f in factors], dtype=np.str_)}


def trifeature_pairs(n_values: int, n_pairs: int, size: int, seed: int) -> dict:
    """The pair benchmark: per attribute of :data:`TRIFEATURE_PATTERNS`, ``n_pairs`` pairs that differ
    in that attribute only (same geometry, same other attributes); rows in pattern order."""
    rng = rng_for(seed, "trifeature_captions", "pairs")
    rows, geometry = [], []
    for pattern in TRIFEATURE_PATTERNS:
        c = ("shape", "colour", "texture").index(pattern)  # the factor columns
        base = rng.integers(0, n_values, (n_pairs, 3))
        other = base.copy()
        other[:, c] = (base[:, c] + rng.integers(1, n_values, n_pairs)) % n_values  # always a different value
        rows.append(np.stack([base, other], 1).reshape(-1, 3))
        g = _geometry(rng, n_pairs, size)
        geometry.append({k: np.repeat(v, 2, axis=0) for k, v in g.items()})  # both images of a pair alike
    factors = np.concatenate(rows).astype(np.int64)
    geo = {k: np.concatenate([g[k] for g in geometry]) for k in geometry[0]}
    split = _captioned_split(factors, geo, size)
    statement = split.pop("caption")
    n = len(factors)
    return {**split, "y": np.repeat(np.arange(len(TRIFEATURE_PATTERNS)), 2 * n_pairs).astype(np.int64),
            "qid": np.arange(1, n + 1, dtype=np.int64), "statement": statement,
            "pattern_names": np.array(TRIFEATURE_PATTERNS, dtype=np.str_), "prompt": np.array("", dtype=np.str_)}


TRIFEATURE_CAPTIONS_DEFAULTS: dict[str, Any] = {"image_size": 32, "n_values": 4, "n_pairs": 15, "n_train": 2000,
                                                "n_val": 200, "seed": 0, "name": "trifeature_captions"}


def build_trifeature_captions(spec: dict, out_dir: Path, resources_dir: Path) -> dict:
    from clbench.data.build import effective
    from clbench.data.trifeature import COLOURS, SHAPES, TEXTURES

    p = {**TRIFEATURE_CAPTIONS_DEFAULTS, **effective(spec)}
    size, k, seed = int(p["image_size"]), int(p["n_values"]), int(p["seed"])
    splits = {}
    for split in ("train", "val"):
        rng = rng_for(seed, "trifeature_captions", split)
        n = int(p[f"n_{split}"])
        splits[split] = _captioned_split(rng.integers(0, k, (n, 3)).astype(np.int64), _geometry(rng, n, size), size)
    splits["test"] = trifeature_pairs(k, int(p["n_pairs"]), size, seed)
    meta = {"name": p["name"], "generator": "trifeature_captions", "source": "procedural",
            "classes": list(SHAPES[:k]),
            "factors": {"shape": list(SHAPES[:k]), "colour": list(COLOURS[:k]), "texture": list(TEXTURES[:k])},
            "patterns": list(TRIFEATURE_PATTERNS), "prompt": "", "seed": seed,
            "recipe": {"name": "captions_and_pairs", "n_values": k, "n_pairs": int(p["n_pairs"])}}
    return dataset_dir.save(out_dir, splits, meta)


# ---- the official CLIP training view ------------------------------------------------------------------

CROP_RATIO = (3 / 4, 4 / 3)  # torchvision RandomResizedCrop's default, which open_clip's training transform keeps


def clip_train_view(image: np.ndarray, size: int, scale, ratio=CROP_RATIO) -> np.ndarray:
    """One training view as open_clip's training transform makes it (MCL's ``my_open_clip/transform.py``):
    torchvision's ``RandomResizedCrop(size, scale, ratio, bicubic)`` of the whole image, squashed to a
    square. ``image``: uint8 CHW at the file's resolution; returns uint8 CHW ``size`` x ``size``. Draws
    from torch's global generator, as torchvision does (seeded per loader worker)."""
    from PIL import Image
    from torchvision.transforms import InterpolationMode, RandomResizedCrop

    crop = RandomResizedCrop(size, scale=tuple(scale), ratio=tuple(ratio), interpolation=InterpolationMode.BICUBIC)
    arr = image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)
    out = np.asarray(crop(Image.fromarray(np.ascontiguousarray(arr))), dtype=np.uint8)
    return out[None] if out.ndim == 2 else np.ascontiguousarray(np.moveaxis(out, -1, 0))


# ---- MMVP-VLM and CC12M ------------------------------------------------------------------------------


def load_mmvp(root: str | os.PathLike) -> dict:
    """MMVP-VLM's rows from its ``Questions.csv`` (qid, pattern, statement) with each image's path
    relative to ``root``; refuses a copy that is not 135 complete pairs in pattern order."""
    root = Path(root)
    csv_path = root / "Questions.csv"
    if not csv_path.exists():
        raise DatasetError(f"{root} is not an MMVP-VLM copy: no Questions.csv (expected Questions.csv and "
                           f"'{MMVP_IMAGES}/<pattern>/<qid>.jpg', the layout of {MMVP_REPO} on the Hugging Face hub)")
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)  # header
        rows = [r for r in reader if r]
    if len(rows) % 2:
        raise DatasetError(f"{csv_path}: {len(rows)} rows, not whole pairs")
    qid = np.array([int(r[0]) for r in rows], dtype=np.int64)
    patterns = [r[1].strip() for r in rows]
    unknown = sorted(set(patterns) - set(MMVP_PATTERNS))
    if unknown:
        raise DatasetError(f"{csv_path}: unknown visual patterns {unknown}; expected {list(MMVP_PATTERNS)}")
    # the image of a pair lives in the folder of its first row's pattern (as the official evaluation reads it)
    folder = [patterns[i - i % 2] for i in range(len(rows))]
    paths = np.array([f"{MMVP_IMAGES}/{folder[i]}/{qid[i]}.jpg" for i in range(len(rows))], dtype=np.str_)
    missing = [p for p in paths if not (root / p).exists()]
    if missing:
        raise DatasetError(f"{root}: {len(missing)} MMVP images missing, e.g. {missing[0]}")
    return {"qid": qid, "pattern": np.array(patterns, dtype=np.str_), "statement": np.array([r[2] for r in rows]),
            "path": paths, "y": np.array([MMVP_PATTERNS.index(p) for p in folder], dtype=np.int64)}


def download_mmvp(resources_dir: str | os.PathLike) -> Path:
    """A ``huggingface_hub`` snapshot of MMVP-VLM in ``resources_dir/mmvp_vlm`` (kept when complete)."""
    target = Path(resources_dir) / "mmvp_vlm"
    if (target / "Questions.csv").exists():
        return target
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:
        raise DatasetError("downloading MMVP-VLM needs huggingface_hub (pip install huggingface_hub), or set "
                           "mmvp_root to an existing copy") from e
    log.info("downloading %s into %s", MMVP_REPO, target)
    snapshot_download(repo_id=MMVP_REPO, repo_type="dataset", local_dir=str(target))
    return target


def load_img2dataset(root: str | os.PathLike) -> np.ndarray:
    """The images of an img2dataset ``files`` folder that have a caption: paths relative to ``root``
    (``00000/000000001.jpg`` beside ``00000/000000001.txt``), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a directory (expected img2dataset's files layout: "
                           f"00000/000000001.jpg + 00000/000000001.txt)")
    paths = sorted(str(p.relative_to(root)) for p in root.glob("*/*.jpg") if p.with_suffix(".txt").exists())
    if not paths:
        raise DatasetError(f"{root} holds no captioned images (expected <shard>/<key>.jpg + <shard>/<key>.txt)")
    return np.array(paths, dtype=np.str_)


def download_cc12m(url_list: str, resources_dir: str | os.PathLike, workers: int) -> Path:
    """Run img2dataset on CC12M's list file (tab-separated url, caption) into ``resources_dir/cc12m``."""
    target = Path(resources_dir) / "cc12m"
    if target.is_dir() and any(target.glob("*/*.jpg")):
        return target
    try:
        from img2dataset import download
    except ImportError as e:
        raise DatasetError("downloading CC12M needs img2dataset (pip install img2dataset), or set root to an "
                           "existing img2dataset files folder") from e
    download(url_list=url_list, input_format="tsv", url_col="url", caption_col="caption", output_format="files",
             output_folder=str(target), processes_count=workers, image_size=256, resize_mode="keep_ratio")
    return target


class CaptionFiles:
    """The caption of each image of a path index, read from the ``.txt`` beside it (on demand)."""

    def __init__(self, root: str | os.PathLike, paths):
        self.root, self.paths = Path(root), np.asarray(paths, dtype=np.str_)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> str:
        return (self.root / self.paths[i]).with_suffix(".txt").read_text(encoding="utf-8").strip()


def captions_of(split: Mapping[str, Any], meta: Mapping[str, Any]):
    """A split's captions: its ``caption`` array, else its path index's ``.txt`` files."""
    if "caption" in split:
        return split["caption"]
    if "path" in split:
        return CaptionFiles(meta["image_root"], split["path"])
    raise DatasetError("this split has no captions (no caption array and no path index)")


CC12M_DEFAULTS: dict[str, Any] = {"image_size": 224, "n_train": None, "n_val": 1000, "mmvp_root": None,
                                  "url_list": None, "workers": 16, "seed": 0, "name": "cc12m_mmvp",
                                  "image_fit": "shortest_side"}


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target.resolve(), target_is_directory=True)


def build_cc12m_mmvp(spec: dict, out_dir: Path, resources_dir: Path) -> dict:
    from clbench.data.build import effective
    from clbench.data.imagefolder import save_paths

    p = {**CC12M_DEFAULTS, **effective(spec)}
    if p.get("root"):
        cc12m = Path(os.path.expanduser(str(p["root"])))
    elif p["url_list"]:
        cc12m = download_cc12m(p["url_list"], resources_dir, int(p["workers"]))
    else:
        raise DatasetError("cc12m_mmvp needs root (an img2dataset files folder of CC12M) or url_list (CC12M's "
                           "list file, downloaded with img2dataset)")
    if p["mmvp_root"]:
        mmvp = Path(os.path.expanduser(str(p["mmvp_root"])))
    elif p.get("download"):
        mmvp = download_mmvp(resources_dir)
    else:
        raise DatasetError("cc12m_mmvp needs mmvp_root (a copy of MMVP-VLM) or download: true")
    bench = load_mmvp(mmvp)
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    _link(images / "cc12m", cc12m)
    _link(images / "mmvp", mmvp)
    paths = load_img2dataset(cc12m)
    order = rng_for(int(p["seed"]), "cc12m_mmvp", "split").permutation(len(paths))
    n_val = min(int(p["n_val"]), len(paths) - 1)
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    if p["n_train"]:
        train = train[: int(p["n_train"])]
    splits = {
        "train": {"path": np.char.add("cc12m/", paths[train]), "y": np.zeros(len(train), np.int64)},
        "val": {"path": np.char.add("cc12m/", paths[val]), "y": np.zeros(len(val), np.int64)},
        "test": {"path": np.char.add("mmvp/", bench["path"]), "y": bench["y"], "qid": bench["qid"],
                 "statement": bench["statement"], "pattern_names": np.array(MMVP_PATTERNS, dtype=np.str_),
                 "prompt": np.array(PROMPT, dtype=np.str_)},
    }
    size = int(p["image_size"])
    meta = {"name": p["name"], "generator": "cc12m_mmvp", "source": "cc12m+mmvp_vlm", "classes": ["image"],
            "factors": {}, "patterns": list(MMVP_PATTERNS), "prompt": PROMPT, "seed": int(p["seed"]),
            "image_root": str(images.resolve()), "image_shape": [3, size, size], "image_fit": str(p["image_fit"]),
            "recipe": {"name": "cc12m_train_mmvp_test", "n_val": int(n_val)}}
    return save_paths(out_dir, splits, meta)

"""Camelyon17-WILDS through the ``wilds`` package: tumour vs normal 96x96 histology patches from
five hospitals; the hospital is the style (domain) factor.

Expected layout (what ``wilds.get_dataset("camelyon17", root_dir=<root>, download=True)`` writes)::

    <root>/camelyon17_v1.0/metadata.csv          columns: (index), patient, node, x_coord, y_coord,
                                                 tumor, slide, center, split
    <root>/camelyon17_v1.0/RELEASE_v1.0.txt      written by WILDS after a complete download
    <root>/camelyon17_v1.0/patches/patient_<PPP>_node_<N>/patch_patient_<PPP>_node_<N>_x_<X>_y_<Y>.png

``root`` may also be the ``camelyon17_v1.0`` folder itself. The metadata, the split assignment and
the patch paths come from WILDS' own ``Camelyon17Dataset`` (``download=False``); the patches are then
decoded with Pillow. ``download: true`` (no ``root``) calls WILDS' downloader (about 10 GB) into a
temporary folder that is renamed to ``<resources_dir>/camelyon17`` only once complete.

Splits: WILDS' ``official`` split scheme: ``train`` = WILDS train (hospitals 0, 3, 4), ``val`` =
``id_val`` (held-out patches of the training hospitals), ``test`` = ``test`` (hospital 2).
``ood_val: true`` adds a fourth split ``ood_val`` (WILDS ``val``, hospital 1).
``split_scheme: mixed-to-test`` is passed through to WILDS. ``y`` = tumour (0 normal, 1 tumour);
``factor_hospital`` (0..4) is the style factor, ``factor_slide`` (0..49) is kept too; ``id`` is the
row of ``metadata.csv``.

Spec keys (``generator: camelyon17``; keys may also sit under ``options``): ``root``, ``download``,
``split_scheme`` (official | mixed-to-test), ``ood_val`` (bool), ``image_size`` (default 96, native),
``n_train`` / ``n_val`` / ``n_test`` / ``n_ood_val`` (caps: seeded random subsets),
``storage`` (``array``, default, or ``paths``: a path index as described in
:mod:`clbench.data.imagefolder`, for the full 455k-patch dataset), ``seed`` (default 0),
``workers`` (decoding threads, default 4).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from clbench.data.dataset_dir import DatasetError
from clbench.data.imagefolder import (
    cap,
    dataset_error,
    download_hint,
    load_images,
    merged_spec,
    resolve_root,
    rng_for,
    save,
    split_arrays,
)

VERSION = "1.0"
DIRNAME = f"camelyon17_v{VERSION}"
ACCEPTED = {
    "split_scheme", "ood_val", "image_size", "n_train", "n_val", "n_test", "n_ood_val",
    "storage", "workers",
}
LAYOUT = (
    f"  <root>/{DIRNAME}/metadata.csv   (columns: index, patient, node, x_coord, y_coord, tumor, slide, center, split)\n"
    f"  <root>/{DIRNAME}/RELEASE_v{VERSION}.txt\n"
    f"  <root>/{DIRNAME}/patches/patient_<PPP>_node_<N>/patch_patient_<PPP>_node_<N>_x_<X>_y_<Y>.png\n"
    "  (as written by wilds.get_dataset('camelyon17', root_dir=<root>, download=True))"
)
OUR_SPLITS = {"train": "train", "val": "id_val", "test": "test", "ood_val": "val"}


def _wilds_root(root: Path) -> Path:
    """The WILDS ``root_dir`` (the folder that contains ``camelyon17_v1.0``)."""
    if root.name == DIRNAME and (root / "metadata.csv").exists():
        return root.parent
    return root


def _check(root: Path, hint: str) -> DatasetError | None:
    data = _wilds_root(root) / DIRNAME
    for f in ("metadata.csv", f"RELEASE_v{VERSION}.txt"):
        if not (data / f).is_file():
            extra = (
                "\n(WILDS writes RELEASE_v1.0.txt only after a complete download; if this copy is complete, "
                "create that empty file.)"
                if f.startswith("RELEASE") and (data / "metadata.csv").is_file()
                else ""
            )
            return dataset_error("Camelyon17-WILDS not found", data / f, LAYOUT + extra, hint)
    if not (data / "patches").is_dir():
        return dataset_error("Camelyon17-WILDS not found", data / "patches", LAYOUT, hint)
    return None


def _get_dataset(root_dir: Path, download: bool, split_scheme: str = "official"):
    os.environ.setdefault("OUTDATED_IGNORE", "1")  # wilds otherwise asks PyPI for a newer version
    import warnings

    from clbench.extras import require

    require("wilds", "the camelyon17 dataset (Camelyon17-WILDS)")
    import wilds

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return wilds.get_dataset(
            dataset="camelyon17", version=VERSION, root_dir=str(root_dir), download=download, split_scheme=split_scheme
        )


def _fetch(tmp: Path) -> None:
    _get_dataset(tmp, download=True)


def load_wilds_index(root: str | os.PathLike, split_scheme: str = "official", hint: str = "") -> dict[str, Any]:
    """WILDS' view of the data: ``paths`` (relative to ``data_dir``), ``y``, ``hospital``, ``slide``,
    ``split`` (WILDS split codes) and ``split_dict``."""
    root_dir = _wilds_root(Path(root))
    try:
        ds = _get_dataset(root_dir, download=False, split_scheme=split_scheme)
    except FileNotFoundError as e:
        raise dataset_error("Camelyon17-WILDS not found", root_dir / DIRNAME, LAYOUT, hint, reason=str(e)) from e
    except (ValueError, KeyError, OSError) as e:
        raise dataset_error(
            "Camelyon17-WILDS metadata", root_dir / DIRNAME / "metadata.csv", LAYOUT, hint, reason=f"{type(e).__name__}: {e}"
        ) from e
    meta_arr = ds.metadata_array.numpy()
    fields = list(ds.metadata_fields)
    return {
        "data_dir": Path(ds.data_dir),
        "paths": np.asarray(ds._input_array, dtype=np.str_),
        "y": ds.y_array.numpy().astype(np.int64),
        "hospital": meta_arr[:, fields.index("hospital")].astype(np.int64),
        "slide": meta_arr[:, fields.index("slide")].astype(np.int64),
        "split": np.asarray(ds.split_array, dtype=np.int64),
        "split_dict": dict(ds.split_dict),
    }


def build(spec: dict, out_dir: Path, resources_dir: Path) -> dict:
    spec = merged_spec(spec, ACCEPTED, "camelyon17")
    name = "camelyon17"
    hint = download_hint(name, Path(resources_dir))
    root = resolve_root(spec, Path(resources_dir), name, lambda r: _check(r, hint), _fetch).resolve()
    scheme = spec.get("split_scheme", "official")
    if scheme not in ("official", "mixed-to-test"):
        raise ValueError(f"split_scheme must be 'official' or 'mixed-to-test', got {scheme!r}")
    index = load_wilds_index(root, scheme, hint)
    seed = int(spec.get("seed", 0))
    storage = spec.get("storage", "array")
    if storage not in ("array", "paths"):
        raise ValueError(f"storage must be 'array' or 'paths', got {storage!r}")
    size = int(spec.get("image_size", 96))
    wanted = ["train", "val", "test"] + (["ood_val"] if spec.get("ood_val") else [])
    caps = {"train": "n_train", "val": "n_val", "test": "n_test", "ood_val": "n_ood_val"}
    y = index["y"]
    ids = np.arange(len(y), dtype=np.int64)
    factors = {"hospital": index["hospital"], "slide": index["slide"]}
    data_dir = index["data_dir"].resolve()

    def err(p: Path, e: Exception) -> DatasetError:
        return dataset_error(
            "Camelyon17-WILDS patch", p, LAYOUT, hint, reason=None if isinstance(e, FileNotFoundError) else str(e)
        )

    splits = {}
    for k, s in enumerate(wanted):
        code = index["split_dict"][OUR_SPLITS[s]]
        ix = cap(np.flatnonzero(index["split"] == code), spec.get(caps[s]), rng_for(seed, 20 + k))
        d = split_arrays(None, y, ids, factors, ix)
        if storage == "paths":
            d["path"] = index["paths"][ix]
        else:
            d["x"] = load_images([data_dir / p for p in index["paths"][ix]], size, 3, int(spec.get("workers", 4)), err)
        splits[s] = d
    n_hosp = int(index["hospital"].max()) + 1 if len(y) else 5
    meta = {
        "name": name,
        "generator": "camelyon17",
        "source": f"wilds:camelyon17_v{VERSION}",
        "root": str(data_dir),
        "classes": ["normal", "tumor"],
        "factors": {
            "hospital": [f"hospital_{i}" for i in range(max(n_hosp, 5))],
            "slide": [f"slide_{i}" for i in range(int(index["slide"].max()) + 1 if len(y) else 0)],
        },
        "content_factors": [],
        "style_factors": ["hospital"],
        "recipe": {
            "kind": f"wilds_{scheme}",
            "splits": {s: OUR_SPLITS[s] for s in wanted},
            "caps": {caps[s]: spec.get(caps[s]) for s in wanted if spec.get(caps[s]) is not None},
        },
        "seed": seed,
        "id_offsets": {"all": 0},
    }
    if storage == "paths":
        meta.update({"image_root": str(data_dir), "image_shape": [3, size, size]})
    return save(out_dir, splits, meta)

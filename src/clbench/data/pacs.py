"""PACS (Li et al., ICCV 2017): 7 classes x 4 domains (art_painting, cartoon, photo, sketch), 9,991 images.

Expected layout (the public image archive's ``kfold`` folder, which DomainBed renames ``PACS``)::

    <root>/PACS/<domain>/<class>/<image>.{jpg,png}     domain in art_painting, cartoon, photo, sketch
                                                       class in dog, elephant, giraffe, guitar, horse,
                                                       house, person

``root`` may also be the ``PACS`` (or ``kfold`` / ``pacs_data``) folder itself. ``download: true``
fetches DomainBed's archive of that folder (Google Drive, via torchvision's downloader) into a
temporary folder, extracts it, checks that the per-domain image counts match the published ones
(art 2,048, cartoon 2,344, photo 1,670, sketch 3,929) and only then renames it to
``<resources_dir>/pacs``. An MD5 for the archive can be pinned with ``md5:``; its SHA-256 is recorded
in ``<resources_dir>/pacs/ARCHIVE_SHA256`` either way.

Splits (``recipe``):

- ``ood_k`` (default): for every class, ``k`` of the 4 domains (k = 1..3) are *seen*: its images from
  those domains make up train and val (val = ``val_fraction`` of them, i.e. in-distribution); its
  images from the other 4 - k domains form test, so every test (class, domain) pair is unseen in
  training. How the seen domains are chosen is ``ood_design``:

  - ``random`` (default): each class's k domains drawn at random, independently per class, as the
    official CLEAR code does (``generate_style_dict`` in ``run_pacs_downstream_expr.py``:
    ``np.random.choice(styles, k, replace=False)`` per class). A domain may then be seen for no class
    at all: at k = 1, with 7 classes, about half the draws leave one domain out of training
    (4 (3/4)^7 - 6 (1/2)^7 + 4 (1/4)^7 = 0.49);
  - ``cyclic``: domains assigned cyclically over a seeded shuffle of domains and classes, so every
    domain is seen for some class.

  Both are nested in k for a fixed seed (the k + 1 seen domains include the k). ``meta["recipe"]``
  records the design, the seen domains per class (``seen``) and the domains no class sees in training.
- ``lodo`` (leave one domain out, the usual DG protocol): ``test_domain`` is test; train/val come
  from the other three domains.

``y`` is the class, ``factor_domain`` the domain (the style factor); ``id`` indexes the sorted file
list (``meta["files"]`` is not stored; ids are stable for a given copy of the archive).

Spec keys (``generator: pacs``; keys may also sit under ``options``): ``root``, ``download``,
``recipe`` (ood_k | lodo), ``k`` (1..3, default 2), ``ood_design`` (ood_k: random | cyclic, default
random), ``test_domain`` (lodo; default sketch),
``image_size`` (default 64; images are centre-cropped to square and resized; PACS is 227x227),
``val_fraction`` (default 0.1), ``n_train`` / ``n_val`` / ``n_test`` (caps), ``seed`` (default 0),
``workers`` (decoding threads, default 4), ``url`` and ``md5`` (download source override).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from clbench.data.dataset_dir import DatasetError
from clbench.data.ood_split import OOD_DESIGNS, seen_styles
from clbench.data.imagefolder import (
    is_image_file,
    cap,
    carve,
    dataset_error,
    download_hint,
    load_images,
    merged_spec,
    resolve_root,
    rng_for,
    save,
    split_arrays,
)

DOMAINS = ("art_painting", "cartoon", "photo", "sketch")
CLASSES = ("dog", "elephant", "giraffe", "guitar", "horse", "house", "person")
DOMAIN_COUNTS = {"art_painting": 2048, "cartoon": 2344, "photo": 1670, "sketch": 3929}
# DomainBed's copy of the public archive (the "kfold" folder), on Google Drive
GDRIVE_ID = "1JFr8f805nMUelQWWmfnJR3y4_SYoN5Pd"
URL = f"https://drive.google.com/uc?id={GDRIVE_ID}"

ACCEPTED = {
    "recipe", "k", "ood_design", "test_domain", "image_size", "val_fraction", "n_train", "n_val", "n_test",
    "workers", "url", "md5",
}

LAYOUT = (
    "  <root>/PACS/{art_painting,cartoon,photo,sketch}/{dog,elephant,giraffe,guitar,horse,house,person}/*.jpg|png\n"
    "  (the public PACS image archive's `kfold` folder, renamed PACS as DomainBed does; <root> may be that folder)"
)


def find_pacs_dir(root: Path) -> Path:
    """The folder that directly contains the four domain folders."""
    for cand in (root, root / "PACS", root / "kfold", root / "pacs_data", root / "pacs_data" / "pacs_data"):
        if all((cand / d).is_dir() for d in DOMAINS):
            return cand
    return root / "PACS"


def _check(root: Path, hint: str) -> DatasetError | None:
    base = find_pacs_dir(root)
    for d in DOMAINS:
        for c in CLASSES:
            if not (base / d / c).is_dir():
                return dataset_error("PACS not found", base / d / c, LAYOUT, hint)
    return None


def scan(root: str | os.PathLike) -> dict[str, Any]:
    """All PACS image files under ``root``: ``files`` (absolute, sorted by domain, class, name),
    ``y`` (class index) and ``domain`` (domain index)."""
    base = find_pacs_dir(Path(root))
    files, ys, ds = [], [], []
    for di, d in enumerate(DOMAINS):
        for ci, c in enumerate(CLASSES):
            folder = base / d / c
            names = sorted(f for f in os.listdir(folder) if is_image_file(f) and not f.startswith("."))
            files += [str(folder / f) for f in names]
            ys += [ci] * len(names)
            ds += [di] * len(names)
    return {"files": files, "y": np.asarray(ys, np.int64), "domain": np.asarray(ds, np.int64), "base": base}


def seen_domains(k: int, seed: int, design: str = "random") -> dict[str, list[str]]:
    """For each class, the ``k`` domains whose images may appear in train/val (OOD-k recipe).

    ``design``: ``random`` (each class's domains drawn at random, the official CLEAR code's draw) or
    ``cyclic`` (every domain seen for some class); see :func:`clbench.data.ood_split.seen_styles`.
    """
    if not 1 <= k <= len(DOMAINS) - 1:
        raise ValueError(f"PACS OOD-k needs 1 <= k <= {len(DOMAINS) - 1}, got k={k}")
    if design not in OOD_DESIGNS:
        raise ValueError(f"PACS: unknown ood_design {design!r}; expected one of {list(OOD_DESIGNS)}")
    seen = seen_styles(len(CLASSES), len(DOMAINS), k, seed, design)
    return {c: sorted(DOMAINS[d] for d in seen[ci]) for ci, c in enumerate(CLASSES)}


def _fetch(url: str, md5: str | None):
    def fetch(tmp: Path) -> None:
        from torchvision.datasets.utils import download_file_from_google_drive, download_url

        archive_dir = tmp / ".download"
        archive_dir.mkdir()
        if "drive.google.com" in url and "id=" in url:
            file_id = url.split("id=", 1)[1].split("&", 1)[0]
            download_file_from_google_drive(file_id, str(archive_dir), "PACS.zip", md5)
        else:
            download_url(url, str(archive_dir), "PACS.zip", md5)
        archive = archive_dir / "PACS.zip"
        sha = hashlib.sha256()
        with open(archive, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
        with zipfile.ZipFile(archive) as z:
            z.extractall(archive_dir / "x")
        src = find_pacs_dir(archive_dir / "x")
        if not src.is_dir():
            raise DatasetError(f"the PACS archive from {url} does not contain the expected folders:\n{LAYOUT}")
        os.replace(src, tmp / "PACS")
        shutil.rmtree(archive_dir)
        counts = {d: sum(is_image_file(f) for _, _, fs in os.walk(tmp / "PACS" / d) for f in fs) for d in DOMAINS}
        if counts != DOMAIN_COUNTS:
            raise DatasetError(f"downloaded PACS has per-domain image counts {counts}, expected {DOMAIN_COUNTS}")
        (tmp / "ARCHIVE_SHA256").write_text(sha.hexdigest() + "\n")

    return fetch


def build(spec: dict, out_dir: Path, resources_dir: Path) -> dict:
    spec = merged_spec(spec, ACCEPTED, "pacs")
    name = "pacs"
    hint = download_hint(name, Path(resources_dir))
    root = resolve_root(
        spec,
        Path(resources_dir),
        name,
        lambda r: _check(r, hint),
        _fetch(str(spec.get("url") or URL), spec.get("md5")),
    ).resolve()
    data = scan(root)
    y, dom = data["y"], data["domain"]
    if len(y) == 0:
        raise dataset_error("PACS has no images", data["base"], LAYOUT, hint)
    seed = int(spec.get("seed", 0))
    recipe = spec.get("recipe") or "ood_k"
    val_fraction = float(spec.get("val_fraction", 0.1))
    if recipe == "ood_k":
        k = int(spec.get("k", 2))
        design = spec.get("ood_design") or "random"
        seen = seen_domains(k, seed, design)
        seen_mask = np.zeros((len(CLASSES), len(DOMAINS)), dtype=bool)
        for ci, c in enumerate(CLASSES):
            for d in seen[c]:
                seen_mask[ci, DOMAINS.index(d)] = True
        is_seen = seen_mask[y, dom]
        recipe_meta: dict[str, Any] = {
            "kind": "ood_k", "k": k, "design": design, "seen": seen,
            "domains_never_in_training": [d for d in DOMAINS if not any(d in v for v in seen.values())],
        }
    elif recipe == "lodo":
        td = spec.get("test_domain", "sketch")
        if td not in DOMAINS:
            raise ValueError(f"test_domain must be one of {DOMAINS}, got {td!r}")
        is_seen = dom != DOMAINS.index(td)
        recipe_meta = {"kind": "lodo", "test_domain": td}
    else:
        raise ValueError(f"PACS recipe must be 'ood_k' or 'lodo', got {recipe!r}")
    for key in ("k", "ood_design"):
        if spec.get(key) is not None and recipe != "ood_k":
            raise ValueError(f"`{key}` applies only to recipe ood_k")
    rest, val_idx = carve(np.flatnonzero(is_seen), spec.get("n_val"), val_fraction, rng_for(seed, 1))
    idx = {
        "train": cap(rest, spec.get("n_train"), rng_for(seed, 2)),
        "val": val_idx,
        "test": cap(np.flatnonzero(~is_seen), spec.get("n_test"), rng_for(seed, 4)),
    }
    size = int(spec.get("image_size", 64))
    files = np.asarray(data["files"])
    ids = np.arange(len(y), dtype=np.int64)

    def err(p: Path, e: Exception) -> DatasetError:
        return dataset_error("PACS image", p, LAYOUT, hint, reason=str(e))

    splits = {}
    for s, ix in idx.items():
        d = split_arrays(None, y, ids, {"domain": dom}, ix)
        d["x"] = load_images(list(files[ix]), size, 3, int(spec.get("workers", 4)), err)
        splits[s] = d
    counts = {d: int((dom == i).sum()) for i, d in enumerate(DOMAINS)}
    meta = {
        "name": "pacs",
        "generator": "pacs",
        "source": "pacs",
        "root": str(data["base"]),
        "classes": list(CLASSES),
        "factors": {"domain": list(DOMAINS)},
        "content_factors": [],
        "style_factors": ["domain"],
        "recipe": {
            **recipe_meta,
            "val": "in-distribution, carved from the seen (class, domain) images",
            "val_fraction": val_fraction if spec.get("n_val") is None else None,
            "n_val": spec.get("n_val"),
            "caps": {k_: spec.get(k_) for k_ in ("n_train", "n_test") if spec.get(k_) is not None},
        },
        "domain_counts": counts,
        "complete_copy": counts == DOMAIN_COUNTS,
        "seed": seed,
        # the settings the split was built with (the protocol card's data rows)
        "spec": {"generator": "pacs", "recipe": recipe, **({"k": k, "ood_design": design} if recipe == "ood_k" else
                                                           {"test_domain": recipe_meta["test_domain"]}),
                 "image_size": size, "val_fraction": val_fraction,
                 **{k_: spec.get(k_) for k_ in ("n_train", "n_val", "n_test") if spec.get(k_) is not None},
                 "seed": seed},
        "id_offsets": {"all": 0},
    }
    return save(out_dir, splits, meta)

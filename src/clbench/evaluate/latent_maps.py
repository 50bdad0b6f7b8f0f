"""Maps of a two-latent model (content z_c, style z_s; e.g. a CLEAR-VAE): content/style swaps,
latent interpolations and a t-SNE of both latents, computed once and saved as arrays for the figures.

The model must expose ``factors(x) -> (mu_c, mu_s)`` and ``vae.decode(z_c, z_s)``. Everything is
computed on test images (the training split when the test split is empty), with the CPU.

:func:`latent_maps` is the analysis (``clbench analyse``): it writes one ``.npz`` holding

    swap_content [n, C, H, W] uint8, swap_style [n, C, H, W] uint8   the content and style sources
    swap_decoded [n_style, n_content, C, H, W] float32               decode(mu_c of column, mu_s of row)
    swap_content_labels, swap_style_labels                           their class / style names
    interp_sources [4, C, H, W] uint8                                 content pair, then style pair
    interp_content, interp_style [steps, C, H, W] float32            decodes along z_c, along z_s
    tsne_z_c, tsne_z_s [n, 2]; tsne_label, tsne_style [n]            t-SNE of mu_c and mu_s
    tsne_classes, tsne_style_names, tsne_factor                       names for the legends
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from clbench.io import write_bytes


def load_two_latent_model(model_path, dataset_dir_path, split: str = "test"):
    """The model (CPU, eval mode), the split's arrays and the dataset's meta; refuses a model without
    content and style latents."""
    from clbench.data import dataset_dir
    from clbench.models.checkpoint import load_model

    model = load_model(model_path, "cpu")
    if not (hasattr(model, "factors") and hasattr(model, "vae")):
        raise ValueError(f"{model_path} is not a CLEAR-VAE model (objective clear_vae); "
                         f"it has no factors()/vae.decode()")
    arrays = dataset_dir.load(dataset_dir_path, split)
    if len(arrays["y"]) == 0 and split != "train":
        arrays = dataset_dir.load(dataset_dir_path, "train")
    meta = dataset_dir.load_meta(dataset_dir_path)
    return model, arrays, meta


def factors(model, x_uint8: np.ndarray):
    """(mu_c, mu_s) of uint8 images."""
    import torch

    with torch.no_grad():
        x = torch.as_tensor(np.asarray(x_uint8)).float().div_(255.0)
        return model.factors(x)


def decode(model, z_c, z_s) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model.vae.decode(z_c, z_s).float().clamp(0, 1).cpu().numpy()


def spread_pick(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices cycling through the distinct values of ``labels`` (random within each value)."""
    values = np.unique(labels)
    pools = {v: list(rng.permutation(np.flatnonzero(labels == v))) for v in values}
    order = list(rng.permutation(values))
    picked: list[int] = []
    while len(picked) < n and any(pools.values()):
        for v in order:
            if pools[v] and len(picked) < n:
                picked.append(int(pools[v].pop()))
    return np.asarray(picked, dtype=np.int64)


def style_key(arrays: dict, factor: str = "style") -> str | None:
    """The arrays' key of the style factor (``factor_<factor>``, else the first factor), None without one."""
    key = f"factor_{factor}"
    if key in arrays:
        return key
    others = sorted(k for k in arrays if k.startswith("factor_"))
    return others[0] if others else None


def _names(values, names) -> np.ndarray:
    return np.asarray([str(names[int(v)]) if int(v) < len(names) else str(int(v)) for v in values], dtype=str)


def swap_images(model, x_content: np.ndarray, x_style: np.ndarray) -> np.ndarray:
    """Decoded swaps [n_style, n_content, C, H, W]: cell (i, j) = decode(mu_c(content j), mu_s(style i))."""
    mu_c, _ = factors(model, x_content)
    _, mu_s = factors(model, x_style)
    n_s, n_c = len(mu_s), len(mu_c)
    z_c = mu_c.repeat(n_s, 1)
    z_s = mu_s.repeat_interleave(n_c, dim=0)
    imgs = decode(model, z_c, z_s)
    return imgs.reshape(n_s, n_c, *imgs.shape[1:])


def swap_grid(model, arrays: dict, meta: dict, n: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` content sources (spread over the classes) x ``n`` style sources (spread over the style
    factor) and the decoded swaps."""
    rng = np.random.default_rng(seed)
    y = np.asarray(arrays["y"])
    n = int(min(n, len(y)))
    content_idx = spread_pick(y, n, rng)
    skey = style_key(arrays)
    style_idx = spread_pick(np.asarray(arrays[skey]), n, rng) if skey else rng.permutation(len(y))[:n]
    xc, xs = arrays["x"][content_idx], arrays["x"][style_idx]
    style_names = ((meta.get("factors") or {}).get(skey[len("factor_"):]) or []) if skey else []
    return {
        "swap_content": np.asarray(xc), "swap_style": np.asarray(xs),
        "swap_decoded": swap_images(model, xc, xs).astype(np.float32),
        "swap_content_labels": _names(y[content_idx], meta.get("classes") or []),
        "swap_style_labels": _names(arrays[skey][style_idx], style_names) if skey else np.asarray([], dtype=str),
    }


def interpolation(model, arrays: dict, steps: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """z_c interpolated between two test images of different classes with z_s of the first fixed, and
    z_s between two images of different styles with z_c of the first fixed (``steps`` decodes each)."""
    import torch

    rng = np.random.default_rng(seed)
    y = np.asarray(arrays["y"])
    a, b = spread_pick(y, 2, rng) if len(np.unique(y)) > 1 else rng.permutation(len(y))[:2]
    skey = style_key(arrays)
    s_vals = np.asarray(arrays[skey]) if skey else None
    if s_vals is not None and len(np.unique(s_vals)) > 1:
        c, d = spread_pick(s_vals, 2, rng)
    else:
        c, d = rng.permutation(len(y))[:2]
    x = arrays["x"][[a, b, c, d]]
    mu_c, mu_s = factors(model, x)
    t = torch.linspace(0, 1, steps)[:, None]
    zc_row = (1 - t) * mu_c[0] + t * mu_c[1]
    zs_row = (1 - t) * mu_s[2] + t * mu_s[3]
    return {
        "interp_sources": np.asarray(x),
        "interp_content": decode(model, zc_row, mu_s[0].expand(steps, -1)).astype(np.float32),
        "interp_style": decode(model, mu_c[2].expand(steps, -1), zs_row).astype(np.float32),
    }


def tsne(model, arrays: dict, meta: dict, n: int = 1000, seed: int = 0, factor: str = "style", threads: int = 1,
         max_iter: int = 500) -> dict[str, np.ndarray]:
    """t-SNE (sklearn, init="pca") of the content means mu_c and the style means mu_s of ``n`` (<= 1000)
    test images, with their labels and style values.

    ``threads`` caps the OpenMP/BLAS threads of the t-SNE: on a busy machine more threads than free
    cores make it several times slower (1000 points: ~4 s on one thread, 12-20 s on two contended cores).
    ``max_iter`` (500, sklearn's default is 1000) halves the time; the clusters have settled by then.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    n = int(min(n, 1000, len(arrays["y"])))
    idx = np.sort(rng.permutation(len(arrays["y"]))[:n])
    mu_c, mu_s = [], []
    for i in range(0, n, 512):
        c, s = factors(model, arrays["x"][idx[i:i + 512]])
        mu_c.append(c.float().numpy())
        mu_s.append(s.float().numpy())
    latents = {"z_c": np.concatenate(mu_c), "z_s": np.concatenate(mu_s)}
    skey = f"factor_{factor}" if f"factor_{factor}" in arrays else style_key(arrays)
    fname = skey[len("factor_"):] if skey else factor
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
    out = {
        "tsne_label": np.asarray(arrays["y"])[idx],
        "tsne_classes": np.asarray([str(c) for c in (meta.get("classes") or [])], dtype=str),
        "tsne_style_names": np.asarray([str(s) for s in ((meta.get("factors") or {}).get(fname) or [])], dtype=str),
        "tsne_factor": np.asarray(fname, dtype=str),
    }
    if skey:
        out["tsne_style"] = np.asarray(arrays[skey])[idx]
    with threadpool_limits(max(1, int(threads))):
        for name, z in latents.items():
            out[f"tsne_{name}"] = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed,
                                       learning_rate="auto", max_iter=max(250, int(max_iter))
                                       ).fit_transform(z.astype(np.float64))
    return out


def compute(model_path, dataset_dir_path, seed: int = 0, threads: int = 1, n_swap: int = 8, steps: int = 8,
            n_tsne: int = 1000) -> dict[str, np.ndarray]:
    """Every map of one model: swaps, interpolations and the t-SNE (each from its own seeded draw)."""
    model, arrays, meta = load_two_latent_model(model_path, dataset_dir_path)
    return {**swap_grid(model, arrays, meta, n=n_swap, seed=seed),
            **interpolation(model, arrays, steps=steps, seed=seed),
            **tsne(model, arrays, meta, n=n_tsne, seed=seed, threads=threads)}


def latent_maps(files, out) -> None:
    """The analysis: ``files.inputs`` = [the run's model.pt, its dataset's meta.json]; params ``seed``."""
    model_path, meta_json = files.inputs[0], Path(files.inputs[1])
    maps = compute(model_path, meta_json.parent, seed=int(files.params.get("seed", 0)), threads=files.threads)
    buf = io.BytesIO()
    np.savez(buf, **maps)
    write_bytes(out, buf.getvalue())

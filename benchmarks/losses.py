"""Forward+backward timings of clbench.losses against pytorch-metric-learning.

Run ``python benchmarks/losses.py`` (optionally ``--sizes 256 1024 --device cuda``); prints a
Markdown table. ``B`` is the number of embedding rows, i.e. the side of the B x B similarity
matrix: ``supcon``/``varcon`` get ``[B, D]`` with C classes, ``info_nce`` gets two views of
``B/2`` samples each (``2N = B`` rows), the same rows pml's ``NTXentLoss`` gets with labels
``arange(B/2)`` repeated twice. Timings are medians over interleaved repeats after a warm-up,
in one process, on the same inputs. This is a benchmark, not a test: it asserts nothing.

pml's ``NTXentLoss`` builds a ``[2N, 2N(2N-2)]`` boolean mask (cubic in B); sizes where that mask
would exceed ``--pml-mem-gb`` are skipped and reported as such.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import clbench.losses as L  # noqa: E402


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _once(fn, inputs, device: str) -> float:
    for t in inputs:
        if isinstance(t, torch.Tensor):
            t.grad = None
    _sync(device)
    start = time.perf_counter()
    fn(*inputs).backward()
    _sync(device)
    return time.perf_counter() - start


def time_group(cands: dict, device: str, budget_s: float = 4.0, slow_s: float = 5.0) -> dict:
    """Median milliseconds of ``fn(*inputs).backward()`` for each ``name: (fn, inputs)``.

    After one warm-up run each, the candidates run in interleaved rounds (A B C A B C ...), so a
    change of machine load hits all of them alike. A candidate whose warm-up took longer than
    ``slow_s`` is not repeated: its one run is its time.
    """
    warm = {k: _once(fn, inp, device) for k, (fn, inp) in cands.items()}
    times = {k: [v] for k, v in warm.items() if v > slow_s}
    fast = [k for k in cands if k not in times]
    per_round = sum(warm[k] for k in fast)
    rounds = max(5, min(50, int(budget_s / max(per_round, 1e-4))))
    for k in fast:
        times[k] = []
    for _ in range(rounds if fast else 0):
        for k in fast:
            fn, inp = cands[k]
            times[k].append(_once(fn, inp, device))
    return {k: 1000.0 * statistics.median(v) for k, v in times.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--pml-mem-gb", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from pytorch_metric_learning import losses as pml

    dev, d, c = args.device, args.dim, args.classes
    pml_supcon = pml.SupConLoss(temperature=0.1)
    pml_ntxent = pml.NTXentLoss(temperature=0.5)
    rows = []
    for b in args.sizes:
        g = torch.Generator().manual_seed(b)
        z = torch.randn(b, d, generator=g).to(dev).requires_grad_()
        y = torch.randint(0, c, (b,), generator=g).to(dev)
        n = b // 2
        z1 = torch.randn(n, d, generator=g).to(dev).requires_grad_()
        z2 = torch.randn(n, d, generator=g).to(dev).requires_grad_()
        pair_labels = torch.arange(n, device=dev).repeat(2)

        mask_gb = (2 * n) * (2 * n) * (2 * n - 2) / 1e9
        cands = {
            "ours_sup": (lambda a, l: L.supcon(a, l, temperature=0.1), (z, y)),
            "pml_sup": (pml_supcon, (z, y)),
            "ours_nce": (lambda a, bb: L.info_nce(a, bb, temperature=0.5), (z1, z2)),
            "ours_var": (lambda a, l: L.varcon(a, l, temperature=0.1), (z, y)),
        }
        if mask_gb <= args.pml_mem_gb:
            cands["pml_nce"] = (lambda a, bb: pml_ntxent(torch.cat([a, bb]), pair_labels), (z1, z2))
        ms_ = time_group(cands, dev)
        ours_sup, pml_sup, ours_nce, ours_var = (ms_[k] for k in ("ours_sup", "pml_sup", "ours_nce", "ours_var"))
        pml_nce = ms_.get("pml_nce")
        rows.append((b, ours_sup, pml_sup, ours_nce, pml_nce, mask_gb, ours_var))
        print(f"B={b} done", file=sys.stderr, flush=True)

    def ms(v):
        return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:.0f}"

    name = torch.cuda.get_device_name(dev) if dev.startswith("cuda") else platform.processor() or "CPU"
    print(
        f"Forward+backward, median ms, D={d}, C={c}, device {dev} ({name}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )
    print(
        "| B | supcon | pml SupConLoss | speed-up | info_nce (2N=B) | pml NTXentLoss | speed-up "
        "| varcon | supcon / varcon |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for b, os_, ps, on, pn, gb, ov in rows:
        pn_s = ms(pn) if pn is not None else f"skipped (needs ~{gb:.0f} GB mask)"
        up_n = f"{pn / on:.1f}x" if pn is not None else "-"
        print(
            f"| {b} | {ms(os_)} | {ms(ps)} | {ps / os_:.1f}x | {ms(on)} | {pn_s} | {up_n} "
            f"| {ms(ov)} | {os_ / ov:.1f}x |"
        )
    by_b = {r[0]: r for r in rows}
    print()
    if 1024 in by_b:
        _, os_, ps, on, pn, _, _ = by_b[1024]
        print(f"- target supcon >= 2x pml at B=1024: {ps / os_:.1f}x ({'met' if ps / os_ >= 2 else 'NOT met'})")
        if pn is not None:
            print(f"- target info_nce >= 2x pml at B=1024: {pn / on:.1f}x ({'met' if pn / on >= 2 else 'NOT met'})")
    if 4096 in by_b:
        _, os_, _, _, _, _, ov = by_b[4096]
        print(f"- target varcon >= 10x faster than supcon at B=4096: {os_ / ov:.1f}x ({'met' if os_ / ov >= 10 else 'NOT met'})")


if __name__ == "__main__":
    main()

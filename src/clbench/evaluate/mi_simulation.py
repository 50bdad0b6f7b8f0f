"""The MI simulation: how the SNN and pair-switched SNN losses track the mutual information between
points and labels, on :mod:`clbench.data.gaussian_mixture` (3 labelled components whose spread
changes every ``period`` steps).

:func:`mi_simulation_table` is the analysis (``clbench analyse``): it writes the curves as CSV.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from clbench.io import write_text


def mi_simulation_curves(steps: int = 600, seed: int = 0, batch_size: int = 256, mi_every: int = 3,
                         temperature: float = 0.1, similarity: str = "cosine", d: int = 2,
                         spreads: Sequence[float] = (0.25, 0.5, 1.0, 2.0), period: int = 100) -> pd.DataFrame:
    """Per step, the SNN and PS-SNN losses of the batch's points with their labels, and every
    ``mi_every`` steps the KNN estimate of I(x; y) (mean over the dimensions,
    :func:`clbench.evaluate.disentanglement.knn_mutual_information`); also the exact (Monte-Carlo)
    I(X; Y) of the step's spread.

    Columns ``step, spread, true_mi, knn_mi (NaN between estimates), snn, ps_snn``, plus the
    ``temperature`` and ``period`` the curves were computed with.
    """
    import torch
    from threadpoolctl import threadpool_limits

    from clbench.data.gaussian_mixture import GaussianMixtureSim, simulate
    from clbench.evaluate.disentanglement import knn_mutual_information
    from clbench.losses import ps_snn, snn

    run = simulate(steps, batch_size, d=d, n_components=3, period=period, spreads=spreads, seed=seed)
    sim = GaussianMixtureSim(d, 3, period, tuple(spreads), seed=seed)
    true = {s: sim.true_mi(s, n=5000) for s in sim.spreads}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: thread start-up would dominate
    try:
        with torch.no_grad():
            z = torch.from_numpy(run["x"])
            labels = torch.from_numpy(run["y"])
            snn_v = np.array([float(snn(z[t], labels[t], temperature, similarity)) for t in range(steps)])
            ps_v = np.array([float(ps_snn(z[t], labels[t], temperature, similarity)) for t in range(steps)])
    finally:
        torch.set_num_threads(threads)
    mi = np.full(steps, np.nan)
    with threadpool_limits(1):
        for t in range(0, steps, max(1, int(mi_every))):
            mi[t] = knn_mutual_information(run["x"][t], run["y"][t], random_state=seed, reduce="mean")
    return pd.DataFrame({"step": np.arange(steps), "spread": run["spread"],
                         "true_mi": [true[float(s)] for s in run["spread"]], "knn_mi": mi,
                         "snn": snn_v, "ps_snn": ps_v, "temperature": float(temperature), "period": int(period)})


def mi_simulation_table(files, out) -> None:
    """The analysis: :func:`mi_simulation_curves` with ``files.params`` (e.g. steps, seed) as CSV."""
    write_text(out, mi_simulation_curves(**dict(files.params)).to_csv(index=False))

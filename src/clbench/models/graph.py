"""The graph method family: a GIN encoder with a projection head (ADNCE's / GraphCL's TU model).

Official code: ``graph/gin.py`` (``Encoder``) and ``graph/gsimclr_robust.py`` (``simclr``):

- ``num_layers`` (3) GIN layers of ``hidden_dim`` (32) units, each
  ``h <- BatchNorm(ReLU(GINConv(h)))`` with GINConv's MLP ``Linear - ReLU - Linear`` and eps = 0;
- each layer's node states sum-pooled per graph and concatenated: the ``num_layers * hidden_dim``
  (96) dimensional graph embedding every evaluation uses;
- the projection head ``Linear(96, 96) - ReLU - Linear(96, 96)``;
- every Linear layer Xavier-uniform initialised, biases zero (``simclr.init_emb``).

GINConv here is the operator of torch_geometric's ``GINConv`` (``MLP((1 + eps) x_i + sum_{j -> i} x_j)``,
sum aggregation at the edge's target) and ``global_add_pool``, written with ``index_add_`` so that a
training job need not import torch_geometric (seconds of start-up per job); a test checks it
against torch_geometric's.

The model also carries frozen copies of its encoder taken at the epochs of ``graph.eval_epochs``
before the last (the ADNCE code evaluates at epochs 10 and 20), so one ``model.pt`` holds every
epoch the evaluation scores.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from clbench.objectives import OBJECTIVES, resolved_params

__all__ = ["GINEncoder", "GraphContrastive", "GRAPH_DEFAULTS", "graph_settings", "sum_pool"]

GRAPH_DEFAULTS = {"augment": "random2", "hidden_dim": 32, "num_layers": 3, "eval_epochs": [10, 20],
                  "node_drop_rate": 0.1, "subgraph_keep": 0.2, "edge_perturb_rate": 0.1, "attr_mask_rate": 0.1,
                  "subgraph_growth": "seed"}


def graph_settings(spec: dict) -> dict:
    """The method's ``graph:`` block over :data:`GRAPH_DEFAULTS`."""
    return {**GRAPH_DEFAULTS, **(spec.get("graph") or {})}


def sum_pool(h: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """Per-graph sums of node states (``global_add_pool`` with ``size=num_graphs``)."""
    return h.new_zeros(num_graphs, h.shape[1]).index_add_(0, batch, h)


class GINLayer(nn.Module):
    """GINConv with eps = 0: ``mlp(x_i + sum over edges (j -> i) of x_j)``."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        aggregated = torch.zeros_like(x).index_add_(0, edge_index[1], x[edge_index[0]])
        return self.mlp(x + aggregated)


class GINEncoder(nn.Module):
    """``num_layers`` x (GIN, ReLU, BatchNorm); the graph embedding is every layer's sum pool, concatenated."""

    def __init__(self, in_dim: int, hidden_dim: int = 32, num_layers: int = 3):
        super().__init__()
        self.convs = nn.ModuleList(GINLayer(in_dim if i == 0 else hidden_dim, hidden_dim) for i in range(num_layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden_dim) for _ in range(num_layers))
        self.out_dim = hidden_dim * num_layers

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        pooled = []
        for conv, norm in zip(self.convs, self.norms):
            x = norm(torch.relu(conv(x, edge_index)))
            pooled.append(sum_pool(x, batch, num_graphs))
        return torch.cat(pooled, dim=1)


class GraphContrastive(nn.Module):
    """GIN encoder + projection head trained with a graph objective (``graph_info_nce``, ``graph_adnce``).

    It offers what :class:`clbench.models.methods.Method` declares (``capabilities``, ``features``,
    ``loss_terms``), for graph batches instead of images; the family builder in that module builds it.
    """

    capabilities = frozenset({"graphs"})

    def __init__(self, spec: dict, in_channels: int, num_classes: int = 0, image_size: int = 0):
        super().__init__()
        settings = graph_settings(spec)
        self.objective = spec["objective"]
        self.loss_fn = OBJECTIVES[self.objective].loss_fn()
        self.loss_kwargs = resolved_params(spec)
        self.encoder = GINEncoder(in_channels, settings["hidden_dim"], settings["num_layers"])
        d = self.encoder.out_dim
        self.projector = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, d))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        epochs = spec.get("epochs", 10)
        # frozen encoders of the earlier evaluation epochs (filled by the trainer)
        self.snapshots = nn.ModuleDict({f"epoch{e}": copy.deepcopy(self.encoder).requires_grad_(False)
                                        for e in sorted(set(settings["eval_epochs"])) if e < epochs})
        self.final_epoch = epochs

    def snapshot(self, epoch: int) -> None:
        """Keep a frozen copy of the encoder's current weights as ``epoch``'s (if that epoch is scored)."""
        key = f"epoch{epoch}"
        if key in self.snapshots:
            self.snapshots[key].load_state_dict(self.encoder.state_dict())

    def encoders(self) -> dict[int, nn.Module]:
        """Every scored epoch's encoder: the snapshots and the final one."""
        out = {int(k.removeprefix("epoch")): m for k, m in self.snapshots.items()}
        return {**out, self.final_epoch: self.encoder}

    def features(self, graphs) -> torch.Tensor:
        x, edge_index, batch, num_graphs = graphs
        return self.encoder(x, edge_index, batch, num_graphs)

    def project(self, graphs) -> torch.Tensor:
        return self.projector(self.features(graphs))

    def loss_terms(self, original, augmented) -> dict[str, torch.Tensor]:
        """One step's loss of a batch of graphs (``(x, edge_index, batch, B)``) and of their augmented views."""
        loss = self.loss_fn(self.project(original), self.project(augmented), **self.loss_kwargs)
        return {"loss": loss, self.objective: loss}


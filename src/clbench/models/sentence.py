"""The sentence encoder of the ``sentence`` family: a Hugging Face transformer, [CLS] pooling, and
an MLP (dense + tanh) used in training only (unsupervised SimCSE's ``--pooler_type cls --mlp_only_train``).
``sentence.dropout`` sets the transformer's hidden and attention dropout (unset: its config's). The MLP
starts as the official ``MLPLayer`` does under ``cl_init``'s ``init_weights`` (BERT's initialisation:
weights N(0, 0.02), zero bias). ``sentence.pooler`` is the test embedding, in SimCSE's evaluation.py
names: ``cls_before_pooler`` ([CLS] as it is: SimCSE's convention for unsupervised models, the
default) or ``cls`` ([CLS] through the trained MLP).

The method's ``sentence:`` block says which model (``model``: a Hugging Face name such as
``bert-base-uncased`` or a local directory in its layout, read with ``from_pretrained``), the
training ``max_length`` and the evaluation batch size. Training starts from the pretrained weights
(:meth:`SentenceEncoder.pretrained`); ``model.pt`` keeps the weights with the model's config and
tokenizer files, so evaluation rebuilds it without the original name (:func:`load_sentence_model`).
Dropout (the config's, active in train mode) is the augmentation: two passes of a batch differ.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from clbench.extras import require

__all__ = ["POOLERS", "SETTINGS", "SentenceEncoder", "load_sentence_model", "save_sentence_model",
           "sentence_settings"]

# the sentence: block's keys and the values unsupervised SimCSE's run_unsup_example.sh uses
SETTINGS = {"model": "bert-base-uncased", "dropout": None, "max_length": 32, "eval_steps": 125, "eval_batch_size": 128,
            "schedule": "linear", "fp16": True, "max_grad_norm": 1.0, "max_steps": None, "pooler": "cls_before_pooler"}
# the test embeddings (SimCSE evaluation.py --pooler): [CLS] before the MLP, or through the trained MLP
POOLERS = ("cls_before_pooler", "cls")
INIT_STD = 0.02  # BERT's and RoBERTa's initializer_range, which init_weights gives the MLP


def sentence_settings(spec: Mapping[str, Any]) -> dict:
    """The method's ``sentence:`` block over :data:`SETTINGS`."""
    given = dict(spec.get("sentence") or {})
    unknown = sorted(set(given) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown sentence settings {unknown}; known: {sorted(SETTINGS)}")
    if given.get("pooler", SETTINGS["pooler"]) not in POOLERS:
        raise ValueError(f"sentence.pooler must be one of {POOLERS}, got {given['pooler']!r}")
    return {**SETTINGS, **given}


class SentenceEncoder(nn.Module):
    """Transformer + [CLS] pooling; :meth:`forward` adds the training-only MLP, :meth:`embed` does not."""

    capabilities = frozenset({"sentences"})

    def __init__(self, spec: Mapping[str, Any], encoder: nn.Module, tokenizer):
        super().__init__()
        self.spec = dict(spec)
        self.settings = sentence_settings(spec)
        self.encoder = encoder
        self.tokenizer = tokenizer
        hidden = encoder.config.hidden_size
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh())
        nn.init.normal_(self.mlp[0].weight, mean=0.0, std=INIT_STD)
        nn.init.zeros_(self.mlp[0].bias)

    @classmethod
    def pretrained(cls, spec: Mapping[str, Any], local: str | Path | None = None) -> "SentenceEncoder":
        """The untrained model: the pretrained transformer named by ``sentence.model`` (no pooling layer),
        read from the folder ``local`` when given (the dataset build job's copy of that model)."""
        require("sentences", "a sentence encoder")
        from transformers import AutoModel, AutoTokenizer

        settings = sentence_settings(spec)
        name, dropout = str(local or settings["model"]), settings["dropout"]
        # None keeps the pretrained config's dropout (BERT, RoBERTa: 0.1)
        rates = {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
        encoder = AutoModel.from_pretrained(name, add_pooling_layer=False, **rates)
        return cls(spec, encoder, AutoTokenizer.from_pretrained(name))

    @classmethod
    def from_files(cls, spec: Mapping[str, Any], folder: str | Path) -> "SentenceEncoder":
        """A randomly initialised model of the config and tokenizer saved in ``folder``."""
        require("sentences", "a sentence encoder")
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        config = AutoConfig.from_pretrained(folder)
        encoder = AutoModel.from_config(config, add_pooling_layer=False)
        return cls(spec, encoder, AutoTokenizer.from_pretrained(folder))

    def tokenize(self, texts: list[str], max_length: int | None, device: torch.device | str) -> dict:
        """Padded to the longest sentence; truncated to ``max_length`` tokens (None: not truncated)."""
        batch = self.tokenizer(list(texts), padding=True, truncation=max_length is not None,
                               max_length=max_length, return_tensors="pt")
        return {k: v.to(device) for k, v in batch.items()}

    def cls(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The last layer's [CLS] state ``[B, H]`` (the sentence embedding)."""
        return self.encoder(**batch, return_dict=True).last_hidden_state[:, 0]

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The training projection: MLP([CLS])."""
        return self.mlp(self.cls(batch))

    @torch.no_grad()
    def embed(self, texts: list[str], device: torch.device | str = "cpu",
              batch_size: int | None = None, pooler: str = "cls_before_pooler") -> torch.Tensor:
        """Embeddings of ``texts`` in eval mode, not truncated, as SentEval's batcher: [CLS] before the MLP
        (``pooler`` ``cls_before_pooler``, also what STS-B dev selects on during training) or after it (``cls``)."""
        if pooler not in POOLERS:
            raise ValueError(f"pooler must be one of {POOLERS}, got {pooler!r}")
        batch_size = batch_size or self.settings["eval_batch_size"]
        was_training = self.training
        self.eval()
        head = self.mlp if pooler == "cls" else nn.Identity()
        out = [head(self.cls(self.tokenize(texts[i:i + batch_size], None, device))).float().cpu()
               for i in range(0, len(texts), batch_size)]
        self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, self.encoder.config.hidden_size)


def save_sentence_model(path: str | Path, model: SentenceEncoder) -> None:
    """``model.pt``: the spec, the weights, and the config and tokenizer files (so no name is needed to load)."""
    from clbench.io import atomic_path

    with tempfile.TemporaryDirectory() as tmp:
        model.encoder.config.save_pretrained(tmp)
        model.tokenizer.save_pretrained(tmp)
        files = {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp_path:
        torch.save({"spec": model.spec, "kind": "sentence", "files": files, "state_dict": state}, tmp_path)


def load_sentence_model(path: str | Path, device: torch.device | str = "cpu") -> SentenceEncoder:
    """Rebuild a trained :class:`SentenceEncoder` from its ``model.pt``, in eval mode."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in blob["files"].items():
            (Path(tmp) / name).write_bytes(data)
        model = SentenceEncoder.from_files(blob["spec"], tmp)
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()

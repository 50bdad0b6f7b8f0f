"""clbench: a Snakemake workflow reproducing five contrastive-learning papers end to end."""

__version__ = "0.1.0"

# clbench: reproduce five contrastive-learning papers end to end.
# Thin on purpose: the configuration logic lives in clbench.workflow (workflow/rules/common.smk holds
# the thin input functions that call it), every stage is one rule file, and every rule runs one
# `clbench` command.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analyse.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/sweeps.smk"


rule all:
    input:
        final_outputs(),
    default_target: True

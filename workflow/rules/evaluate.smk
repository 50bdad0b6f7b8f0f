# A run's evaluation.json comes one of two ways:
# - evaluate: one job runs every evaluation of the run (at grid granularity the whole corruption
#   grid too, in memory): the cheap route, where job start-up dominates (tiny scale);
# - at cell granularity (paper scale), evaluate_clean fits the probes once and saves the linear one
#   (probe.pt), one evaluate_corruption job per (corruption, severity) scores it on that corrupted
#   test split, and merge_evaluation writes evaluation.json in the same format.
# The experiment wildcard's constraints (WHOLE_ / CELL_EXPERIMENTS) keep the routes disjoint.

RUN = f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}"
RUN_ID = "{experiment}/{method}/seed{seed}"


localrules:
    merge_evaluation,


rule evaluate:
    input:
        model=f"{RUN}/model.pt",
        metrics=f"{RUN}/metrics.csv",
        meta=from_wildcards(wf.dataset_meta),
    output:
        evaluation=f"{RUN}/evaluation.json",
    params:
        code=from_wildcards(rule_code.evaluate),
        spec=from_wildcards(wf.evaluation_spec),
        health=from_wildcards(wf.health_spec),
        device=config["device"],
        probe_out="",
    wildcard_constraints:
        experiment=WHOLE_SEED_EXPERIMENTS,
    threads: config["train_threads"]
    resources:
        **rule_resources(config, "evaluate"),
    log:
        f"{RESULTS}/logs/evaluate/{RUN_ID}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{RUN_ID}.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench evaluate run --model {input.model:q} --metrics {input.metrics:q} --dataset $(dirname {input.meta:q})"
        " --spec {params.spec:q} --seed {wildcards.seed} --device {params.device} --threads {threads}"
        " --out {output.evaluation:q} --probe-out={params.probe_out:q} --health {params.health:q} > {log:q} 2>&1"


# seeds_per_job: all: one job evaluates every seed of a method in turn
rule evaluate_seeds:
    input:
        models=per_seed(f"{RUN}/model.pt"),
        metrics=per_seed(f"{RUN}/metrics.csv"),
        meta=from_wildcards(wf.dataset_meta),
    output:
        evaluations=per_seed(f"{RUN}/evaluation.json"),
    params:
        code=from_wildcards(rule_code.evaluate),
        spec=from_wildcards(wf.evaluation_spec),
        health=from_wildcards(wf.health_spec),
        device=config["device"],
        seeds=wf.seeds_arg(config),
        # {seed} stays: the job fills in each seed
        run=lambda wildcards: wf.run_dir(config, wildcards.experiment, wildcards.method, "{seed}"),
    wildcard_constraints:
        experiment=WHOLE_GROUPED_EXPERIMENTS,
    threads: config["train_threads"]
    resources:
        **rule_resources(config, "evaluate"),
    log:
        f"{RESULTS}/logs/evaluate/{{experiment}}/{{method}}/seeds.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{experiment}}/{{method}}/seeds.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench evaluate run --model {params.run:q}/model.pt --metrics {params.run:q}/metrics.csv"
        " --dataset $(dirname {input.meta:q}) --spec {params.spec:q} --seed {params.seeds} --device {params.device}"
        " --threads {threads} --out {params.run:q}/evaluation.json --health {params.health:q} > {log:q} 2>&1"


# The clean evaluation of a run whose corruption cells are their own jobs: also saves the linear probe,
# so it is trained once per run, not once per cell.
use rule evaluate as evaluate_clean with:
    output:
        evaluation=f"{RUN}/evaluation_clean.json",
        probe=f"{RUN}/probe.pt",
    params:
        probe_out=lambda wildcards, output: output.probe,
    wildcard_constraints:
        experiment=CELL_EXPERIMENTS,
    resources:
        **rule_resources(config, "evaluate_clean"),
    log:
        f"{RESULTS}/logs/evaluate_clean/{RUN_ID}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate_clean/{RUN_ID}.tsv"


# One corruption cell of one run. Many small GPU jobs: the group lets a cluster profile pack several
# into one submission (group-components in workflow/profiles/slurm); local runs ignore it.
rule evaluate_corruption:
    input:
        model=f"{RUN}/model.pt",
        probe=f"{RUN}/probe.pt",
        corrupted=from_wildcards(wf.corrupted_meta),
    output:
        f"{RUN}/corruptions/{{corruption}}/s{{severity}}.json",
    params:
        device=config["device"],
        code=rule_code.command("evaluate corruption"),
    wildcard_constraints:
        experiment=CELL_EXPERIMENTS,
        corruption=r"[a-z_]+",
        severity=r"[1-5]",
    group:
        "corruptions"
    threads: config["train_threads"]
    resources:
        **rule_resources(config, "evaluate_corruption"),
    log:
        f"{RESULTS}/logs/evaluate_corruption/{RUN_ID}/{{corruption}}/s{{severity}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate_corruption/{RUN_ID}/{{corruption}}/s{{severity}}.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench evaluate corruption --model {input.model:q} --probe {input.probe:q}"
        " --corrupted $(dirname {input.corrupted:q}) --seed {wildcards.seed} --device {params.device}"
        " --threads {threads} --out {output:q} > {log:q} 2>&1"


rule merge_evaluation:
    input:
        clean=f"{RUN}/evaluation_clean.json",
        cells=from_wildcards(wf.corruption_cell_results),
    output:
        f"{RUN}/evaluation.json",
    params:
        code=rule_code.command("evaluate merge"),
    wildcard_constraints:
        experiment=CELL_EXPERIMENTS,
    log:
        f"{RESULTS}/logs/merge_evaluation/{RUN_ID}.log",
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench evaluate merge --clean {input.clean:q} --cells {input.cells:q} --out {output:q} > {log:q} 2>&1"

rule pretrain:
    input:
        meta=from_wildcards(wf.dataset_meta),
    output:
        model=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/model.pt",
        metrics=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/metrics.csv",
        run=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/run.json",
    params:
        code=from_wildcards(rule_code.train),  # the package code the job runs: an edit there re-runs it
        spec=from_wildcards(wf.pretrain_spec),
        device=config["device"],
        command=from_wildcards(wf.train_command),
        health=from_wildcards(wf.health_spec),
        # outside the declared outputs, which Snakemake deletes before a job runs: a re-run job resumes
        checkpoints=from_wildcards(wf.checkpoint_dir),
    wildcard_constraints:
        experiment=SEED_EXPERIMENTS,
        method=SINGLE_STAGE_METHODS,
    threads: config["train_threads"]
    resources:
        **rule_resources(config, "pretrain", method_gpus),
    log:
        f"{RESULTS}/logs/pretrain/{{experiment}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrain/{{experiment}}/{{method}}/seed{{seed}}.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "{params.command} train --spec {params.spec:q} --dataset $(dirname {input.meta:q})"
        " --out $(dirname {output.model:q}) --checkpoint-dir {params.checkpoints:q} --health {params.health:q}"
        " --seed {wildcards.seed} --device {params.device} --threads {threads} > {log:q} 2>&1"


# seeds_per_job: all: one job trains every seed of a method in turn (one torch start-up, not one per seed)
rule pretrain_seeds:
    input:
        meta=from_wildcards(wf.dataset_meta),
    output:
        models=per_seed(f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/model.pt"),
        metrics=per_seed(f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/metrics.csv"),
        runs=per_seed(f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/run.json"),
    params:
        code=from_wildcards(rule_code.train),
        spec=from_wildcards(wf.pretrain_spec),
        device=config["device"],
        command=from_wildcards(wf.train_command),
        health=from_wildcards(wf.health_spec),
        seeds=wf.seeds_arg(config),
        # {seed} stays in these two: the job fills in each seed
        out=lambda wildcards: wf.run_dir(config, wildcards.experiment, wildcards.method, "{seed}"),
        checkpoints=lambda wildcards: wf.checkpoint_dir(config, wildcards.experiment, wildcards.method, "{seed}"),
    wildcard_constraints:
        experiment=GROUPED_EXPERIMENTS,
        method=SINGLE_STAGE_METHODS,
    threads: config["train_threads"]
    resources:
        **rule_resources(config, "pretrain", method_gpus),
    log:
        f"{RESULTS}/logs/pretrain/{{experiment}}/{{method}}/seeds.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrain/{{experiment}}/{{method}}/seeds.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "{params.command} train --spec {params.spec:q} --dataset $(dirname {input.meta:q})"
        " --out {params.out:q} --checkpoint-dir {params.checkpoints:q} --health {params.health:q}"
        " --seed {params.seeds} --device {params.device} --threads {threads} > {log:q} 2>&1"


rule pretrain_stage:
    input:
        meta=from_wildcards(wf.dataset_meta),
        clusters=from_wildcards(wf.previous_stage_clusters),
    output:
        model=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/stage{{stage}}/model.pt",
        metrics=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/stage{{stage}}/metrics.csv",
        run=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/stage{{stage}}/run.json",
    params:
        code=from_wildcards(rule_code.train),
        spec=from_wildcards(wf.stage_spec),
        device=config["device"],
        command=from_wildcards(wf.train_command),
        health=from_wildcards(wf.health_spec),
        checkpoints=from_wildcards(wf.checkpoint_dir),
    wildcard_constraints:
        experiment=SEED_EXPERIMENTS,
        method=MCL_METHODS,
        stage=r"\d+",
    threads: config["train_threads"]
    resources:
        **rule_resources(config, "pretrain_stage", method_gpus),
    log:
        f"{RESULTS}/logs/pretrain_stage/{{experiment}}/{{method}}/seed{{seed}}/stage{{stage}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrain_stage/{{experiment}}/{{method}}/seed{{seed}}/stage{{stage}}.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "{params.command} train --spec {params.spec:q} --dataset $(dirname {input.meta:q})"
        " --out $(dirname {output.model:q}) --checkpoint-dir {params.checkpoints:q} --health {params.health:q}"
        " --clusters {input.clusters:q}"
        " --seed {wildcards.seed} --device {params.device} --threads {threads} > {log:q} 2>&1"


rule cluster_stage:
    input:
        model=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/stage{{stage}}/model.pt",
        meta=from_wildcards(wf.dataset_meta),
    output:
        f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/stage{{stage}}/clusters.npy",
    params:
        code=rule_code.command("cluster"),
        k=from_wildcards(wf.mcl_clusters),
        device=config["device"],
    wildcard_constraints:
        experiment=SEED_EXPERIMENTS,
        method=MCL_METHODS,
        stage=r"\d+",
    threads: config["train_threads"]
    resources:
        **rule_resources(config, "cluster_stage"),
    log:
        f"{RESULTS}/logs/cluster_stage/{{experiment}}/{{method}}/seed{{seed}}/stage{{stage}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/cluster_stage/{{experiment}}/{{method}}/seed{{seed}}/stage{{stage}}.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench cluster --model {input.model:q} --dataset $(dirname {input.meta:q}) --k {params.k}"
        " --seed {wildcards.seed} --device {params.device} --threads {threads} --out {output:q} > {log:q} 2>&1"


rule combine_stages:
    input:
        from_wildcards(wf.mcl_stage_models),
    output:
        model=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/model.pt",
        metrics=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/metrics.csv",
        run=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/run.json",
    params:
        code=rule_code.command("mcl-combine"),
    wildcard_constraints:
        experiment=SEED_EXPERIMENTS,
        method=MCL_METHODS,
    log:
        f"{RESULTS}/logs/combine_stages/{{experiment}}/{{method}}/seed{{seed}}.log",
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench mcl-combine --stages $(dirname {input:q}) --out $(dirname {output.model:q}) > {log:q} 2>&1"


# seeds_per_job: all: the MCL stage jobs of all seeds of a method, one job per stage (templates keep {seed})
STAGE = f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/stage{{stage}}"


rule pretrain_stage_seeds:
    input:
        meta=from_wildcards(wf.dataset_meta),
        clusters=from_wildcards(wf.previous_stage_clusters_of_seeds),
    output:
        models=per_seed(f"{STAGE}/model.pt"),
        metrics=per_seed(f"{STAGE}/metrics.csv"),
        runs=per_seed(f"{STAGE}/run.json"),
    params:
        code=from_wildcards(rule_code.train),
        spec=lambda wildcards: wf.stage_spec(config, wildcards.experiment, wildcards.method, "{seed}", wildcards.stage),
        device=config["device"],
        command=from_wildcards(wf.train_command),
        health=from_wildcards(wf.health_spec),
        seeds=wf.seeds_arg(config),
        out=lambda wildcards: f"{wf.run_dir(config, wildcards.experiment, wildcards.method, '{seed}')}/stage{wildcards.stage}",
        checkpoints=lambda wildcards: wf.checkpoint_dir(config, wildcards.experiment, wildcards.method, "{seed}",
                                                        wildcards.stage),
        clusters=lambda wildcards: wf.stage_templates(config, wildcards.experiment, wildcards.method, wildcards.stage,
                                                      "clusters.npy"),
    wildcard_constraints:
        experiment=GROUPED_EXPERIMENTS,
        method=MCL_METHODS,
        stage=r"\d+",
    threads: config["train_threads"]
    resources:
        **rule_resources(config, "pretrain_stage", method_gpus),
    log:
        f"{RESULTS}/logs/pretrain_stage/{{experiment}}/{{method}}/seeds/stage{{stage}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrain_stage/{{experiment}}/{{method}}/seeds/stage{{stage}}.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "{params.command} train --spec {params.spec:q} --dataset $(dirname {input.meta:q})"
        " --out {params.out:q} --checkpoint-dir {params.checkpoints:q} --health {params.health:q}"
        " --clusters {params.clusters}"
        " --seed {params.seeds} --device {params.device} --threads {threads} > {log:q} 2>&1"


rule cluster_stage_seeds:
    input:
        models=per_seed(f"{STAGE}/model.pt"),
        meta=from_wildcards(wf.dataset_meta),
    output:
        per_seed(f"{STAGE}/clusters.npy"),
    params:
        code=rule_code.command("cluster"),
        k=from_wildcards(wf.mcl_clusters),
        device=config["device"],
        seeds=wf.seeds_arg(config),
        stage=lambda wildcards: f"{wf.run_dir(config, wildcards.experiment, wildcards.method, '{seed}')}/stage{wildcards.stage}",
    wildcard_constraints:
        experiment=GROUPED_EXPERIMENTS,
        method=MCL_METHODS,
        stage=r"\d+",
    threads: config["train_threads"]
    resources:
        **rule_resources(config, "cluster_stage"),
    log:
        f"{RESULTS}/logs/cluster_stage/{{experiment}}/{{method}}/seeds/stage{{stage}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/cluster_stage/{{experiment}}/{{method}}/seeds/stage{{stage}}.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench cluster --model {params.stage:q}/model.pt --dataset $(dirname {input.meta:q}) --k {params.k}"
        " --seed {params.seeds} --device {params.device} --threads {threads} --out {params.stage:q}/clusters.npy"
        " > {log:q} 2>&1"


rule combine_stages_seeds:
    input:
        from_wildcards(wf.mcl_stage_models_of_seeds),
    output:
        models=per_seed(f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/model.pt"),
        metrics=per_seed(f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/metrics.csv"),
        runs=per_seed(f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/run.json"),
    params:
        code=rule_code.command("mcl-combine"),
        seeds=wf.seeds_arg(config),
        stages=lambda wildcards: wf.stage_templates(config, wildcards.experiment, wildcards.method),
        out=lambda wildcards: wf.run_dir(config, wildcards.experiment, wildcards.method, "{seed}"),
    wildcard_constraints:
        experiment=GROUPED_EXPERIMENTS,
        method=MCL_METHODS,
    log:
        f"{RESULTS}/logs/combine_stages/{{experiment}}/{{method}}/seeds.log",
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench mcl-combine --stages {params.stages} --out {params.out:q} --seed {params.seeds} > {log:q} 2>&1"

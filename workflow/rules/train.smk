rule pretrain:
    input:
        meta=dataset_meta,
    output:
        model=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/model.pt",
        metrics=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/metrics.csv",
        run=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/run.json",
    params:
        spec=lambda wildcards: as_json(method_spec(wildcards.experiment, wildcards.method)),
        device=config["device"],
        command=train_command,
        # Epoch checkpoints live outside the declared outputs: Snakemake deletes declared
        # outputs before a job runs, and a re-run job must find them to resume.
        checkpoints=lambda wildcards: f"{RESULTS}/checkpoints/{wildcards.experiment}/{wildcards.method}/seed{wildcards.seed}",
    wildcard_constraints:
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
        " --out $(dirname {output.model:q}) --checkpoint-dir {params.checkpoints:q}"
        " --seed {wildcards.seed} --device {params.device} --threads {threads} > {log:q} 2>&1"


rule pretrain_stage:
    input:
        meta=dataset_meta,
        clusters=previous_stage_clusters,
    output:
        model=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/stage{{stage}}/model.pt",
        metrics=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/stage{{stage}}/metrics.csv",
        run=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/stage{{stage}}/run.json",
    params:
        spec=stage_spec,
        device=config["device"],
        command=train_command,
        checkpoints=lambda wildcards: f"{RESULTS}/checkpoints/{wildcards.experiment}/{wildcards.method}/seed{wildcards.seed}/stage{wildcards.stage}",
    wildcard_constraints:
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
        " --out $(dirname {output.model:q}) --checkpoint-dir {params.checkpoints:q}"
        " --clusters {input.clusters:q}"
        " --seed {wildcards.seed} --device {params.device} --threads {threads} > {log:q} 2>&1"


rule cluster_stage:
    input:
        model=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/stage{{stage}}/model.pt",
        meta=dataset_meta,
    output:
        f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/stage{{stage}}/clusters.npy",
    params:
        k=lambda wildcards: method_spec(wildcards.experiment, wildcards.method)["mcl"]["clusters"],
        device=config["device"],
    wildcard_constraints:
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
        mcl_stage_dirs,
    output:
        model=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/model.pt",
        metrics=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/metrics.csv",
        run=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/run.json",
    wildcard_constraints:
        method=MCL_METHODS,
    log:
        f"{RESULTS}/logs/combine_stages/{{experiment}}/{{method}}/seed{{seed}}.log",
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench mcl-combine --stages $(dirname {input:q}) --out $(dirname {output.model:q}) > {log:q} 2>&1"

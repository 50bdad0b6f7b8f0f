rule pretrain:
    input:
        meta=dataset_meta,
    output:
        model=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/model.pt",
        metrics=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/metrics.csv",
        run=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/run.json",
    params:
        spec=lambda wildcards: as_json(config["methods"][wildcards.method]),
        device=config["device"],
        # Epoch checkpoints live outside the declared outputs: Snakemake deletes declared
        # outputs before a job runs, and a re-run job must find them to resume.
        checkpoints=lambda wildcards: f"{RESULTS}/checkpoints/{wildcards.experiment}/{wildcards.method}/seed{wildcards.seed}",
    threads: config["train_threads"]
    resources:
        gpu=config["gpus_per_train_job"],
    log:
        f"{RESULTS}/logs/pretrain/{{experiment}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrain/{{experiment}}/{{method}}/seed{{seed}}.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench train --spec {params.spec:q} --dataset $(dirname {input.meta:q})"
        " --out $(dirname {output.model:q}) --checkpoint-dir {params.checkpoints:q}"
        " --seed {wildcards.seed} --device {params.device} --threads {threads} > {log:q} 2>&1"
